"""Vectorised MinHash, bit-identical to datasketch's "affine32" scheme.

datasketch computes one permutation pass per update() call (~0.06 M shingles/s here); doing
the same arithmetic on a whole shingle array at once is ~60x faster and gives exactly the
hash values `datasketch.MinHash(num_perm, seed, scheme="affine32").update_batch()` gives for
the same 32-bit inputs, so signatures can go into datasketch's LSH unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from signatures import compiled

_compiled = compiled()  # MinHasher.signature's compiled twin (signatures/_native.c), or None

SCHEME = "affine32"
_MAX32 = np.uint32(0xFFFFFFFF)
# Rows per block: bounds the temporary (rows x num_perm) matrix to a few MB.
_BLOCK = 2048


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def to_hash32(shingles64: np.ndarray) -> np.ndarray:
    """Fold 64-bit shingle hashes to the 32-bit inputs the affine32 scheme takes."""
    return ((shingles64 >> np.uint64(32)) ^ shingles64).astype(np.uint32)


def mt19937_words(seed: int, count: int) -> list[int]:
    """The first `count` 32-bit outputs of MT19937 seeded as numpy's RandomState(seed) seeds it
    (init_genrand, for a seed in [0, 2**32))."""
    if not 0 <= seed < 1 << 32:
        raise ValueError("Seed must be between 0 and 2**32 - 1")
    state = [seed]
    for i in range(1, 624):
        prev = state[-1]
        state.append((1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF)
    out: list[int] = []
    at = 624
    while len(out) < count:
        if at == 624:  # the twist
            for i in range(624):
                y = (state[i] & 0x80000000) | (state[(i + 1) % 624] & 0x7FFFFFFF)
                state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            at = 0
        y = state[at]
        at += 1
        y ^= y >> 11  # tempering
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        out.append(y ^ (y >> 18))
    return out


@dataclass(frozen=True)
class MinHasher:
    """MinHash with datasketch's permutations for (num_perm, seed)."""

    num_perm: int = 128
    seed: int = 1
    _a: np.ndarray = field(init=False, repr=False, compare=False)
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The values of datasketch.MinHash._init_permutations for affine32:
        #   gen = np.random.RandomState(seed)
        #   a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * 2 + 1
        #   b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        # drawn from MT19937 directly: importing numpy.random costs 17 ms in every process that
        # fingerprints (each pool worker, each hook run), the draws 1 ms. With these bounds
        # RandomState's bounded draw never rejects: a is each 32-bit output's low 31 bits, b the output.
        words = np.asarray(mt19937_words(self.seed, 2 * self.num_perm), dtype=np.uint32)
        a = (words[:self.num_perm] & np.uint32(0x7FFFFFFF)) * np.uint32(2) + np.uint32(1)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", words[self.num_perm:].copy())

    @property
    def permutations(self) -> np.ndarray:
        return np.array([self._a, self._b])

    def signature(self, hashes32: np.ndarray) -> np.ndarray:
        """MinHash values (uint32[num_perm]) of a set of 32-bit hashes (duplicates are harmless)."""
        if _compiled is not None:
            out = np.empty(self.num_perm, dtype=np.uint32)
            _compiled.signature(np.ascontiguousarray(hashes32, dtype=np.uint32), self._a, self._b, out)
            return out
        out = np.full(self.num_perm, _MAX32, dtype=np.uint32)
        if len(hashes32) == 0:
            return out
        hv = _fmix32(np.asarray(hashes32, dtype=np.uint32))
        with np.errstate(over="ignore"):
            for i in range(0, len(hv), _BLOCK):
                block = hv[i : i + _BLOCK, None] * self._a[None, :] + self._b[None, :]
                np.minimum(out, block.min(axis=0), out=out)
        return out

    def nested_signatures(self, hashes32: np.ndarray, owner: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """One signature per row of nested sets, (rows, num_perm) uint32.

        owner[i]: the row hash i belongs to directly (-1: none); parent[r] < r: the row whose set
        contains row r's set (-1: none). Row r's signature is that of its own hashes and of all its
        descendants' hashes: each hash is permuted once, and a row's minimum is folded into its parent.
        """
        rows = len(parent)
        out = np.empty((rows, self.num_perm), dtype=np.uint32)
        hashes32 = np.ascontiguousarray(hashes32, dtype=np.uint32)
        owner = np.ascontiguousarray(owner, dtype=np.int32)
        parent = np.ascontiguousarray(parent, dtype=np.int32)
        if _compiled is not None:
            _compiled.nested_signatures(hashes32, owner, parent, self._a, self._b, out)
            return out
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(rows + 1))
        for r in range(rows):
            out[r] = self.signature(hashes32[order[bounds[r]:bounds[r + 1]]])
        for r in range(rows - 1, 0, -1):
            if parent[r] >= 0:
                np.minimum(out[parent[r]], out[r], out=out[parent[r]])
        return out

    def to_datasketch(self, values: np.ndarray):
        """Wrap values as a datasketch LeanMinHash (for datasketch's LSH)."""
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=values, scheme=SCHEME)
