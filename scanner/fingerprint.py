"""Fingerprint parsed units: token hashes, k-shingles per channel, MinHash per fragment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.parse import Fragment, ParsedUnit
from signatures.minhash import MinHasher, to_hash32
from signatures.shingles import fragment_shingles, shingle_hashes, token_hashes


@dataclass(frozen=True)
class Params:
    """Fingerprint and matching parameters. Defaults measured on transformers' Copied-from pairs
    (see docs/benchmarks.md)."""

    k: int = 5  # tokens per shingle
    num_perm: int = 128
    seed: int = 1
    lsh_threshold: float = 0.4  # Jaccard at which LSH returns candidates (below the verify threshold)
    min_similarity: float = 0.6  # verified Jaccard of abstract shingle sets
    min_tokens: int = 40  # smaller fragments are neither indexed nor reported
    min_lines: int = 3
    min_shared: int = 12  # shared non-boilerplate shingles for a pair that renamed most names
    boilerplate_min_concrete: float = 0.5  # ...or, with fewer, this concrete similarity
    common_ratio: float = 0.005  # a shingle in more than this share of distinct reference functions is boilerplate
    common_min: int = 30  # ...and in at least this many


@dataclass
class UnitPrints:
    """Per-token-position arrays for one unit; a fragment is a slice of them."""

    abs_tok: np.ndarray  # uint64 token hashes, abstract channel
    con_tok: np.ndarray  # uint64 token hashes, concrete channel
    abs_sh: np.ndarray  # uint64 shingle hash starting at each position, abstract channel
    con_sh: np.ndarray
    lines: np.ndarray  # int32 line of each token


def fingerprint_unit(unit: ParsedUnit, params: Params, cache: dict[str, int] | None = None) -> UnitPrints:
    abs_tok = token_hashes(unit.abstract, cache)
    con_tok = token_hashes(unit.concrete, cache)
    return UnitPrints(
        abs_tok,
        con_tok,
        shingle_hashes(abs_tok, params.k),
        shingle_hashes(con_tok, params.k),
        np.asarray(unit.lines, dtype=np.int32),
    )


def eligible(fragment: Fragment, params: Params) -> bool:
    """Big enough to be indexed and reported: tiny fragments are boilerplate by construction."""
    return fragment.tokens >= params.min_tokens and fragment.end_line - fragment.start_line + 1 >= params.min_lines


def abstract_set(prints: UnitPrints, fragment: Fragment, k: int) -> np.ndarray:
    """Distinct abstract shingles of a fragment, sorted."""
    return np.unique(fragment_shingles(prints.abs_sh, fragment.tok_start, fragment.tok_end, k))


def concrete_set(prints: UnitPrints, fragment: Fragment, k: int) -> np.ndarray:
    return np.unique(fragment_shingles(prints.con_sh, fragment.tok_start, fragment.tok_end, k))


def signature(hasher: MinHasher, shingles: np.ndarray) -> np.ndarray:
    return hasher.signature(to_hash32(shingles))
