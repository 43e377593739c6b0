# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""
Building blocks written from scratch for AcmeLM's linear-attention variant.

Kernelized (linear) attention replaces the softmax with a positive feature map so
that the cost grows linearly with the sequence length; causality is obtained with
running sums over the time axis rather than with a triangular mask.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _feature_map(t):
    # elu(x) + 1 keeps every feature strictly positive
    return F.elu(t) + 1.0


class AcmeLinearAttention(nn.Module):
    """Causal linear attention with a single fused input projection."""

    def __init__(self, width, *, heads=8, eps=1e-5, use_bias=True):
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} is not divisible by heads={heads}")
        self.heads = heads
        self.eps = eps
        self.qkv = nn.Linear(width, 3 * width, bias=use_bias)
        self.proj_out = nn.Linear(width, width, bias=use_bias)

    def _split(self, t):
        n, length, width = t.shape
        return t.view(n, length, self.heads, width // self.heads).permute(0, 2, 1, 3)

    def forward(self, tokens, keep=None):
        n, length, width = tokens.shape
        qry, key, val = (self._split(part) for part in self.qkv(tokens).chunk(3, dim=-1))
        qry, key = _feature_map(qry), _feature_map(key)

        if keep is not None:
            # padded positions contribute nothing to the running sums
            key = key * keep[:, None, :, None].to(key.dtype)

        # running outer products give each position the sum over its own past only
        kv_prefix = torch.einsum("bhsd,bhse->bhsde", key, val).cumsum(dim=2)
        k_prefix = key.cumsum(dim=2)
        numer = torch.einsum("bhsd,bhsde->bhse", qry, kv_prefix)
        denom = torch.einsum("bhsd,bhsd->bhs", qry, k_prefix).unsqueeze(-1)
        mixed = numer / (denom + self.eps)

        mixed = mixed.permute(0, 2, 1, 3).reshape(n, length, width)
        return self.proj_out(mixed)


class GatedFFN(nn.Module):
    """Feed-forward layer whose single input projection yields both value and gate."""

    def __init__(self, width, *, expansion=4, p_drop=0.0):
        super().__init__()
        inner = int(expansion * width * 2 / 3)
        self.w_in = nn.Linear(width, 2 * inner)
        self.w_out = nn.Linear(inner, width)
        self.p_drop = p_drop

    def forward(self, tokens):
        value, gate = self.w_in(tokens).chunk(2, dim=-1)
        gated = value * (gate * torch.sigmoid(gate))
        if self.training and self.p_drop > 0:
            gated = F.dropout(gated, self.p_drop)
        return self.w_out(gated)


class AcmeLayerNorm(nn.Module):
    """Mean/variance normalization over the last axis with optional affine parameters."""

    def __init__(self, width, *, eps=1e-5, affine=True):
        super().__init__()
        self.eps = eps
        self.affine = affine
        if affine:
            self.gain = nn.Parameter(torch.ones(width))
            self.shift = nn.Parameter(torch.zeros(width))

    def forward(self, tokens):
        var, mean = torch.var_mean(tokens, -1, keepdim=True, unbiased=False)
        out = (tokens - mean) / (var + self.eps).sqrt()
        return torch.addcmul(self.shift, out, self.gain) if self.affine else out


@torch.inference_mode()
def greedy_decode(net, prompt, *, budget=32, stop_id=None, penalty=1.2):
    """
    Greedy decoding with a repetition penalty: logits of tokens already present in
    the sequence are divided (if positive) or multiplied (if negative) by `penalty`.
    `prompt` is a 1-D tensor of token ids; the extended 1-D tensor is returned.
    """
    seq = prompt.tolist()
    steps = 0
    while steps < budget:
        scores = net(torch.tensor([seq], device=prompt.device))["logits"][0, -1]
        seen = torch.tensor(sorted(set(seq)), device=scores.device)
        picked = scores[seen]
        scores[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
        choice = int(scores.argmax())
        seq.append(choice)
        steps += 1
        if stop_id is not None and choice == stop_id:
            break
    return torch.tensor(seq, device=prompt.device)
