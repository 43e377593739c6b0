# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""Self-attention for AcmeLM."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rotary import apply_rotary


def expand_heads(t, factor):
    b, groups, length, width = t.shape
    if factor == 1:
        return t
    t = t[:, :, None, :, :].expand(b, groups, factor, length, width)
    return t.reshape(b, groups * factor, length, width)


class AcmeSelfAttention(nn.Module):
    def __init__(self, cfg, block_index=None):
        super().__init__()
        self.cfg = cfg
        self.block_index = block_index
        self.d_model = cfg.d_model
        self.n_heads = cfg.n_head
        self.d_head = self.d_model // self.n_heads
        self.n_kv_heads = cfg.n_kv_heads
        self.n_groups = self.n_heads // self.n_kv_heads
        self.attn_drop = cfg.attn_drop
        self.scale = 1.0 / math.sqrt(self.d_head)
        self.query_layer = nn.Linear(self.d_model, self.n_heads * self.d_head, bias=False)
        self.key_layer = nn.Linear(self.d_model, self.n_kv_heads * self.d_head, bias=False)
        self.value_layer = nn.Linear(self.d_model, self.n_kv_heads * self.d_head, bias=False)
        self.out_layer = nn.Linear(self.n_heads * self.d_head, self.d_model, bias=False)

    def forward(self, x, rope, mask=None):
        b, t, c = x.size()
        q = self.query_layer(x)
        k = self.key_layer(x)
        v = self.value_layer(x)
        q = q.view(b, t, self.n_heads, self.d_head).transpose(1, 2)
        k = k.view(b, t, self.n_kv_heads, self.d_head).transpose(1, 2)
        v = v.view(b, t, self.n_kv_heads, self.d_head).transpose(1, 2)
        cos_t, sin_t = rope
        q, k = apply_rotary(q, k, cos_t, sin_t)
        k = expand_heads(k, self.n_groups)
        v = expand_heads(v, self.n_groups)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scale
        future = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        scores = F.dropout(scores, p=self.attn_drop, training=self.training)
        out = torch.matmul(scores, v)
        out = out.transpose(1, 2).contiguous()
        out = out.reshape(b, t, self.d_model)
        out = self.out_layer(out)
        return out, scores
