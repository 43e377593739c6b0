# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""Token sampling utilities."""

import torch


def sample_top_p(probs, p):
    """
    Nucleus (top-p) sampling. Keeps the smallest set of tokens whose cumulative
    probability exceeds `p`, renormalizes, and draws one token from that set.

    Args:
        probs (`torch.Tensor`): probabilities of shape (batch, vocab).
        p (`float`): cumulative probability threshold.

    Returns:
        `torch.Tensor` of shape (batch, 1) with the sampled token ids.
    """
    probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
    probs_sum = torch.cumsum(probs_sort, dim=-1)
    # drop every token whose preceding mass already exceeds p
    mask = probs_sum - probs_sort > p
    probs_sort[mask] = 0.0
    probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
    next_token = torch.multinomial(probs_sort, num_samples=1)
    next_token = torch.gather(probs_idx, -1, next_token)
    return next_token
