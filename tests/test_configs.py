"""Config files as trees (scanner.configs): tokens and fragments, architecture comparison, and the
cross-check against stored tensor shapes. Every fixture is written here."""

from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import pytest

from scanner.configs import (
    CONFIG_MIN_CONCRETE,
    MAX_PATH_TOKENS,
    MAX_SECTIONS,
    ConfigTree,
    architecture,
    check_against_weights,
    compare_architecture,
    is_config,
    load_config,
    parse_config_unit,
)
from scanner.fingerprint import Params, abstract_set, concrete_set, fingerprint_unit
from scanner.match import ShingleSets, _jaccard, verify
from scanner.parse import ParsedUnit
from scanner.walk import SourceUnit

PARAMS = Params()

# -- fixtures: configs shaped like well-known model families (values written here) -------------------

LLAMA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0", "use_cache": True, "vocab_size": 128256,
}
QWEN = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 152064,
}
MISTRAL = {
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0", "use_cache": True, "vocab_size": 32000,
}
GPT2 = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_inner": None, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "vocab_size": 50257,
}
MIXTRAL = {
    "architectures": ["MixtralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "num_local_experts": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "vocab_size": 32000,
}


def renamed(cfg: dict, name: str = "acme") -> dict:
    out = dict(cfg)
    out["model_type"] = name
    out["architectures"] = [f"{name.capitalize()}ForCausalLM"]
    out["auto_map"] = {"AutoConfig": f"configuration_{name}.{name.capitalize()}Config",
                       "AutoModelForCausalLM": f"modeling_{name}.{name.capitalize()}ForCausalLM"}
    out["_name_or_path"] = f"{name}/{name}-8b"
    return out


def hf_json(cfg: dict) -> bytes:
    """As transformers' save_pretrained writes it: indent 2, keys sorted."""
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()


def unit(path: str, data: bytes | str, **kw) -> ParsedUnit:
    parsed = parse_config_unit(SourceUnit(path, data.encode() if isinstance(data, str) else data), **kw)
    check_invariants(parsed)
    return parsed


def check_invariants(u: ParsedUnit) -> None:
    """What fingerprinting, indexing and matching rely on."""
    n = len(u.abstract)
    assert len(u.concrete) == n == len(u.lines)
    assert u.lines.dtype == np.int32
    assert all(isinstance(t, bytes) for t in u.abstract[:1000] + u.concrete[:1000])
    assert u.imports == []
    n_lines = u.fragments[0].end_line
    if n:
        assert 1 <= int(u.lines.min()) and int(u.lines.max()) <= n_lines
    root = u.fragments[0]
    assert (root.kind, root.symbol, root.parent, root.depth, root.tok_start, root.tok_end) == ("module", None, None, 0, 0, n)
    for i, f in enumerate(u.fragments[1:], start=1):
        assert f.kind == "section" and f.symbol
        assert f.parent is not None and f.parent < i
        p = u.fragments[f.parent]
        assert f.depth == p.depth + 1
        assert p.tok_start <= f.tok_start <= f.tok_end <= p.tok_end
        assert 1 <= f.start_line <= f.end_line <= n_lines
        if f.tokens:
            span = u.lines[f.tok_start:f.tok_end]
            assert f.start_line <= int(span.min()) and int(span.max()) <= f.end_line


def sets(u: ParsedUnit, frag: int = 0):
    prints = fingerprint_unit(u, PARAMS)
    f = u.fragments[frag]
    return (abstract_set(prints, f.tok_start, f.tok_end, PARAMS.k),
            concrete_set(prints, f.tok_start, f.tok_end, PARAMS.k))


def similarity(a: ParsedUnit, b: ParsedUnit) -> tuple[float, float]:
    (aa, ac), (ba, bc) = sets(a), sets(b)
    return _jaccard(aa, ba)[0], _jaccard(ac, bc)[0]


# -- which files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("config.json", True), ("generation_config.json", True), ("tokenizer_config.json", True),
    ("configs/train/sft.yaml", True), ("deploy/serve.yml", True), ("pyproject.toml", False), ("Config.JSON", True),
    (".github/workflows/ci.yml", False), (".pre-commit-config.yaml", False), ("a/.hidden/x.json", False),
    ("tokenizer.json", False), ("sub/vocab.json", False), ("model.safetensors.index.json", False),
    ("pytorch_model.bin.index.json", False), ("package-lock.json", False), ("web/node_modules/x/package.json", False),
    ("pnpm-lock.yaml", False), ("demo.ipynb", False), ("trainer_state.json", False), ("char_vocab.json", False),
    ("modeling.py", False), ("README.md", False), ("data.jsonl", False),
])
def test_is_config(path, expected):
    assert is_config(path) is expected


# -- architecture ---------------------------------------------------------------------------------------

def test_identical_config_is_a_config_copy_without_renames():
    c = compare_architecture(LLAMA, dict(LLAMA))
    assert c.verdict == "config-copy"
    assert c.renamed == {} and c.differing == {}
    assert {"hidden_size", "num_hidden_layers", "rope_theta", "rope_scaling", "vocab_size"} <= set(c.identical)
    assert "same names" in c.message


def test_renamed_model_type_is_a_config_copy_listing_identical_and_renamed_fields():
    c = compare_architecture(renamed(LLAMA), LLAMA)
    assert c.verdict == "config-copy"
    assert c.renamed["model_type"] == ("acme", "llama")
    assert c.renamed["architectures"] == (["AcmeForCausalLM"], ["LlamaForCausalLM"])
    assert set(c.renamed) == {"model_type", "architectures", "auto_map", "_name_or_path"}
    assert c.identical["hidden_size"] == 4096 and c.identical["num_key_value_heads"] == 8
    assert c.identical["rope_scaling"]["rope_type"] == "llama3"
    # The distinctive values are named; the common ones (silu, 4096) are not.
    assert {"vocab_size", "rope_theta", "rope_scaling"} <= set(c.distinctive)
    assert "hidden_act" not in c.distinctive
    assert "model_type 'acme' (reference 'llama')" in c.message and "vocab_size=128256" in c.message


def test_genuinely_different_architectures():
    c = compare_architecture(QWEN, LLAMA)
    assert c.verdict == "different"
    assert c.differing["hidden_size"] == (3584, 4096) and c.differing["num_hidden_layers"] == (28, 32)
    assert "differs" in c.message
    assert compare_architecture(GPT2, LLAMA).verdict == "different"


def test_same_shape_other_tokenizer_and_rope_is_similar_not_copy():
    """Mistral-7B and Llama-3-8B share their whole shape but vocabulary and rope: close, not a copy."""
    c = compare_architecture(MISTRAL, LLAMA)
    assert c.verdict == "similar"
    assert set(c.differing) >= {"vocab_size", "rope_theta"}


def test_one_changed_distinctive_field_is_not_a_copy():
    changed = renamed(LLAMA)
    changed["rope_theta"] = 1000000.0
    c = compare_architecture(changed, LLAMA)
    assert c.verdict == "similar" and c.differing == {"rope_theta": (1000000, 500000)}


def test_common_shape_only_is_flagged_as_weak():
    base = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 11008,
            "vocab_size": 32000, "rms_norm_eps": 1e-05, "hidden_act": "silu", "model_type": "llama"}
    c = compare_architecture(renamed(base), base)
    assert c.verdict == "config-copy" and c.distinctive == []
    assert "weak evidence" in c.message


def test_synonyms_across_families():
    a = architecture(GPT2)
    assert a["hidden_size"] == 768 and a["num_hidden_layers"] == 12 and a["num_attention_heads"] == 12
    assert a["max_position_embeddings"] == 1024 and a["norm_eps"] == 1e-05 and a["intermediate_size"] is None
    assert a["hidden_act"] == "gelu_tanh" and a["model_type"] == "gpt2"
    meta = architecture({"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                         "norm_eps": 1e-05, "rope_theta": 500000.0, "multiple_of": 1024})
    hf = architecture(LLAMA)
    assert all(meta[k] == hf[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                          "num_key_value_heads", "vocab_size", "norm_eps", "rope_theta"))
    glm = architecture({"num_layers": 40, "padded_vocab_size": 151552, "multi_query_group_num": 2,
                        "ffn_hidden_size": 13696, "seq_length": 131072, "layernorm_epsilon": 1e-5})
    assert glm["num_hidden_layers"] == 40 and glm["vocab_size"] == 151552 and glm["num_key_value_heads"] == 2
    assert glm["intermediate_size"] == 13696 and glm["max_position_embeddings"] == 131072 and glm["norm_eps"] == 1e-5
    moe = architecture({"n_routed_experts": 256, "moe_top_k": 8, "moe_intermediate_size": 2048, "n_shared_experts": 1})
    assert moe == {"num_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 2048, "n_shared_experts": 1}
    assert architecture(MIXTRAL)["num_experts"] == 8


def test_architecture_is_idempotent_and_normalises_values():
    once = architecture(dict(LLAMA, rope_theta=500000, rope_scaling={"type": "linear", "factor": 2}))
    assert architecture(once) == once
    assert once["rope_scaling"] == {"factor": 2, "rope_type": "linear"}
    assert architecture({"hidden_act": "SwiSH"})["hidden_act"] == "silu"


def test_nested_text_config_and_rope_parameters():
    vlm = {"model_type": "acme_vl", "architectures": ["AcmeVLForConditionalGeneration"],
           "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24},
           "text_config": {k: v for k, v in LLAMA.items() if k not in ("architectures",)}}
    a = architecture(vlm)
    assert a["hidden_size"] == 4096 and a["num_hidden_layers"] == 32 and a["model_type"] == "acme_vl"
    assert compare_architecture(vlm, LLAMA).verdict == "config-copy"
    v5 = {k: v for k, v in LLAMA.items() if k not in ("rope_theta", "rope_scaling")}
    v5["rope_parameters"] = {"rope_theta": 500000.0, **LLAMA["rope_scaling"]}
    assert architecture(v5)["rope_theta"] == 500000
    assert compare_architecture(v5, LLAMA).verdict == "config-copy"
    plain = architecture({"rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}})
    assert plain == {"rope_theta": 10000, "rope_scaling": None}


def test_missing_and_too_few_fields():
    trimmed = {k: v for k, v in LLAMA.items() if k not in ("num_key_value_heads", "rope_scaling")}
    c = compare_architecture(trimmed, LLAMA)
    # num_key_value_heads defaults to the heads (32), which contradicts the reference's 8.
    assert c.differing["num_key_value_heads"] == (32, 8)
    assert "rope_scaling" in c.missing
    few = compare_architecture({"hidden_size": 4096, "vocab_size": 32000}, {"hidden_size": 4096, "vocab_size": 32000})
    assert few.verdict == "different" and "Too few" in few.message
    assert compare_architecture({}, {}).verdict == "different"
    assert architecture([1, 2]) == {} and architecture("x") == {}


def test_architecture_of_parsed_units_and_trees():
    yaml_text = "model_type: llama\nhidden_size: 4096\nnum_hidden_layers: 32\nnum_attention_heads: 32\n" \
                "num_key_value_heads: 8\nintermediate_size: 14336\nvocab_size: 128256\nrms_norm_eps: 1.0e-5\n" \
                "rope_theta: 5.0e5\n"
    src = SourceUnit("model.yaml", yaml_text.encode())
    for form in (src, parse_config_unit(src), load_config(src)):
        a = architecture(form)
        assert a["norm_eps"] == 1e-05 and a["rope_theta"] == 500000 and a["vocab_size"] == 128256
    c = compare_architecture(architecture(src), LLAMA)
    assert c.verdict == "config-copy"
    assert c.missing["rope_scaling"] == (None, architecture(LLAMA)["rope_scaling"])
    assert "set in one config only" in c.message


# -- tokens, fragments, fingerprints ----------------------------------------------------------------------

def test_json_tokens_keep_keys_and_abstract_values():
    u = unit("config.json", '{\n  "b": {"y": [1, 2.5], "x": "s"},\n  "a": true,\n  "c": null\n}\n')
    words = [t.decode() for t in u.concrete]
    assert words == ["a", "=", "true", "b", "x", "=", '"s"', "b", "y", "=", "[", "1", "2.5", "]", "c", "=", "null"]
    assert [t.decode() for t in u.abstract] == ["a", "=", "BOOL", "b", "x", "=", "STR", "b", "y", "=", "[", "NUM",
                                                 "NUM", "]", "c", "=", "NULL"]
    assert u.lines.tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4]
    assert [(f.kind, f.symbol, f.start_line, f.end_line) for f in u.fragments] == [("module", None, 1, 5),
                                                                                   ("section", "b", 2, 2)]
    doc_order = unit("config.json", '{\n  "b": {"y": [1, 2.5], "x": "s"},\n  "a": true,\n  "c": null\n}\n',
                     canonical=False)
    assert np.all(np.diff(doc_order.lines) >= 0)


def test_same_value_spelled_differently_is_one_token():
    a = unit("a.json", '{"eps": 1e-05, "theta": 10000.0, "n": 32, "act": "silu"}')
    b = unit("b.yaml", "eps: 1.0e-5\ntheta: 10000\nn: 0x20\nact: silu\n")
    c = unit("c.toml", "eps = 0.00001\ntheta = 10_000\nn = 32\nact = 'silu'\n")
    assert a.concrete == b.concrete == c.concrete


def test_config_with_renamed_model_type_is_a_near_duplicate():
    ref = unit("config.json", hf_json(LLAMA))
    copy = unit("config.json", hf_json(renamed(LLAMA)))
    abstract, concrete = similarity(copy, ref)
    # renamed() adds auto_map and _name_or_path, which the reference lacks: abstract stays high.
    assert abstract >= 0.75 and 0.6 <= concrete < abstract
    only_renamed = dict(LLAMA, model_type="acme", architectures=["AcmeForCausalLM"])
    abstract, concrete = similarity(unit("config.json", hf_json(only_renamed)), ref)
    assert abstract == 1.0 and 0.8 <= concrete < 1.0
    # and the matcher's own verification accepts the pair
    (sa, sc), (ra, rc) = sets(unit("config.json", hf_json(only_renamed))), sets(ref)
    assert verify(ShingleSets(sa, sa, sc), ShingleSets(ra, ra, rc), PARAMS) is not None
    prints = fingerprint_unit(ref, PARAMS)
    assert 0 in prints.eligible.tolist()  # the whole config is big enough to be indexed


def test_reordered_keys_change_nothing():
    items = list(LLAMA.items())
    random.Random(7).shuffle(items)
    shuffled = json.dumps(dict(items), indent=4).encode()
    a, b = unit("config.json", hf_json(LLAMA)), unit("config.json", shuffled)
    assert a.abstract == b.abstract and a.concrete == b.concrete
    assert similarity(a, b) == (1.0, 1.0)
    assert sorted(b.lines.tolist()) != b.lines.tolist()  # the true lines, in key order
    # Without the canonical order, the same reordering breaks most shingles.
    plain = similarity(unit("config.json", hf_json(LLAMA), canonical=False),
                       unit("config.json", shuffled, canonical=False))
    assert plain[0] < 0.5


def test_same_family_configs_share_their_schema_not_their_values():
    """Why config matches are gated on the concrete channel (CONFIG_MIN_CONCRETE)."""
    ref = unit("config.json", hf_json(LLAMA))
    sibling = dict(LLAMA, intermediate_size=11008, num_key_value_heads=32, vocab_size=32000, rope_theta=10000.0,
                   rope_scaling=None, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2)
    abstract, concrete = similarity(unit("config.json", hf_json(sibling)), ref)
    assert abstract >= PARAMS.min_similarity and concrete < CONFIG_MIN_CONCRETE
    copy = dict(LLAMA, model_type="acme", architectures=["AcmeForCausalLM"])
    assert similarity(unit("config.json", hf_json(copy)), ref)[1] >= CONFIG_MIN_CONCRETE


def test_unrelated_configs_are_not_near_duplicates():
    abstract, _ = similarity(unit("config.json", hf_json(GPT2)), unit("config.json", hf_json(LLAMA)))
    assert abstract < 0.2


TRAIN_YAML = """\
# Fine-tuning recipe
model:
  name_or_path: meta-llama/Meta-Llama-3-8B
  torch_dtype: bfloat16
  attn_implementation: flash_attention_2
  lora:
    r: 16
    alpha: 32
    dropout: 0.05
    target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
data:
  train_files:
    - path: data/train.jsonl
      weight: 1.0
    - path: data/extra.jsonl
      weight: 0.5
  max_seq_length: 4096
  packing: true
  num_workers: 8
optimizer:
  name: adamw
  lr: 2.0e-5
  betas: [0.9, 0.95]
  weight_decay: 0.1
  eps: 1.0e-8
scheduler:
  name: cosine
  warmup_ratio: 0.03
  min_lr_ratio: 0.1
trainer:
  epochs: 3
  per_device_batch_size: 4
  gradient_accumulation_steps: 8
  gradient_checkpointing: true
  bf16: true
  logging_steps: 10
  save_steps: 500
  eval_steps: 500
  output_dir: checkpoints/llama3-sft
  seed: 42
  report_to: [wandb]
"""

TRAIN_YAML_COPY = """\
# Our training configuration
model:
  name_or_path: acme/acme-8b-base
  torch_dtype: bfloat16
  attn_implementation: sdpa
  lora:
    r: 16
    alpha: 32
    dropout: 0.1
    target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
trainer:
  epochs: 2
  per_device_batch_size: 8
  gradient_accumulation_steps: 4
  gradient_checkpointing: true
  bf16: true
  logging_steps: 10
  save_steps: 1000
  eval_steps: 1000
  output_dir: out/acme-sft
  seed: 1234
  report_to: [tensorboard]
optimizer:
  name: adamw
  lr: 1.0e-5
  betas: [0.9, 0.95]
  weight_decay: 0.0
  eps: 1.0e-8
scheduler:
  name: cosine
  warmup_ratio: 0.05
  min_lr_ratio: 0.1
data:
  train_files:
    - path: corpus/acme.jsonl
      weight: 1.0
  max_seq_length: 8192
  packing: true
  num_workers: 16
"""

DEPLOY_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: inference-server
  labels:
    app: inference
spec:
  replicas: 2
  selector:
    matchLabels:
      app: inference
  template:
    metadata:
      labels:
        app: inference
    spec:
      containers:
        - name: server
          image: registry.example.com/inference:1.4.2
          args: ["--port", "8000", "--max-batch", "32"]
          ports:
            - containerPort: 8000
          resources:
            limits:
              nvidia.com/gpu: 1
              memory: 64Gi
          env:
            - name: MODEL_DIR
              value: /models/current
            - name: LOG_LEVEL
              value: info
"""


def test_near_duplicate_training_yamls():
    ref, copy, other = unit("train.yaml", TRAIN_YAML), unit("train.yaml", TRAIN_YAML_COPY), unit("deploy.yaml", DEPLOY_YAML)
    abstract, concrete = similarity(copy, ref)
    assert abstract >= 0.75 and concrete < abstract  # sections reordered, values changed, an element dropped
    assert similarity(other, ref)[0] < 0.1
    symbols = {f.symbol for f in ref.fragments[1:]}
    assert {"model", "model.lora", "data", "data.train_files", "optimizer", "scheduler", "trainer"} <= symbols
    lora = next(f for f in ref.fragments if f.symbol == "model.lora")
    assert (lora.start_line, lora.end_line) == (6, 10) and ref.fragments[lora.parent].symbol == "model"
    # Section against section: the copied trainer block matches though its values changed.
    s_a, _ = sets(copy, next(i for i, f in enumerate(copy.fragments) if f.symbol == "trainer"))
    r_a, _ = sets(ref, next(i for i, f in enumerate(ref.fragments) if f.symbol == "trainer"))
    assert _jaccard(s_a, r_a)[0] == 1.0
    assert ref.comments == [(1, "# Fine-tuning recipe")]


TRAIN_TOML = """\
# torchtitan-style job
[job]
description = "Llama 3 8B training"
dump_folder = "./outputs"

[model]
name = "llama3"
flavor = "8B"
norm_type = "rmsnorm"
tokenizer_path = "./assets/tokenizer/original/tokenizer.model"

[optimizer]
name = "AdamW"
lr = 3e-4
eps = 1e-8

[training]
batch_size = 1
seq_len = 8192
warmup_steps = 200
max_norm = 1.0
steps = 1000
data_parallel_shard_degree = -1
tensor_parallel_degree = 1
compile = false
dataset = "c4"

[checkpoint]
enable_checkpoint = false
folder = "checkpoint"
interval = 500
model_weights_only = false
export_dtype = "float32"

[activation_checkpoint]
mode = "selective"
selective_ac_option = "op"
"""

TRAIN_TOML_COPY = TRAIN_TOML.replace('"Llama 3 8B training"', '"Acme 8B pretraining"').replace(
    "lr = 3e-4", "lr = 1.5e-4").replace("steps = 1000", "steps = 5000").replace('dataset = "c4"', 'dataset = "acme_web"')

PYPROJECT_TOML = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-tools"
version = "0.3.0"
requires-python = ">=3.10"
dependencies = ["numpy>=1.26", "requests>=2.31"]

[project.scripts]
acme = "acme.cli:main"

[tool.ruff]
line-length = 100
select = ["E", "F", "I"]
"""


def test_near_duplicate_training_tomls():
    ref, copy, other = unit("train.toml", TRAIN_TOML), unit("train.toml", TRAIN_TOML_COPY), unit("pyproject.toml", PYPROJECT_TOML)
    abstract, concrete = similarity(copy, ref)
    assert abstract == 1.0 and 0.5 < concrete < 1.0
    assert similarity(other, ref)[0] < 0.1
    assert [f.symbol for f in ref.fragments[1:]] == ["activation_checkpoint", "checkpoint", "job", "model", "optimizer",
                                                     "training"]
    training = next(f for f in ref.fragments if f.symbol == "training")
    assert (training.start_line, training.end_line) == (17, 26)
    assert ref.comments == [(1, "# torchtitan-style job")]


def test_toml_tables_in_pieces_arrays_of_tables_and_dotted_keys():
    text = ('a.b = 1\ninline = { p = 1, q.r = [1, 2] }\n[x]\ny = 2\n[x.z]\nw = "v"\n[[layer]]\nn = 1\n[[layer]]\nn = 2\n'
            '[layer.attn]\nheads = 8\n')
    u = unit("c.toml", text)
    tree = load_config(SourceUnit("c.toml", text.encode()))
    assert tree.value == {"a": {"b": 1}, "x": {"y": 2, "z": {"w": "v"}},
                          "layer": [{"n": 1}, {"n": 2, "attn": {"heads": 8}}], "inline": {"p": 1, "q": {"r": [1, 2]}}}
    assert {"a", "x", "layer", "layer[1]", "inline"} <= {f.symbol for f in u.fragments}  # x.z: one key, no section
    assert tree.lines["x.z.w"] == 6 and tree.lines["layer"] == 7 and tree.lines["inline.q"] == 2


def test_yaml_anchors_aliases_and_multiple_documents():
    text = """\
defaults: &defaults
  lr: 1.0e-4
  warmup: 100
stage1:
  <<: *defaults
  steps: 1000
stage2:
  <<: *defaults
  lr: 5.0e-5
  list: [*defaults, *defaults]
---
kind: Service
spec:
  ports: [{port: 80}, {port: 443}]
---
- just
- a list
---
"""
    u = unit("pipeline.yaml", text)
    assert b"ALIAS" in u.abstract and b"*defaults" in u.concrete
    assert u.concrete.count(b"---") == 3
    symbols = [f.symbol for f in u.fragments[1:]]
    assert symbols[:3] == ["defaults", "stage1", "stage2"] and "[2].spec" in symbols
    tree = load_config(SourceUnit("pipeline.yaml", text.encode()))
    assert len(tree.documents) == 4 and tree.value["stage1"] == {"<<": None, "steps": 1000}
    assert tree.documents[1]["spec"]["ports"] == [{"port": 80}, {"port": 443}]
    assert tree.documents[2] == ["just", "a list"]


def test_billion_laughs_is_not_expanded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    u = unit("bomb.yaml", "\n".join(lines) + "\n")
    assert len(u.abstract) < 500


@pytest.mark.parametrize("path, text", [
    ("config.json", '{\n  "hidden_size": 4096,\n  "layers": [1, 2,\n  "vocab_size" 32000,\n  "x": }\n'),
    ("config.json", '{"a": 1, "b": {"c": 2'),
    ("config.json", '"only a string" garbage { ] ,'),
    ("train.yaml", "model:\n  name: x\n   bad: [1, 2\n  - item\nok: 1\n: :\n"),
    ("train.yaml", "a: 'unterminated\nb: 2\n"),
    ("train.toml", '[model\nname = "x"\nhidden = \n[ok]\nv = 1\nw = [1, 2\n'),
    ("train.toml", 'a = { b = 1\nc = """unterminated\n'),
])
def test_invalid_syntax_gives_error_lines_and_keeps_what_parses(path, text):
    u = unit(path, text)
    assert u.error_lines and all(1 <= ln <= u.fragments[0].end_line for ln in u.error_lines)
    load_config(SourceUnit(path, text.encode()))
    architecture(u)
    fingerprint_unit(u, PARAMS)


def test_recovered_keys_survive_errors():
    u = unit("config.json", '{\n  "hidden_size": 4096,\n  "broken": ,\n  "vocab_size": 32000\n}\n')
    assert b"hidden_size" in u.concrete and b"vocab_size" in u.concrete and u.error_lines == [3]


def test_invalid_utf8_and_empty_inputs():
    u = unit("config.json", b'{"name": "caf\xe9", "n": 1}')
    assert u.invalid_utf8 and b"n" in u.concrete
    for path in ("e.json", "e.yaml", "e.toml"):
        for data in (b"", b"\n\n", b"# only a comment\n", b"\x00\xff\xfe"):
            empty = unit(path, data)
            assert empty.fragments[0].tok_end == len(empty.abstract)
    assert unit("c.yaml", "# c1\n# c2\n").comments == [(1, "# c1"), (2, "# c2")]


@pytest.mark.parametrize("path, text", [
    ("deep.json", "[" * 10_000 + "1" + "]" * 10_000),
    ("deep.json", '{"a": ' * 10_000 + "1" + "}" * 10_000),
    ("deep.yaml", "{a: " * 10_000 + "1" + "}" * 10_000),
    ("deep.yaml", "- " * 3_000 + "x\n"),
    ("deep.toml", "a = " + "{b = " * 10_000 + "1" + "}" * 10_000),
    ("deep.toml", "a = " + "[" * 10_000 + "1" + "]" * 10_000),
    ("deep.toml", ".".join(["k"] * 10_000) + " = 1\n"),
], ids=["json-arrays", "json-objects", "yaml-flow", "yaml-block-sequences", "toml-inline-tables", "toml-arrays",
        "toml-dotted-key"])
def test_deep_nesting_neither_recurses_nor_blows_up(path, text):
    old = sys.getrecursionlimit()
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    sys.setrecursionlimit(depth + 100)  # anything recursive over the nesting fails at once
    try:
        u = unit(path, text)
        tree = load_config(SourceUnit(path, text.encode()))
        a = architecture(tree)
    finally:
        sys.setrecursionlimit(old)
    assert len(u.abstract) <= MAX_PATH_TOKENS + 5 and a == {}  # cut marker, path, =, [, value, ]
    assert len(u.fragments) <= 4
    assert isinstance(tree, ConfigTree)


def test_megabyte_json_is_parsed_quickly_with_bounded_sections():
    records = [{"id": i, "text": f"sample {i}", "scores": [i % 7, i % 11, 0.5], "meta": {"src": "web", "ok": i % 2 == 0}}
               for i in range(9000)]
    data = json.dumps({"records": records, "more": [{"k": i, "v": {"w": i}} for i in range(3000)]}, indent=1).encode()
    assert len(data) > 1_000_000
    start = time.perf_counter()
    u = unit("data.json", data)
    elapsed = time.perf_counter() - start
    assert len(u.fragments) <= MAX_SECTIONS + 1
    assert len(u.abstract) > 100_000
    fingerprint_unit(u, PARAMS)
    assert elapsed < 30  # ~1-2 s here; generous for a loaded machine (benchmarks measure speed)


def test_huge_strings_and_keys_stay_cheap():
    big = "x" * 900_000
    for path, text in (("c.json", json.dumps({"chat_template": big + '\\"', big[:5000]: 1})),
                       ("c.yaml", f"chat_template: '{big}'\n{big[:5000]}: 1\n"),
                       ("c.toml", f'chat_template = "{big}"\n"{big[:5000]}" = 1\n')):
        start = time.perf_counter()
        u = unit(path, text)
        assert time.perf_counter() - start < 10  # ~0.1 s; a backtracking pattern took seconds and 100s of MB
        assert max(map(len, u.concrete)) <= 202 and not u.error_lines
        assert len(u.abstract) == 6


def _mutations(text: bytes, rng: random.Random, count: int):
    alphabet = b'{}[]:,"\'#-=\n .\\*&!|>?0aZ'
    for _ in range(count):
        data = bytearray(text)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            at = rng.randrange(len(data) + 1)
            if op < 0.4 and data:
                del data[at:at + rng.randint(1, 20)]
            elif op < 0.8:
                data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            else:
                chunk = data[rng.randrange(len(data) or 1):][:40]
                data[at:at] = chunk
        yield bytes(data)


@pytest.mark.parametrize("path, text", [
    ("config.json", hf_json(LLAMA)), ("train.yaml", TRAIN_YAML.encode()), ("train.toml", TRAIN_TOML.encode()),
], ids=["json", "yaml", "toml"])
def test_mutated_inputs_never_raise(path, text):
    rng = random.Random(path)
    for data in _mutations(text, rng, 150):
        u = unit(path, data)
        architecture(u)
        fingerprint_unit(u, PARAMS)


# -- weights ----------------------------------------------------------------------------------------------

def hf_tensors(cfg: dict, *, prefix: str = "model.", layers: int | None = None, experts: int = 0,
               vocab_rows: int | None = None, lm_head: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim") or h // heads
    rows = vocab_rows or cfg["vocab_size"]
    out = [(f"{prefix}embed_tokens.weight", (rows, h)), (f"{prefix}norm.weight", (h,))]
    for n in range(cfg["num_hidden_layers"] if layers is None else layers):
        at = f"{prefix}layers.{n}."
        out += [(at + "input_layernorm.weight", (h,)), (at + "post_attention_layernorm.weight", (h,)),
                (at + "self_attn.q_proj.weight", (heads * hd, h)), (at + "self_attn.k_proj.weight", (kv * hd, h)),
                (at + "self_attn.v_proj.weight", (kv * hd, h)), (at + "self_attn.o_proj.weight", (h, heads * hd))]
        if experts:
            out.append((at + "block_sparse_moe.gate.weight", (experts, h)))
            for e in range(experts):
                out += [(at + f"block_sparse_moe.experts.{e}.w1.weight", (inter, h)),
                        (at + f"block_sparse_moe.experts.{e}.w2.weight", (h, inter)),
                        (at + f"block_sparse_moe.experts.{e}.w3.weight", (inter, h))]
        else:
            out += [(at + "mlp.gate_proj.weight", (inter, h)), (at + "mlp.up_proj.weight", (inter, h)),
                    (at + "mlp.down_proj.weight", (h, inter))]
    if lm_head:
        out.append(("lm_head.weight", (rows, h)))
    return out


def test_consistent_weights_have_no_contradictions():
    assert check_against_weights(architecture(LLAMA), hf_tensors(LLAMA)) == []
    assert check_against_weights(architecture(QWEN), hf_tensors(QWEN)) == []
    assert check_against_weights(architecture(MIXTRAL), hf_tensors(MIXTRAL, experts=8)) == []
    assert check_against_weights(LLAMA, hf_tensors(LLAMA)) == []  # a raw config is normalised first


def test_contradictory_weights_are_listed_once_per_field():
    declared = dict(LLAMA, hidden_size=5120)
    found = check_against_weights(declared, hf_tensors(LLAMA))
    assert found[0].field == "hidden_size" and (found[0].declared, found[0].stored) == (5120, 4096)
    assert found[0].tensor_name == "model.embed_tokens.weight"
    # one per (field, tensor role), each naming its first tensor and counting the others
    assert len(found) == len({(c.field, c.tensor_name.split(".")[-2]) for c in found}) < 12
    found = {c.field: c for c in check_against_weights(LLAMA, hf_tensors(LLAMA, layers=30))}
    assert set(found) == {"num_hidden_layers"}
    assert (found["num_hidden_layers"].declared, found["num_hidden_layers"].stored) == (32, 30)
    assert found["num_hidden_layers"].tensor_name.startswith("model.layers.29.")
    found = check_against_weights(dict(LLAMA, num_key_value_heads=32), hf_tensors(LLAMA))
    kv = [c for c in found if c.field == "num_key_value_heads"]
    assert {c.tensor_name.rsplit(".", 2)[-2] for c in kv} == {"k_proj", "v_proj"}
    assert kv[0].declared == 4096 and kv[0].stored == 1024 and "31 more" in kv[0].message
    found = {c.field: c for c in check_against_weights(dict(LLAMA, intermediate_size=11008), hf_tensors(LLAMA))}
    assert set(found) == {"intermediate_size"} and found["intermediate_size"].stored == 14336


def test_vocabulary_padding_is_allowed_but_fewer_rows_are_not():
    cfg = dict(QWEN, vocab_size=151665)
    assert check_against_weights(cfg, hf_tensors(QWEN, vocab_rows=151680)) == []  # padded to a multiple of 64
    found = check_against_weights(cfg, hf_tensors(QWEN, vocab_rows=151600))
    assert {c.field for c in found} == {"vocab_size"} and len(found) == 2  # embedding and lm_head
    assert check_against_weights(cfg, hf_tensors(QWEN, vocab_rows=160000))  # far beyond padding


def test_untied_embeddings_without_an_output_head():
    found = check_against_weights(LLAMA, hf_tensors(LLAMA, lm_head=False))
    assert [c.field for c in found] == ["tie_word_embeddings"]
    assert check_against_weights(dict(LLAMA, tie_word_embeddings=True), hf_tensors(LLAMA, lm_head=False)) == []


def test_expert_counts():
    found = {c.field: c for c in check_against_weights(dict(MIXTRAL, num_local_experts=16), hf_tensors(MIXTRAL, experts=8))}
    assert set(found) == {"num_experts"} and found["num_experts"].stored == 8
    dense_config_moe_weights = check_against_weights(MISTRAL, hf_tensors(MISTRAL, experts=4, layers=32))
    assert [c.field for c in dense_config_moe_weights] == ["num_experts"]
    # Qwen-MoE naming: mlp.experts.E.*, a router, one shared expert of its own width.
    qmoe = {"hidden_size": 2048, "num_hidden_layers": 2, "num_attention_heads": 16, "num_key_value_heads": 16,
            "intermediate_size": 5632, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
            "num_experts": 60, "num_experts_per_tok": 4, "vocab_size": 151936}
    tensors = [("model.embed_tokens.weight", (151936, 2048)), ("lm_head.weight", (151936, 2048))]
    for n in range(2):
        at = f"model.layers.{n}."
        tensors += [(at + "self_attn.q_proj.weight", (2048, 2048)), (at + "mlp.gate.weight", (60, 2048)),
                    (at + "mlp.shared_expert.gate_proj.weight", (5632, 2048))]
        tensors += [(at + f"mlp.experts.{e}.gate_proj.weight", (1408, 2048)) for e in range(60)]
    assert check_against_weights(qmoe, tensors) == []
    found = {c.field for c in check_against_weights(dict(qmoe, moe_intermediate_size=2816, num_experts=64), tensors)}
    assert found == {"moe_intermediate_size", "num_experts"}
    packed = [("model.embed_tokens.weight", (151936, 2048)), ("model.layers.0.mlp.experts.gate_up_proj", (60, 2048, 2816))]
    assert check_against_weights(dict(qmoe, num_hidden_layers=1), packed) == []
    assert [c.field for c in check_against_weights(dict(qmoe, num_hidden_layers=1, num_experts=64), packed)] == ["num_experts"]


def test_gpt2_scheme():
    tensors = [("transformer.wte.weight", (50257, 768)), ("transformer.wpe.weight", (1024, 768)),
               ("transformer.ln_f.weight", (768,))]
    for n in range(12):
        at = f"transformer.h.{n}."
        tensors += [(at + "attn.c_attn.weight", (768, 2304)), (at + "attn.c_proj.weight", (768, 768)),
                    (at + "mlp.c_fc.weight", (768, 3072)), (at + "mlp.c_proj.weight", (3072, 768))]
    assert check_against_weights(GPT2, tensors) == []
    found = {c.field for c in check_against_weights(dict(GPT2, n_embd=1024, n_layer=24), tensors)}
    assert {"hidden_size", "num_hidden_layers"} <= found
    bare = [(name.removeprefix("transformer."), shape) for name, shape in tensors]
    assert check_against_weights(GPT2, bare) == []


def test_meta_original_scheme():
    params = {"dim": 4096, "n_layers": 2, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "norm_eps": 1e-05}
    tensors = [("tok_embeddings.weight", (128256, 4096)), ("output.weight", (128256, 4096)), ("norm.weight", (4096,))]
    for n in range(2):
        at = f"layers.{n}."
        tensors += [(at + "attention.wq.weight", (4096, 4096)), (at + "attention.wk.weight", (1024, 4096)),
                    (at + "attention.wv.weight", (1024, 4096)), (at + "attention.wo.weight", (4096, 4096)),
                    (at + "feed_forward.w1.weight", (14336, 4096))]
    assert check_against_weights(params, tensors) == []
    found = [c for c in check_against_weights(dict(params, n_kv_heads=32), tensors)]
    assert {c.field for c in found} == {"num_key_value_heads"}
    assert found[0].tensor_name == "layers.0.attention.wk.weight"


def test_multimodal_prefix_ignores_the_vision_tower():
    tensors = hf_tensors(LLAMA, prefix="model.language_model.", layers=32)
    tensors += [(f"model.vision_tower.encoder.layers.{n}.self_attn.q_proj.weight", (1024, 1024)) for n in range(24)]
    tensors += [("model.vision_tower.embeddings.patch_embedding.weight", (1024, 3, 14, 14))]
    vlm = {"model_type": "acme_vl", "text_config": LLAMA, "vision_config": {"hidden_size": 1024}}
    assert check_against_weights(architecture(vlm), tensors) == []


def test_quantised_and_garbage_inputs():
    tensors = hf_tensors(LLAMA, layers=32)
    packed = [(n, (s[0] * s[1] // 2, 1)) if len(s) == 2 else (n, s) for n, s in tensors]
    packed.append(("model.layers.0.self_attn.q_proj.weight.absmax", (4096,)))
    assert check_against_weights(LLAMA, packed) == []  # bitsandbytes-packed matrices are not compared
    fewer = [(n, s) for n, s in packed if not n.startswith("model.layers.31.")]
    assert [c.field for c in check_against_weights(LLAMA, fewer)] == ["num_hidden_layers"]
    assert check_against_weights(LLAMA, []) == []
    assert check_against_weights({}, tensors) == []
    assert check_against_weights(None, [("x", "not a shape"), (3, (1,)), ("y",)]) == []
    assert check_against_weights({"hidden_size": "4096"}, tensors) == []


# -- parser limits ------------------------------------------------------------------------------------

def test_yaml_nested_past_the_grammars_limit_is_read_up_to_it():
    """tree-sitter-yaml 0.7.2 writes past its state buffer at ~253 nested block levels (a crash):
    such a file is read up to the first line that could go past 200 levels, which is an error line."""
    head = "model_type: llama\nhidden_size: 4096\n"
    deep = "".join(" " * i + "k:\n" for i in range(400))
    u = unit("deep.yaml", head + deep)
    assert u.error_lines == [2 + 200 + 1]
    assert b"hidden_size" in u.concrete and b"model_type" in u.concrete
    seq = unit("deep.yaml", head + "a:\n" + "".join(" " * (2 * i) + "- k:\n" for i in range(300)))
    assert seq.error_lines and seq.error_lines[0] <= 3 + 200
    # a sequence at its key's column: two levels a column (raw, 130 columns crash the grammar)
    two = unit("deep.yaml", "".join(" " * c + "k:\n" + " " * c + "-\n" for c in range(130)))
    assert two.error_lines == [201]
    fine = unit("ok.yaml", head + "".join(" " * i + "k:\n" for i in range(150)) + " " * 150 + "v: 1\n")
    assert fine.error_lines == [] and b"v" in fine.concrete


def test_yaml_longer_than_the_grammars_row_counter(monkeypatch):
    """tree-sitter-yaml counts rows in 16 bits: longer files are parsed in pieces cut at top-level keys."""
    from scanner import configs

    text = "".join(f"key_{i}: {i}\n" for i in range(34_000))
    u = unit("big.yaml", text)
    assert u.error_lines == [] and len(u.abstract) == 3 * 34_000
    assert int(u.lines[u.concrete.index(b"key_33999")]) == 34_000
    tree = load_config(SourceUnit("big.yaml", text.encode()))
    assert len(tree.value) == 34_000 and tree.lines["key_33999"] == 34_000
    # Pieces join into one document; a piece cut inside a block (no top-level key to cut before)
    # is read on, and its first line is an error line.
    monkeypatch.setattr(configs, "_YAML_CHUNK_LINES", 1000)
    small = "".join(f"key_{i}:\n  value: {i}\n  name: n{i}\n" for i in range(1500))  # 4,500 lines
    v = unit("big.yaml", small)
    assert v.error_lines == [] and v.concrete.count(b"value") == 1500
    assert [f.symbol for f in v.fragments[1:3]] == ["key_0", "key_1"]
    nested = "top:\n" + "".join(f"  k{i}: {i}\n" for i in range(2500))
    w = unit("nested.yaml", nested)
    assert w.error_lines == [1001, 2001] and b"k2499" in w.concrete


VALID_JSON = [
    hf_json(LLAMA), hf_json(GPT2), json.dumps(QWEN).encode(), b'[1, [2, [3, {"a": []}]], {}, "x"]', b'"scalar"', b"3.5",
    b'{"dup": 1, "dup": {"x": 2}, "esc": "a\\"b\\\\c\\u00e9\\n", "uni": "\xc3\xa9\xe2\x82\xac", "e": 1E+3, "n": -0}',
    b'{\n  "a": {\n    "b": [\n      1,\n      {"c": null}\n    ]\n  },\n  "empty": {},\n  "list": []\n}\n',
    json.dumps({"records": [{"id": i, "v": [i, i / 3]} for i in range(500)]}, indent=1).encode(),
]


@pytest.mark.parametrize("data", VALID_JSON, ids=[f"json{i}" for i in range(len(VALID_JSON))])
def test_valid_json_fast_path_is_the_tree_sitter_tree(data, monkeypatch):
    from scanner import configs

    fast = parse_config_unit(SourceUnit("c.json", data))
    assert configs._json_fast(data) is not None
    monkeypatch.setattr(configs, "_json_fast", lambda _data: None)
    slow = parse_config_unit(SourceUnit("c.json", data))
    assert fast.abstract == slow.abstract and fast.concrete == slow.concrete
    assert fast.lines.tolist() == slow.lines.tolist() and fast.fragments == slow.fragments
    assert load_config(SourceUnit("c.json", data)).documents == [json.loads(data)] or b"dup" in data
