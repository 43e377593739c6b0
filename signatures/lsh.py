"""Banded LSH over MinHash signatures, as sorted arrays that can be memory-mapped.

The bands are datasketch's: the same (b, r) that `datasketch.MinHashLSH` picks for a threshold
and number of permutations, and a fragment is a candidate when all r values of any band are
equal. The stored form is one sorted key array per band, so loading an index builds nothing
and a batch of queries is a few `searchsorted` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from functools import lru_cache

import numpy as np

from signatures import compiled
from signatures.shingles import fmix64, range_index

_compiled = compiled()  # compiled twins of BandTable.query and agreement (signatures/_native.c), or None

_MULT = np.uint64(0x9E3779B97F4A7C15)


# band_params of the default parameters (Params: threshold 0.4, 128 permutations), so that a
# hook run does not import numpy.polynomial (and numpy.linalg and numpy.ma with it: ~0.1 s) to
# find them again; tests/test_fingerprints.py computes them and checks this table.
KNOWN_BANDS = {(0.4, 128): (32, 4)}


@lru_cache(maxsize=None)
def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives + false negatives, as datasketch does.

    datasketch integrates each candidate's error with scipy's quad, and importing scipy costs
    ~0.7 s of start-up (a third of a hook run). The integrands are polynomials of degree
    b*r <= num_perm, so Gauss-Legendre quadrature with enough nodes is exact; the same search
    order keeps datasketch's choice (tests compare the two over a grid).
    """
    if (threshold, num_perm) in KNOWN_BANDS:
        return KNOWN_BANDS[threshold, num_perm]
    return compute_band_params(threshold, num_perm)


def compute_band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)

    def integral(lo: float, hi: float, f) -> float:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        return float((hi - lo) / 2 * np.dot(weights, f(s)))

    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = integral(0.0, threshold, lambda s: 1 - (1 - s**r) ** b)
            fn = integral(threshold, 1.0, lambda s: (1 - s**r) ** b)
            error = 0.5 * fp + 0.5 * fn
            if error < best:
                best, opt = error, (b, r)
    return opt


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one key per band, equal exactly when the band's values are (w.h.p.)."""
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bands):
            acc = np.full(n, j + 1, dtype=np.uint64)
            for c in range(j * rows, (j + 1) * rows):
                acc = acc * _MULT + sigs[:, c].astype(np.uint64)
            out[:, j] = fmix64(acc)
    return out


@dataclass
class BandTable:
    """keys[j] sorted ascending; ids[j] the fragment ids in the same order."""

    keys: np.ndarray  # (bands, n) uint64
    ids: np.ndarray  # (bands, n) int32

    @classmethod
    def build(cls, keys_by_row: np.ndarray, ids: np.ndarray) -> "BandTable":
        order = np.argsort(keys_by_row.T, axis=1, kind="stable")
        keys = np.take_along_axis(keys_by_row.T, order, axis=1)
        return cls(np.ascontiguousarray(keys), np.ascontiguousarray(np.asarray(ids, dtype=np.int32)[order]))

    @cached_property
    def id_bound(self) -> int:
        """One more than the largest id (the compiled query's table of ids seen, made per query)."""
        return int(self.ids.max()) + 1 if self.ids.size else 0

    def query(self, qkeys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs for a batch of queries: (query row, fragment id), unique, sorted."""
        q_rows, found = [], []
        n = self.keys.shape[1]
        if n == 0 or len(qkeys) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        if _compiled is not None:
            rows, ids = _compiled.band_query(np.ascontiguousarray(self.keys, dtype=np.uint64),
                                             np.ascontiguousarray(self.ids, dtype=np.int32),
                                             np.ascontiguousarray(qkeys, dtype=np.uint64), self.keys.shape[0],
                                             self.id_bound)
            return np.frombuffer(rows, dtype=np.int64), np.frombuffer(ids, dtype=np.int64)
        for j in range(self.keys.shape[0]):
            keys, q = self.keys[j], qkeys[:, j]
            lo = np.searchsorted(keys, q, side="left")
            hit = np.flatnonzero(keys[np.minimum(lo, n - 1)] == q)  # most queries of a scan hit nothing
            if len(hit) == 0:
                continue
            lo = lo[hit]
            c = np.searchsorted(keys, q[hit], side="right") - lo
            q_rows.append(np.repeat(hit, c))
            found.append(self.ids[j][range_index(lo, c)])
        if not q_rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pairs = np.concatenate(q_rows).astype(np.int64) << 32 | np.concatenate(found).astype(np.int64)
        pairs.sort()  # sort + neighbour test: much faster here than np.unique's hash path
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
        return pairs >> 32, pairs & 0xFFFFFFFF


def agreement(ref_bytes: np.ndarray, ref_rows: np.ndarray, query_bytes: np.ndarray, query_rows: np.ndarray,
              chunk: int = 100_000) -> np.ndarray:
    """int16: for each pair, how many bytes of row ref_rows[i] of ref_bytes and row query_rows[i] of
    query_bytes are equal (both uint8 matrices of the same width)."""
    ref_rows = np.ascontiguousarray(ref_rows, dtype=np.int64)
    query_rows = np.ascontiguousarray(query_rows, dtype=np.int64)
    if _compiled is not None and len(ref_rows):
        return np.frombuffer(_compiled.agreement(np.ascontiguousarray(ref_bytes, dtype=np.uint8), ref_rows,
                                                 np.ascontiguousarray(query_bytes, dtype=np.uint8), query_rows,
                                                 ref_bytes.shape[1]), dtype=np.int16)
    out = np.zeros(len(ref_rows), dtype=np.int16)
    for lo in range(0, len(ref_rows), chunk):  # bounded temporaries: chunk x width bytes
        hi = lo + chunk
        out[lo:hi] = np.count_nonzero(ref_bytes[ref_rows[lo:hi]] == query_bytes[query_rows[lo:hi]], axis=1)
    return out


def filter_candidates(rows: np.ndarray, fids: np.ndarray, levels: np.ndarray, q_levels: np.ndarray, sig_row: np.ndarray,
                      ref_bytes: np.ndarray, q_bytes: np.ndarray, need: float) -> tuple[np.ndarray, np.ndarray]:
    """Of the candidate pairs (query row, fragment id), those whose fragment's level is the query's
    (levels[fid] == q_levels[row]) and whose signatures' low bytes (row sig_row[fid] of ref_bytes,
    row `row` of q_bytes) agree in at least `need` places: (rows, fid << 16 | agreement), in order."""
    if _compiled is not None and len(rows):
        kept_rows, packed = _compiled.filter_candidates(
            np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(fids, dtype=np.int64),
            np.ascontiguousarray(levels, dtype=np.int8), np.ascontiguousarray(q_levels, dtype=np.int8),
            np.ascontiguousarray(sig_row, dtype=np.int32), np.ascontiguousarray(ref_bytes, dtype=np.uint8),
            np.ascontiguousarray(q_bytes, dtype=np.uint8), ref_bytes.shape[1], float(need))
        return np.frombuffer(kept_rows, dtype=np.int64), np.frombuffer(packed, dtype=np.int64)
    keep = levels[fids] == q_levels[rows]
    rows, fids = rows[keep], fids[keep]
    agree = agreement(ref_bytes, sig_row[fids], q_bytes, rows)
    keep = agree >= need
    # One array of fragment ids and agreements packed together (agreement <= num_perm < 2**16).
    return rows[keep], fids[keep].astype(np.int64) << 16 | agree[keep]
