"""Renderers: each turns a scanner.report.Report into one output format."""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "markdown", "spdx", "html", "github")


def render(report, fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        from reports.json_report import render_json

        return render_json(report)
    if fmt == "sarif":
        from reports.sarif import render_sarif

        return render_sarif(report)
    if fmt == "github":
        from reports.github import render_github

        return render_github(report)
    if fmt == "html":
        from reports.html import render_html

        return render_html(report)
    if fmt == "spdx":
        from reports.spdx import render_spdx

        return render_spdx(report)
    if fmt == "markdown":
        from reports.markdown import render_markdown

        return render_markdown(report, report.texts)
    from reports.text import render_text

    return render_text(report, color=color)
