"""Find near-duplicates of reference fragments: LSH candidates, then exact verification.

Nothing an LSH estimate says is reported as is: every candidate is verified on the exact
shingle sets (Jaccard over informative abstract shingles), classified (exact / renamed /
modified) and aligned token by token to give matched line ranges on both sides.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from scanner.attribute import provenance_note
from scanner.fingerprint import Params, UnitPrints, abstract_set, concrete_set, eligible, signature
from scanner.parse import Fragment, ParsedUnit
from signatures.minhash import MinHasher

# Alignment is quadratic in the worst case: beyond this many shingles a side, report whole ranges.
_MAX_ALIGN = 20000
_ESTIMATE_MARGIN = 0.2


@dataclass(frozen=True)
class RefLoc:
    """An indexed reference fragment: reference number, unit number, fragment number."""

    ref: int
    unit: int
    frag: int

    def key(self) -> str:
        return f"{self.ref}:{self.unit}:{self.frag}"

    @staticmethod
    def from_key(key: str | bytes) -> "RefLoc":
        if isinstance(key, bytes):
            key = key.decode()
        ref, unit, frag = key.split(":")
        return RefLoc(int(ref), int(unit), int(frag))


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
class _RefUnit:
    unit: ParsedUnit
    prints: UnitPrints


class ReferenceCorpus:
    """All reference fragments of a scan, with an LSH index over their abstract MinHashes."""

    def __init__(self, params: Params) -> None:
        from datasketch import MinHashLSH

        self.params = params
        self.hasher = MinHasher(params.num_perm, params.seed)
        self.lsh = MinHashLSH(threshold=params.lsh_threshold, num_perm=params.num_perm)
        self.units: dict[tuple[int, int], _RefUnit] = {}
        self.common = np.empty(0, dtype=np.uint64)
        self._sets: dict[RefLoc, ShingleSets] = {}
        self.signatures: dict[str, np.ndarray] = {}  # LSH key -> MinHash values
        self._notes: dict[RefLoc, tuple[int, str] | None] = {}

    def add(self, ref: int, units: list[ParsedUnit], prints: list[UnitPrints]) -> int:
        """Index every eligible fragment of one reference; return how many were indexed."""
        indexed = 0
        k = self.params.k
        with self.lsh.insertion_session() as session:
            for ui, (unit, pr) in enumerate(zip(units, prints)):
                self.units[(ref, ui)] = _RefUnit(unit, pr)
                for fi, frag in enumerate(unit.fragments):
                    if not eligible(frag, self.params):
                        continue
                    shingles = abstract_set(pr, frag, k)
                    if len(shingles) == 0:
                        continue
                    sig = signature(self.hasher, shingles)
                    key = RefLoc(ref, ui, fi).key()
                    self.signatures[key] = sig
                    session.insert(key, self.hasher.to_datasketch(sig))
                    indexed += 1
        return indexed

    def compute_common(self) -> None:
        """Boilerplate shingles: present in many distinct reference functions.

        Renamed copies of one function (transformers' RMSNorm in 100+ folders) are counted
        once, so widely copied code does not turn into "boilerplate" and vanish.
        """
        p = self.params
        seen: set[bytes] = set()
        per_fragment: list[np.ndarray] = []
        for ru in self.units.values():
            for frag in ru.unit.fragments:
                if frag.kind not in ("function", "method"):
                    continue
                seq = ru.prints.abs_tok[frag.tok_start : frag.tok_end].tobytes()
                if seq in seen:
                    continue
                seen.add(seq)
                per_fragment.append(abstract_set(ru.prints, frag, p.k))
        if not per_fragment:
            return
        limit = max(p.common_min, int(p.common_ratio * len(per_fragment)))
        values, counts = np.unique(np.concatenate(per_fragment), return_counts=True)
        self.common = values[counts >= limit]
        self._sets.clear()

    def fragment(self, loc: RefLoc) -> tuple[ParsedUnit, UnitPrints, Fragment]:
        ru = self.units[loc.ref, loc.unit]
        return ru.unit, ru.prints, ru.unit.fragments[loc.frag]

    def sets(self, loc: RefLoc) -> "ShingleSets":
        """Shingle sets of a reference fragment, cached."""
        cached = self._sets.get(loc)
        if cached is None:
            _, pr, frag = self.fragment(loc)
            cached = self.shingle_sets(pr, frag)
            if len(self._sets) > 200_000:
                self._sets.clear()
            self._sets[loc] = cached
        return cached

    def shingle_sets(self, prints: UnitPrints, frag: Fragment) -> "ShingleSets":
        abstract = abstract_set(prints, frag, self.params.k)
        return ShingleSets(abstract, self.informative(abstract), concrete_set(prints, frag, self.params.k))

    def copied_note(self, loc: RefLoc) -> tuple[int, str] | None:
        """The reference fragment's own "Copied from ..." comment, if any (cached)."""
        if loc not in self._notes:
            unit, _, frag = self.fragment(loc)
            self._notes[loc] = provenance_note(unit, frag)
        return self._notes[loc]

    def informative(self, shingles: np.ndarray) -> np.ndarray:
        if len(self.common) == 0:
            return shingles
        return shingles[~np.isin(shingles, self.common, assume_unique=True)]


@dataclass
class ShingleSets:
    abstract: np.ndarray  # distinct abstract shingles
    informative: np.ndarray  # abstract shingles that are not reference boilerplate
    concrete: np.ndarray


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
    s_seq = s_pr.abs_sh[s_frag.tok_start : max(s_frag.tok_start, s_frag.tok_end - k + 1)]
    r_seq = r_pr.abs_sh[r_frag.tok_start : max(r_frag.tok_start, r_frag.tok_end - k + 1)]
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


_LEVEL = {"module": 0, "cell": 0, "class": 1, "function": 2, "method": 2}


def comparable(a: Fragment, b: Fragment) -> bool:
    """Only like is compared with like: a module whose bulk is one copied class is explained by
    the class, not by "this module resembles that class"."""
    return _LEVEL[a.kind] == _LEVEL[b.kind]


def _rank(m: tuple[float, float, RefLoc, Fragment], corpus: "ReferenceCorpus") -> tuple:
    """Best first: most similar; among equals, the origin before fragments that say they are copies."""
    sim, csim, loc, frag = m
    return (-round(sim, 6), -round(csim, 6), corpus.copied_note(loc) is not None, loc.ref, loc.unit, frag.start_line)


def find_matches(units: list[ParsedUnit], prints: list[UnitPrints], corpus: ReferenceCorpus,
                 progress=None) -> list[Match]:
    """Verified matches of scanned fragments, nested matches folded into the outermost."""
    p = corpus.params
    results: list[Match] = []
    for ui, (unit, pr) in enumerate(zip(units, prints)):
        matched: dict[int, Match] = {}
        for fi, frag in enumerate(unit.fragments):
            if not eligible(frag, p):
                continue
            s_abs = abstract_set(pr, frag, p.k)
            if len(s_abs) == 0:
                continue
            sig = signature(corpus.hasher, s_abs)
            keys = corpus.lsh.query(corpus.hasher.to_datasketch(sig))
            if not keys:
                continue
            s_sets = ShingleSets(s_abs, corpus.informative(s_abs), concrete_set(pr, frag, p.k))
            verified = []
            for key in keys:
                # Cheap rejection by the MinHash estimate, far enough below the threshold (4.5 standard
                # deviations at 128 permutations) never to drop a pair that exact verification would keep.
                if np.count_nonzero(corpus.signatures[key] == sig) < (p.min_similarity - _ESTIMATE_MARGIN) * p.num_perm:
                    continue
                loc = RefLoc.from_key(key)
                r_frag = corpus.fragment(loc)[2]
                if not comparable(frag, r_frag):
                    continue
                checked = verify(s_sets, corpus.sets(loc), p)
                if checked is not None:
                    verified.append((*checked, loc, r_frag))
            if not verified:
                continue
            verified.sort(key=lambda v: _rank(v, corpus))
            sim, csim, best, r_frag = verified[0]
            _, r_pr, _ = corpus.fragment(best)
            kind = clone_type(pr, frag, r_pr, r_frag)
            if kind != "modified":
                sim = 1.0
            matched[fi] = Match(ui, fi, best, sim, csim, kind, align(pr, frag, r_pr, r_frag, p.k),
                                [v[2] for v in verified[1:]])
        results.extend(_fold(unit, matched, corpus))
        if progress is not None:
            progress(ui + 1)
    return results


def _within(inner: RefLoc, outer: RefLoc, corpus: ReferenceCorpus) -> bool:
    if (inner.ref, inner.unit) != (outer.ref, outer.unit):
        return False
    a, b = corpus.fragment(inner)[2], corpus.fragment(outer)[2]
    return b.start_line <= a.start_line and a.end_line <= b.end_line


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
