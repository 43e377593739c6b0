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

from reports import FORMATS
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


def _common(p: argparse.ArgumentParser) -> None:
    """Options of every command that fingerprints or reads an index."""
    p.add_argument("--index", metavar="PATH|URL",
                   help="reference index: a directory (default: the user cache) or redis://HOST:PORT/DB?prefix=NAME")
    p.add_argument("--cache-dir", metavar="DIR", help="where clones, downloads and fingerprints are kept")
    p.add_argument("--max-file-size", type=_size, default=None, metavar="BYTES",
                   help="skip files larger than this (default 1MiB)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up a clone or download after this long (default 600)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="fingerprinting processes (default: every core)")
    p.add_argument("--min-tokens", type=int, default=None, help="smallest fragment, in tokens, to index and report")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="provscan", description="Find code copied from reference repositories and check it is credited.")
    parser.add_argument("--version", action="version", version=f"provscan {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    scan = sub.add_parser("scan", help="scan a repository against references")
    scan.add_argument("source", help="directory, git URL[@REV], hf:ORG/NAME[@REV] or pypi:NAME[==VERSION]")
    scan.add_argument("--reference", "-r", action="append", default=[], metavar="[NAME=]REF",
                      help="an index reference's name, or a source to compare against (same forms as SOURCE); "
                           "repeatable; default: every reference in the index")
    scan.add_argument("--format", "-f", choices=FORMATS, default="text")
    scan.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    scan.add_argument("--fail-on", choices=("unattributed", "any", "never"), default="unattributed",
                      help="exit 1 when findings at this level exist (default: unattributed = any error)")
    scan.add_argument("--missing-license", action="store_true", help="report files without licence information")
    scan.add_argument("--min-similarity", type=float, default=None, help="verified similarity threshold (0-1)")
    _common(scan)

    index = sub.add_parser("index", help="manage the stored reference index")
    isub = index.add_subparsers(dest="index_command", parser_class=_Parser)
    add = isub.add_parser("add", help="fingerprint a reference and store it (replaces one of the same name)")
    add.add_argument("name", nargs="?", help="the reference's name in the index")
    add.add_argument("ref", nargs="?", help="directory, git URL[@REV], hf:ORG/NAME[@REV] or pypi:NAME[==VERSION]")
    add.add_argument("--include", action="append", default=[], metavar="GLOB",
                     help="only files whose path matches (fnmatch; '*' crosses '/'); repeatable")
    add.add_argument("--preset", metavar="NAME", help="a curated reference set: see `provscan index presets`")
    _common(add)
    for name, text in (("list", "the stored references"), ("info", "the index's format, parameters and size"),
                       ("presets", "the curated reference sets")):
        p = isub.add_parser(name, help=text)
        p.add_argument("--format", "-f", choices=("text", "json"), default="text")
        _common(p)
    remove = isub.add_parser("remove", help="remove a reference")
    remove.add_argument("name")
    _common(remove)
    return parser


def _options(args):
    from dataclasses import replace

    from scanner.fingerprint import Params
    from scanner.pipeline import ScanOptions

    params = Params()
    if getattr(args, "min_similarity", None) is not None:
        if not 0 < args.min_similarity <= 1:
            raise UsageError("--min-similarity must be in (0, 1]")
        params = replace(params, min_similarity=args.min_similarity)
    if args.min_tokens is not None:
        if args.min_tokens < 5:
            raise UsageError("--min-tokens must be at least 5")
        params = replace(params, min_tokens=args.min_tokens)
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    opts = ScanOptions(params=params, missing_license=getattr(args, "missing_license", False),
                       cache_dir=Path(args.cache_dir) if args.cache_dir else None, timeout=args.timeout,
                       index=args.index, workers=args.workers)
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


def cmd_index(args) -> int:
    from scanner import index

    options = _options(args)
    command = args.index_command
    if command == "add":
        update, status = _status_callback()
        try:
            done = index.add(options, args.name, args.ref, args.include, args.preset, update)
        finally:
            if status is not None:
                status.stop()
        resolved = (done["commit"] or "")[:12] or done["version"] or "local"
        print(f"added {done['name']} ({done['source']} @ {resolved}, {done['license'] or 'licence unknown'}): "
              f"{done['files']} files, {done['fragments']} fragments, {done['indexed']} indexed, "
              f"in {done['seconds']} s -> {done['index']}")
        return 0
    if command == "list":
        sys.stdout.write(index.render_listing(index.listing(options), args.format))
        return 0
    if command == "info":
        sys.stdout.write(index.render_info(index.info(options), args.format))
        return 0
    if command == "presets":
        data = index.presets()
        if args.format == "json":
            import json

            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        else:
            for name, spec in sorted(data.items()):
                print(f"{name}: {spec['description']}\n    {spec['source']}"
                      + (f" include {' '.join(spec['include'])}" if spec.get("include") else ""))
        return 0
    if command == "remove":
        index.store_for(options).remove(args.name)
        print(f"removed {args.name}")
        return 0
    raise UsageError("provscan index: give a command: add, list, remove, info or presets")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "scan":
            return cmd_scan(args)
        if args.command == "index":
            return cmd_index(args)
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
