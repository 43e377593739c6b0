"""Command line: `provscan scan SOURCE --reference REF ...`.

Exit codes (DESIGN §6): 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage or
input error, reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from scanner import __version__
from scanner.errors import ProvscanError, UsageError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage first otherwise)
        raise UsageError(f"{self.prog}: {message}")


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]i?[bB]?)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1048576, 512KiB, 2MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def parse_reference(text: str) -> tuple[str | None, str]:
    """`NAME=SOURCE` names a reference; a plain SOURCE gets a name derived from it."""
    name, sep, spec = text.partition("=")
    if sep and _NAME_RE.match(name) and ":" not in name and spec:
        return name, spec
    return None, text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="provscan", description="Find code copied from reference repositories and check it is credited.")
    parser.add_argument("--version", action="version", version=f"provscan {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    scan = sub.add_parser("scan", help="scan a repository against references")
    scan.add_argument("source", help="directory, git URL[@REV], hf:ORG/NAME[@REV] or pypi:NAME[==VERSION]")
    scan.add_argument("--reference", "-r", action="append", default=[], metavar="[NAME=]REF",
                      help="a reference to compare against (same forms as SOURCE); repeatable")
    scan.add_argument("--format", "-f", choices=("text", "json"), default="text")
    scan.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    scan.add_argument("--fail-on", choices=("unattributed", "any", "never"), default="unattributed",
                      help="exit 1 when findings at this level exist (default: unattributed = any error)")
    scan.add_argument("--max-file-size", type=_size, default=None, metavar="BYTES",
                      help="skip files larger than this (default 1MiB)")
    scan.add_argument("--missing-license", action="store_true", help="report files without licence information")
    scan.add_argument("--cache-dir", metavar="DIR", help="where clones and downloads are kept")
    scan.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                      help="give up a clone or download after this long (default 600)")
    scan.add_argument("--min-similarity", type=float, default=None, help="verified similarity threshold (0-1)")
    scan.add_argument("--min-tokens", type=int, default=None, help="smallest fragment, in tokens, to report")
    return parser


def _options(args):
    from dataclasses import replace

    from scanner.fingerprint import Params
    from scanner.pipeline import ScanOptions

    params = Params()
    if args.min_similarity is not None:
        if not 0 < args.min_similarity <= 1:
            raise UsageError("--min-similarity must be in (0, 1]")
        params = replace(params, min_similarity=args.min_similarity)
    if args.min_tokens is not None:
        if args.min_tokens < 5:
            raise UsageError("--min-tokens must be at least 5")
        params = replace(params, min_tokens=args.min_tokens)
    opts = ScanOptions(params=params, missing_license=args.missing_license,
                       cache_dir=Path(args.cache_dir) if args.cache_dir else None, timeout=args.timeout)
    if args.max_file_size is not None:
        opts = replace(opts, max_file_size=args.max_file_size)
    return opts


def _status_callback():
    """A progress bar on stderr when a person is watching; silent in pipes and CI logs."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = progress.add_task("starting", total=None)
    progress.start()

    def update(text: str, done: int | None = None, total: int | None = None) -> None:
        if total is None:  # a phase without a count: an indeterminate bar
            progress.reset(task, description=text, total=None)
        else:
            progress.update(task, description=text, completed=done or 0, total=total)

    return update, progress


def cmd_scan(args) -> int:
    from reports import render
    from scanner.pipeline import scan

    if not args.reference:
        raise UsageError("provscan scan: give at least one --reference")
    options = _options(args)
    references = [parse_reference(r) for r in args.reference]
    update, status = _status_callback()
    try:
        report = scan(args.source, references, options, update)
    finally:
        if status is not None:
            status.stop()
    color = args.output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = render(report, args.format, color=color)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return report.exit_code(args.fail_on)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "scan":
            return cmd_scan(args)
        build_parser().print_help(sys.stderr)
        return 2
    except ProvscanError as exc:
        print(f"provscan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("provscan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
