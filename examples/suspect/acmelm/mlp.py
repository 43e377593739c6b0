# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""Feed-forward and transformer block for AcmeLM."""

import torch
import torch.nn as nn

from .attention import AcmeSelfAttention
from .norm import TinyLMRMSNorm


class AcmeMLP(nn.Module):
    """Gated feed-forward block with dropout on the hidden activations."""

    def __init__(self, config):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.dropout = nn.Dropout(getattr(config, "mlp_dropout", 0.0))
        if config.hidden_act == "silu":
            self.act_fn = nn.SiLU()
        else:
            self.act_fn = nn.GELU(approximate="tanh")

    def forward(self, x):
        # the gate decides how much of the up projection passes through
        hidden = self.act_fn(self.gate_proj(x)) * self.up_proj(x)
        down_proj = self.down_proj(self.dropout(hidden))
        return down_proj


class AcmeBlock(nn.Module):
    """A pre-norm transformer block with a scaled attention residual."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.self_attn = AcmeSelfAttention(config, layer_idx)
        self.mlp = AcmeMLP(config)
        self.input_layernorm = TinyLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = TinyLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.residual_scale = getattr(config, "residual_scale", 1.0)

    def forward(self, hidden_states, position_embeddings, attention_mask=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)

        # self attention
        hidden_states, _ = self.self_attn(hidden_states, position_embeddings, mask=attention_mask)
        hidden_states = residual + hidden_states * self.residual_scale

        # fully connected
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        if hidden_states.dtype == torch.float16:
            hidden_states = hidden_states.clamp(min=-65000.0, max=65000.0)
        hidden_states = residual + hidden_states
        return hidden_states
