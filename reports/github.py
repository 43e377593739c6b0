"""GitHub Actions workflow commands: one annotation per finding on the pull request's diff.

`::error file=PATH,line=N,endLine=M,title=TITLE::MESSAGE`. Values are escaped as the runner
expects (%, CR, LF everywhere; also ':' and ',' in properties), so nothing from the scanned
tree can start a second command.
"""

from __future__ import annotations

_LEVEL = {"error": "error", "warning": "warning", "note": "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report) -> str:
    lines = []
    for f in report.findings:
        title = f"provscan {f.kind}" + (f" ({f.reference.name})" if f.reference is not None else "")
        lines.append(f"::{_LEVEL.get(f.severity, 'warning')} file={_prop(f.path)},line={f.start_line},"
                     f"endLine={f.end_line},title={_prop(title)}::{_data(f.message)}")
    return "".join(line + "\n" for line in lines)
