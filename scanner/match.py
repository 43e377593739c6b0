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
from scanner.fingerprint import Params, UnitPrints, fork_pool
from scanner.parse import Fragment, ParsedUnit
from scanner.reference import KINDS, LEVELS, Reference
from scanner.report import OTHER_LOCATIONS
from signatures import compiled
from signatures.lsh import band_keys, band_params, filter_candidates
from signatures.shingles import RangeSets, aligned_blocks, range_sets, sorted_unique

# Candidate groups verified exactly at a time per scanned fragment, the best estimates first, until
# one verifies. Most code has a handful; in transformers a fragment may have 100+ near-copies, and
# verifying them all made the scan of an older transformers much slower without changing which
# reference code is reported.
VERIFY_GROUPS = 32
# A MinHash estimate this far below the threshold (4.5 standard deviations at 128 permutations)
# never belongs to a pair that exact verification would keep: such candidates are dropped early.
_ESTIMATE_MARGIN = 0.2
# From this many queries a lookup is split over two threads (a scan's batch; not the hook's few).
_SPLIT_LOOKUP = 1_000
_LEVEL = dict(zip(KINDS, LEVELS))
_compiled = compiled()  # _verify_groups' compiled twin (signatures/_native.c), or None


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

    def __reduce__(self):  # see Match.__reduce__
        return Block, (self.start, self.end, self.ref_start, self.ref_end)


@dataclass
class Match:
    unit: int  # index of the scanned unit
    frag: int  # index of the scanned fragment in its unit
    ref: RefLoc  # best reference fragment
    similarity: float
    similarity_concrete: float
    clone_type: str  # exact | renamed | modified
    blocks: list[Block] = field(default_factory=list)
    # Other reference locations holding the same code, best first: the first OTHER_LOCATIONS (all a
    # report lists; a fragment of transformers may have hundreds), and how many there are in all.
    others: list[RefLoc] = field(default_factory=list)
    other_count: int = 0
    members: list["Match"] = field(default_factory=list)  # nested matches folded into this one
    # While matching: every reference location it verified against, best first (positions, fragment ids).
    found: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        # Matches travel back from the verifying workers: a dataclass pickles through copyreg's
        # Python-level __reduce_ex__, 0.07 s of the workers' CPU for a large scan's 2,500 matches.
        return Match, (self.unit, self.frag, self.ref, self.similarity, self.similarity_concrete, self.clone_type,
                       self.blocks, self.others, self.other_count, self.members, self.found)


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
        self._sets: dict[tuple[int, str], RangeSets] = {}
        self._nested: dict[tuple[RefLoc, int], list[RefLoc]] = {}

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
        need = (self.params.min_similarity - _ESTIMATE_MARGIN) * self.params.num_perm
        qbytes = qsigs.astype(np.uint8)
        redis_refs = [ref for ref in self.refs if self.redis_store is not None and ref.via_redis]
        found = self._lookups(qkeys, qlevels, qbytes, need, redis_refs)
        if redis_refs:
            position = {id(ref): pos for pos, ref in enumerate(self.refs)}
            rows, refpos, fids = self.redis_store.candidates([ref.stored for ref in redis_refs], qsigs)
            for i, ref in enumerate(redis_refs):
                mine = refpos == i
                # One reply per band: the same pair may come several times, in any order.
                pairs = sorted_unique(rows[mine] << 32 | fids[mine])
                found.append((position[id(ref)], filter_candidates(pairs >> 32, pairs & 0xFFFFFFFF, ref.levels, qlevels,
                                                                   ref.signature_row, ref.signature_bytes, qbytes, need)))
        for pos, (rows, packed) in found:
            if len(rows) == 0:
                continue
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            bounds = [*starts.tolist(), len(rows)]
            for row, lo, hi in zip(rows[starts].tolist(), bounds, bounds[1:]):
                out[row].append((pos, packed[lo:hi]))
        return out

    def _lookups(self, qkeys: np.ndarray, qlevels: np.ndarray, qbytes: np.ndarray, need: float, skip: list) -> list:
        """(reference position, (rows, packed)) of the embedded references' filtered LSH pairs, in
        the references' order, still sorted by row (BandTable.query sorts its pairs).

        Like is compared with like, and the agreement of the values' low bytes is an upper bound of
        the true agreement (off by (128 - agreement) / 256 on average), at a quarter of the memory
        traffic. Being a little generous here costs verification time, never a finding.
        A large batch (a whole scan's) is split in two halves, looked up on two threads: both
        compiled steps run without the GIL, and nothing else runs between the two pools.
        """
        out = []
        for pos, ref in enumerate(self.refs):
            if ref in skip:
                continue
            args = (ref.levels, ref.signature_row, ref.signature_bytes)  # made here, not on two threads

            def lookup(lo: int, hi: int, table=ref.band_table, args=args):
                rows, fids = table.query(qkeys[lo:hi])
                rows, packed = filter_candidates(rows, fids, args[0], qlevels[lo:hi], *args[1:], qbytes[lo:hi], need)
                return rows + lo, packed

            if len(qkeys) < _SPLIT_LOOKUP:
                out.append((pos, lookup(0, len(qkeys))))
                continue
            from concurrent.futures import ThreadPoolExecutor

            half = len(qkeys) // 2
            with ThreadPoolExecutor(2) as pool:
                a, b = pool.map(lookup, (0, half), (half, len(qkeys)))
            out.append((pos, (np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))))
        return out

    def fragment(self, loc: RefLoc) -> tuple[Reference, str, Fragment]:
        ref = self.refs[loc.ref]
        path, _cell, frag = ref.fragment(loc.frag)
        return ref, path, frag

    def range_sets(self, pos: int, channel: str) -> RangeSets:
        """The distinct abstract or concrete shingles of reference pos's fragments, computed as asked."""
        sets = self._sets.get((pos, channel))
        if sets is None:
            ref = self.refs[pos]
            tokens = ref.prints.abs_tok if channel == "abstract" else ref.prints.con_tok
            sets = self._sets[pos, channel] = RangeSets(tokens, ref.frags[:, 4], ref.frags[:, 5], self.params.k)
        return sets

    def shingle_sets(self, prints: UnitPrints, frag: Fragment) -> ShingleSets:
        return self.unit_shingle_sets(prints, [frag])[0]

    def unit_shingle_sets(self, prints: UnitPrints, frags: list[Fragment]) -> list[ShingleSets]:
        """The shingle sets of fragments of one unit, computed together."""
        k = self.params.k
        starts = np.fromiter((f.tok_start for f in frags), dtype=np.int64, count=len(frags))
        ends = np.fromiter((f.tok_end for f in frags), dtype=np.int64, count=len(frags))
        abstract, a_sizes = range_sets(prints.abs_tok, starts, ends, k)
        concrete, c_sizes = range_sets(prints.con_tok, starts, ends, k)
        keep = self._not_common(abstract)
        informative = abstract[keep]  # each fragment's run, in the same order: bounds from the running count
        a_bounds = np.concatenate([[0], np.cumsum(a_sizes)])
        i_bounds = np.concatenate([[0], np.cumsum(keep)])[a_bounds].tolist()
        a_bounds, c_bounds = a_bounds.tolist(), [0, *np.cumsum(c_sizes).tolist()]
        return [ShingleSets(abstract[a_bounds[j]:a_bounds[j + 1]], informative[i_bounds[j]:i_bounds[j + 1]],
                            concrete[c_bounds[j]:c_bounds[j + 1]]) for j in range(len(frags))]

    def nested_groups(self, loc: RefLoc, level: int) -> list[RefLoc]:
        """Group representatives of the fragments of this level nested in reference fragment loc,
        distinct, in order (the methods of a class matched, asked once per method: memoised; the
        list is shared)."""
        key = (loc, level)
        if key not in self._nested:
            ref = self.refs[loc.ref]
            frags = ref.frags
            # Fragments are stored in document order, parents first: the descendants follow their ancestor.
            end = loc.frag + 1
            while end < len(frags) and frags[end, 0] == frags[loc.frag, 0] and frags[end, 4] < frags[loc.frag, 5]:
                end += 1
            inside = np.arange(loc.frag + 1, end)
            inside = inside[ref.levels[inside] == level]
            self._nested[key] = [RefLoc(loc.ref, int(g)) for g in sorted_unique(ref.groups[inside])]
        return self._nested[key]

    def copied_note(self, loc: RefLoc) -> tuple[int, str] | None:
        """The reference fragment's own "Copied from ..." comment, if any."""
        return self.refs[loc.ref].copied_note(loc.frag)

    def _not_common(self, shingles: np.ndarray) -> np.ndarray:
        common = self.common  # sorted
        if len(common) == 0 or len(shingles) == 0:
            return np.ones(len(shingles), dtype=bool)
        at = common.searchsorted(shingles)
        at[at == len(common)] = 0
        return common[at] != shingles


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
    s, r = slice(s_frag.tok_start, s_frag.tok_end), slice(r_frag.tok_start, r_frag.tok_end)
    return [Block(*b) for b in aligned_blocks(s_pr.abs_tok[s], s_pr.lines[s], r_pr.abs_tok[r], r_pr.lines[r], k)]


def _ranked(v: "Verified", corpus: ReferenceCorpus) -> np.ndarray:
    """Order of the verified copies, best first: most similar; among equals, the origin before
    fragments that say they are copies, then by reference, path and line."""
    if len(v.fid) == 1:  # a third of a large scan's calls
        return np.zeros(1, dtype=np.intp)
    first = int(v.pos[0])
    if _all_equal(v.pos, first):  # copies in one reference: its columns, gathered
        if _compiled is not None:  # the compiled twin (the Python below gives the same order)
            return np.frombuffer(_compiled.rank_copies(v.sim, v.csim, v.fid, *corpus.refs[first].rank_columns),
                                 dtype=np.intp)
        noted, path_rank, start = (column[v.fid] for column in corpus.refs[first].rank_columns)
    else:
        noted, path_rank, start = np.zeros(len(v.fid), dtype=bool), np.zeros(len(v.fid), dtype=np.int64), \
            np.zeros(len(v.fid), dtype=np.int64)
        for ref_pos, sel in _by_reference(v.pos):
            fids = v.fid[sel]
            ref_noted, ref_path_rank, ref_start = corpus.refs[ref_pos].rank_columns
            noted[sel], path_rank[sel], start[sel] = ref_noted[fids], ref_path_rank[fids], ref_start[fids]
    # Rounded as Python rounds: equal to 6 decimals is equally similar. (Copies share a few values.)
    sim, csim = v.sim.tolist(), v.csim.tolist()
    rounded = {x: -round(x, 6) for x in {*sim, *csim}}
    sim = np.fromiter(map(rounded.__getitem__, sim), dtype=np.float64, count=len(sim))
    csim = np.fromiter(map(rounded.__getitem__, csim), dtype=np.float64, count=len(csim))
    return np.lexsort((start, path_rank, v.pos, noted, csim, sim))


def find_matches(units: list[ParsedUnit], prints: list[UnitPrints], corpus: ReferenceCorpus,
                 progress=None, workers: int = 1) -> list[Match]:
    """Verified matches of scanned fragments, nested matches folded into the outermost.

    With workers > 1 and enough candidates, units are verified in forked processes that share
    the loaded references (memory-mapped, copy-on-write); results keep the input order.
    """
    return list(iter_matches(units, prints, corpus, progress, workers))


def iter_matches(units: list[ParsedUnit], prints: list[UnitPrints], corpus: ReferenceCorpus,
                 progress=None, workers: int = 1):
    """find_matches' matches, each as soon as its unit is verified: the caller's work on them
    runs while the workers verify the next units."""
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
            with fork_pool(workers) as pool:
                for done, found in enumerate(pool.imap(_match_unit, order, chunksize=max(1, len(order) // (workers * 8)))):
                    yield from found
                    if progress is not None:
                        progress(done + 1, len(order))
            return
        for done, ui in enumerate(order):
            yield from _match_unit(ui)
            if progress is not None:
                progress(done + 1, len(order))
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
    todo = per_unit[ui]
    sets = corpus.unit_shingle_sets(pr, [unit.fragments[fi] for fi, _ in todo])
    for (fi, row), s_sets in zip(todo, sets):
        frag = unit.fragments[fi]
        verified = _verify_candidates(corpus, s_sets, candidates[row],
                                      lambda: _inside_ancestor(unit, fi, matched, corpus), config)
        if verified is None:
            continue
        order = _ranked(verified, corpus)
        found = verified.pos[order], verified.fid[order]
        best = RefLoc(int(found[0][0]), int(found[1][0]))
        sim, csim = float(verified.sim[order[0]]), float(verified.csim[order[0]])
        _, _, r_frag = corpus.fragment(best)
        r_pr = corpus.refs[best.ref].prints
        kind = clone_type(pr, frag, r_pr, r_frag)
        if kind != "modified":
            sim = 1.0
        matched[fi] = Match(ui, fi, best, sim, csim, kind, align(pr, frag, r_pr, r_frag, p.k), found=found)
    return _fold(unit, matched, corpus)


def _inside_ancestor(unit: ParsedUnit, fi: int, matched: dict[int, Match], corpus: ReferenceCorpus) -> list[RefLoc]:
    """Group representatives of the reference fragments nested in the reference code that the
    nearest matched ancestor of fragment fi matched: where a copied class's methods come from."""
    parent = unit.fragments[fi].parent
    while parent is not None and parent not in matched:
        parent = unit.fragments[parent].parent
    if parent is None:
        return []
    return corpus.nested_groups(matched[parent].ref, _LEVEL[unit.fragments[fi].kind])


class Verified(NamedTuple):
    """Verified copies of one scanned fragment, one per row: similarity, concrete similarity (-1
    where not needed), reference position and fragment id."""

    sim: np.ndarray
    csim: np.ndarray
    pos: np.ndarray
    fid: np.ndarray


def _verify_candidates(corpus: ReferenceCorpus, s_sets: ShingleSets, locs: list[tuple[int, np.ndarray]],
                       inside=lambda: [], config: bool = False) -> Verified | None:
    """verify() for every candidate, done once per group of identical reference fragments (None:
    no candidate verifies).

    transformers holds its RMSNorm 100+ times: fragments with the same abstract token sequence
    have the same abstract shingles, hence the same similarity and boilerplate share, so the
    abstract check runs once per group, for all groups at once. Names (the concrete channel) may
    differ per copy: they are compared per member where the verdict or the choice of the best
    copy depends on them.
    """
    if not locs:
        return None
    if len(locs) == 1:  # one reference (the usual case): nothing to join
        pos, packed = _repeated(locs[0][0], len(locs[0][1])), locs[0][1]
    else:
        pos = np.concatenate([_repeated(p, len(packed)) for p, packed in locs])
        packed = np.concatenate([packed for _, packed in locs])
    fids = packed >> 16
    if len(fids) <= VERIFY_GROUPS:
        return _verify_groups(corpus, s_sets, pos, fids, config)
    # The best estimates first, VERIFY_GROUPS at a time, until a batch verifies: the highest estimates
    # are often shared boilerplate that the exact check rejects, and the copy sits further down.
    # The first batch also holds, so that a copied class's methods stay folded into it, the groups
    # inside the reference code the fragment's nearest matched ancestor matched.
    order = np.argsort(-(packed & 0xFFFF), kind="stable")
    for start in range(0, len(order), VERIFY_GROUPS):
        take = np.sort(order[start:start + VERIFY_GROUPS])
        b_pos, b_fids = pos[take], fids[take]
        nested = inside() if start == 0 else None
        if nested:
            batch = set(zip(b_pos.tolist(), b_fids.tolist()))
            extra = [loc for loc in nested if loc not in batch]  # nested_groups' are distinct
            if extra:
                b_pos = np.concatenate([b_pos, [loc.ref for loc in extra]])
                b_fids = np.concatenate([b_fids, [loc.frag for loc in extra]])
        verified = _verify_groups(corpus, s_sets, b_pos, b_fids, config)
        if verified is not None:
            return verified
    return None


def _verify_groups(corpus: ReferenceCorpus, s_sets: ShingleSets, pos: np.ndarray, reps: np.ndarray,
                   config: bool) -> Verified | None:
    p = corpus.params
    ref_pos = int(pos[0]) if len(pos) else 0
    native = corpus.range_sets(ref_pos, "abstract").native, corpus.range_sets(ref_pos, "concrete").native
    if _compiled is not None and None not in native and _all_equal(pos, ref_pos):
        # The compiled twin, for the usual batch: candidates of one reference.
        ref = corpus.refs[ref_pos]
        out = _compiled.verify_groups(
            *native, ref.member_reps, ref.member_fids, np.ascontiguousarray(reps, dtype=np.int64),
            s_sets.abstract, s_sets.informative, s_sets.concrete, p.min_similarity, p.min_shared,
            p.boilerplate_min_concrete, config)
        if out is None:
            return None
        fid = np.frombuffer(out[2], dtype=np.int64)
        return Verified(np.frombuffer(out[0]), np.frombuffer(out[1]), _repeated(ref_pos, len(fid)), fid)
    sims = np.zeros(len(reps))
    shared = np.zeros(len(reps), dtype=np.int64)
    for ref_pos, sel in _by_reference(pos):
        # |informative & reference's abstract| is |informative & reference's informative|: the
        # scanned informative shingles hold no boilerplate ones.
        sizes, inter, shared[sel] = corpus.range_sets(ref_pos, "abstract").intersections(
            reps[sel], s_sets.abstract, s_sets.informative)
        sims[sel] = _jaccard_sizes(len(s_sets.abstract), sizes, inter)
    groups = np.flatnonzero(sims >= p.min_similarity)
    if len(groups) == 0:
        return None
    g_sim = sims[groups]
    # A config's abstract channel is its schema, shared by a whole model family: its values (the
    # concrete channel) must agree too, as for boilerplate code.
    g_boiler = np.full(len(groups), config) | (shared[groups] < p.min_shared)
    # The members of each group, group after group.
    parts = []
    for ref_pos, sel in _by_reference(pos[groups]):
        fids, counts = corpus.refs[ref_pos].members(reps[groups[sel]])
        parts.append((np.repeat(np.flatnonzero(sel), counts), np.full(len(fids), ref_pos, dtype=np.int64), fids))
    m_group, m_pos, m_fid = (np.concatenate(cols) for cols in zip(*parts))
    if len(parts) > 1:
        back = np.argsort(m_group, kind="stable")
        m_group, m_pos, m_fid = m_group[back], m_pos[back], m_fid[back]
    m_sim, m_boiler = g_sim[m_group], g_boiler[m_group]
    # Names are needed where they decide: a mostly-boilerplate pair must keep most of them (see
    # verify), and they pick the best copy among the most similar.
    best = float(g_sim[~g_boiler].max()) if not g_boiler.all() else 0.0
    named = m_boiler | (m_sim >= best)
    csim = np.full(len(m_fid), -1.0)
    for ref_pos, sel in _by_reference(m_pos):
        sel = sel & named
        sizes, inter = corpus.range_sets(ref_pos, "concrete").intersections(m_fid[sel], s_sets.concrete)
        csim[sel] = _jaccard_sizes(len(s_sets.concrete), sizes, inter)
    kept_boiler = m_boiler & (csim >= p.boilerplate_min_concrete)
    if kept_boiler.any():
        best = max(best, float(m_sim[kept_boiler].max()))
    plain = ~m_boiler
    csim[plain & (m_sim < best)] = -1.0
    rows = np.concatenate([np.flatnonzero(kept_boiler), np.flatnonzero(plain)])
    if len(rows) == 0:
        return None
    return Verified(m_sim[rows], csim[rows], m_pos[rows], m_fid[rows])


def _all_equal(pos: np.ndarray, value: int) -> bool:
    """Every position is value: asked thousands of times per scan, and ndarray.all() goes through a
    Python wrapper (4.3 us against count_nonzero's 2.6 us)."""
    return not np.count_nonzero(pos != value)


def _repeated(value: int, n: int) -> np.ndarray:
    """n copies of value (int64), read-only: a view of one kept per value (np.full costs 5 us, and
    a large scan asks for 6,000 such arrays of reference positions)."""
    kept = _REPEATED.get(value)
    if kept is None or len(kept) < n:
        kept = np.full(max(n, 4096), value, dtype=np.int64)
        kept.flags.writeable = False
        _REPEATED[value] = kept
    return kept[:n]


_REPEATED: dict[int, np.ndarray] = {}


def _by_reference(pos: np.ndarray):
    """(reference position, mask) for each reference in pos (usually one)."""
    first = int(pos[0]) if len(pos) else 0
    if len(pos) and _all_equal(pos, first):
        return [(first, np.ones(len(pos), dtype=bool))]
    return [(int(ref_pos), pos == ref_pos) for ref_pos in sorted_unique(pos).tolist()]


def _jaccard_sizes(n: int, sizes: np.ndarray, inter: np.ndarray) -> np.ndarray:
    """Jaccard indices of a set of n values with sets of these sizes sharing inter with it (0: both empty)."""
    union = n + sizes - inter
    return np.divide(inter, union, out=np.zeros(len(union)), where=union > 0)


def _first_within(found: tuple[np.ndarray, np.ndarray], outer: RefLoc, corpus: ReferenceCorpus) -> int | None:
    """Index of the first of the locations found inside reference fragment outer (same unit, token
    range within outer's), or None."""
    pos, fid = found
    frags = corpus.refs[outer.ref].frags
    o = frags[outer.frag]
    at = np.flatnonzero(pos == outer.ref)
    rows = frags[fid[at]]
    inside = at[(rows[:, 0] == o[0]) & (rows[:, 4] >= o[4]) & (rows[:, 5] <= o[5])]
    return int(inside[0]) if len(inside) else None


def _fold(unit: ParsedUnit, matched: dict[int, Match], corpus: ReferenceCorpus) -> list[Match]:
    """Report the finest fragment that explains a match, one finding per copied unit.

    A match folds into its nearest matched ancestor when that ancestor's reference fragment holds
    one of the places this fragment matched (a copied class is one finding, its methods members).
    A module that explains a single member only is dropped for that member: "this file resembles
    that file" says less than "this class is that class".
    """
    tops: list[Match] = []
    placed: dict[int, int] = {}  # member -> which of its found locations sits inside its host's reference fragment
    for fi in sorted(matched):  # parents come before their children
        m = matched[fi]
        host = None
        parent = unit.fragments[fi].parent
        while parent is not None and host is None:
            if parent in matched:
                anc = matched[parent]
                at = _first_within(m.found, anc.ref, corpus)
                if at is not None:
                    host = (anc, at)
            parent = unit.fragments[parent].parent
        if host is None:
            tops.append(m)
            continue
        anc, at = host
        anc.members.append(m)
        placed[id(m)] = at
    out: list[Match] = []
    for m in tops:
        while unit.fragments[m.frag].kind in ("module", "cell") and len(m.members) == 1:
            m = m.members[0]
        for member in descendants(m):
            at = placed[id(member)]
            if at:  # the same code is in many places: name the one inside the host's source, the best one first among the others
                pos, fid = member.found
                order = np.r_[at, 0, 1:at, at + 1:len(pos)]
                member.found = pos[order], fid[order]
                member.ref = RefLoc(int(pos[at]), int(fid[at]))
        out.append(m)
    for m in matched.values():
        pos, fid = m.found
        m.others = list(map(RefLoc._make, zip(pos[1:OTHER_LOCATIONS + 1].tolist(), fid[1:OTHER_LOCATIONS + 1].tolist())))
        m.other_count, m.found = len(pos) - 1, None
    return out


def descendants(m: Match) -> list[Match]:
    """All matches folded into m, depth first."""
    out = []
    for member in m.members:
        out.append(member)
        out.extend(descendants(member))
    return out
