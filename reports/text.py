"""Terminal output, grouped by file. Everything taken from a scanned tree is made inert first:
a file name or comment holding terminal escape sequences must not drive the reader's terminal."""

from __future__ import annotations

import re
from itertools import groupby

# C0 but TAB and LF (LF is escaped below), DEL, C1, line separators, bidi overrides and isolates,
# and lone surrogates (undecodable bytes of a name: written raw, 0x9b is an 8-bit CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_COLORS = {"error": "\x1b[31m", "warning": "\x1b[33m", "note": "\x1b[36m"}


def inert(text: object) -> str:
    """Control characters (ESC, CR, bidi overrides...) shown as escapes instead of interpreted."""
    return _CONTROL.sub(_escape, str(text)).replace("\n", "\\n")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    if code < 256:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def render_text(report, *, color: bool = False) -> str:
    out: list[str] = []

    def paint(sev: str, text: str) -> str:
        return f"{_COLORS[sev]}{text}\x1b[0m" if color else text

    for path, group in groupby(report.findings, key=lambda f: f.path):
        out.append(inert(path))
        for f in group:
            where = f"{f.start_line}-{f.end_line}" + (f" (cell {f.cell})" if f.cell else "")
            head = f"  {where}  {paint(f.severity, f.severity)}  {f.kind}"
            if f.symbol:
                head += f"  {inert(f.symbol)}"
            if f.clone_type:
                head += f"  [{f.clone_type}, similarity {f.similarity:.2f}]"
            out.append(head)
            r = f.reference
            if r is not None:
                ref = f"    reference: {inert(r.name)}:{inert(r.path)}:{r.start_line}-{r.end_line}"
                if r.symbol:
                    ref += f" {inert(r.symbol)}"
                if r.license:
                    ref += f" ({inert(r.license)})"
                out.append(ref)
                if r.provenance:
                    out.append(f"    reference itself says (line {r.provenance['line']}): {inert(r.provenance['text'])[:160]}")
                if r.copyright:
                    out.append(f"    reference notice: {inert('; '.join(r.copyright))}")
            if f.other_count:
                out.append(f"    same code also at {f.other_count} other reference location(s)")
            for member in f.members:
                mr = member["reference"]
                out.append(f"    member {inert(member['symbol'])} {member['start_line']}-{member['end_line']}"
                           f" <- {inert(mr['path'])}:{mr['start_line']}-{mr['end_line']} ({member['clone_type']})")
            if f.attribution is not None:
                out.append(f"    attribution: {f.attribution.status}")
                for e in f.attribution.evidence[:5]:
                    out.append(f"      {e.level} {inert(e.path)}:{e.line}: {inert(e.text)[:160]}")
            out.append(f"    {inert(f.message)}")
        out.append("")
    if report.skipped:
        out.append(f"skipped {len(report.skipped)} file(s):")
        for s in report.skipped[:50]:
            out.append(f"  {inert(s['path'])}: {inert(s['reason'])}")
        if len(report.skipped) > 50:
            out.append(f"  ... and {len(report.skipped) - 50} more (see --format json)")
        out.append("")
    for n in report.notes[:50]:
        out.append(f"note: {inert(n['path'])}" + (f":{n['line']}" if n.get("line") else "") + f": {inert(n['detail'])}")
    if report.baselined:
        out.append(f"baseline: {len(report.baselined)} accepted finding(s) not shown")
    for e in report.stale[:50]:
        out.append(f"stale baseline entry: {inert(e.get('path'))}: {inert(e.get('kind'))} {inert(e.get('symbol') or '')}"
                   f" (no longer found; remove it from the baseline)")
    for sup in report.suppressed[:50]:
        f = sup.finding
        out.append(f"suppressed: {inert(f.path)}:{f.start_line}: {f.kind} ({inert(sup.reason)[:160]})")
    s = report.summary()
    kinds = ", ".join(f"{v} {k}" for k, v in s["findings_by_kind"].items()) or "no findings"
    sev = ", ".join(f"{v} {k}" for k, v in s["findings_by_severity"].items())
    out.append(f"{len(report.findings)} finding(s) in {report.scanned['files']} file(s) "
               f"against {len(report.references)} reference(s): {kinds}" + (f" ({sev})" if sev else "")
               + f"; {report.elapsed_s:.1f}s")
    return "\n".join(out) + "\n"
