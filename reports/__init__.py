"""Renderers: each turns a scanner.report.Report into one output format."""

from __future__ import annotations

FORMATS = ("text", "json")


def render(report, fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        from reports.json_report import render_json

        return render_json(report)
    from reports.text import render_text

    return render_text(report, color=color)
