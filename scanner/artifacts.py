"""Model artifacts beyond code: model configs, tokenizers and weights (docs/artifacts.md).

For a scanned tree and for every reference, `collect` gathers:
- model configs: the architecture fields of every config whose size fields are set (computed by
  the fingerprinting workers, scanner.configs.architecture, while the text is at hand);
- tokenizers: scanner.vocab fingerprints (token hashes by id, merges, added and special tokens);
- weights: scanner.weights fingerprints of every directory holding .safetensors files (tensor
  digests and statistics, the attention-std lineage profile, fixed-position samples). Git LFS
  pointer files and pickle-based weights are listed as skipped, never parsed.
A reference keeps these as one small JSON record in the index (`to_record` / `from_record`),
so a scan compares against them without the reference's files. `findings` turns the
comparisons into report findings: config-copy, tokenizer-copy, tokenizer-derived, weight-copy,
weight-lineage, and config-mismatch (a scanned config contradicting its own weights).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from scanner.errors import ProvscanError

# Weight files read as safetensors; other weight formats are pickles and never parsed.
_SAFETENSORS = ".safetensors"
_PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class Artifacts:
    configs: list[dict] = field(default_factory=list)  # {"path", "architecture"}
    tokenizers: list[dict] = field(default_factory=list)  # {"path", "format", "fingerprint": VocabFingerprint}
    weights: list[dict] = field(default_factory=list)  # {"path", "fingerprint": WeightsFingerprint}
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}: pointers, unreadable files
    mismatches: list[dict] = field(default_factory=list)  # {"path", "weights", "contradiction"}

    def __bool__(self) -> bool:
        return bool(self.configs or self.tokenizers or self.weights)


def collect(root, other_files: list[str], configs: list[tuple[str, dict]], *, weights: bool = True) -> Artifacts:
    """The artifacts of an acquired tree. other_files: its non-source files (relative paths of
    regular files inside root, from scanner.walk); configs: (path, architecture) of its model
    configs."""
    art = Artifacts(configs=[{"path": p, "architecture": a} for p, a in configs])
    if not other_files:  # the hook: its configs only, and none of the modules below imported
        return art
    from scanner import vocab

    for group in vocab.find_tokenizers(root, other_files):
        where = group.files[0] if len(group.files) == 1 else (group.directory or ".")
        try:
            fp = vocab.fingerprint(vocab.read_tokenizer(group))
        except ProvscanError as exc:
            art.skipped.append({"path": where, "reason": f"tokenizer not read: {exc}"})
            continue
        art.tokenizers.append({"path": where, "format": group.format, "fingerprint": fp})
    by_dir: dict[str, list[str]] = defaultdict(list)
    for rel in other_files:
        name = rel.rsplit("/", 1)[-1].lower()
        if name.endswith(_SAFETENSORS):
            by_dir[str(PurePosixPath(rel).parent)].append(rel)
        elif name.endswith(_PICKLED_WEIGHTS) and _looks_like_weights(name):
            art.skipped.append({"path": rel, "reason": "pickle-based weights: never unpickled, not compared"})
    if weights:
        _collect_weights(root, by_dir, art)
    return art


def _looks_like_weights(name: str) -> bool:
    return any(word in name for word in ("model", "pytorch", "weights", "checkpoint", "consolidated", "adapter"))


def _collect_weights(root, by_dir: dict[str, list[str]], art: Artifacts) -> None:
    from scanner import configs as cfg
    from scanner import weights as w

    arch_by_dir = {str(PurePosixPath(c["path"]).parent): c for c in art.configs
                   if PurePosixPath(c["path"]).name == "config.json"}
    for directory, files in sorted(by_dir.items()):
        paths = [root / rel for rel in sorted(files)]
        pointers = [rel for rel, p in zip(sorted(files), paths) if w.is_lfs_pointer(p)]
        for rel in pointers:
            art.skipped.append({"path": rel, "reason": "Git LFS pointer: weights not downloaded (git lfs pull), not compared"})
        real = [p for rel, p in zip(sorted(files), paths) if rel not in pointers]
        if not real:
            continue
        try:
            fp = w.fingerprint(real, name=directory)
        except (ProvscanError, OSError) as exc:
            art.skipped.append({"path": directory, "reason": f"weights not read: {exc}"})
            continue
        art.weights.append({"path": directory, "fingerprint": fp})
        config = arch_by_dir.get(directory)
        if config is not None:
            tensors = [(name, tuple(entry[1])) for name, entry in fp.tensors.items()]
            for c in cfg.check_against_weights(config["architecture"], tensors):
                art.mismatches.append({"path": config["path"], "weights": directory, "contradiction": c})


# -- storage in the index ---------------------------------------------------------------------------

RECORD_FORMAT = "provscan/artifacts/v1"


def to_record(art: Artifacts) -> bytes:
    """A reference's artifacts as one JSON document (kept as a byte array in the index)."""
    doc = {
        "format": RECORD_FORMAT,
        "configs": art.configs,
        "tokenizers": [{"path": t["path"], "format": t["format"], "fingerprint": t["fingerprint"].to_json()}
                       for t in art.tokenizers],
        "weights": [{"path": x["path"], "fingerprint": x["fingerprint"].to_dict()} for x in art.weights],
    }
    return json.dumps(doc, separators=(",", ":"), default=_jsonable).encode("utf-8")


def _jsonable(value):
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


class ArtifactRecordError(ProvscanError):
    """A stored artifacts record cannot be read."""


def from_record(data: bytes) -> Artifacts:
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
            raise ValueError("unknown format")
        art = Artifacts(configs=[{"path": str(c["path"]), "architecture": dict(c["architecture"])}
                                 for c in doc["configs"]])
        if doc["tokenizers"]:
            from scanner.vocab import VocabFingerprint

            art.tokenizers = [{"path": str(t["path"]), "format": str(t["format"]),
                               "fingerprint": VocabFingerprint.from_json(t["fingerprint"])} for t in doc["tokenizers"]]
        if doc["weights"]:
            from scanner.weights import WeightsFingerprint

            art.weights = [{"path": str(x["path"]), "fingerprint": WeightsFingerprint.from_dict(x["fingerprint"])}
                           for x in doc["weights"]]
        return art
    except (ValueError, KeyError, TypeError, ProvscanError) as exc:
        raise ArtifactRecordError(f"the stored artifacts record is corrupt ({str(exc)[:120]}); "
                                  "remove and re-add the reference") from None


# -- comparison ------------------------------------------------------------------------------------

@dataclass
class ArtifactMatch:
    """One scanned artifact related to one reference artifact."""

    kind: str  # config-copy | tokenizer-copy | tokenizer-derived | weight-copy | weight-lineage
    path: str  # the scanned artifact
    reference: str  # the reference's name
    reference_path: str
    message: str
    details: dict


def compare(scanned: Artifacts, references: list[tuple[str, Artifacts]]) -> list[ArtifactMatch]:
    """Every scanned artifact against every reference's artifacts of the same type; for each
    scanned artifact and reference, the closest related one."""
    from scanner import configs as cfg

    out: list[ArtifactMatch] = []
    for name, ref in references:
        for s in scanned.configs:
            best = None
            for r in ref.configs:
                c = cfg.compare_architecture(s["architecture"], r["architecture"])
                if c.verdict == "config-copy":
                    key = (len(c.distinctive), len(c.identical))
                    if best is None or key > best[0]:
                        best = (key, r, c)
            if best is not None:
                _, r, c = best
                out.append(ArtifactMatch("config-copy", s["path"], name, r["path"], c.message, {
                    "identical": c.identical, "differing": {k: list(v) for k, v in c.differing.items()},
                    "renamed": {k: list(v) for k, v in c.renamed.items()}, "distinctive": list(c.distinctive)}))
        for s in scanned.tokenizers:
            from scanner import vocab  # here, not above: the hook has no tokenizers and need not import it

            best = None
            for r in ref.tokenizers:
                c = vocab.compare(s["fingerprint"], r["fingerprint"])
                if c.finding_kind is None:
                    continue
                key = (c.finding_kind == "tokenizer-copy", c.same_id_fraction, c.jaccard)
                if best is None or key > best[0]:
                    best = (key, r, c)
            if best is not None:
                _, r, c = best
                out.append(ArtifactMatch(c.finding_kind, s["path"], name, r["path"], c.reason, c.to_json()))
        for s in scanned.weights:
            from scanner import weights as w

            # Unrelated models for the null: the weights of the other references.
            baseline = [x["fingerprint"] for other, art in references if other != name for x in art.weights]
            for r in ref.weights:
                c = w.compare(s["fingerprint"], r["fingerprint"], baseline=baseline, reference_name=name)
                kind = {"copy": "weight-copy", "derived": "weight-lineage"}.get(c.verdict)
                if kind is not None:
                    out.append(ArtifactMatch(kind, s["path"], name, r["path"], c.sentence, c.to_dict()))
    return out
