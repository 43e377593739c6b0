"""Fuzz the parse -> fingerprint path: no input may raise, every output must be consistent.

    python bench/fuzz.py [--seconds 600] [--seed 0] [--output bench/results/fuzz.json]

Feeds `scanner.parse.parse_unit` + `scanner.fingerprint.fingerprint_unit` (default parameters, and
tiny ones under which nearly every fragment gets a signature), the unit built from its parse as the
parse cache keeps and returns it (`scanner.parsecache`: encoded, decoded, checked equal), with:
- arbitrary bytes, uniform or from a Python-ish alphabet (quotes, brackets, backslashes, \\r, \\f,
  NUL, bytes >= 0x80);
- valid programs (tests/pygen.py, the examples, provscan's own source) and mutations of them:
  byte flips, insertions and deletions, truncation, splices, invalid UTF-8, NULs, line-ending
  changes, unterminated strings, deep nesting (definitions, brackets, blocks);
- inputs that reached new grammar features, mutated again (a small coverage-guided loop: a
  feature is a (parent node type, child node type) edge of tree-sitter's tree, an error-node
  context, a token class or a fragment kind at a nesting depth).

Checks, for every input: nothing raises; one line per token in both channels, lines non-decreasing
and within the file; each fragment's lines within the file and its token range exactly the tokens
of its lines, nested in its parent's; comment, import and syntax-error lines within the file; the
invalid-UTF-8 flag right; hashes and signatures of the right shapes and types, the eligible
fragments exactly those big enough, and each signature equal to the MinHash of the fragment's whole
shingle set (fingerprint_unit composes it from nested fragments).

A failing input is minimised (chunk deletion while the same failure persists) and recorded with
its traceback. Results go to bench/results/fuzz.json (rewritten every 30 s, so a killed run leaves
what it found); nothing else is written.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import re
import sys
import time
import traceback
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing but the results (no __pycache__ in tests/ or elsewhere)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scanner.fingerprint import Params, abstract_set, eligible, fingerprint_unit  # noqa: E402
from scanner.parse import _parser, parse_syntax, parse_unit, python_newlines  # noqa: E402
from scanner.parsecache import decode, encode  # noqa: E402
from scanner.walk import SourceUnit  # noqa: E402
from signatures.minhash import MinHasher, to_hash32  # noqa: E402
from tests import pygen  # noqa: E402

PARAMS = (Params(), Params(min_tokens=5, min_lines=1))
HASHERS = {(p.num_perm, p.seed): MinHasher(p.num_perm, p.seed) for p in PARAMS}
MAX_INPUT = 256 * 1024  # mutated inputs
MAX_NESTED = 1024 * 1024  # deep nesting (the walk's default size cap)
_PYISH = (b"()[]{}:;,.=+-*/%@<>!&|^~'\"\\#\n\n\n\r\t\f \x00\x80\xc3\xa9\xff_aZ09\x0b"
          + b"    " * 4)
_TOKENS = (b'"""', b"'''", b"\\\n", b"\\\r\n", b"\r", b"\r\n", b"\n", b"\x00", b"\xff", b"\xc3", b"\xe2\x82",
           b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"#", b":", b"def ", b"class ", b"@", b"(", b")",
           b"[", b"]", b"{", b"}", b"'", b'"', b"f'", b'rb"', b"lambda", b"async def ", b"\t", b"\f", b"    ",
           b"\xef\xbb\xbf", b"if x:\n", b"\n    ", b"match x:\n    case 1:\n", b"\\", b"0x", b"1e", b".5j")
_INVALID_UTF8 = (b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80", b"\xfe\xfe")


class Failure(Exception):
    """An invariant that does not hold."""


def check(data: bytes) -> set:
    """Run the target on data, check the invariants; return the input's features."""
    # The unit is built from its parse as the parse cache gives it back (scanner.parsecache).
    syntax = parse_syntax(data)
    kept = decode(encode(syntax), len(data))
    _expect(kept == syntax, "the parse cache does not give the parse back")
    # A reference is parsed from its outline: where the source parses without errors, or the
    # outline with, it finds what the source's parse finds.
    outlined = parse_syntax(data, keep_imports=False, outline=True)
    _expect(decode(encode(outlined), len(data)) == outlined, "an outline's parse is not a well-formed parse result")
    if not syntax.error_lines:
        _expect(outlined == parse_syntax(data, keep_imports=False), "the outline finds other definitions than the source")
    unit = parse_unit(SourceUnit("fuzz.py", data), syntax=kept)
    n = len(unit.lines)
    read = python_newlines(data)  # lines as Python reads them (a lone \r ends one)
    n_lines = max(1, read.count(b"\n") + (0 if read.endswith(b"\n") else 1))
    # The compiled lexer gives token hashes only; the Python one, the token strings.
    channels = unit.hashes if unit.hashes is not None else (unit.abstract, unit.concrete)
    _expect(len(channels[0]) == n and len(channels[1]) == n, "channel lengths differ")
    lines = np.asarray(unit.lines)
    if n:
        _expect(bool((np.diff(lines) >= 0).all()), "token lines decrease")
        _expect(1 <= int(lines.min()) and int(lines.max()) <= n_lines, f"token line outside 1..{n_lines}")
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    _expect(unit.invalid_utf8 == (not valid), "invalid_utf8 flag wrong")
    frags = unit.fragments
    _expect(frags and frags[0].kind == "module" and (frags[0].tok_start, frags[0].tok_end) == (0, n)
            and (frags[0].start_line, frags[0].end_line) == (1, n_lines), "module fragment wrong")
    for i, f in enumerate(frags):
        _expect(0 <= f.tok_start <= f.tok_end <= n, f"fragment {i} token range outside 0..{n}")
        _expect(1 <= f.start_line <= f.end_line <= n_lines, f"fragment {i} lines {f.start_line}-{f.end_line} outside 1..{n_lines}")
        inside = np.flatnonzero((lines >= f.start_line) & (lines <= f.end_line))
        _expect((f.tok_start, f.tok_end) == ((int(inside[0]), int(inside[-1]) + 1) if len(inside) else (f.tok_start, f.tok_start)),
                f"fragment {i} tokens are not those of its lines")
        if i:
            p = frags[f.parent] if f.parent is not None and f.parent < i else None
            _expect(p is not None, f"fragment {i} parent missing or after it")
            _expect(p.tok_start <= f.tok_start and f.tok_end <= p.tok_end, f"fragment {i} tokens not nested in its parent's")
            _expect(p.start_line <= f.start_line and f.end_line <= p.end_line, f"fragment {i} lines not nested in its parent's")
            _expect(f.depth == p.depth + 1, f"fragment {i} depth wrong")
    for what, values in (("comment", [ln for ln, _ in unit.comments]), ("import", [imp.line for imp in unit.imports]),
                         ("syntax-error", unit.error_lines)):
        _expect(all(1 <= ln <= n_lines for ln in values), f"{what} line outside 1..{n_lines}")
    for params in PARAMS:
        hasher = HASHERS[(params.num_perm, params.seed)]
        prints = fingerprint_unit(unit, params, hasher=hasher)
        _expect(prints.abs_tok.dtype == np.uint64 and prints.con_tok.dtype == np.uint64
                and len(prints.abs_tok) == n and len(prints.con_tok) == n, "token hash arrays wrong")
        want = [i for i, f in enumerate(frags) if eligible(f, params) and f.tokens >= params.k]
        _expect(prints.eligible.tolist() == want, "eligible fragments wrong")
        _expect(prints.sigs.dtype == np.uint32 and prints.sigs.shape == (len(want), params.num_perm), "signature shape wrong")
        for row, fi in enumerate(want):
            f = frags[fi]
            whole = hasher.signature(to_hash32(abstract_set(prints, f.tok_start, f.tok_end, params.k)))
            _expect(np.array_equal(prints.sigs[row], whole), f"signature of fragment {fi} is not its shingle set's")
    return features(data, unit)


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise Failure(message)


def features(data: bytes, unit) -> set:
    out = set()
    cursor = _parser().parse(data).root_node.walk()
    stack: list[str] = []
    visited = 0
    while visited < 20_000:
        node = cursor.node
        visited += 1
        out.add((stack[-1] if stack else "", node.type, "E" if node.is_missing else ""))
        if cursor.goto_first_child():
            stack.append(node.type)
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                visited = 1 << 30
                break
            stack.pop()
    out.update(("frag", f.kind, min(f.depth, 8)) for f in unit.fragments)
    out.update(("tok", t) for t in set(unit.abstract[:5000]) if len(t) <= 3 or t in (b"ID", b"NUM", b"STR"))
    out.add(("utf8", unit.invalid_utf8, bool(unit.error_lines)))
    return out


# -- inputs -----------------------------------------------------------------------------------------

def seeds(rng: random.Random) -> list[bytes]:
    out = []
    for path in sorted((ROOT / "examples").rglob("*.py")) + sorted((ROOT / "scanner").glob("*.py")):
        data = path.read_bytes()
        if len(data) <= MAX_INPUT:
            out.append(data)
    for _ in range(100):
        out.append(generated(rng))
    return out


def generated(rng: random.Random) -> bytes:
    program, pool = pygen.program(rng.randrange)
    style = pygen.random_style(rng.randrange, program) if rng.random() < 0.5 else None
    return pygen.render(program, pool, style).encode("utf-8")


def random_bytes(rng: random.Random) -> bytes:
    size = int(rng.expovariate(1 / 600)) % 20_000
    if rng.random() < 0.3:
        return rng.randbytes(size)
    return bytes(rng.choice(_PYISH) for _ in range(size))


def deep_nesting(rng: random.Random) -> bytes:
    return _deep_nesting(rng)[:MAX_NESTED]


def _deep_nesting(rng: random.Random) -> bytes:
    depth = rng.choice((50, 100, 200, 500, 1000, 3000))
    kind = rng.randrange(6)
    if kind == 0:  # nested definitions, each with a statement
        return b"".join(b" " * i + (b"class C%d:\n" if i % 3 == 2 else b"def f%d(x):\n") % i for i in range(depth)) \
            + b" " * depth + b"return x + 1\n"
    if kind == 1:
        return b"x = " + b"(" * depth + b"1" + b")" * depth + b"\n"
    if kind == 2:
        return b"x = " + b"[" * depth + b"]" * rng.randrange(depth + 1) + b"\n"  # maybe unbalanced
    if kind == 3:
        return b"".join(b"\t" * i + b"if x:\n" for i in range(depth)) + b"\t" * depth + b"pass\n"
    if kind == 4:  # decorators stacked on nested defs
        return b"".join(b"    " * i + b"@d\n" + b"    " * i + b"def f():\n" for i in range(depth // 5)) + b"    " * (depth // 5) + b"pass\n"
    return b"f(" * depth + b"\n" + b"def g():\n    return 1\n"


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(1 + int(rng.expovariate(0.7))):
        op = rng.randrange(13)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip bits
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at:at] = rng.choice(_TOKENS)
        elif op == 2 and buf:  # delete a run
            del buf[at:at + rng.randrange(1, 64)]
        elif op == 3:  # truncate
            del buf[at:]
        elif op == 4 and buf:  # duplicate a slice
            j = rng.randrange(len(buf))
            buf[at:at] = buf[j:j + rng.randrange(1, 200)]
        elif op == 5 and corpus:  # splice
            other = rng.choice(corpus)
            j = rng.randrange(len(other) + 1)
            buf[at:] = other[j:j + rng.randrange(1, 2000)]
        elif op == 6:
            buf[at:at] = rng.choice(_INVALID_UTF8)
        elif op == 7:
            buf[at:at] = b"\x00" * rng.randrange(1, 4)
        elif op == 8:  # line endings
            buf = bytearray(bytes(buf).replace(b"\n", rng.choice((b"\r\n", b"\r", b"\n\n", b"\\\n"))))
        elif op == 9:  # indentation
            buf = bytearray(bytes(buf).replace(b"\n    ", rng.choice((b"\n\t", b"\n", b"\n  ", b"\n\f    "))))
        elif op == 10:  # an unterminated string or bracket
            buf[at:at] = rng.choice((b'"""', b"'''", b"'", b"(", b"[", b"{", b'f"{'))
        elif op == 11 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 12:  # nest the rest one level deeper
            buf[at:at] = b"\ndef wrapper():\n"
            buf = bytearray(bytes(buf[:at + 16]) + bytes(buf[at + 16:]).replace(b"\n", b"\n    "))
    return bytes(buf[:MAX_INPUT])


def signature_of_failure(exc: BaseException) -> tuple:
    tb = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "/scanner/" in f.filename
                  or "/signatures/" in f.filename or f.filename.endswith("fuzz.py")), "?")
    # The same failure at other positions is one failure: numbers are left out of its signature.
    message = re.sub(r"\d+", "N", str(exc)) if isinstance(exc, Failure) else type(exc).__name__
    return type(exc).__name__, message, where


def fails_same(data: bytes, want: tuple) -> bool:
    try:
        check(data)
    except Exception as exc:  # noqa: BLE001 - any failure is a finding
        return signature_of_failure(exc) == want
    return False


def minimise(data: bytes, want: tuple, budget_s: float = 60.0) -> bytes:
    """Delete chunks (halves down to single bytes) while the same failure persists."""
    deadline = time.monotonic() + budget_s
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(data) and time.monotonic() < deadline:
            candidate = data[:i] + data[i + chunk:]
            if fails_same(candidate, want):
                data, changed = candidate, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(HERE / "results" / "fuzz.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    corpus = seeds(rng)
    seen: set = set()
    failures: dict[tuple, dict] = {}
    stats = {"inputs": 0, "bytes": 0, "max_input_size": 0, "by_source": {}, "corpus_added": 0}
    slowest: list[tuple[float, int, str, str]] = []
    last_write = started

    def write(final: bool) -> None:
        from importlib.metadata import version

        wall = time.monotonic() - started
        doc = {
            "target": "scanner.parse.parse_unit + scanner.fingerprint.fingerprint_unit",
            "params": [{"min_tokens": p.min_tokens, "min_lines": p.min_lines, "k": p.k, "num_perm": p.num_perm} for p in PARAMS],
            "seed": args.seed, "seconds_requested": args.seconds, "wall_s": round(wall, 1), "finished": final,
            "inputs_tried": stats["inputs"], "inputs_per_s": round(stats["inputs"] / max(wall, 1e-9), 1),
            "inputs_by_source": dict(sorted(stats["by_source"].items())),
            "bytes_total": stats["bytes"], "max_input_size": stats["max_input_size"],
            "features_seen": len(seen), "corpus_size": len(corpus), "corpus_added": stats["corpus_added"],
            "failures": list(failures.values()),
            "slowest_inputs": [{"seconds": round(s, 3), "size": n, "source": src, "sha256": h}
                               for s, n, src, h in sorted(slowest, reverse=True)],
            "environment": {"python": platform.python_version(), "tree-sitter": version("tree-sitter"),
                            "tree-sitter-python": version("tree-sitter-python"), "numpy": np.__version__,
                            "machine": platform.machine(), "cpus": os.cpu_count()},
        }
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)

    queue = list(corpus)  # every seed once, then generated inputs
    while time.monotonic() - started < args.seconds:
        if queue:
            source, data = "seed", queue.pop()
        else:
            r = rng.random()
            if r < 0.15:
                source, data = "random-bytes", random_bytes(rng)
            elif r < 0.25:
                source, data = "generated", generated(rng)
            elif r < 0.30:
                source, data = "deep-nesting", deep_nesting(rng)
            else:
                source, data = "mutated", mutate(rng, rng.choice(corpus), corpus)
        t0 = time.monotonic()
        try:
            feats = check(data)
        except Exception as exc:  # noqa: BLE001 - any failure is a finding
            key = signature_of_failure(exc)
            entry = failures.get(key)
            if entry is None:
                small = minimise(data, key)
                failures[key] = {
                    "exception": key[0], "message": str(exc)[:500], "where": key[2], "count": 1, "source": source,
                    "input_size": len(data), "minimised_size": len(small),
                    "minimised_repr": repr(small)[:2000], "minimised_base64": base64.b64encode(small).decode(),
                    "traceback": traceback.format_exception(exc)[-6:],
                }
                print(f"FAILURE {key}: minimised {len(data)} -> {len(small)} bytes: {small[:200]!r}", flush=True)
            else:
                entry["count"] += 1
            feats = set()
        elapsed = time.monotonic() - t0
        stats["inputs"] += 1
        stats["bytes"] += len(data)
        stats["max_input_size"] = max(stats["max_input_size"], len(data))
        stats["by_source"][source] = stats["by_source"].get(source, 0) + 1
        if len(slowest) < 5 or elapsed > slowest[-1][0]:
            slowest.append((elapsed, len(data), source, hashlib.sha256(data).hexdigest()[:16]))
            slowest.sort(reverse=True)
            del slowest[5:]
        new = feats - seen
        if new:
            seen |= new
            if source != "seed" and len(data) <= 64 * 1024:
                corpus.append(data)
                stats["corpus_added"] += 1
                if len(corpus) > 5000:
                    del corpus[rng.randrange(len(corpus))]
        if time.monotonic() - last_write > 30:
            write(False)
            last_write = time.monotonic()
    write(True)
    wall = time.monotonic() - started
    print(f"{stats['inputs']} inputs in {wall:.0f} s ({stats['inputs'] / wall:.0f}/s), {len(seen)} features, "
          f"max size {stats['max_input_size']} bytes, {len(failures)} distinct failures -> {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
