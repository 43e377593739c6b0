"""The report data model; `Report.to_dict()` is the `provscan/report/v1` JSON contract (DESIGN §6).

Fields may be added, never renamed. Renderers in `reports/` read only this model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from scanner.attribute import Attribution

SCHEMA = "provscan/report/v1"
SEVERITY_ORDER = {"error": 0, "warning": 1, "note": 2}


def report_schema() -> dict:
    """The JSON Schema (Draft 2020-12) of `Report.to_dict()`, shipped as scanner/data/report-v1.schema.json.

    >>> report_schema()["properties"]["schema"]["const"]
    'provscan/report/v1'
    """
    import json
    from importlib.resources import files

    return json.loads(files("scanner").joinpath("data/report-v1.schema.json").read_text(encoding="utf-8"))


@dataclass
class Location:
    name: str  # reference name
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    cell: int | None = None
    license: str | None = None
    copyright: list[str] = field(default_factory=list)
    provenance: dict | None = None  # the reference's own "Copied from ..." comment: it is not the origin

    def to_dict(self) -> dict:
        out = {"name": self.name, "path": self.path, "start_line": self.start_line, "end_line": self.end_line,
               "symbol": self.symbol, "license": self.license, "copyright": list(self.copyright)}
        if self.provenance:
            out["provenance"] = self.provenance
        if self.cell is not None:
            out["cell"] = self.cell
        return out


# Other reference locations listed per finding (transformers holds some code 100+ times).
OTHER_LOCATIONS = 20


@dataclass
class Finding:
    id: str
    kind: str
    severity: str
    path: str
    cell: int | None
    start_line: int
    end_line: int
    symbol: str | None
    clone_type: str | None
    similarity: float | None
    similarity_concrete: float | None
    reference: Location | None
    attribution: Attribution | None
    message: str
    matched_lines: list[dict] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    other_locations: list[Location] = field(default_factory=list)  # the first OTHER_LOCATIONS, best first
    other_count: int = 0  # all other reference locations holding the same code
    details: dict = field(default_factory=dict)  # artifact findings: the measurements behind the verdict

    def to_dict(self) -> dict:
        out = {
            "id": self.id, "kind": self.kind, "severity": self.severity, "path": self.path,
            "start_line": self.start_line, "end_line": self.end_line, "symbol": self.symbol,
            "clone_type": self.clone_type, "similarity": self.similarity,
            "reference": self.reference.to_dict() if self.reference else None,
            "attribution": None if self.attribution is None else {
                "status": self.attribution.status,
                "evidence": [{"level": e.level, "path": e.path, "line": e.line, "text": e.text, "why": e.why}
                             for e in self.attribution.evidence],
            },
            "message": self.message,
        }
        if self.cell is not None:
            out["cell"] = self.cell
        if self.similarity_concrete is not None:
            out["similarity_concrete"] = self.similarity_concrete
        if self.matched_lines:
            out["matched_lines"] = self.matched_lines
        if self.members:
            out["members"] = self.members
        if self.details:
            out["details"] = self.details
        if self.reference is not None and self.kind in ("attributed-copy", "unattributed-copy"):
            out["other_locations"] = {"count": self.other_count,
                                      "locations": [o.to_dict() for o in self.other_locations]}
        return out


@dataclass
class Report:
    tool_version: str
    scanned: dict
    references: list[dict]
    findings: list[Finding]
    licenses: list[dict]
    skipped: list[dict]
    notes: list[dict]
    elapsed_s: float
    # texts(side, reference name, path) -> lines, for the formats that quote code; not in the JSON.
    texts: object = field(default=None, repr=False, compare=False)
    suppressed: list = field(default_factory=list)  # scanner.suppress.Suppressed: judged in the source
    baselined: list = field(default_factory=list)  # findings the baseline accepted
    stale: list = field(default_factory=list)  # baseline entries that no longer match anything

    def summary(self) -> dict:
        return {
            "findings_by_kind": dict(sorted(Counter(f.kind for f in self.findings).items())),
            "findings_by_severity": dict(sorted(Counter(f.severity for f in self.findings).items(),
                                                key=lambda kv: SEVERITY_ORDER[kv[0]])),
            "findings_by_attribution": dict(sorted(Counter(
                f.attribution.status for f in self.findings if f.attribution and f.kind.endswith("-copy")).items())),
            "skipped": len(self.skipped),
            "suppressed": len(self.suppressed),
            "baselined": len(self.baselined),
            "stale_baseline_entries": len(self.stale),
            "elapsed_s": self.elapsed_s,
        }

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "tool": {"name": "provscan", "version": self.tool_version},
            "scanned": self.scanned,
            "references": self.references,
            "findings": [f.to_dict() for f in self.findings],
            "licenses": self.licenses,
            "skipped": self.skipped,
            "notes": self.notes,
            "suppressed": [s.to_dict() for s in self.suppressed],
            "baseline": {"accepted": [f.id for f in self.baselined], "stale": self.stale},
            "summary": self.summary(),
        }

    def exit_code(self, fail_on: str) -> int:
        """0: nothing at or above --fail-on; 1: findings at or above it."""
        if fail_on == "never":
            return 0
        if fail_on == "any":
            return 1 if self.findings else 0
        return 1 if any(f.severity == "error" for f in self.findings) else 0


def write_text_atomic(path, text: str) -> None:
    """Write a report or baseline whole or not at all: a full disk or a kill leaves the previous
    file (or none), never a truncated one.

    A target that exists and is not a regular file (/dev/stdout, /dev/null, a named pipe) is
    written to as it is: renaming a file over it would replace the device or pipe itself.
    """
    import os
    import stat
    import tempfile
    from pathlib import Path

    target = Path(path)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        special = False  # absent (or unreadable): the atomic write below creates it or says why not
    if special:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
