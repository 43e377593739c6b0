"""Find near-duplicates of reference fragments: LSH candidates, then exact verification.

Nothing an LSH estimate says is reported as is: every candidate is verified on the exact
shingle sets (Jaccard over abstract shingles), classified (exact / renamed / modified) and
aligned token by token to give matched line ranges on both sides.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from scanner.fingerprint import Params, UnitPrints, abstract_sequence, abstract_set, concrete_set
from scanner.parse import Fragment, ParsedUnit
from scanner.reference import Reference
from signatures.lsh import band_keys, band_params

# Alignment is quadratic in the worst case: beyond this many shingles a side, report whole ranges.
_MAX_ALIGN = 20000
# A MinHash estimate this far below the threshold (4.5 standard deviations at 128 permutations)
# never belongs to a pair that exact verification would keep: such candidates are dropped early.
_ESTIMATE_MARGIN = 0.2
_LEVEL = {"module": 0, "cell": 0, "class": 1, "function": 2, "method": 2}


@dataclass(frozen=True)
class RefLoc:
    """A reference fragment: position of the reference in the corpus, fragment id in it."""

    ref: int
    frag: int


@dataclass
class Block:
    """Aligned line ranges: scanned [start, end] <-> reference [ref_start, ref_end]."""

    start: int
    end: int
    ref_start: int
    ref_end: int

    def to_dict(self) -> dict:
        return {"start_line": self.start, "end_line": self.end,
                "reference_start_line": self.ref_start, "reference_end_line": self.ref_end}


@dataclass
class Match:
    unit: int  # index of the scanned unit
    frag: int  # index of the scanned fragment in its unit
    ref: RefLoc  # best reference fragment
    similarity: float
    similarity_concrete: float
    clone_type: str  # exact | renamed | modified
    blocks: list[Block] = field(default_factory=list)
    others: list[RefLoc] = field(default_factory=list)  # other reference locations holding the same code
    members: list["Match"] = field(default_factory=list)  # nested matches folded into this one


@dataclass
class ShingleSets:
    abstract: np.ndarray  # distinct abstract shingles
    informative: np.ndarray  # abstract shingles that are not reference boilerplate
    concrete: np.ndarray


class ReferenceCorpus:
    """The references of one scan: candidate lookup, fragment access, boilerplate shingles."""

    def __init__(self, params: Params, references: list[Reference], redis_store=None) -> None:
        self.params = params
        self.refs = references
        self.redis_store = redis_store  # candidates of references loaded from Redis come from its tables
        self.common = _common_shingles(references, params)
        self._sets: dict[RefLoc, ShingleSets] = {}

    def candidates(self, qsigs: np.ndarray) -> dict[int, list[RefLoc]]:
        """LSH candidates of a batch of query signatures: query row -> reference fragments."""
        out: dict[int, list[RefLoc]] = defaultdict(list)
        if qsigs.shape[0] == 0:
            return out
        b, r = band_params(self.params.lsh_threshold, self.params.num_perm)
        qkeys = band_keys(qsigs, b, r)
        redis_refs = []
        for pos, ref in enumerate(self.refs):
            if self.redis_store is not None and ref.via_redis:
                redis_refs.append(ref.stored)
                continue
            rows, fids = ref.band_table.query(qkeys)
            for row, fid in zip(rows.tolist(), fids.tolist()):
                out[row].append(RefLoc(pos, fid))
        if redis_refs:
            position = {id(ref.stored): pos for pos, ref in enumerate(self.refs)}
            rows, refpos, fids = self.redis_store.candidates(redis_refs, qsigs)
            for row, rp, fid in zip(rows.tolist(), refpos.tolist(), fids.tolist()):
                out[row].append(RefLoc(position[id(redis_refs[rp])], fid))
        return out

    def fragment(self, loc: RefLoc) -> tuple[Reference, str, Fragment]:
        ref = self.refs[loc.ref]
        path, _cell, frag = ref.fragment(loc.frag)
        return ref, path, frag

    def sets(self, loc: RefLoc) -> ShingleSets:
        """Shingle sets of a reference fragment, cached."""
        cached = self._sets.get(loc)
        if cached is None:
            ref, _, frag = self.fragment(loc)
            cached = self.shingle_sets(ref.prints, frag)
            if len(self._sets) > 200_000:
                self._sets.clear()
            self._sets[loc] = cached
        return cached

    def shingle_sets(self, prints: UnitPrints, frag: Fragment) -> ShingleSets:
        k = self.params.k
        abstract = abstract_set(prints, frag.tok_start, frag.tok_end, k)
        return ShingleSets(abstract, self.informative(abstract), concrete_set(prints, frag.tok_start, frag.tok_end, k))

    def copied_note(self, loc: RefLoc) -> tuple[int, str] | None:
        """The reference fragment's own "Copied from ..." comment, if any."""
        return self.refs[loc.ref].copied_note(loc.frag)

    def informative(self, shingles: np.ndarray) -> np.ndarray:
        if len(self.common) == 0:
            return shingles
        return shingles[~np.isin(shingles, self.common, assume_unique=True)]


def _common_shingles(references: list[Reference], params: Params) -> np.ndarray:
    """Boilerplate: shingles in more than common_ratio of the distinct reference functions."""
    distinct = sum(ref.meta.get("df_distinct", 0) for ref in references)
    if not distinct:
        return np.empty(0, dtype=np.uint64)
    limit = max(params.common_min, int(params.common_ratio * distinct))
    arrays = [(ref.stored.arrays["df_values"], ref.stored.arrays["df_counts"]) for ref in references]
    if len(arrays) == 1:
        values, counts = arrays[0]
        return np.asarray(values[np.asarray(counts) >= limit])
    values, inverse = np.unique(np.concatenate([v for v, _ in arrays]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([c for _, c in arrays]).astype(np.float64))
    return values[counts >= limit]


def verify(s: ShingleSets, r: ShingleSets, params: Params) -> tuple[float, float] | None:
    """Exact check of an LSH candidate: (similarity, concrete similarity), or None if rejected.

    similarity is the Jaccard index of the abstract shingle sets. A pair whose shared shingles
    are mostly boilerplate (few shared informative shingles) must also keep most of its names
    (concrete similarity) to count: same-shaped code written independently differs in names.
    """
    sim, _ = _jaccard(s.abstract, r.abstract)
    if sim < params.min_similarity:
        return None
    csim, _ = _jaccard(s.concrete, r.concrete)
    _, shared = _jaccard(s.informative, r.informative)
    if shared < params.min_shared and csim < params.boilerplate_min_concrete:
        return None
    return sim, csim


def _jaccard(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter), inter


def clone_type(s_pr: UnitPrints, s_frag: Fragment, r_pr: UnitPrints, r_frag: Fragment) -> str:
    s = slice(s_frag.tok_start, s_frag.tok_end)
    r = slice(r_frag.tok_start, r_frag.tok_end)
    if s_frag.tokens == r_frag.tokens:
        if np.array_equal(s_pr.con_tok[s], r_pr.con_tok[r]):
            return "exact"
        if np.array_equal(s_pr.abs_tok[s], r_pr.abs_tok[r]):
            return "renamed"
    return "modified"


def align(s_pr: UnitPrints, s_frag: Fragment, r_pr: UnitPrints, r_frag: Fragment, k: int) -> list[Block]:
    """Aligned line ranges of the two fragments, from matching runs of abstract shingles."""
    s_seq = abstract_sequence(s_pr, s_frag.tok_start, s_frag.tok_end, k)
    r_seq = abstract_sequence(r_pr, r_frag.tok_start, r_frag.tok_end, k)
    if len(s_seq) > _MAX_ALIGN or len(r_seq) > _MAX_ALIGN:
        return [Block(s_frag.start_line, s_frag.end_line, r_frag.start_line, r_frag.end_line)]
    matcher = difflib.SequenceMatcher(None, s_seq.tolist(), r_seq.tolist(), autojunk=False)
    blocks: list[Block] = []
    for i, j, n in matcher.get_matching_blocks():
        if n < 2:  # a single shared shingle is noise, not an aligned region
            continue
        si, sj = s_frag.tok_start + i, s_frag.tok_start + i + n + k - 2
        ri, rj = r_frag.tok_start + j, r_frag.tok_start + j + n + k - 2
        block = Block(int(s_pr.lines[si]), int(s_pr.lines[sj]), int(r_pr.lines[ri]), int(r_pr.lines[rj]))
        last = blocks[-1] if blocks else None
        # Merge runs that continue on the same or next line on both sides.
        if last and block.start <= last.end + 1 and block.ref_start <= last.ref_end + 1 and block.ref_start >= last.ref_start:
            last.end = max(last.end, block.end)
            last.ref_end = max(last.ref_end, block.ref_end)
        else:
            blocks.append(block)
    return blocks


def comparable(a: Fragment, b: Fragment) -> bool:
    """Only like is compared with like: a module whose bulk is one copied class is explained by
    the class, not by "this module resembles that class"."""
    return _LEVEL[a.kind] == _LEVEL[b.kind]


def _rank(m: tuple[float, float, RefLoc, str, Fragment], corpus: ReferenceCorpus) -> tuple:
    """Best first: most similar; among equals, the origin before fragments that say they are copies."""
    sim, csim, loc, path, frag = m
    return (-round(sim, 6), -round(csim, 6), corpus.copied_note(loc) is not None, loc.ref, path, frag.start_line)


def find_matches(units: list[ParsedUnit], prints: list[UnitPrints], corpus: ReferenceCorpus,
                 progress=None) -> list[Match]:
    """Verified matches of scanned fragments, nested matches folded into the outermost."""
    p = corpus.params
    # One batched LSH lookup for every eligible fragment of the scan.
    owners = [(ui, int(fi)) for ui, pr in enumerate(prints) for fi in pr.eligible]
    sigs = [pr.sigs for pr in prints if len(pr.eligible)]
    qsigs = np.vstack(sigs) if sigs else np.empty((0, p.num_perm), dtype=np.uint32)
    candidates = corpus.candidates(qsigs)
    per_unit: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for row in sorted(candidates):
        ui, fi = owners[row]
        per_unit[ui].append((fi, row))
    results: list[Match] = []
    for done, ui in enumerate(sorted(per_unit)):
        unit, pr = units[ui], prints[ui]
        matched: dict[int, Match] = {}
        for fi, row in per_unit[ui]:
            frag = unit.fragments[fi]
            sig = qsigs[row]
            s_sets = None
            verified = []
            for loc in candidates[row]:
                ref = corpus.refs[loc.ref]
                if np.count_nonzero(ref.signature(loc.frag) == sig) < (p.min_similarity - _ESTIMATE_MARGIN) * p.num_perm:
                    continue
                _, path, r_frag = corpus.fragment(loc)
                if not comparable(frag, r_frag):
                    continue
                if s_sets is None:
                    s_sets = corpus.shingle_sets(pr, frag)
                checked = verify(s_sets, corpus.sets(loc), p)
                if checked is not None:
                    verified.append((*checked, loc, path, r_frag))
            if not verified:
                continue
            verified.sort(key=lambda v: _rank(v, corpus))
            sim, csim, best, _, r_frag = verified[0]
            r_pr = corpus.refs[best.ref].prints
            kind = clone_type(pr, frag, r_pr, r_frag)
            if kind != "modified":
                sim = 1.0
            matched[fi] = Match(ui, fi, best, sim, csim, kind, align(pr, frag, r_pr, r_frag, p.k),
                                [v[2] for v in verified[1:]])
        results.extend(_fold(unit, matched, corpus))
        if progress is not None:
            progress(done + 1, len(per_unit))
    return results


def _within(inner: RefLoc, outer: RefLoc, corpus: ReferenceCorpus) -> bool:
    if inner.ref != outer.ref:
        return False
    ref = corpus.refs[inner.ref]
    a, b = ref.frags[inner.frag], ref.frags[outer.frag]
    # Same unit, and inner's token range inside outer's.
    return a[0] == b[0] and b[4] <= a[4] and a[5] <= b[5]


def _fold(unit: ParsedUnit, matched: dict[int, Match], corpus: ReferenceCorpus) -> list[Match]:
    """Report the finest fragment that explains a match, one finding per copied unit.

    A match folds into its nearest matched ancestor when that ancestor's reference fragment holds
    one of the places this fragment matched (a copied class is one finding, its methods members).
    A module that explains a single member only is dropped for that member: "this file resembles
    that file" says less than "this class is that class".
    """
    tops: list[Match] = []
    placed: dict[int, RefLoc] = {}  # member -> where it sits inside its host's reference fragment
    for fi in sorted(matched):  # parents come before their children
        m = matched[fi]
        host = None
        parent = unit.fragments[fi].parent
        while parent is not None and host is None:
            if parent in matched:
                anc = matched[parent]
                inside = [loc for loc in [m.ref, *m.others] if _within(loc, anc.ref, corpus)]
                if inside:
                    host = (anc, inside[0])
            parent = unit.fragments[parent].parent
        if host is None:
            tops.append(m)
            continue
        anc, loc = host
        anc.members.append(m)
        placed[id(m)] = loc
    out: list[Match] = []
    for m in tops:
        while unit.fragments[m.frag].kind in ("module", "cell") and len(m.members) == 1:
            m = m.members[0]
        for member in descendants(m):
            loc = placed[id(member)]
            if loc != member.ref:  # the same code is in many places: name the one inside the host's source
                member.others = [member.ref, *[o for o in member.others if o != loc]]
                member.ref = loc
        out.append(m)
    return out


def descendants(m: Match) -> list[Match]:
    """All matches folded into m, depth first."""
    out = []
    for member in m.members:
        out.append(member)
        out.extend(descendants(member))
    return out
