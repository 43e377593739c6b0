"""Source snippets written for the tests (our own code, in the style of model repositories)."""

REF_HEADER = """\
# Copyright 2024 The Orbit Research Team. All rights reserved.
# SPDX-License-Identifier: Apache-2.0
"""

REF_ATTENTION = '''
import math

import torch
from torch import nn


class OrbitAttention(nn.Module):
    """Multi-head attention with grouped key/value heads."""

    def __init__(self, config, layer_idx=None):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.num_kv_heads = config.num_key_value_heads
        self.groups = self.num_heads // self.num_kv_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(self.hidden_size, self.num_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(self.hidden_size, self.num_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=False)
        self.dropout = config.attention_dropout

    def forward(self, hidden_states, attention_mask=None, position_bias=None):
        batch, length, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k_proj(hidden_states).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(hidden_states).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        key = key.repeat_interleave(self.groups, dim=1)
        value = value.repeat_interleave(self.groups, dim=1)
        scores = torch.matmul(query, key.transpose(2, 3)) * self.scale
        if position_bias is not None:
            scores = scores + position_bias
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask == 0, float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1).to(query.dtype)
        probs = nn.functional.dropout(probs, p=self.dropout, training=self.training)
        output = torch.matmul(probs, value)
        output = output.transpose(1, 2).reshape(batch, length, self.hidden_size)
        return self.o_proj(output)


def load_balancing_loss(router_logits, num_experts, top_k, attention_mask=None):
    """Auxiliary loss that pushes the router to spread tokens over experts."""
    probs = torch.softmax(router_logits, dim=-1)
    _, selected = torch.topk(probs, top_k, dim=-1)
    expert_mask = torch.nn.functional.one_hot(selected, num_experts)
    if attention_mask is None:
        tokens_per_expert = torch.mean(expert_mask.float(), dim=0)
        router_prob_per_expert = torch.mean(probs, dim=0)
    else:
        weights = attention_mask.reshape(-1, 1, 1).float()
        tokens_per_expert = torch.sum(expert_mask.float() * weights, dim=0) / torch.sum(weights, dim=0)
        router_prob_per_expert = torch.sum(probs * weights[:, 0], dim=0) / torch.sum(weights[:, 0], dim=0)
    loss = torch.sum(tokens_per_expert * router_prob_per_expert.unsqueeze(0))
    return loss * num_experts
'''

# The same attention, written independently: fused projection, einsum, different masking.
OTHER_ATTENTION = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class FusedSelfAttention(nn.Module):
    def __init__(self, dim, heads, dropout=0.0):
        super().__init__()
        assert dim % heads == 0, "dim must divide into heads"
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, causal=True):
        b, t, d = x.size()
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads) for z in (q, k, v))
        att = torch.einsum("bthd,bshd->bhts", q, k) / (d // self.heads) ** 0.5
        if causal:
            keep = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~keep, torch.finfo(att.dtype).min)
        att = self.drop(F.softmax(att, dim=-1))
        y = torch.einsum("bhts,bshd->bthd", att, v).reshape(b, t, d)
        return self.proj(y)
'''


def renamed_attention() -> str:
    """OrbitAttention with every identifier renamed (library names kept) and comments removed."""
    src = REF_ATTENTION.split("def load_balancing_loss")[0]
    src = src.replace('    """Multi-head attention with grouped key/value heads."""\n\n', "")
    for old, new in [
        ("OrbitAttention", "ZetaMixer"), ("hidden_states", "xs"), ("attention_mask", "pad_mask"),
        ("position_bias", "rel_bias"), ("layer_idx", "slot"), ("config", "cfg"), ("hidden_size", "width"),
        ("num_attention_heads", "n_heads_total"), ("num_heads", "n_heads"), ("head_dim", "d_head"),
        ("num_key_value_heads", "n_kv_total"), ("num_kv_heads", "n_kv"), ("groups", "rep"), ("scale", "temp"),
        ("q_proj", "wq"), ("k_proj", "wk"), ("v_proj", "wv"), ("o_proj", "wo"), ("attention_dropout", "p_drop"),
        ("dropout", "drop_p"), ("batch", "bsz"), ("length", "seqlen"), ("query", "qq"), ("key", "kk"),
        ("value", "vv"), ("scores", "logits"), ("probs", "weights"), ("output", "res"),
    ]:
        src = src.replace(old, new)
    return src

# The module-level function of REF_ATTENTION on its own, as a file.
LOSS_BODY_TEXT = "import torch\n\n\ndef load_balancing_loss" + REF_ATTENTION.split("def load_balancing_loss")[1]
