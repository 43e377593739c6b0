# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""Rotary position embeddings for AcmeLM."""

import torch
import torch.nn as nn

from .norm import rotate_half


# Adapted from tinylm.modeling_tinylm.TinyLMRotaryEmbedding (TinyLM, Apache-2.0)
class AcmeRotaryEmbedding(nn.Module):
    """
    Rotary position embedding. Caches the inverse frequencies and returns the
    cosine and sine tables for the given positions.
    """

    def __init__(self, dim, max_position_embeddings=4096, base=10000.0, device=None):
        super().__init__()
        self.dim = dim
        self.max_position_embeddings = max_position_embeddings
        self.base = base
        # one frequency per pair of channels: base ** (-2i / dim)
        exponent = torch.arange(0, self.dim, 2, dtype=torch.int64).float().to(device) / self.dim
        inv_freq = 1.0 / (self.base ** exponent)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


# Adapted from tinylm.modeling_tinylm.apply_rotary_pos_emb
def apply_rotary(q, k, cos, sin, unsqueeze_dim=1):
    """Rotates the query and key tensors by the given cos/sin tables."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed
