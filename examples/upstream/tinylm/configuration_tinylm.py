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
"""Configuration for TinyLM models."""


class TinyLMConfig:
    r"""
    Stores the configuration of a [`TinyLMModel`]. Instantiating a configuration with the
    defaults yields a model of roughly 120M parameters.

    Args:
        vocab_size (`int`, *optional*, defaults to 32000):
            Number of distinct tokens the model can represent.
        hidden_size (`int`, *optional*, defaults to 768):
            Dimension of the hidden representations.
        intermediate_size (`int`, *optional*, defaults to 2048):
            Dimension of the MLP representations.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of decoder layers.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Number of attention heads for each attention layer.
        num_key_value_heads (`int`, *optional*, defaults to 4):
            Number of key/value heads used for grouped-query attention.
        hidden_act (`str`, *optional*, defaults to `"silu"`):
            Non-linear activation function used in the MLP.
        max_position_embeddings (`int`, *optional*, defaults to 2048):
            Maximum sequence length the model is expected to handle.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initializer for weight matrices.
        rms_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon used by the RMS normalization layers.
        rope_theta (`float`, *optional*, defaults to 10000.0):
            Base period of the rotary position embeddings.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout probability applied to the attention weights.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Whether to share the input embedding and output projection weights.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of the padding token.
        bos_token_id (`int`, *optional*, defaults to 1):
            Id of the beginning-of-sequence token.
        eos_token_id (`int`, *optional*, defaults to 2):
            Id of the end-of-sequence token.
    """

    model_type = "tinylm"

    def __init__(
        self,
        vocab_size=32000,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        hidden_act="silu",
        max_position_embeddings=2048,
        initializer_range=0.02,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        use_cache=False,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        if num_key_value_heads is None:
            num_key_value_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.attention_dropout = attention_dropout
        self.tie_word_embeddings = tie_word_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.use_cache = use_cache

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        """Returns the configuration as a plain dictionary."""
        return dict(self.__dict__)
