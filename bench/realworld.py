"""Real-world scan: a package against a reference package, timed end to end.

    python bench/realworld.py [--source pypi:vllm==0.9.1] [--reference pypi:transformers==4.46.3] [--runs 3]

The first run downloads both packages into bench/cache/provscan (never committed); later runs
reuse them, so the table reports the first run separately and the median of the cached runs.
Writes bench/results/realworld.json and the last JSON report next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_once(source: str, reference: str, out: Path, env: dict) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scanner", "scan", source, "--reference", reference,
                           "--format", "json", "--output", str(out), "--fail-on", "never"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"scan failed ({proc.returncode}): {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss  # KiB; max over all children so far


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="pypi:vllm==0.9.1")
    ap.add_argument("--reference", default="pypi:transformers==4.46.3")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ, PROVSCAN_CACHE_DIR=str(HERE / "cache" / "provscan"))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    slug = f"{args.source}_vs_{args.reference}".replace("pypi:", "").replace("==", "-").replace("/", "_")
    out = results / f"{slug}.json"
    runs = [run_once(args.source, args.reference, out, env) for _ in range(args.runs)]
    report = json.loads(out.read_text())
    copies = [f for f in report["findings"] if f["kind"].endswith("-copy")]
    summary = {
        "source": args.source, "reference": args.reference,
        "scanned": report["scanned"], "references": report["references"],
        "first_run_wall_s": round(runs[0][0], 1),
        "cached_wall_s_median": round(statistics.median(r[0] for r in runs[1:]), 1) if len(runs) > 1 else None,
        "cached_cpu_s_median": round(statistics.median(r[1] for r in runs[1:]), 1) if len(runs) > 1 else None,
        "peak_rss_mib": round(max(r[2] for r in runs) / 1024),
        "findings_by_kind": report["summary"]["findings_by_kind"],
        "copies_by_status": dict(Counter(f["attribution"]["status"] for f in copies)),
        "copies_by_clone_type": dict(Counter(f["clone_type"] for f in copies)),
        "runs": len(runs),
    }
    (results / "realworld.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"| scan | files | fragments | ref files | ref fragments | first run | cached (median of {len(runs) - 1}) | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    ref = report["references"][0]
    print(f"| {args.source} vs {args.reference} | {report['scanned']['files']} | {report['scanned']['fragments']} | "
          f"{ref['files']} | {ref['fragments']} | {summary['first_run_wall_s']} s | {summary['cached_wall_s_median']} s "
          f"wall, {summary['cached_cpu_s_median']} s CPU | {summary['peak_rss_mib']} MiB |")
    print(f"findings by kind: {summary['findings_by_kind']}; copies by attribution: {summary['copies_by_status']}; "
          f"by clone type: {summary['copies_by_clone_type']}")


if __name__ == "__main__":
    main()
