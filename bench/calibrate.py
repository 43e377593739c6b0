"""Quick calibration of matching defaults on transformers' own `# Copied from` annotations.

Positives: (annotated copy, its target) pairs from PyTorch modeling files. Negatives: same-role
classes (Attention, MLP, RMSNorm, DecoderLayer, Embeddings...) from two folders with no Copied-from
link between them. For each k, prints the similarity distribution and the precision/recall of
min_similarity thresholds, and LSH recall at the chosen LSH threshold.

usage: python bench/calibrate.py TRANSFORMERS_ROOT   (the unpacked package directory's parent)
"""

from __future__ import annotations

import itertools
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scanner.fingerprint import Params, eligible, fingerprint_unit  # noqa: E402
from scanner.match import ReferenceCorpus, _jaccard, verify  # noqa: E402
from scanner.parse import parse_unit  # noqa: E402
from scanner.walk import SourceUnit  # noqa: E402

KS = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [4, 5, 6, 8]
COPIED = re.compile(r"#\s*Copied from transformers\.models\.([\w.]+?\.modeling_\w+)\.(\w+(?:\.\w+)?)(?:\s+with\s+.*)?$")
ROLES = ("Attention", "MLP", "RMSNorm", "DecoderLayer", "Embeddings", "LayerNorm", "SelfOutput", "Intermediate")


def load(root: Path):
    files = sorted((root / "transformers" / "models").glob("*/modeling_*.py"))
    files = [f for f in files if not f.name.startswith(("modeling_tf_", "modeling_flax_"))]
    units = [parse_unit(SourceUnit(f.relative_to(root).as_posix(), f.read_bytes())) for f in files]
    return units


def pairs(units):
    by_module = {u.path[:-3].replace("/", "."): i for i, u in enumerate(units)}
    by_symbol = {(i, fr.symbol): fi for i, u in enumerate(units) for fi, fr in enumerate(u.fragments) if fr.symbol}
    positives, links = [], set()
    for ui, u in enumerate(units):
        starts = {fr.start_line: fi for fi, fr in enumerate(u.fragments) if fr.symbol}
        for line, text in u.comments:
            m = COPIED.search(text.strip())
            if not m or line + 1 not in starts:
                continue
            module, symbol = "transformers.models." + m.group(1), m.group(2)
            ti = by_module.get(module)
            if ti is None or (ti, symbol) not in by_symbol:
                continue
            positives.append(((ui, starts[line + 1]), (ti, by_symbol[(ti, symbol)])))
            links.add((u.path.split("/")[2], units[ti].path.split("/")[2]))
    # Copy groups: connected components over (file, top-level symbol) of the Copied-from graph.
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def top(ref):
        ui, fi = ref
        return (ui, units[ui].fragments[fi].symbol.split(".")[0])

    for a, b in positives:
        parent[find(top(a))] = find(top(b))
    role_frags = defaultdict(list)
    for ui, u in enumerate(units):
        for fi, fr in enumerate(u.fragments):
            if fr.kind == "class" and fr.symbol and fr.symbol.endswith(ROLES):
                role = next(r for r in ROLES if fr.symbol.endswith(r))
                role_frags[role].append((ui, fi))
    negatives = []
    rng = random.Random(7)
    for role, frs in role_frags.items():
        cand = list(itertools.combinations(frs, 2))
        rng.shuffle(cand)
        taken = 0
        for a, b in cand:
            if taken >= 400:
                break
            fa, fb = units[a[0]].path.split("/")[2], units[b[0]].path.split("/")[2]
            if fa != fb and find(top(a)) != find(top(b)):
                negatives.append((a, b))
                taken += 1
    return positives, negatives


def _corpus(units, params: Params):
    """The modeling files as one in-memory reference, through the same code as `index add`."""
    from scanner.acquire import Acquired
    from scanner.fingerprint import _reference_extras
    from scanner.pipeline import Tree
    from scanner.reference import Reference, build_stored

    prints = []
    for unit in units:
        pr = fingerprint_unit(unit, params)
        _reference_extras(unit, pr, params)
        prints.append(pr)
    acquired = Acquired(root=Path("."), source="transformers", kind="local", commit=None, version=None, url=None,
                        name="transformers", notes=[])
    tree = Tree("transformers", acquired, units, prints, len(units), [], [], {}, [], [], set())
    corpus = ReferenceCorpus(params, [Reference(build_stored(tree, params))])
    first_fid = np.cumsum([0] + [len(u.fragments) for u in units])
    return corpus, prints, (lambda x: int(first_fid[x[0]] + x[1]))


def main() -> None:
    root = Path(sys.argv[1])
    t0 = time.process_time()
    units = load(root)
    print(f"parsed {len(units)} PyTorch modeling files in {time.process_time() - t0:.1f}s CPU")
    positives, negatives = pairs(units)
    print(f"{len(positives)} Copied-from pairs, {len(negatives)} same-role negative pairs")
    for k in KS:
        params = replace(Params(), k=k)
        t0 = time.process_time()
        corpus, prints, fid_of = _corpus(units, params)
        t_index = time.process_time() - t0
        ref = corpus.refs[0]

        def sets(x):
            frag = units[x[0]].fragments[x[1]]
            return corpus.shingle_sets(prints[x[0]], frag)

        def big(x):
            return eligible(units[x[0]].fragments[x[1]], params)

        pos = [(a, b) for a, b in positives if big(a) and big(b)]
        neg = [(a, b) for a, b in negatives if big(a) and big(b)]
        small = len(positives) - len(pos)
        ps = np.array([_jaccard(sets(a).abstract, sets(b).abstract)[0] for a, b in pos])
        ns = np.array([_jaccard(sets(a).abstract, sets(b).abstract)[0] for a, b in neg])
        # LSH recall: the target's group is among the candidates of the copy.
        qsigs = np.vstack([prints[a[0]].sigs[list(prints[a[0]].eligible).index(a[1])] for a, _ in pos])
        qlevels = ref.levels[[fid_of(a) for a, _ in pos]]
        found = corpus.candidates(qsigs, qlevels)
        hits = sum(int(ref.groups[fid_of(b)]) in {int(f) >> 16 for _, packed in found.get(i, []) for f in packed}
                   for i, (_, b) in enumerate(pos))
        print(f"\nk={k}: index {t_index:.1f}s CPU, {len(corpus.common)} common shingles; "
              f"{len(pos)} positives (+{small} below min size), {len(neg)} negatives; "
              f"LSH@{params.lsh_threshold} recall {hits / max(1, len(pos)):.3f}")
        print("  positives sim quantiles 1/5/10/50%:", np.round(np.quantile(ps, [0.01, 0.05, 0.1, 0.5]), 3))
        print("  negatives sim quantiles 50/90/99/max:", np.round(np.quantile(ns, [0.5, 0.9, 0.99, 1.0]), 3))
        for t in (0.4, 0.5, 0.6, 0.7):
            tp, fp = int((ps >= t).sum()), int((ns >= t).sum())
            print(f"  min_similarity {t}: recall {tp / len(ps):.3f}  false positives {fp}/{len(ns)}")
        for ms, mc in [(0, 0), (12, 0.5), (12, 0.3), (16, 0.5), (8, 0.5), (24, 0.5)]:
            pv = replace(params, min_shared=ms, boilerplate_min_concrete=mc)
            tp = sum(verify(sets(a), sets(b), pv) is not None for a, b in pos)
            fp = sum(verify(sets(a), sets(b), pv) is not None for a, b in neg)
            print(f"  verify(min_similarity {pv.min_similarity}, min_shared {ms}, or concrete >= {mc}): "
                  f"recall {tp / len(pos):.3f}  negatives accepted {fp}/{len(neg)}")


if __name__ == "__main__":
    main()
