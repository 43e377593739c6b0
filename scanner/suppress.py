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
    by_key = {}
    for unit in units:
        by_key.setdefault((unit.path, unit.cell), unit)
    kept, suppressed, notes, noted = [], [], [], set()
    for f in findings:
        unit = by_key.get((f.path, f.cell))
        hit = None
        if unit is not None:
            comments = dict(unit.comments)
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
