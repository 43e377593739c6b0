"""SARIF 2.1.0 for code scanning (GitHub accepts it with `github/codeql-action/upload-sarif`).

One rule per finding kind; the scanned file is relative to SRCROOT; each reference location is a
`relatedLocation` relative to its own base id (REF1, REF2, ... described in originalUriBaseIds),
never an absolute https URI in an artifactLocation. `primaryLocationLineHash` is the finding's
stable id (kind, path, symbol and reference; no line numbers), so it survives lines inserted
above the finding and repeated runs.
"""

from __future__ import annotations

from reports.json_report import dumps

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "note": "note"}
_DEFAULT_LEVEL = {"unattributed-copy": "error", "attributed-copy": "note", "weight-copy": "error",
                  "weight-lineage": "error"}

RULES = {
    "unattributed-copy": (
        "UnattributedCopy", "Code copied from a reference without credit",
        "A fragment of this file is a near-duplicate of reference code, and nothing at the fragment or in "
        "the file credits the reference.",
        "Keep the reference's copyright and licence notice with the copied code, and credit the source at "
        "the copy: a comment such as `# Adapted from <reference>:<path>` or an SPDX snippet tag "
        "(`# SPDX-SnippetBegin`, `# SPDX-SnippetCopyrightText: ...`, `# SPDX-License-Identifier: ...`, "
        "`# SPDX-SnippetEnd`), or a NOTICE entry for the copied file."),
    "attributed-copy": (
        "AttributedCopy", "Code copied from a reference, with credit",
        "A fragment of this file is a near-duplicate of reference code, and the copy credits the reference.",
        "Nothing to fix: keep the credit and the reference's licence terms with the code."),
    "notice-removed": (
        "NoticeRemoved", "Copied code without the reference's copyright notice",
        "Code copied from a reference file whose copyright holder this file does not name.",
        "Restore the reference file's copyright line(s) and licence notice in this file, or add them to a "
        "NOTICE file that ships with the code."),
    "license-policy": (
        "LicensePolicy", "File header does not meet the project's licence policy",
        "The project's configuration requires an SPDX-License-Identifier and/or a given copyright holder in "
        "every file; this file lacks it.",
        "Add the SPDX-License-Identifier line and the required copyright line to the file's header."),
    "missing-license": (
        "MissingLicense", "File without licence information",
        "The file states no licence (no SPDX-License-Identifier, no licence header).",
        "Add an `SPDX-License-Identifier:` line, or a licence header, to the top of the file."),
    "config-copy": (
        "ConfigCopy", "Model config with a reference model's architecture",
        "Every architecture field this config shares with a reference model's config is identical; only the "
        "names (model_type, architectures) may differ. Equal shapes alone do not prove copying: the "
        "distinctive fields (vocabulary size, rope theta and scaling, norm eps, expert counts) weigh most.",
        "If the model is built on the reference model, say so in the model card with the reference's licence; "
        "if not, check the weights (weight-copy, weight-lineage) before concluding."),
    "config-mismatch": (
        "ConfigMismatch", "Model config contradicts its own weights",
        "A size the config declares differs from the shape of the weights stored next to it.",
        "Fix the config or the weights: a config that does not describe its weights misleads every reader."),
    "tokenizer-copy": (
        "TokenizerCopy", "Tokenizer copied from a reference model",
        "The tokenizer is a reference model's tokenizer, identical or with tokens added, the reference's tokens "
        "keeping their ids.",
        "Credit the reference tokenizer and keep its licence terms (model card, NOTICE)."),
    "tokenizer-derived": (
        "TokenizerDerived", "Tokenizer derived from a reference model's",
        "Most tokens the two tokenizers share sit at the same or consistently shifted ids: the vocabulary was "
        "taken from the reference and edited, which independent training does not produce.",
        "Credit the reference tokenizer and keep its licence terms (model card, NOTICE)."),
    "weight-copy": (
        "WeightCopy", "Weights byte-identical to a reference model's",
        "Tensors of this model are byte for byte those of a reference model (names may differ).",
        "The model is the reference's weights: it must carry the reference's licence and credit it."),
    "weight-lineage": (
        "WeightLineage", "Weights derived from a reference model's",
        "The attention weights correlate with a reference model's beyond what a shared architecture gives "
        "(element-wise on fixed positions, or the per-layer std profile after removing the shared depth trend).",
        "The model was fine-tuned or further trained from the reference: credit it and follow its licence."),
}


def _rule(kind: str) -> dict:
    name, short, full, help_text = RULES.get(kind, (kind, kind, kind, "Review the finding."))
    return {"id": kind, "name": name, "shortDescription": {"text": short}, "fullDescription": {"text": full},
            "help": {"text": help_text, "markdown": help_text},
            "defaultConfiguration": {"level": _DEFAULT_LEVEL.get(kind, "warning")}}


def _region(start: int, end: int) -> dict:
    return {"startLine": max(1, start), "endLine": max(start, end)}


def render_sarif(report) -> str:
    kinds = sorted({f.kind for f in report.findings} | {s.finding.kind for s in report.suppressed}
                   | {"unattributed-copy", "attributed-copy", "notice-removed"})
    rule_index = {k: i for i, k in enumerate(kinds)}
    bases = {"SRCROOT": {"description": {"text": f"the scanned source: {report.scanned.get('source')}"}}}
    ref_base: dict[str, str] = {}
    for i, ref in enumerate(report.references, start=1):
        base = f"REF{i}"
        ref_base[ref["name"]] = base
        bases[base] = {"description": {"text": f"reference {ref['name']}: {ref.get('source')}"
                                               + (f" @ {ref['commit']}" if ref.get("commit") else "")
                                               + (f" ({ref['version']})" if ref.get("version") else "")}}
    results = []
    judged = {id(s.finding): s for s in report.suppressed}
    for f in [*report.findings, *(s.finding for s in report.suppressed)]:
        result = {
            "ruleId": f.kind, "ruleIndex": rule_index[f.kind], "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path, "uriBaseId": "SRCROOT"},
                                                "region": _region(f.start_line, f.end_line)}}],
            "partialFingerprints": {"primaryLocationLineHash": f"{f.id}:1"},
            "properties": {"similarity": f.similarity, "clone_type": f.clone_type,
                           "attribution": f.attribution.status if f.attribution else None},
        }
        if f.reference is not None:
            ref = f.reference
            result["relatedLocations"] = [{
                "id": 1, "message": {"text": f"reference {ref.name}: {ref.path}" + (f" ({ref.symbol})" if ref.symbol else "")},
                "physicalLocation": {"artifactLocation": {"uri": ref.path, "uriBaseId": ref_base.get(ref.name, "REF1")},
                                     "region": _region(ref.start_line, ref.end_line)}}]
            result["properties"].update({"reference": ref.name, "license": ref.license,
                                         "copyright": list(ref.copyright)})
        if id(f) in judged:  # code scanning shows these as dismissed in source
            result["suppressions"] = [{"kind": "inSource", "justification": judged[id(f)].reason}]
        results.append(result)
    sarif = {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "provscan", "version": report.tool_version, "rules": [_rule(k) for k in kinds]}},
            "originalUriBaseIds": bases,
            "results": results,
            "properties": {"scanned": report.scanned},
        }],
    }
    return dumps(sarif, depth=5) + "\n"
