"""The pre-commit hook's speed: 10 changed files against an index of the whole transformers package.

    python bench/hook_bench.py [--runs 7]

Reuses (or builds) the index of pypi:transformers==5.24.0 in bench/cache/hook-bench, makes a git
repository of 10 vllm 0.9.1 model files (typical) and one of 10 transformers 4.46.3 modeling
files (near-copies everywhere: the worst case), and times `provscan hook FILE...` as pre-commit
runs it: a new process each time, start-up included. Medians of --runs after one warm-up run,
twice: in process (PROVSCAN_HOOK_SERVER=0: every run imports everything) and with the hook's
resident server (scanner/hookserver.py; started by the warm-up run, as the first hook run of a
working session starts it). The server's socket lives in a private folder of bench/cache.
Each twice more: cold, the cache of parse results deleted before every run (a commit's changed
files are new bytes), and warm (the same files again, as after a commit the hook refused).
Writes bench/results/hook_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
sys.path.insert(0, str(HERE.parent))


def forget_parses() -> None:
    from scanner.parsecache import ParseCache

    ParseCache(CACHE / "provscan").remove()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    env = {**os.environ, "PROVSCAN_CACHE_DIR": str(CACHE / "provscan")}
    # As installed: byte-code cached (pip compiles it at install; some sandboxes disable writing it,
    # which would make every run recompile provscan's modules).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(env)
    from scanner.acquire import acquire

    work = CACHE / "hook-bench"
    index = work / "index"
    if not (index / "provscan-index.json").exists():
        subprocess.run([sys.executable, "-m", "scanner", "index", "add", "transformers", "pypi:transformers==5.24.0",
                        "--index", str(index)], check=True, env=env)
    results = {}
    runtime = work / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    for label, spec, pattern in (("typical (vllm 0.9.1 model files)", "pypi:vllm==0.9.1", "vllm/model_executor/models/*.py"),
                                 ("worst case (transformers 4.46.3 modeling files)", "pypi:transformers==4.46.3",
                                  "transformers/models/*/modeling_*.py")):
        root = acquire(spec).root
        picked = sorted(root.glob(pattern))
        random.Random(10).shuffle(picked)
        repo = work / ("repo-" + spec.split(":")[1].split("==")[0])
        shutil.rmtree(repo, ignore_errors=True)
        files = []
        for f in picked[:10]:
            rel = f.relative_to(root)
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, repo / rel)
            files.append(rel.as_posix())
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / ".provscan.toml").write_text(f'index = "{index}"\nfail-on = "never"\n', encoding="utf-8")
        cmd = [sys.executable, "-m", "scanner", "hook", *files]
        outputs = {}
        for mode, server, cold in (("in process", "0", True), ("hook server", "1", True),
                                   ("in process, parses kept", "0", False), ("hook server, parses kept", "1", False)):
            run_env = {**env, "PROVSCAN_HOOK_SERVER": server, "XDG_RUNTIME_DIR": str(runtime)}
            walls = []
            for i in range(args.runs + 1):
                if cold:
                    forget_parses()
                start = time.perf_counter()
                done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=run_env)
                wall = time.perf_counter() - start
                if done.returncode not in (0, 1):
                    sys.exit(done.stderr)
                if i == 0 and server == "1":  # the warm-up run started the server: wait until it answers
                    subprocess.run([sys.executable, "-m", "scanner", "server", "start"], check=True, env=run_env,
                                   capture_output=True)
                if i:  # the first run warms the page cache (and starts the server)
                    walls.append(wall)
                outputs[mode] = done.stdout
            results[f"{label}, {mode}"] = {
                "files": len(files), "kib": round(sum((repo / f).stat().st_size for f in files) / 1024),
                "wall_s": [round(w, 3) for w in walls], "median_s": round(statistics.median(walls), 3),
                "lines_printed": len(done.stdout.splitlines())}
        if len(set(outputs.values())) != 1:
            sys.exit(f"{label}: the outputs of the hook's modes differ")
    subprocess.run([sys.executable, "-m", "scanner", "server", "stop"], env={**env, "XDG_RUNTIME_DIR": str(runtime)},
                   capture_output=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    results["python start-up alone"] = {"median_s": round(time.perf_counter() - start, 3)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "hook_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| hook run, 10 files, start-up included | files KiB | median | lines printed | target |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        if "files" in r:
            print(f"| {label} | {r['kib']} | {r['median_s']} s | {r['lines_printed']} | <= 0.5 s |")
    print(f"python start-up alone: {results['python start-up alone']['median_s']} s")


if __name__ == "__main__":
    main()
