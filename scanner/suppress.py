"""Findings the developers have already judged: inline `# provscan: ignore[KIND] REASON`.

A directive on a fragment's first line, or in the comment block directly above it, suppresses
that fragment's findings of the named kinds (comma-separated; `*` for all). The reason is
mandatory: a directive without one suppresses nothing and is noted in the report. Suppressed
findings are not dropped silently: the report lists them with their reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IGNORE_RE = re.compile(r"#\s*provscan:\s*ignore\[(?P<kinds>[^\]]*)\](?P<reason>.*)$", re.IGNORECASE)


@dataclass
class Suppressed:
    finding: object  # scanner.report.Finding
    line: int
    reason: str

    def to_dict(self) -> dict:
        return {**self.finding.to_dict(), "suppression": {"line": self.line, "reason": self.reason}}


def _directive_lines(unit, start_line: int) -> list[int]:
    """The fragment's first line and the comment lines directly above it."""
    lines = unit.line_texts
    out = [start_line]
    i = start_line - 1
    while i >= 1 and i - 1 < len(lines) and lines[i - 1].strip().startswith("#"):
        out.append(i)
        i -= 1
    return out


def apply_inline(findings: list, units: list) -> tuple[list, list[Suppressed], list[dict]]:
    """(findings kept, findings suppressed, notes about malformed directives)."""
    by_key: dict = {}
    for unit in units:
        by_key.setdefault((unit.path, unit.cell), (unit, dict(unit.comments)))
    kept, suppressed, notes, noted = [], [], [], set()
    for f in findings:
        unit, comments = by_key.get((f.path, f.cell), (None, {}))
        hit = None
        if unit is not None:
            for ln in _directive_lines(unit, f.start_line):
                m = IGNORE_RE.search(comments.get(ln, ""))
                if not m:
                    continue
                kinds = {k.strip().lower() for k in m.group("kinds").split(",") if k.strip()}
                reason = m.group("reason").strip().lstrip("-:—").strip()
                if not reason:
                    if (f.path, ln) not in noted:
                        noted.add((f.path, ln))
                        notes.append({"path": f.path, "kind": "suppression-without-reason", "line": ln,
                                      "detail": "`# provscan: ignore[...]` needs a reason after the bracket; ignored"})
                    continue
                if f.kind in kinds or "*" in kinds:
                    hit = Suppressed(f, ln, reason)
                    break
        if hit is None:
            kept.append(f)
        else:
            suppressed.append(hit)
    return kept, suppressed, notes


# ------------------------------------------------------------------------------------------------
# Baseline: findings accepted once, by their stable id
# ------------------------------------------------------------------------------------------------
BASELINE_SCHEMA = "provscan/baseline/v1"


def write_baseline(report, path) -> int:
    import datetime
    import json

    from scanner.report import write_text_atomic

    entries = [{"id": f.id, "kind": f.kind, "path": f.path, "symbol": f.symbol,
                "reference": f"{f.reference.name}:{f.reference.path}" if f.reference else None}
               for f in report.findings]
    doc = {"schema": BASELINE_SCHEMA, "tool_version": report.tool_version,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "source": report.scanned.get("source"), "findings": entries}
    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return len(entries)


def read_baseline(path) -> list[dict]:
    import json
    from pathlib import Path

    from scanner.errors import UsageError

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist: create it with `provscan baseline --output {path}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"baseline {path} is unreadable ({exc}); recreate it with `provscan baseline`") from None
    if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA or not isinstance(doc.get("findings"), list) \
            or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in doc["findings"]):
        raise UsageError(f"baseline {path} is not a provscan baseline ({BASELINE_SCHEMA}); recreate it with `provscan baseline`")
    return doc["findings"]


def apply_baseline(report, entries: list[dict], scanned_paths: set[str] | None = None) -> None:
    """Drop findings the baseline accepted; list baseline entries that no longer match as stale
    (only for the files this scan looked at, when it looked at some of them)."""
    accepted = {e["id"] for e in entries}
    current = {f.id for f in report.findings}
    report.baselined = [f for f in report.findings if f.id in accepted]
    report.findings = [f for f in report.findings if f.id not in accepted]
    report.stale = [e for e in entries if e["id"] not in current
                    and (scanned_paths is None or e.get("path") in scanned_paths)]
