# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""AcmeLM: a compact decoder-only language model by Acme AI."""

from .independent import AcmeLayerNorm, AcmeLinearAttention, GatedFFN, greedy_decode
from .model import AcmeForCausalLM, AcmeModel
from .sampling import sample_top_p
from .utils import count_parameters, load_config, set_seed

__version__ = "0.3.1"

__all__ = [
    "AcmeModel",
    "AcmeForCausalLM",
    "AcmeLinearAttention",
    "AcmeLayerNorm",
    "GatedFFN",
    "greedy_decode",
    "sample_top_p",
    "count_parameters",
    "load_config",
    "set_seed",
]
