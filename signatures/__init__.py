"""Fingerprints: token shingles, MinHash signatures and the LSH candidate index."""

import os


def compiled(module: str = "signatures._native"):
    """A compiled twin (signatures._native: shingle hashes and MinHash; scanner._lex: the lexer and
    token hashes) when it was built; None without it, or with PROVSCAN_PURE_PYTHON=1 (to compare
    the two). Both give the Python code's values exactly (tests/test_speedups.py)."""
    if os.environ.get("PROVSCAN_PURE_PYTHON"):
        return None
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# One line, as every other bad input gets (scanner.cli prints "provscan: error: ...").
_BUS_ERROR = (b"provscan: error: a memory-mapped file was cut short while it was being read (an index or"
              b" weights file changed by another process); run again, and if it happens again, rebuild"
              b" the index (provscan index remove / add)\n")
_bus_error_handled = False


def exit_cleanly_on_bus_error() -> None:
    """Before a file is memory-mapped: if another process truncates it while it is mapped, reading
    a page past its new end raises SIGBUS, which kills the process with no word. With the compiled
    module (signatures._native; not with PROVSCAN_PURE_PYTHON's switch, which is for the twins)
    the process then prints one line and exits 2. Without it, SIGBUS stays fatal."""
    global _bus_error_handled
    if _bus_error_handled:
        return
    import importlib

    try:
        native = importlib.import_module("signatures._native")
    except ImportError:
        return
    native.exit_on_bus_error(_BUS_ERROR)
    _bus_error_handled = True
