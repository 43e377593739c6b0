"""Markdown for a pull-request comment: a summary table, then one collapsible block per finding
with both code excerpts. GitHub rejects comments over 65,536 characters: findings that do not
fit are left out and the report says how many."""

from __future__ import annotations

from collections import Counter

from reports.text import inert

LIMIT = 65_536
_EXCERPT_LINES = 40


def _cell(text: object) -> str:
    """Inline table text: no pipes, newlines, HTML or terminal controls from the scanned tree."""
    s = "" if text is None else str(text)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(inert(s).split())


def _fence(code: str) -> str:
    longest = max((len(run) for run in code.split("\n") for run in [run.strip()] if set(run) == {"`"}), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}python\n{code}\n{ticks}"


def _excerpt(lines: list[str] | None, start: int, end: int) -> str:
    if not lines:
        return "(source text not available)"
    chosen = lines[start - 1:min(end, start - 1 + _EXCERPT_LINES)]
    more = end - start + 1 - len(chosen)
    # Controls escaped (a comment's ESC must not reach whoever `cat`s the file); CRLF is not one.
    text = "\n".join(inert(line[:-1] if line.endswith("\r") else line) for line in chosen)
    return text + (f"\n# ... {more} more lines" if more > 0 else "")


def render_markdown(report, texts=None) -> str:
    """texts(side, name, path) -> list of lines or None; side is "scanned" or "reference"."""
    texts = texts or (lambda side, name, path: None)
    counts = Counter(f.kind for f in report.findings)
    head = [f"## provscan: {len(report.findings)} finding{'s' if len(report.findings) != 1 else ''} in "
            f"`{_cell(report.scanned.get('source'))}`", ""]
    head += ["| kind | findings |", "|---|---|"] + [f"| {_cell(k)} | {n} |" for k, n in sorted(counts.items())]
    head += ["", "| reference | source | licence |", "|---|---|---|"]
    head += [f"| {_cell(r['name'])} | {_cell(r.get('source'))} | {_cell(r.get('license'))} |" for r in report.references]
    head.append("")
    blocks = []
    for f in report.findings:
        ref = f.reference
        title = f"{_cell(f.kind)}: `{_cell(f.path)}:{f.start_line}-{f.end_line}`" + (f" {_cell(f.symbol)}" if f.symbol else "")
        body = [f"<details><summary>{title}</summary>", "", _cell(f.message), ""]
        if ref is not None and f.kind in ("attributed-copy", "unattributed-copy"):
            body += [f"Similarity {f.similarity}, {f.clone_type}; attribution: "
                     f"{f.attribution.status if f.attribution else 'n/a'}; reference licence {_cell(ref.license)}.", "",
                     f"**Scanned** `{_cell(f.path)}:{f.start_line}-{f.end_line}`", "",
                     _fence(_excerpt(texts("scanned", None, f.path), f.start_line, f.end_line)), "",
                     f"**Reference** {_cell(ref.name)} `{_cell(ref.path)}:{ref.start_line}-{ref.end_line}`", "",
                     _fence(_excerpt(texts("reference", ref.name, ref.path), ref.start_line, ref.end_line)), ""]
        body += ["</details>", ""]
        blocks.append("\n".join(body))
    out = "\n".join(head)
    kept = 0
    for block in blocks:
        notice = f"\n_{len(blocks) - kept - 1} more findings left out: a comment holds at most {LIMIT} characters._\n"
        if len(out) + len(block) + len(notice) + 1 > LIMIT:
            break
        out += "\n" + block
        kept += 1
    if kept < len(blocks):
        out += f"\n_{len(blocks) - kept} more finding{'s' if len(blocks) - kept != 1 else ''} left out: a comment holds at most {LIMIT} characters (see the JSON or HTML report)._\n"
    return out
