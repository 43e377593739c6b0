"""Fingerprint parsed units: token hashes per channel, MinHash signatures of eligible fragments.

Shingles are not stored: a fragment's shingles are recomputed from its token hashes when a
candidate is verified (a few microseconds), so a unit, or a whole stored reference, is three
flat arrays plus one signature row per eligible fragment.

Many files are fingerprinted in a process pool; results come back in input order, so they are
identical whatever the number of workers.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from functools import lru_cache
from dataclasses import dataclass, field

import numpy as np

from scanner.configs import is_config, is_model_config
from scanner.parse import Fragment, ParsedUnit, Syntax, parse_syntax, parse_unit
from scanner.walk import SourceUnit
from signatures.minhash import MinHasher, to_hash32
from signatures.shingles import range_index, segment_unique, shingle_hashes, sorted_unique, token_hashes

# Below this much source, a pool costs more to start than it saves.
_POOL_MIN_BYTES = 2 * 1024 * 1024
_POOL_MIN_UNITS = 64


@dataclass(frozen=True)
class Params:
    """Fingerprint and matching parameters. Defaults measured on transformers' Copied-from pairs
    (see docs/benchmarks.md)."""

    k: int = 5  # tokens per shingle
    num_perm: int = 128
    seed: int = 1
    lsh_threshold: float = 0.4  # Jaccard at which LSH returns candidates (below the verify threshold)
    min_similarity: float = 0.55  # verified Jaccard of abstract shingle sets (bench/accuracy: tuned on the training split)
    min_tokens: int = 40  # smaller fragments are neither indexed nor reported
    min_lines: int = 3
    min_shared: int = 12  # shared non-boilerplate shingles for a pair that renamed most names
    boilerplate_min_concrete: float = 0.5  # ...or, with fewer, this concrete similarity
    common_ratio: float = 0.005  # a shingle in more than this share of distinct reference functions is boilerplate
    common_min: int = 30  # ...and in at least this many

    def index_key(self) -> dict:
        """The parameters a stored index is built with: an index built with others cannot be mixed."""
        from signatures.minhash import SCHEME

        return {"scheme": SCHEME, "k": self.k, "num_perm": self.num_perm, "seed": self.seed,
                "lsh_threshold": self.lsh_threshold, "min_tokens": self.min_tokens, "min_lines": self.min_lines}


@dataclass
class UnitPrints:
    """Token hashes of one unit (or of a whole stored reference, units end to end)."""

    abs_tok: np.ndarray  # uint64 token hashes, abstract channel
    con_tok: np.ndarray  # uint64 token hashes, concrete channel
    lines: np.ndarray  # int32 line of each token
    eligible: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))  # fragment indices
    sigs: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.uint32))  # one row per eligible
    # Only when fingerprinted as a reference, computed in the worker (where the text still is) and
    # as a few flat arrays (tens of thousands of small objects cost more to send than to compute):
    notes: dict[int, tuple[int, str]] = field(default_factory=dict)  # eligible fragment -> its Copied-from note
    fragment_rows: np.ndarray | None = None  # int64 (fragments, 6): reference.fragment_rows
    symbols: list = field(default_factory=list)  # qualified name of each fragment (None: module)
    fragment_keys: list[bytes] = field(default_factory=list)  # xxh3-128 of each fragment's abstract tokens
    function_keys: list[bytes] = field(default_factory=list)  # the same, of each function/method
    function_shingles: np.ndarray | None = None  # uint64: each function's distinct shingles, sorted, end to end
    function_ends: np.ndarray | None = None  # int64: where each function's run in function_shingles ends


def eligible(fragment: Fragment, params: Params) -> bool:
    """Big enough to be indexed and reported: tiny fragments are boilerplate by construction."""
    return fragment.tokens >= params.min_tokens and fragment.end_line - fragment.start_line + 1 >= params.min_lines


def abstract_set(prints: UnitPrints, tok_start: int, tok_end: int, k: int) -> np.ndarray:
    """Distinct abstract shingles of a token range, sorted."""
    return sorted_unique(shingle_hashes(prints.abs_tok[tok_start:tok_end], k))


def concrete_set(prints: UnitPrints, tok_start: int, tok_end: int, k: int) -> np.ndarray:
    return sorted_unique(shingle_hashes(prints.con_tok[tok_start:tok_end], k))


def signature(hasher: MinHasher, shingles: np.ndarray) -> np.ndarray:
    return hasher.signature(to_hash32(shingles))


def fingerprint_unit(unit: ParsedUnit, params: Params, cache: dict | None = None,
                     hasher: MinHasher | None = None) -> UnitPrints:
    """Token hashes, and the MinHash of every eligible fragment.

    Fragments nest (module > class > method), and a MinHash is a minimum over a set, so a
    fragment's signature is the elementwise minimum of its eligible children's signatures and
    of the signature of its own remaining shingles: each shingle is hashed once, not once per
    nesting level, and the result is exactly the signature of the fragment's whole shingle set.
    All of a unit's signatures are one call (MinHasher.nested_signatures).
    """
    hasher = hasher or MinHasher(params.num_perm, params.seed)
    if unit.hashes is not None:
        abs_tok, con_tok = unit.hashes
    else:
        abs_tok, con_tok = token_hashes(unit.abstract, cache), token_hashes(unit.concrete, cache)
    prints = UnitPrints(abs_tok, con_tok, np.asarray(unit.lines, dtype=np.int32))
    frags, k = unit.fragments, params.k
    hashes = to_hash32(shingle_hashes(prints.abs_tok, k))  # hashes[i]: the shingle of tokens i..i+k-1
    # Each shingle belongs to the innermost eligible fragment around it (fragments come in document
    # order, parents first, so inner ones overwrite); each eligible fragment's host is its nearest
    # eligible ancestor. Shingles of an ineligible fragment stay with its host.
    # That needs the ranges properly nested: two definitions of broken code can share a line, and
    # so tokens; then each fragment's signature is computed from its whole range.
    row_of: dict[int, int] = {}
    rows: list[int] = []
    hosts: list[int] = []
    spans: list[tuple[int, int]] = []  # each row's shingle range
    taken: dict[int, int] = {}  # host row -> where its last eligible child's range ends
    nested = True
    owner = np.full(len(hashes), -1, dtype=np.int32)
    for fi, frag in enumerate(frags):
        if not (eligible(frag, params) and frag.tokens >= k):
            continue
        host = frag.parent
        while host is not None and host not in row_of:
            host = frags[host].parent
        lo, hi = frag.tok_start, frag.tok_end - k + 1
        if host is not None:
            h_lo, h_hi = spans[row_of[host]]
            nested = nested and max(h_lo, taken.get(row_of[host], h_lo)) <= lo and hi <= h_hi
            taken[row_of[host]] = hi
        row_of[fi] = len(rows)
        hosts.append(-1 if host is None else row_of[host])
        rows.append(fi)
        spans.append((lo, hi))
        owner[lo:hi] = row_of[fi]
    prints.eligible = np.asarray(rows, dtype=np.int32)
    if nested:
        prints.sigs = hasher.nested_signatures(hashes, owner, np.asarray(hosts, dtype=np.int32))
    else:
        prints.sigs = np.vstack([hasher.signature(hashes[lo:hi]) for lo, hi in spans]) if spans \
            else np.empty((0, params.num_perm), dtype=np.uint32)
    return prints


@dataclass
class Fingerprinted:
    unit: ParsedUnit  # token string lists emptied: the hashes in prints replace them
    prints: UnitPrints
    license: object | None  # scanner.licenses.LicenseInfo of the file's header (first cell only)
    architecture: dict | None = None  # a model config's architecture fields (scanner.configs)
    syntax: Syntax | None = None  # the unit's parse result, when it was parsed (not from the parse cache)


def _fingerprint_one(task: tuple[SourceUnit, Params, bool, bool, Syntax | None]) -> Fingerprinted:
    source, params, with_license, as_reference, syntax = task
    arch = parsed = None
    if is_config(source.path):
        from scanner.configs import architecture, parse_config_unit

        unit = parse_config_unit(source)
        arch = architecture(unit)  # while the text is here: a stored reference drops it
        if not is_model_config(arch):
            arch = None
    else:
        if syntax is None:
            syntax = parsed = parse_syntax(source.data, keep_imports=not as_reference, outline=as_reference)
        unit = parse_unit(source, keep_imports=not as_reference, syntax=syntax)
    prints = fingerprint_unit(unit, params, _worker_cache(), _worker_hasher(params))
    unit.abstract, unit.concrete, unit.hashes = [], [], None
    info = None
    if with_license:
        # A stored reference splits its lines anyway (_reference_extras reads them): the header is their first.
        info = _analyse_header(_header_text(unit, unit.line_texts if as_reference else None))
    if as_reference:
        _reference_extras(unit, prints, params)
        # What a stored reference does not keep need not travel back from the worker.
        unit.text, unit.comments, unit.imports = "", [], []
    # The split lines (a cached property) would double what travels back: split again when needed.
    unit.__dict__.pop("line_texts", None)
    return Fingerprinted(unit, prints, info, arch, parsed)


# Words that mark a notice: a comment block or docstring holding one is read whole, a line of code
# holding one (e.g. __copyright__ = "...") on its own.
_NOTICE_WORDS = ("copyright", "licen", "spdx", "(c)", "\N{COPYRIGHT SIGN}")


def _header_text(unit: ParsedUnit, lines: list[str] | None = None, head_lines: int = 200) -> str:
    """The notices of the file's first head_lines lines, other lines blanked (line numbers kept).

    Notices live in comment blocks and docstrings; normalising the code and the ordinary
    comments around them was most of the cost of licence detection, and with them gone most
    files of a project share one header text, which _analyse_header memoises. Blank lines after
    the last notice are dropped: they change no finding, and files of different lengths then
    share a text too.
    """
    # The first head_lines lines: of lines (the unit's, split) when given, else without splitting the
    # whole file (a scanned file's worker would drop the split).
    if lines is not None:
        lines = lines[:head_lines]
    else:
        lines = unit.text.split("\n", head_lines)
        if len(lines) > head_lines:
            lines.pop()  # the rest of the file
    kept = [""] * len(lines)
    head = unit.text[:sum(map(len, lines)) + len(lines)].lower()
    hits = []
    for word in _NOTICE_WORDS:  # str.find: a C scan, rare hits in code
        at = head.find(word)
        while at != -1:
            hits.append(at)
            at = head.find(word, at + 1)
    line, counted = 0, 0
    hit_lines = set()
    for at in sorted(hits):
        line += head.count("\n", counted, at)
        counted = at
        kept[line] = lines[line]
        hit_lines.add(line + 1)
    # A comment or docstring line with a notice word keeps its whole block of consecutive
    # comment and docstring lines (unit.comments is sorted by line).
    comments = unit.comments
    end = bisect_right(comments, (len(lines), "\U0010ffff"))
    hi = -1
    for ln in sorted(hit_lines):
        i = bisect_left(comments, (ln,), hi + 1, end)
        if i == end or comments[i][0] != ln:
            continue  # not a comment line, or in the block just kept
        lo = hi = i
        while lo > 0 and comments[lo - 1][0] >= comments[lo][0] - 1:
            lo -= 1
        while hi + 1 < end and comments[hi + 1][0] <= comments[hi][0] + 1:
            hi += 1
        for c_line, _ in comments[lo:hi + 1]:
            kept[c_line - 1] = lines[c_line - 1]
    return "\n".join(kept).rstrip("\n")


@lru_cache(maxsize=1024)
def _analyse_header(text: str):
    from scanner.licenses import analyse

    return analyse(text, head_lines=None)  # LicenseInfo is frozen: sharing one is safe


def _reference_extras(unit: ParsedUnit, prints: UnitPrints, params: Params) -> None:
    """What a stored reference keeps of a unit's fragments: their rows, names and token-sequence
    keys, the Copied-from notes of indexed ones, and each function's shingles (document frequency).
    The unit's Fragment objects are then dropped: the rows replace them."""
    import xxhash

    from scanner.attribute import provenance_note
    from scanner.reference import fragment_rows

    frags, abs_tok, k = unit.fragments, prints.abs_tok, params.k
    for fi in prints.eligible.tolist():
        note = provenance_note(unit, frags[fi])
        if note:
            prints.notes[fi] = note
    prints.fragment_rows = fragment_rows(frags)
    prints.symbols = [f.symbol for f in frags]
    prints.fragment_keys = [xxhash.xxh3_128_digest(abs_tok[f.tok_start:f.tok_end]) for f in frags]
    functions = [fi for fi, f in enumerate(frags) if f.kind in ("function", "method")]
    prints.function_keys = [prints.fragment_keys[fi] for fi in functions]
    # Every function's shingle window end to end (one gather), then each window's distinct values.
    starts = np.asarray([frags[fi].tok_start for fi in functions], dtype=np.int64)
    stops = np.maximum(starts, np.asarray([frags[fi].tok_end - k + 1 for fi in functions], dtype=np.int64))
    lengths = stops - starts
    prints.function_shingles, prints.function_ends = segment_unique(shingle_hashes(abs_tok, k)[range_index(starts, lengths)],
                                                                    np.cumsum(lengths))
    unit.fragments = []


_CACHE: dict = {}
_HASHERS: dict = {}


def _worker_cache() -> dict:
    # Token -> hash memo per process; bounded so that a huge vocabulary cannot grow without end.
    if len(_CACHE) > 2_000_000:
        _CACHE.clear()
    return _CACHE


def _worker_hasher(params: Params) -> MinHasher:
    key = (params.num_perm, params.seed)
    if key not in _HASHERS:
        _HASHERS[key] = MinHasher(params.num_perm, params.seed)
    return _HASHERS[key]


def fork_pool(workers: int):
    """A process pool of `workers` forked processes (they inherit the modules and the work set up
    before the fork: nothing is pickled but task indices and results)."""
    import multiprocessing

    return _pool_class()(workers, context=multiprocessing.get_context("fork"))


@lru_cache(maxsize=None)
def _pool_class():
    import multiprocessing.pool

    class Pool(multiprocessing.pool.Pool):
        """multiprocessing.Pool's worker-maintenance thread also waits on the result pipe, so it
        wakes for every chunk of every result in flight and polls again at once: 1.0 s of the
        parent's CPU during a transformers build, taken from the workers on a 2-core machine. This
        one waits for what it maintains the pool for: a worker exiting or a change of the pool's
        state (as multiprocessing's ThreadPool does)."""

        def _get_sentinels(self):
            return [self._change_notifier._reader]

    return Pool


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def fingerprint_sources(sources: list[SourceUnit], params: Params, *, workers: int | None = None,
                        progress=None, as_reference: bool = False, cache=None, meanwhile=None) -> list[Fingerprinted]:
    """Parse and fingerprint units on every core; the result is in input order.

    as_reference: also compute what a stored reference needs (reference_extras) and drop the
    texts, which a stored reference does not keep.
    cache: a scanner.parsecache.ParseCache: Python files whose bytes it knows are not parsed
    again, and the parse results of the others are added to it.
    meanwhile: a callable run once in this process while the workers fingerprint (before the
    first unit when there is no pool); what it raises ends the fingerprinting.
    """
    workers = default_workers() if workers is None else max(1, workers)
    first_cell = {}
    for i, s in enumerate(sources):
        first_cell.setdefault(s.path, i)
    keys: list[bytes | None] = [None] * len(sources)
    syntaxes: list[Syntax | None] = [None] * len(sources)
    if cache is not None:
        from scanner.parsecache import cache_key

        python = [i for i, s in enumerate(sources) if not is_config(s.path)]
        for i in python:
            keys[i] = cache_key(sources[i].data, not as_reference)
        for i, syntax in zip(python, cache.get([keys[i] for i in python], [len(sources[i].data) for i in python])):
            syntaxes[i] = syntax
    tasks = [(s, params, first_cell[s.path] == i, as_reference, syntaxes[i]) for i, s in enumerate(sources)]
    out = _fingerprint_tasks(tasks, workers, progress, meanwhile)
    if cache is not None:
        # Notebook cells and repeated files share a key: each is written once.
        new = {keys[i]: d.syntax for i, d in enumerate(out) if keys[i] is not None and d.syntax is not None}
        cache.put(list(new.items()))
        for d in out:
            d.syntax = None
    return out


def _fingerprint_tasks(tasks: list, workers: int, progress, meanwhile=None) -> list[Fingerprinted]:
    total_bytes = sum(len(task[0].data) for task in tasks)
    out: list[Fingerprinted] = []
    if workers == 1 or len(tasks) < _POOL_MIN_UNITS or total_bytes < _POOL_MIN_BYTES:
        if meanwhile is not None:
            meanwhile()
        for i, task in enumerate(tasks):
            out.append(_fingerprint_one(task))
            if progress and i % 50 == 0:
                progress(i, len(tasks))
        return out
    # fork: workers inherit the imported modules (no re-import per worker) and nothing is pickled
    # but the tasks and results, which are our own objects. Largest files first, so that no worker
    # is left parsing one big file while the other idles at the end.
    # The tasks themselves are not sent either: the workers inherit them, and get their indices.
    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i][0].data))
    chunk = max(1, min(8, len(tasks) // (workers * 16) or 1))
    slots: list[Fingerprinted | None] = [None] * len(tasks)
    global _TASKS
    _TASKS = tasks
    try:
        with fork_pool(workers) as pool:
            done = pool.imap(_fingerprint_task, order, chunksize=chunk)
            if meanwhile is not None:
                meanwhile()  # leaving the with block on an error terminates the workers
            for n, (i, result) in enumerate(zip(order, done)):
                slots[i] = result
                if progress and n % 50 == 0:
                    progress(n, len(tasks))
    finally:
        _TASKS = []
    return slots  # type: ignore[return-value]  # every slot is filled


_TASKS: list = []  # the pool's tasks, set before its workers are forked


def _fingerprint_task(i: int) -> Fingerprinted:
    return _fingerprint_one(_TASKS[i])
