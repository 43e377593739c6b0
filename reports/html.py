"""Self-contained HTML report: summary, licence tables, a per-file picture of where copied code
sits (inline SVG), and every finding with the scanned and reference code side by side.

One file, nothing fetched: CSS, JavaScript and SVG are inline and a Content-Security-Policy
forbids any network access. Everything from the scanned tree is escaped: the page is rendered
by jinja2 with autoescape, and the findings travel as JSON (`tojson`, which escapes <, > and &)
that the script turns into DOM text nodes, never into HTML. Control characters are shown as
escapes. Findings are shown a page at a time, so 5,000 of them stay responsive.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from reports.text import inert

_EXCERPT_LINES = 400  # per side; longer fragments are cut, with a note
_BAR_FILES = 60
_COLOR = {"unattributed-copy": "#d73a49", "notice-removed": "#e36209", "attributed-copy": "#28a745",
          "missing-license": "#6f42c1"}


def _excerpt(texts, side: str, name: str | None, path: str, start: int, end: int) -> tuple[list, bool]:
    lines = texts(side, name, path) if texts is not None else None
    if not lines:
        return [], False
    stop = min(end, start - 1 + _EXCERPT_LINES, len(lines))
    return [[n, inert(lines[n - 1])] for n in range(max(1, start), stop + 1)], end > stop


def _aligned(scanned: list, reference: list, blocks: list) -> list:
    """Rows [scanned line, text, reference line, text, matched?] with each matched block starting
    on one row on both sides; unmatched lines between blocks are paired, padded with blanks."""
    rows: list = []
    s_at = {n: t for n, t in scanned}
    r_at = {n: t for n, t in reference}
    s_lines, r_lines = [n for n, _ in scanned], [n for n, _ in reference]
    si = ri = 0

    def pair(s_part: list, r_part: list, hit: bool) -> None:
        for k in range(max(len(s_part), len(r_part))):
            sn = s_part[k] if k < len(s_part) else None
            rn = r_part[k] if k < len(r_part) else None
            rows.append([sn, s_at.get(sn, ""), rn, r_at.get(rn, ""), hit])

    for s0, s1, r0, r1 in sorted(blocks):
        s_gap = [n for n in s_lines[si:] if n < s0]
        r_gap = [n for n in r_lines[ri:] if n < r0]
        pair(s_gap, r_gap, False)
        si += len(s_gap)
        ri += len(r_gap)
        s_hit = [n for n in s_lines[si:] if n <= s1]
        r_hit = [n for n in r_lines[ri:] if n <= r1]
        pair(s_hit, r_hit, True)
        si += len(s_hit)
        ri += len(r_hit)
    pair(s_lines[si:], r_lines[ri:], False)
    return rows


def _finding_data(f, texts) -> dict:
    ref = f.reference
    scanned, scanned_cut = _excerpt(texts, "scanned", None, f.path, f.start_line, f.end_line)
    reference, reference_cut = [], False
    if ref is not None and f.kind.endswith("-copy"):
        reference, reference_cut = _excerpt(texts, "reference", ref.name, ref.path, ref.start_line, ref.end_line)
    blocks = [[b["start_line"], b["end_line"], b["reference_start_line"], b["reference_end_line"]]
              for b in f.matched_lines]
    return {"id": f.id, "kind": f.kind, "severity": f.severity, "path": inert(f.path), "start": f.start_line,
            "end": f.end_line, "symbol": inert(f.symbol) if f.symbol else None, "clone": f.clone_type,
            "sim": f.similarity, "csim": f.similarity_concrete, "message": inert(f.message),
            "status": f.attribution.status if f.attribution else None,
            "evidence": [{"level": e.level, "path": inert(e.path), "line": e.line, "text": inert(e.text), "why": inert(e.why)}
                         for e in (f.attribution.evidence if f.attribution else [])],
            "rows": _aligned(scanned, reference, blocks), "has_reference_text": bool(reference),
            "scanned_cut": scanned_cut, "reference_cut": reference_cut,
            "ref": None if ref is None else {
                "name": inert(ref.name), "path": inert(ref.path), "start": ref.start_line, "end": ref.end_line,
                "symbol": inert(ref.symbol) if ref.symbol else None, "license": inert(ref.license) if ref.license else None,
                "copyright": [inert(c) for c in ref.copyright]},
            "members": len(f.members), "others": f.other_count}


def _file_bars(report) -> list[dict]:
    """Per scanned file with findings: its extent and the coloured spans of its findings."""
    by_file: dict[str, list] = defaultdict(list)
    for f in report.findings:
        by_file[f.path].append(f)
    rows = []
    for path, items in sorted(by_file.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:_BAR_FILES]:
        lines = report.texts("scanned", None, path) if report.texts is not None else None
        extent = max([len(lines) if lines else 0] + [f.end_line for f in items])
        spans = [{"x": (f.start_line - 1) / extent, "w": max(1, f.end_line - f.start_line + 1) / extent,
                  "color": _COLOR.get(f.kind, "#586069"), "title": f"{f.kind} {f.start_line}-{f.end_line}"}
                 for f in sorted(items, key=lambda f: f.kind == "notice-removed", reverse=True)]
        rows.append({"path": path, "lines": extent, "count": len(items), "spans": spans})
    return rows


def render_html(report) -> str:
    from importlib.resources import files

    import jinja2

    env = jinja2.Environment(autoescape=True)  # a missing field renders empty
    template = env.from_string(files("reports").joinpath("templates/report.html.j2").read_text(encoding="utf-8"))
    findings = [_finding_data(f, report.texts) for f in report.findings]
    return template.render(
        report=report, summary=report.summary(), inert=inert, colors=_COLOR,
        kinds=sorted(Counter(f.kind for f in report.findings).items()),
        severities=sorted(Counter(f.severity for f in report.findings).items()),
        statuses=sorted({f["status"] for f in findings if f["status"]}),
        ref_names=sorted({f["ref"]["name"] for f in findings if f["ref"]}),
        bars=_file_bars(report), data={"findings": findings},
    )
