"""Find near-duplicates of reference fragments: LSH candidates, then exact verification.

Nothing an LSH estimate says is reported as is: every candidate is verified on the exact
shingle sets (Jaccard over abstract shingles), classified (exact / renamed / modified) and
aligned token by token to give matched line ranges on both sides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from scanner.configs import is_config
from scanner.fingerprint import Params, UnitPrints, abstract_sequence, abstract_set, concrete_set
from scanner.parse import Fragment, ParsedUnit
from scanner.reference import KINDS, LEVELS, Reference
from signatures.lsh import agreement, band_keys, band_params
from signatures.shingles import aligned_runs, intersection_sizes, sorted_unique

# Candidate groups verified exactly at a time per scanned fragment, the best estimates first, until
# one verifies. Most code has a handful; in transformers a fragment may have 100+ near-copies, and
# verifying them all made the scan of an older transformers much slower without changing which
# reference code is reported.
VERIFY_GROUPS = 32
# A MinHash estimate this far below the threshold (4.5 standard deviations at 128 permutations)
# never belongs to a pair that exact verification would keep: such candidates are dropped early.
_ESTIMATE_MARGIN = 0.2
_LEVEL = dict(zip(KINDS, LEVELS))


class RefLoc(NamedTuple):
    """A reference fragment: position of the reference in the corpus, fragment id in it.
    (A tuple: hashed in C, and matching hashes hundreds of thousands of them.)"""

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
        self._sets: dict[RefLoc, tuple[np.ndarray, np.ndarray]] = {}
        self._concrete: dict[RefLoc, np.ndarray] = {}

    def candidates(self, qsigs: np.ndarray, qlevels: np.ndarray) -> dict[int, list[tuple[int, np.ndarray]]]:
        """Candidates for a batch of query signatures: query row -> [(reference position, packed)], where
        packed holds fragment id << 16 | estimated agreement (signature values whose low bytes agree).

        LSH band collisions, then two vectorised filters: only like is compared with like
        (reference.LEVELS), and a MinHash estimate far below the threshold is dropped. Fragment ids
        are group representatives (see Reference.members).
        """
        out: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        if qsigs.shape[0] == 0:
            return out
        b, r = band_params(self.params.lsh_threshold, self.params.num_perm)
        qkeys = band_keys(qsigs, b, r)
        redis_refs = [ref for ref in self.refs if self.redis_store is not None and ref.via_redis]
        found: list[tuple[int, np.ndarray, np.ndarray]] = []
        for pos, ref in enumerate(self.refs):
            if ref in redis_refs:
                continue
            rows, fids = ref.band_table.query(qkeys)
            found.append((pos, rows, fids))
        if redis_refs:
            position = {id(ref): pos for pos, ref in enumerate(self.refs)}
            rows, refpos, fids = self.redis_store.candidates([ref.stored for ref in redis_refs], qsigs)
            for i, ref in enumerate(redis_refs):
                mine = refpos == i
                # One reply per band: the same pair may come several times, in any order.
                pairs = sorted_unique(rows[mine] << 32 | fids[mine])
                found.append((position[id(ref)], pairs >> 32, pairs & 0xFFFFFFFF))
        need = (self.params.min_similarity - _ESTIMATE_MARGIN) * self.params.num_perm
        qbytes = qsigs.astype(np.uint8)
        for pos, rows, fids in found:
            ref = self.refs[pos]
            keep = ref.levels[fids] == qlevels[rows]
            rows, fids = rows[keep], fids[keep]
            sig_rows = ref.signature_rows(fids)
            # Agreement of the values' low bytes: an upper bound of the true agreement (off by
            # (128 - agreement) / 256 on average), at a quarter of the memory traffic. Being a little
            # generous here costs verification time, never a finding.
            agree = agreement(ref.signature_bytes, sig_rows, qbytes, rows)
            keep = agree >= need
            rows, fids, agree = rows[keep], fids[keep], agree[keep]  # sorted by row (BandTable.query sorts its pairs)
            if len(rows) == 0:
                continue
            # One split of fragment ids and agreements packed together (agreement <= num_perm < 2**16).
            packed = fids.astype(np.int64) << 16 | agree
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            for row, chunk in zip(rows[starts].tolist(), np.split(packed, starts[1:])):
                out[row].append((pos, chunk))
        return out

    def fragment(self, loc: RefLoc) -> tuple[Reference, str, Fragment]:
        ref = self.refs[loc.ref]
        path, _cell, frag = ref.fragment(loc.frag)
        return ref, path, frag

    def abstract_sets(self, loc: RefLoc) -> tuple[np.ndarray, np.ndarray]:
        """(abstract, informative) shingle sets of a reference fragment, cached."""
        cached = self._sets.get(loc)
        if cached is None:
            ref, _, frag = self.fragment(loc)
            abstract = abstract_set(ref.prints, frag.tok_start, frag.tok_end, self.params.k)
            cached = (abstract, self.informative(abstract))
            if len(self._sets) > 200_000:
                self._sets.clear()
            self._sets[loc] = cached
        return cached

    def concrete(self, loc: RefLoc) -> np.ndarray:
        """Concrete shingle set of a reference fragment, cached (members of a group differ here only)."""
        cached = self._concrete.get(loc)
        if cached is None:
            ref, _, frag = self.fragment(loc)
            cached = concrete_set(ref.prints, frag.tok_start, frag.tok_end, self.params.k)
            if len(self._concrete) > 200_000:
                self._concrete.clear()
            self._concrete[loc] = cached
        return cached

    def shingle_sets(self, prints: UnitPrints, frag: Fragment) -> ShingleSets:
        k = self.params.k
        abstract = abstract_set(prints, frag.tok_start, frag.tok_end, k)
        return ShingleSets(abstract, self.informative(abstract), concrete_set(prints, frag.tok_start, frag.tok_end, k))

    def copied_note(self, loc: RefLoc) -> tuple[int, str] | None:
        """The reference fragment's own "Copied from ..." comment, if any."""
        return self.refs[loc.ref].copied_note(loc.frag)

    def informative(self, shingles: np.ndarray) -> np.ndarray:
        common = self.common  # sorted
        if len(common) == 0 or len(shingles) == 0:
            return shingles
        at = common.searchsorted(shingles)
        at[at == len(common)] = 0
        return shingles[common[at] != shingles]


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


def _abstract_match(s: ShingleSets, r_abstract: np.ndarray, r_informative: np.ndarray,
                    params: Params) -> tuple[float, bool] | None:
    """(similarity, mostly boilerplate?) of a pair, or None below the similarity threshold."""
    sim, _ = _jaccard(s.abstract, r_abstract)
    if sim < params.min_similarity:
        return None
    _, shared = _jaccard(s.informative, r_informative)
    return sim, shared < params.min_shared


def verify(s: ShingleSets, r: ShingleSets, params: Params) -> tuple[float, float] | None:
    """Exact check of an LSH candidate: (similarity, concrete similarity), or None if rejected.

    similarity is the Jaccard index of the abstract shingle sets. A pair whose shared shingles
    are mostly boilerplate (few shared informative shingles) must also keep most of its names
    (concrete similarity) to count: same-shaped code written independently differs in names.
    """
    checked = _abstract_match(s, r.abstract, r.informative, params)
    if checked is None:
        return None
    sim, boilerplate = checked
    csim, _ = _jaccard(s.concrete, r.concrete)
    if boilerplate and csim < params.boilerplate_min_concrete:
        return None
    return sim, csim


def _jaccard(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(Jaccard index, intersection size) of two sorted arrays of distinct values."""
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0
    if len(a) > len(b):
        a, b = b, a
    at = b.searchsorted(a)  # binary search of the smaller in the larger: no re-sort of both
    at[at == len(b)] = 0
    inter = int(np.count_nonzero(b[at] == a))
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
    blocks: list[Block] = []
    for i, j, n in aligned_runs(s_seq, r_seq):
        si, sj = s_frag.tok_start + i, s_frag.tok_start + i + n + k - 2
        ri, rj = r_frag.tok_start + j, r_frag.tok_start + j + n + k - 2
        # A config's leaves are tokenised in key order, so its lines need not increase (scanner.configs).
        s_lines, r_lines = s_pr.lines[si:sj + 1], r_pr.lines[ri:rj + 1]
        block = Block(int(s_lines.min()), int(s_lines.max()), int(r_lines.min()), int(r_lines.max()))
        last = blocks[-1] if blocks else None
        # Merge runs that continue on the same or next line on both sides.
        if last and block.start <= last.end + 1 and block.ref_start <= last.ref_end + 1 and block.ref_start >= last.ref_start:
            last.end = max(last.end, block.end)
            last.ref_end = max(last.ref_end, block.ref_end)
        else:
            blocks.append(block)
    return blocks


def _rank(m: tuple[float, float, RefLoc], corpus: ReferenceCorpus) -> tuple:
    """Best first: most similar; among equals, the origin before fragments that say they are copies."""
    sim, csim, loc = m
    return (-round(sim, 6), -round(csim, 6), corpus.copied_note(loc) is not None, loc.ref,
            *corpus.refs[loc.ref].position(loc.frag))


def find_matches(units: list[ParsedUnit], prints: list[UnitPrints], corpus: ReferenceCorpus,
                 progress=None, workers: int = 1) -> list[Match]:
    """Verified matches of scanned fragments, nested matches folded into the outermost.

    With workers > 1 and enough candidates, units are verified in forked processes that share
    the loaded references (memory-mapped, copy-on-write); results keep the input order.
    """
    p = corpus.params
    # One batched LSH lookup for every eligible fragment of the scan.
    owners = [(ui, int(fi)) for ui, pr in enumerate(prints) for fi in pr.eligible]
    sigs = [pr.sigs for pr in prints if len(pr.eligible)]
    qsigs = np.vstack(sigs) if sigs else np.empty((0, p.num_perm), dtype=np.uint32)
    qlevels = np.asarray([_LEVEL[units[ui].fragments[fi].kind] for ui, fi in owners], dtype=np.int8)
    candidates = corpus.candidates(qsigs, qlevels)
    per_unit: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for row in sorted(candidates):
        ui, fi = owners[row]
        per_unit[ui].append((fi, row))
    order = sorted(per_unit)
    load = sum(len(packed) for rows in candidates.values() for _, packed in rows)
    global _JOB
    _JOB = (units, prints, corpus, candidates, per_unit)
    try:
        if workers > 1 and len(order) > 1 and load >= _PARALLEL_MIN_CANDIDATES:
            import multiprocessing

            results: list[Match] = []
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for done, found in enumerate(pool.imap(_match_unit, order, chunksize=max(1, len(order) // (workers * 8)))):
                    results.extend(found)
                    if progress is not None:
                        progress(done + 1, len(order))
            return results
        results = []
        for done, ui in enumerate(order):
            results.extend(_match_unit(ui))
            if progress is not None:
                progress(done + 1, len(order))
        return results
    finally:
        _JOB = None


# The work of one find_matches call, visible to forked workers without pickling it.
_JOB = None
# Below this many candidate fragments, starting processes costs more than it saves.
_PARALLEL_MIN_CANDIDATES = 5_000


def _match_unit(ui: int) -> list[Match]:
    units, prints, corpus, candidates, per_unit = _JOB
    p = corpus.params
    unit, pr = units[ui], prints[ui]
    config = is_config(unit.path)
    matched: dict[int, Match] = {}
    for fi, row in per_unit[ui]:
        frag = unit.fragments[fi]
        verified = _verify_candidates(corpus, corpus.shingle_sets(pr, frag), candidates[row],
                                      lambda: _inside_ancestor(unit, fi, matched, corpus), config)
        if not verified:
            continue
        verified.sort(key=lambda v: _rank(v, corpus))
        sim, csim, best = verified[0]
        _, _, r_frag = corpus.fragment(best)
        r_pr = corpus.refs[best.ref].prints
        kind = clone_type(pr, frag, r_pr, r_frag)
        if kind != "modified":
            sim = 1.0
        matched[fi] = Match(ui, fi, best, sim, csim, kind, align(pr, frag, r_pr, r_frag, p.k),
                            [loc for _, _, loc in verified[1:]])
    return _fold(unit, matched, corpus)


def _inside_ancestor(unit: ParsedUnit, fi: int, matched: dict[int, Match], corpus: ReferenceCorpus) -> list[RefLoc]:
    """Group representatives of the reference fragments nested in the reference code that the
    nearest matched ancestor of fragment fi matched: where a copied class's methods come from."""
    parent = unit.fragments[fi].parent
    while parent is not None and parent not in matched:
        parent = unit.fragments[parent].parent
    if parent is None:
        return []
    loc = matched[parent].ref
    ref = corpus.refs[loc.ref]
    frags = ref.frags
    # Fragments are stored in document order, parents first: the descendants follow their ancestor.
    end = loc.frag + 1
    while end < len(frags) and frags[end, 0] == frags[loc.frag, 0] and frags[end, 4] < frags[loc.frag, 5]:
        end += 1
    inside = np.arange(loc.frag + 1, end)
    inside = inside[ref.levels[inside] == _LEVEL[unit.fragments[fi].kind]]
    return [RefLoc(loc.ref, int(g)) for g in sorted_unique(ref.groups[inside])]


def _verify_candidates(corpus: ReferenceCorpus, s_sets: ShingleSets, locs: list[tuple[int, np.ndarray]],
                       inside=lambda: [], config: bool = False) -> list[tuple[float, float, RefLoc]]:
    """verify() for every candidate, done once per group of identical reference fragments:
    [(similarity, concrete similarity or -1 where not needed, reference fragment)].

    transformers holds its RMSNorm 100+ times: fragments with the same abstract token sequence
    have the same abstract shingles, hence the same similarity and boilerplate share, so the
    abstract check runs once per group, for all groups at once (one membership test of their
    concatenated shingles). Names (the concrete channel) may differ per copy: they are compared
    per member where the verdict or the choice of the best copy depends on them.
    """
    if not locs:
        return []
    positions = [pos for pos, packed in locs for _ in range(len(packed))]
    fids = np.concatenate([packed >> 16 for _, packed in locs]).tolist()
    if len(fids) <= VERIFY_GROUPS:
        return _verify_groups(corpus, s_sets, [RefLoc(pos, fid) for pos, fid in zip(positions, fids)], config)
    # The best estimates first, VERIFY_GROUPS at a time, until a batch verifies: the highest estimates
    # are often shared boilerplate that the exact check rejects, and the copy sits further down.
    # The first batch also holds, so that a copied class's methods stay folded into it, the groups
    # inside the reference code the fragment's nearest matched ancestor matched.
    scores = np.concatenate([packed & 0xFFFF for _, packed in locs])
    order = np.argsort(-scores, kind="stable")
    for start in range(0, len(order), VERIFY_GROUPS):
        batch = [RefLoc(positions[i], fids[i]) for i in np.sort(order[start:start + VERIFY_GROUPS]).tolist()]
        if start == 0:
            batch += [loc for loc in dict.fromkeys(inside()) if loc not in set(batch)]
        verified = _verify_groups(corpus, s_sets, batch, config)
        if verified:
            return verified
    return []


def _verify_groups(corpus: ReferenceCorpus, s_sets: ShingleSets, reps: list[RefLoc],
                   config: bool) -> list[tuple[float, float, RefLoc]]:
    p = corpus.params
    if not reps:
        return []
    sets = [corpus.abstract_sets(loc) for loc in reps]
    sims, _ = _jaccard_many(s_sets.abstract, [a for a, _ in sets])
    _, shared = _jaccard_many(s_sets.informative, [i for _, i in sets])
    groups: list[tuple[float, bool, list[RefLoc]]] = []  # (similarity, boilerplate?, members)
    for i in np.flatnonzero(sims >= p.min_similarity).tolist():
        rep_loc = reps[i]
        members = [RefLoc(rep_loc.ref, fid) for fid in corpus.refs[rep_loc.ref].members(rep_loc.frag).tolist()]
        # A config's abstract channel is its schema, shared by a whole model family: its values
        # (the concrete channel) must agree too, as for boilerplate code.
        groups.append((float(sims[i]), config or bool(shared[i] < p.min_shared), members))
    # Names are needed where they decide: a mostly-boilerplate pair must keep most of them (see
    # verify), and they pick the best copy among the most similar.
    best = max([sim for sim, boilerplate, _ in groups if not boilerplate], default=0.0)
    named = [loc for sim, boilerplate, members in groups if boilerplate or sim >= best for loc in members]
    csims = dict(zip(named, _jaccard_many(s_sets.concrete, [corpus.concrete(loc) for loc in named])[0].tolist()))
    verified: list[tuple[float, float, RefLoc]] = []
    for sim, boilerplate, members in groups:
        if boilerplate:
            verified.extend((sim, csims[loc], loc) for loc in members if csims[loc] >= p.boilerplate_min_concrete)
    best = max([best] + [v[0] for v in verified])
    for sim, boilerplate, members in groups:
        if not boilerplate:
            verified.extend((sim, csims[loc] if sim >= best else -1.0, loc) for loc in members)
    return verified


def _jaccard_many(a: np.ndarray, others: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """_jaccard of a with each of others (sorted arrays of distinct values), as two arrays."""
    inter = intersection_sizes(a, others)
    union = len(a) + np.fromiter(map(len, others), dtype=np.int64, count=len(others)) - inter
    return np.divide(inter, union, out=np.zeros(len(others)), where=union > 0), inter


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
