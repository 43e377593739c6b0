# Copyright 2025 The TinyLM Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Simple autoregressive sampling for TinyLM."""

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


@torch.no_grad()
def generate(model, input_ids, max_new_tokens=64, temperature=0.8, top_p=0.95, eos_token_id=None):
    """
    Autoregressively extends `input_ids` by up to `max_new_tokens` tokens.

    A temperature of 0 selects greedy decoding; otherwise logits are divided by the
    temperature and a token is drawn with nucleus sampling. Generation stops early
    once every sequence in the batch has produced `eos_token_id`.
    """
    model.eval()
    batch_size = input_ids.shape[0]
    finished = torch.zeros(batch_size, dtype=torch.bool, device=input_ids.device)

    for _ in range(max_new_tokens):
        outputs = model(input_ids=input_ids)
        logits = outputs["logits"][:, -1, :]

        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            next_token = sample_top_p(probs, top_p)
        else:
            next_token = torch.argmax(logits, dim=-1, keepdim=True)

        # sequences that are already done keep emitting the eos token
        if eos_token_id is not None:
            next_token = torch.where(finished[:, None], torch.full_like(next_token, eos_token_id), next_token)
            finished = finished | (next_token.squeeze(-1) == eos_token_id)

        input_ids = torch.cat([input_ids, next_token], dim=-1)
        if eos_token_id is not None and bool(finished.all()):
            break

    return input_ids
