# Copyright 2025 Acme AI Inc.
# SPDX-License-Identifier: Apache-2.0
"""Small general-purpose helpers used across AcmeLM."""

import json
import os
import random
from types import SimpleNamespace

import torch
import torch.nn as nn


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters in `module` (only those requiring grad by default)."""
    total = 0
    for param in module.parameters():
        if param.requires_grad or not trainable_only:
            total += param.numel()
    return total


def set_seed(seed: int) -> None:
    """Seeds Python, PyTorch and (when present) CUDA random number generators."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def load_config(path, **overrides):
    """
    Reads a JSON config file into an attribute namespace. Keyword arguments override
    values from the file, so `load_config("acme.json", d_model=512)` is allowed.
    """
    with open(path, "r", encoding="utf-8") as handle:
        values = json.load(handle)
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise KeyError(f"unknown config keys: {', '.join(unknown)}")
    values.update(overrides)
    return SimpleNamespace(**values)
