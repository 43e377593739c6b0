"""Token sequences -> k-shingle hashes, one per token position.

Fragment tokens are contiguous, so a fragment's shingles are those of its token slice.
Hashes are 64-bit and stable across processes and machines (xxh64, no Python hash()).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import xxhash

from signatures import compiled

_compiled = compiled()  # shingle_hashes' compiled twin (signatures/_native.c), or None

# Odd 64-bit multiplier for the polynomial combination of k token hashes.
_MULT = np.uint64(0x9E3779B97F4A7C15)


def token_hashes(tokens: Sequence[bytes | str], cache: dict | None = None) -> np.ndarray:
    """Stable 64-bit hash of each token (xxh64 of its UTF-8 bytes)."""
    if cache is None:
        cache = {}
    get = cache.get
    missing = {tok for tok in set(tokens) if get(tok) is None}
    for tok in missing:
        cache[tok] = xxhash.xxh64_intdigest(tok if isinstance(tok, bytes) else tok.encode("utf-8", "surrogatepass"))
    return np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique of a 1-D array: sorted distinct values. np.unique (numpy 2) imports numpy.ma on
    first use (~0.04 s of a hook run) and hashes before sorting; sort + neighbour test is faster
    on the small arrays of fragments."""
    if len(values) < 2:
        return np.array(values, copy=True)
    out = np.sort(values)
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def aligned_runs(s_seq: np.ndarray, r_seq: np.ndarray) -> list[tuple[int, int, int]]:
    """Greedy monotone alignment: maximal runs (i, j, n) of equal values, in order on both sides.

    Linear in the sequences' length (difflib's matcher was quadratic on 5,000-line modules); a
    reordered block may go unaligned, which only shortens the reported ranges.
    """
    if _compiled is not None:
        return _compiled.aligned_runs(np.ascontiguousarray(s_seq, dtype=np.uint64),
                                      np.ascontiguousarray(r_seq, dtype=np.uint64))
    s_seq, r_seq = np.asarray(s_seq).tolist(), np.asarray(r_seq).tolist()
    positions: dict[int, list[int]] = defaultdict(list)
    for j, h in enumerate(r_seq):
        positions[h].append(j)
    runs, i, last_j = [], 0, -1
    while i < len(s_seq):
        found = positions.get(s_seq[i])
        k = bisect_right(found, last_j) if found else 0
        if not found or k == len(found):
            i += 1
            continue
        j = found[k]
        n = 1
        while i + n < len(s_seq) and j + n < len(r_seq) and s_seq[i + n] == r_seq[j + n]:
            n += 1
        if n >= 2:  # a single shared value is noise, not an aligned region
            runs.append((i, j, n))
            last_j = j + n - 1
        i += n
    return runs


def range_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 indices starts[0] .. starts[0] + lengths[0] - 1, then those of the next range, end to end."""
    lengths = np.asarray(lengths, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the result
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(np.asarray(starts, dtype=np.int64) - firsts, lengths)


def aligned_blocks(s_tokens: np.ndarray, s_lines: np.ndarray, r_tokens: np.ndarray, r_lines: np.ndarray,
                   k: int) -> list[tuple[int, int, int, int]]:
    """Aligned line ranges (start, end, ref_start, ref_end) of two token ranges (their tokens and the
    line of each): the aligned_runs of their shingles, each as the lines its tokens span, runs that
    continue on the same or next line on both sides merged."""
    if _compiled is not None:
        return _compiled.aligned_blocks(np.ascontiguousarray(s_tokens, dtype=np.uint64),
                                        np.ascontiguousarray(s_lines, dtype=np.int32),
                                        np.ascontiguousarray(r_tokens, dtype=np.uint64),
                                        np.ascontiguousarray(r_lines, dtype=np.int32), k)
    blocks: list[list[int]] = []
    for i, j, n in aligned_runs(shingle_hashes(s_tokens, k), shingle_hashes(r_tokens, k)):
        # A config's leaves are tokenised in key order (scanner.configs): its lines need not increase.
        s_span, r_span = s_lines[i:i + n + k - 1], r_lines[j:j + n + k - 1]
        block = [int(s_span.min()), int(s_span.max()), int(r_span.min()), int(r_span.max())]
        last = blocks[-1] if blocks else None
        if last and block[0] <= last[1] + 1 and block[2] <= last[3] + 1 and block[2] >= last[2]:
            last[1], last[3] = max(last[1], block[1]), max(last[3], block[3])
        else:
            blocks.append(block)
    return [tuple(b) for b in blocks]


def intersections_at(a: np.ndarray, flat: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """int64: |a & flat[start:start + size]| for each (start, size); a and every such slice are
    sorted arrays of distinct values."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if len(a) == 0 or not sizes.any():
        return np.zeros(len(sizes), dtype=np.int64)
    if _compiled is not None:
        return np.frombuffer(_compiled.intersection_sizes(np.ascontiguousarray(a, dtype=np.uint64),
                                                          np.ascontiguousarray(flat, dtype=np.uint64), starts, sizes),
                             dtype=np.int64)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    values = flat[range_index(starts, sizes)]
    at = a.searchsorted(values)
    at[at == len(a)] = 0
    return np.bincount(owner, weights=a[at] == values, minlength=len(sizes)).astype(np.int64)


class RangeSets:
    """The distinct shingles (sorted) of token ranges of one token array, each computed once and
    kept end to end: matching asks for the same reference fragments thousands of times, and one
    flat array answers a batch of them in one call where a dict of small arrays took one each.
    The compiled twin (native) keeps them in C, where scanner.match's compiled verification reads them."""

    _FIRST = 1 << 16

    def __init__(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, k: int) -> None:
        self.native = None
        if _compiled is not None:
            self.native = _compiled.RangeSets(np.ascontiguousarray(tokens, dtype=np.uint64),
                                              np.ascontiguousarray(starts, dtype=np.int64),
                                              np.ascontiguousarray(ends, dtype=np.int64), k)
            return
        self.tokens, self.starts, self.ends, self.k = tokens, starts, ends, k  # range i: tokens[starts[i]:ends[i]]
        self.at = np.full(len(starts), -1, dtype=np.int64)  # where range i's set starts in flat (-1: not yet)
        self.size = np.zeros(len(starts), dtype=np.int64)
        self.flat = np.empty(0, dtype=np.uint64)
        self.used = 0

    def intersections(self, ids: np.ndarray, *queries: np.ndarray) -> tuple[np.ndarray, ...]:
        """(set sizes, then |query & set| for each query) of ranges ids."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.native is not None:
            return tuple(np.frombuffer(out, dtype=np.int64) for out in self.native.intersections(
                ids, *(np.ascontiguousarray(q, dtype=np.uint64) for q in queries)))
        self._compute(ids[self.at[ids] < 0])
        at, size = self.at[ids], self.size[ids]
        return (size, *(intersections_at(q, self.flat, at, size) for q in queries))

    def _compute(self, missing: np.ndarray) -> None:
        if len(missing) == 0:
            return
        missing = sorted_unique(missing)
        values, sizes = range_sets(self.tokens, self.starts[missing], self.ends[missing], self.k)
        if self.used + len(values) > len(self.flat):
            grown = np.empty(max(2 * len(self.flat), self.used + len(values), self._FIRST), dtype=np.uint64)
            grown[:self.used] = self.flat[:self.used]
            self.flat = grown
        self.flat[self.used:self.used + len(values)] = values
        self.at[missing] = self.used + np.cumsum(sizes) - sizes
        self.size[missing] = sizes
        self.used += len(values)


def range_sets(tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct shingles of each token range tokens[starts[i]:ends[i]], sorted, end to end, and
    how many each range has."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    if _compiled is not None:
        values, sizes = _compiled.range_sets(np.ascontiguousarray(tokens, dtype=np.uint64), starts, ends, k)
        return np.frombuffer(values, dtype=np.uint64), np.frombuffer(sizes, dtype=np.int64)
    runs = [sorted_unique(shingle_hashes(tokens[lo:hi], k)) for lo, hi in zip(starts.tolist(), ends.tolist())]
    return (np.concatenate(runs) if runs else np.empty(0, dtype=np.uint64)), \
        np.fromiter(map(len, runs), dtype=np.int64, count=len(runs))


def segment_unique(values: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sorted_unique of each run of values (run i ends at ends[i]), end to end, and the new ends."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    if _compiled is not None:
        out, out_ends = _compiled.segment_unique(values, ends)
        return np.frombuffer(out, dtype=np.uint64), np.frombuffer(out_ends, dtype=np.int64)
    runs = [sorted_unique(values[lo:hi]) for lo, hi in zip([0, *ends[:-1].tolist()], ends.tolist())]
    out_ends = np.cumsum([len(r) for r in runs], dtype=np.int64)
    return (np.concatenate(runs) if runs else np.empty(0, dtype=np.uint64)), out_ends



def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads every input bit over the whole word."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def shingle_hashes(tok: np.ndarray, k: int) -> np.ndarray:
    """Hash of every window of k consecutive tokens: result[i] covers tok[i:i+k].

    Returns an empty array when there are fewer than k tokens.
    """
    n = len(tok) - k + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    if _compiled is not None:
        return np.frombuffer(_compiled.shingle_hashes(np.ascontiguousarray(tok, dtype=np.uint64), k), dtype=np.uint64)
    with np.errstate(over="ignore"):
        acc = np.zeros(n, dtype=np.uint64)
        for j in range(k):
            acc = acc * _MULT + tok[j : j + n]
        return fmix64(acc)

