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
