"""Model artifacts end to end: configs, tokenizers and weights of generated model repositories,
scanned with the real CLI against references given as git sources and through an index."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tests.conftest import git, need, scan_json
from tests.test_vocab import ADDED, TEXT_A, TEXT_B, _bpe
from tests.test_weights import derive, make_model

LLAMA_LIKE = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 24,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256,
    "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "hidden_act": "silu", "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def _safetensors():
    return need("safetensors.numpy")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Tensors and tokenizers, built once: A (the reference model), C (A further trained),
    B (independent, same depth trend); a BPE, the same with added tokens, an unrelated one."""
    import tokenizers as tk

    root = tmp_path_factory.mktemp("parts")
    base = _bpe(TEXT_A, 800, ["<unk>", "<s>", "</s>"])
    base.save(str(root / "base.json"))
    ext = tk.Tokenizer.from_file(str(root / "base.json"))
    ext.add_tokens(ADDED)
    ext.save(str(root / "extended.json"))
    _bpe(TEXT_B, 1000, ["<pad>", "<unk>"]).save(str(root / "unrelated.json"))
    a = make_model(1)
    return {"root": root, "A": a, "B": make_model(2), "C": derive(a, 3, noise=0.1, drift=0.03)}


def _model_dir(path: Path, parts: dict, tensors: dict, tokenizer: str, config: dict, st, readme: str = "") -> Path:
    (path / "model").mkdir(parents=True, exist_ok=True)
    st.save_file(tensors, str(path / "model" / "model.safetensors"))
    (path / "model" / "tokenizer.json").write_bytes((parts["root"] / tokenizer).read_bytes())
    (path / "model" / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if readme:
        (path / "README.md").write_text(readme)
    return path


def _git(path: Path) -> str:
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "model")
    return f"file://{path}"


@pytest.fixture(scope="module")
def reference(parts, tmp_path_factory):
    root = tmp_path_factory.mktemp("ref") / "orbit-7b"
    _model_dir(root, parts, parts["A"], "base.json", LLAMA_LIKE, _safetensors(), readme="# Orbit 7B\n")
    return _git(root)


def _artifact_findings(rep: dict) -> dict[str, dict]:
    kinds = {"config-copy", "config-mismatch", "tokenizer-copy", "tokenizer-derived", "weight-copy", "weight-lineage"}
    return {f["kind"]: f for f in rep["findings"] if f["kind"] in kinds}


RENAMED = {**LLAMA_LIKE, "architectures": ["ZetaForCausalLM"], "model_type": "zeta"}


def test_renamed_model_built_on_the_reference_is_found_in_all_three_artifacts(tmp_path, parts, reference):
    sus = _model_dir(tmp_path / "zeta", parts, parts["C"], "extended.json", RENAMED, _safetensors())
    code, rep = scan_json(tmp_path, _git(sus), reference)
    found = _artifact_findings(rep)
    assert set(found) == {"config-copy", "tokenizer-copy", "weight-lineage"}, rep["findings"]
    assert code == 1  # weight-lineage without credit is an error
    config = found["config-copy"]
    assert config["path"] == "model/config.json" and config["reference"]["path"] == "model/config.json"
    assert config["details"]["identical"]["hidden_size"] == 64 and "rope_theta" in config["details"]["distinctive"]
    assert config["details"]["renamed"]["model_type"] == ["zeta", "llama"]
    tok = found["tokenizer-copy"]
    assert tok["details"]["verdict"] == "extended-copy"
    assert {text for _, text in tok["details"]["added_examples"]} >= set(ADDED)
    weights = found["weight-lineage"]
    assert weights["path"] == "model" and weights["severity"] == "error"
    assert weights["details"]["verdict"] == "derived" and weights["details"]["margin"] > 0
    for f in found.values():
        assert f["attribution"]["status"] == "unattributed" and "credits" in f["message"]


def test_independent_model_of_the_same_shape_and_trend_is_not_related(tmp_path, parts, reference):
    other = {**LLAMA_LIKE, "rope_theta": 10000.0, "rms_norm_eps": 1e-06}  # the same shape, its own choices
    sus = _model_dir(tmp_path / "indie", parts, parts["B"], "unrelated.json", other, _safetensors())
    code, rep = scan_json(tmp_path, sus, reference)
    assert _artifact_findings(rep) == {} and code == 0


def test_byte_copy_with_renamed_tensors_is_a_weight_copy(tmp_path, parts, reference):
    renamed = {k.replace("model.", "transformer.", 1): v for k, v in parts["A"].items()}
    sus = _model_dir(tmp_path / "copy", parts, renamed, "base.json", RENAMED, _safetensors())
    _, rep = scan_json(tmp_path, sus, reference)
    found = _artifact_findings(rep)
    copy = found["weight-copy"]["details"]["copy"]
    # Every tensor is the reference's (the all-ones norm counts as trivial: any model has it).
    assert copy["identical"] + copy["trivial_identical"] == copy["hashed"] == len(renamed)
    assert found["tokenizer-copy"]["details"]["verdict"] == "copy"


def test_repository_credit_turns_artifact_findings_into_notes(tmp_path, parts, reference):
    sus = _model_dir(tmp_path / "credited", parts, parts["C"], "extended.json", RENAMED, _safetensors(),
                     readme="# Zeta\n\nFine-tuned from orbit-7b (Apache-2.0).\n")
    code, rep = scan_json(tmp_path, sus, reference)
    found = _artifact_findings(rep)
    assert set(found) == {"config-copy", "tokenizer-copy", "weight-lineage"}
    assert all(f["severity"] == "note" and f["attribution"]["status"] == "attributed" for f in found.values())
    assert code == 0


def test_index_keeps_artifact_fingerprints_so_scans_need_no_reference_files(tmp_path, parts, reference):
    from scanner.cli import main

    index = tmp_path / "idx"
    assert main(["index", "add", "orbit-7b", reference, "--index", str(index)]) == 0
    sus = _model_dir(tmp_path / "zeta", parts, parts["C"], "extended.json", RENAMED, _safetensors())
    _, direct = scan_json(tmp_path, sus, reference)
    _, indexed = scan_json(tmp_path, sus, args=("--index", str(index)))
    strip = lambda f: {k: v for k, v in f.items() if k not in ("reference", "id", "message")}  # noqa: E731
    a, b = _artifact_findings(direct), _artifact_findings(indexed)
    assert set(a) == set(b) == {"config-copy", "tokenizer-copy", "weight-lineage"}
    for kind in a:
        assert strip(a[kind]) == strip(b[kind])
        assert b[kind]["reference"]["name"] == "orbit-7b"


def test_pointers_and_pickles_are_listed_and_never_read(tmp_path, parts, reference):
    marker = tmp_path / "UNPICKLED"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    sus = tmp_path / "lfs"
    (sus / "model").mkdir(parents=True)
    (sus / "model" / "model-00001-of-00002.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 4000000000\n")
    (sus / "model" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    (sus / "model" / "config.json").write_text(json.dumps(RENAMED))
    _, rep = scan_json(tmp_path, sus, reference)
    reasons = {s["path"]: s["reason"] for s in rep["skipped"]}
    assert "Git LFS pointer" in reasons["model/model-00001-of-00002.safetensors"]
    assert "never unpickled" in reasons["model/pytorch_model.bin"]
    assert not marker.exists()
    assert set(_artifact_findings(rep)) == {"config-copy"}  # the config is still compared


def test_config_that_contradicts_its_own_weights(tmp_path, parts):
    wrong = {**LLAMA_LIKE, "num_hidden_layers": 32, "vocab_size": 512}
    sus = _model_dir(tmp_path / "odd", parts, parts["A"], "base.json", wrong, _safetensors())
    ref = tmp_path / "empty"
    (ref / "pkg").mkdir(parents=True)
    (ref / "pkg" / "x.py").write_text("x = 1\n")
    _, rep = scan_json(tmp_path, sus, ref)
    mismatches = {f["symbol"]: f for f in rep["findings"] if f["kind"] == "config-mismatch"}
    assert set(mismatches) == {"num_hidden_layers", "vocab_size"}
    assert mismatches["vocab_size"]["details"]["declared"] == 512 and mismatches["vocab_size"]["details"]["stored"] == 256
    assert all(f["severity"] == "warning" and f["path"] == "model/config.json" for f in mismatches.values())


def test_artifact_findings_in_every_output_format(tmp_path, parts, reference):
    import jsonschema

    from scanner.cli import main
    from scanner.report import report_schema

    sus = _model_dir(tmp_path / "zeta", parts, parts["C"], "extended.json",
                     {**RENAMED, "vocab_size": 300}, _safetensors())  # and a config-mismatch
    kinds = {"config-copy", "config-mismatch", "tokenizer-copy", "weight-lineage"}
    out = {}
    for fmt in ("json", "sarif", "markdown", "html", "github", "text"):
        target = tmp_path / f"report.{fmt}"
        assert main(["scan", str(sus), "--reference", reference, "--format", fmt, "--output", str(target)]) == 1
        out[fmt] = target.read_text(encoding="utf-8")
    report = json.loads(out["json"])
    # config-copy needs every shared field equal: with vocab_size changed it is gone, the mismatch is there.
    assert {f["kind"] for f in report["findings"]} == kinds - {"config-copy"}
    jsonschema.validate(report, report_schema())
    sarif = json.loads(out["sarif"])
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == kinds - {"config-copy"}
    assert all(rules[k]["help"]["text"] and rules[k]["shortDescription"]["text"] != k for k in kinds - {"config-copy"})
    for fmt in ("markdown", "html", "github", "text"):
        for kind in kinds - {"config-copy"}:
            assert kind in out[fmt], (fmt, kind)
