"""Command line: `provscan scan SOURCE --reference REF ...`.

Exit codes (DESIGN §6): 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage or
input error, reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
    p.add_argument("--no-parse-cache", action="store_true",
                   help="parse every file afresh: do not use or add to the cache of parse results by content")
    p.add_argument("--max-file-size", type=_size, default=None, metavar="BYTES",
                   help="skip files larger than this (default 1MiB)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up a clone or download after this long (default 600)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="fingerprinting processes (default: every core)")
    p.add_argument("--min-tokens", type=int, default=None, help="smallest fragment, in tokens, to index and report")


def _scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fail-on", choices=("unattributed", "any", "never"), default=None,
                   help="exit 1 when findings at this level exist (default: the configuration's, else "
                        "unattributed = any error)")
    p.add_argument("--missing-license", action="store_true", default=None, help="report files without licence information")
    p.add_argument("--min-similarity", type=float, default=None, help="verified similarity threshold (0-1)")


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
    _scan_options(scan)
    scan.add_argument("--baseline", metavar="FILE", help="report only findings not in this baseline (and stale entries)")
    _common(scan)

    baseline = sub.add_parser("baseline", help="record the current findings as accepted (by stable id)")
    baseline.add_argument("source", nargs="?", default=".", help="what to scan (default: the current directory)")
    baseline.add_argument("--reference", "-r", action="append", default=[], metavar="[NAME=]REF")
    baseline.add_argument("--output", "-o", metavar="FILE", default=".provscan-baseline.json",
                          help="where to write it (default .provscan-baseline.json)")
    _scan_options(baseline)
    _common(baseline)

    hook = sub.add_parser("hook", help="check just these files against the configured index (pre-commit entry)")
    hook.add_argument("files", nargs="*", help="changed files, relative to the repository root (the current directory)")
    hook.add_argument("--reference", "-r", action="append", default=[], metavar="NAME", help="index references to use")
    hook.add_argument("--baseline", metavar="FILE", help="accepted findings (default: the configured baseline)")
    _scan_options(hook)
    _common(hook)

    server = sub.add_parser("server", help="the hook's resident server: status, start, stop, run (foreground)")
    server.add_argument("action", choices=("status", "start", "stop", "run"), nargs="?", default="status")
    server.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                        help="exit after this long without a hook run (default 900)")

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


def _config():
    from scanner.config import project_config

    return project_config(Path.cwd())


def _options(args, cfg=None):
    """Scan options from the flags, then the project configuration, then the defaults."""
    from dataclasses import replace

    from scanner.config import Config
    from scanner.fingerprint import Params
    from scanner.pipeline import ScanOptions

    cfg = cfg or Config()
    params = Params()
    min_similarity = getattr(args, "min_similarity", None)
    min_similarity = min_similarity if min_similarity is not None else cfg.min_similarity
    if min_similarity is not None:
        if not 0 < min_similarity <= 1:
            raise UsageError("--min-similarity must be in (0, 1]")
        params = replace(params, min_similarity=min_similarity)
    min_tokens = args.min_tokens if args.min_tokens is not None else cfg.min_tokens
    if min_tokens is not None:
        if min_tokens < 5:
            raise UsageError("--min-tokens must be at least 5")
        params = replace(params, min_tokens=min_tokens)
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    missing = getattr(args, "missing_license", None)
    opts = ScanOptions(params=params, missing_license=bool(missing if missing is not None else cfg.missing_license),
                       cache_dir=Path(args.cache_dir) if args.cache_dir else None, timeout=args.timeout,
                       index=args.index or cfg.resolve(cfg.index), workers=args.workers, ignore=tuple(cfg.ignore),
                       require_spdx=cfg.require_spdx, copyright_holders=tuple(cfg.copyright_holders),
                       parse_cache=not getattr(args, "no_parse_cache", False))
    max_size = args.max_file_size if args.max_file_size is not None else cfg.max_file_size
    if max_size is not None:
        opts = replace(opts, max_file_size=max_size)
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


@contextlib.contextmanager
def _no_cycle_collection():
    """A scan or an index build makes millions of objects that live until it ends, and almost no
    cycles: the whole worst-case benchmark scan leaves 1,163 cyclic objects, a transformers build
    85. The cyclic collector walks the live ones again and again for that (with a threshold of
    100,000, two 50 ms passes in a scan; at the default, 7 % of a scan's or build's time): it
    stays off while a command runs and renders its report (forked workers inherit the setting)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_scan(args, cfg, only: set[str] | None = None):
    from scanner.pipeline import scan

    options = _options(args, cfg)
    references = [parse_reference(r) for r in (args.reference or cfg.references)]
    update, status = _status_callback()
    try:
        return scan(args.source, references, options, update, only=only)
    finally:
        if status is not None:
            status.stop()


def _emit(text: str, what: str = "the output") -> None:
    """A command's output on standard output: a full device is one line and exit 2; a reader that
    has gone (`| head`) wanted no more. (Short output fails at the flush on exit: see _leave.)"""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} to standard output: {exc.strerror}") from None


def _apply_baseline(report, path: str | None, scanned_paths: set[str] | None = None) -> None:
    from scanner.suppress import apply_baseline, read_baseline

    if path:
        apply_baseline(report, read_baseline(path), scanned_paths)


def cmd_scan(args) -> int:
    from reports import render

    cfg = _config()
    report = _run_scan(args, cfg)
    _apply_baseline(report, args.baseline or cfg.resolve(cfg.baseline))
    from scanner.report import write_text_atomic

    color = args.output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = render(report, args.format, color=color)
    if args.output:
        try:
            write_text_atomic(args.output, text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        _emit(text, "the report")
    return report.exit_code(args.fail_on or cfg.fail_on or "unattributed")


def cmd_baseline(args) -> int:
    from scanner.suppress import write_baseline

    report = _run_scan(args, _config())
    try:
        count = write_baseline(report, args.output)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"baseline: {count} finding(s) recorded in {args.output}", file=sys.stderr)
    return 0


_HOOK_ADVICE = {
    "unattributed-copy": "credit it at the copy ('# provscan: source=NAME', an SPDX snippet tag) and keep its notice",
    "notice-removed": "restore the reference's copyright and licence notice",
    "attributed-copy": "credited; keep the credit and the licence terms",
    "missing-license": "add an SPDX-License-Identifier line",
    "license-policy": "fix the header as the project's licence policy asks",
}


def cmd_hook(args) -> int:
    """One line per finding in the given files; exit 1 at or above the configured level."""
    from scanner.configs import is_config
    from scanner.pipeline import default_index, store_for

    cfg = _config()
    args.hook_server_wanted = cfg.hook_server
    root = Path.cwd().resolve()
    only = set()
    for name in args.files:
        path = (root / name).resolve()
        if root in path.parents and (path.suffix in (".py", ".ipynb") or is_config(path.relative_to(root).as_posix())):
            only.add(path.relative_to(root).as_posix())
    options = _options(args, cfg)
    location = options.index or str(default_index(options))
    from scanner import hookserver

    if hookserver.serving:  # a child of the hook server: tell it which index to keep warm
        from dataclasses import replace

        hookserver.used_index = replace(options, index=location)
    if not store_for(options).exists():
        raise UsageError(f"no reference index at {location}: build one with `provscan index add NAME SOURCE` "
                         "(or `provscan index add --preset qwen`), or set `index` in [tool.provscan]")
    if not only:
        return 0
    args.source = str(root)
    report = _run_scan(args, cfg, only=only)
    _apply_baseline(report, args.baseline or cfg.resolve(cfg.baseline), only)
    fail_on = args.fail_on or cfg.fail_on or "unattributed"
    from reports.text import inert

    lines = []
    for f in report.findings:
        if f.severity == "note" and fail_on != "any":
            continue
        where = ""
        if f.reference is not None:
            where = f" {inert(f.reference.name)} {inert(f.reference.path)}:{f.reference.start_line}-{f.reference.end_line}"
            if f.similarity is not None:
                where += f" ({f.similarity:.2f})"
        lines.append(f"{inert(f.path)}:{f.start_line}: {f.kind}:{where} \u2014 {_HOOK_ADVICE.get(f.kind, 'review it')}\n")
    for e in report.stale:
        lines.append(f"{inert(e.get('path'))}: stale baseline entry {inert(e.get('kind'))} {inert(e.get('symbol') or '')}: "
                     "remove it from the baseline\n")
    _emit("".join(lines))
    return report.exit_code(fail_on)


def cmd_server(args) -> int:
    """The hook's resident server (scanner/hookserver.py)."""
    import time

    from scanner import hookserver

    if args.action == "run":
        try:
            return hookserver.serve(args.idle if args.idle is not None else hookserver.IDLE_SECONDS)
        except OSError as exc:
            raise UsageError(f"hook server: {exc}") from None
    if args.action == "start":
        if hookserver.status() is None:
            hookserver.spawn()
            deadline = time.monotonic() + 30
            while hookserver.status() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        info = hookserver.status()
        if info is None:
            raise UsageError("the hook server did not start; `provscan server run` shows why")
        print(f"hook server running: pid {info['pid']}, {info['socket']}")
        return 0
    if args.action == "stop":
        print("hook server stopped" if hookserver.stop() else "no hook server running")
        return 0
    info = hookserver.status()
    if info is None:
        print("no hook server running")
        return 3
    print(f"hook server running: pid {info['pid']}, {info['served']} hook runs served, {info['socket']}")
    for location in info.get("warm", []):
        print(f"index kept loaded: {location}")
    return 0


def cmd_index(args) -> int:
    from scanner import index

    options = _options(args)
    command = args.index_command
    if command == "add":
        update, status = _status_callback()
        try:
            with _no_cycle_collection():
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
        _emit(index.render_listing(index.listing(options), args.format))
        return 0
    if command == "info":
        _emit(index.render_info(index.info(options), args.format))
        return 0
    if command == "presets":
        data = index.presets()
        if args.format == "json":
            import json

            _emit(json.dumps(data, indent=2) + "\n")
        else:
            _emit("".join(f"{name}: {spec['description']}\n    {spec['source']}"
                          + (f" include {' '.join(spec['include'])}" if spec.get("include") else "") + "\n"
                          for name, spec in sorted(data.items())))
        return 0
    if command == "remove":
        index.store_for(options).remove(args.name)
        print(f"removed {args.name}")
        return 0
    raise UsageError("provscan index: give a command: add, list, remove, info or presets")


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if as_program and argv[:1] != ["server"]:
        # A command's whole run: see _no_cycle_collection. Not the hook server's, which lives on
        # (for 15 minutes idle) and must have its cycles collected.
        gc.disable()
    code = _main(argv)
    if as_program:
        _leave(code)
    return code


def _leave(code: int) -> None:
    """End the program without tearing the interpreter down, as mypy's --fast-exit does: freeing
    a large scan's objects one by one took 45 ms after its report was written. Every pool and file
    of ours is closed by now; what is left to write is in the standard streams."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:  # a full disk (the output is incomplete), a reader gone
        if not isinstance(exc, BrokenPipeError):
            print(f"provscan: error: cannot write to standard output: {exc}", file=sys.stderr)
            code = 2
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _main(argv: list[str]) -> int:
    forwarded = False
    if argv[:1] == ["hook"]:
        from scanner import hookserver

        forwarded = hookserver.enabled() and not hookserver.serving
        if forwarded:
            code = hookserver.forward(argv)  # a resident server runs this same main() in a child
            if code is not None:
                return code
    try:
        args = build_parser().parse_args(argv)
        if args.command == "scan":
            with _no_cycle_collection():
                return cmd_scan(args)
        if args.command == "index":
            return cmd_index(args)
        if args.command == "baseline":
            with _no_cycle_collection():
                return cmd_baseline(args)
        if args.command == "hook":
            with _no_cycle_collection():
                code = cmd_hook(args)
            if forwarded and getattr(args, "hook_server_wanted", False):
                hookserver.spawn()  # no server answered: start one for the next runs
            return code
        if args.command == "server":
            return cmd_server(args)
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
