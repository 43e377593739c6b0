"""Weights: header read, per-tensor statistics, attention-only fingerprint, row sampling, on a multi-GB file.

    python bench/weights_bench.py [--size-gb 4] [--runs 3] [--keep]

Generates a Llama-shaped bf16 safetensors file (hidden 4096, MLP 11008, as many layers as fit the
size) into bench/cache/weights/ (gitignored), written tensor by tensor in row chunks so memory stays
small. Values are Gaussian with per-row scales (log-normal, sigma 0.3, 1 % of rows x4): real weight
rows are not equally scaled, which is what makes row sampling err. The file is read once to warm the
page cache; then, from page cache:

* header read: median of 200 reads of the safetensors header (our parser);
* full per-tensor statistics (mean, std, xxh3-128 digest) of every tensor: GB/s, median of --runs;
* attention-only fingerprint (scope="attention": Q/K/V/O stats, digests, samples): median seconds,
  GB/s over the attention bytes, and the time that rate gives for Qwen2.5-14B's attention weights
  (48 layers x (2 x 5120^2 + 2 x 1024 x 5120) bf16 = 6.04 GB);
* row_stride=16: GB/s (median of --runs) and the error against the full statistics (max and median
  relative error of std, max |mean error| / std, over tensors with enough rows to be sampled);
* a naive baseline once: each tensor converted whole to float32 and np.mean / np.std;
* heap peak (tracemalloc) of one full-statistics run.

Prints a markdown table and writes bench/results/weights_bench.json. Deletes the file unless --keep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from scanner import weights as W

CACHE = HERE / "cache" / "weights"
RESULTS = HERE / "results" / "weights_bench.json"
HIDDEN, MLP, VOCAB = 4096, 11008, 32000
QWEN14B_ATTN_BYTES = 48 * (2 * 5120 * 5120 + 2 * 1024 * 5120) * 2


def layout(size_bytes: int) -> list[tuple[str, tuple[int, ...]]]:
    per_layer = (4 * HIDDEN * HIDDEN + 3 * HIDDEN * MLP + 2 * HIDDEN) * 2
    fixed = (2 * VOCAB * HIDDEN + HIDDEN) * 2
    layers = max(1, round((size_bytes - fixed) / per_layer))
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (HIDDEN,))]
        out += [(p + f"self_attn.{x}_proj.weight", (HIDDEN, HIDDEN)) for x in "qkvo"]
        out += [(p + "post_attention_layernorm.weight", (HIDDEN,))]
        out += [(p + "mlp.gate_proj.weight", (MLP, HIDDEN)), (p + "mlp.up_proj.weight", (MLP, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, MLP))]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def to_bf16(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def generate(path: Path, size_bytes: int, seed: int = 0) -> None:
    tensors = layout(size_bytes)
    header, offset = {}, 0
    for name, shape in tensors:
        n = math.prod(shape) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt", "generator": "provscan bench/weights_bench.py"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for layer_pos, (name, shape) in enumerate(tensors):
            if len(shape) == 1:
                fh.write(to_bf16(1.0 + 0.05 * rng.standard_normal(shape[0], dtype=np.float32)).tobytes())
                continue
            rows, cols = shape
            base = 0.02 * (1.0 + 0.5 * math.sin(layer_pos))       # per-tensor scale
            row_scale = np.exp(0.3 * rng.standard_normal(rows)).astype(np.float32)
            row_scale[rng.random(rows) < 0.01] *= 4.0
            step = max(1, (8 << 20) // (cols * 4))
            for r0 in range(0, rows, step):
                block = rng.standard_normal((min(step, rows - r0), cols), dtype=np.float32)
                block *= (base * row_scale[r0:r0 + step])[:, None]
                fh.write(to_bf16(block).tobytes())
    os.replace(tmp, path)


def warm(path: Path) -> float:
    start = time.perf_counter()
    buf = bytearray(64 << 20)
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return time.perf_counter() - start


def median_time(fn, runs: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def naive(path: Path, infos) -> float:
    start = time.perf_counter()
    with open(path, "rb") as fh:
        import mmap
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        for info in infos:
            u = np.frombuffer(mm, "<u2", info.numel, info.start)
            x = (u.astype(np.uint32) << 16).view(np.float32)
            float(x.mean()), float(x.std())
            del u, x
        mm.close()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the generated file for the next run")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"llama-shaped-{args.size_gb:g}GB-bf16.safetensors"
    load_start = os.getloadavg()
    gen_s = None
    if not path.exists():
        start = time.perf_counter()
        generate(path, int(args.size_gb * 1e9))
        gen_s = time.perf_counter() - start
    size = path.stat().st_size
    warm_s = warm(path)
    warm(path)

    infos = W.read_header(path)
    hdr_times = []
    for _ in range(200):
        t0 = time.perf_counter()
        W.read_header(path)
        hdr_times.append(time.perf_counter() - t0)
    header_ms = statistics.median(hdr_times) * 1e3

    full_s, full_times, full = median_time(lambda: W.tensor_stats(path, infos), args.runs)
    slots, _ = W.attention_slots(infos)
    attn_bytes = sum(i.nbytes for i in infos if i.name in {s.name for s in slots})
    fp_s, fp_times, fp = median_time(lambda: W.fingerprint(path, scope="attention"), args.runs)
    s16_s, s16_times, s16 = median_time(lambda: W.tensor_stats(path, infos, row_stride=16), args.runs)
    naive_s = naive(path, infos)
    tracemalloc.start()
    W.tensor_stats(path, infos)
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    rel_std, mean_err, sampled, ses, covered = [], [], 0, [], 0
    for name, st in full.items():
        sm = s16[name]
        assert sm.digest == st.digest
        if sm.row_stride == 16:
            sampled += 1
            rel_std.append(abs(sm.std - st.std) / st.std)
            ses.append(sm.std_rel_se)
            covered += rel_std[-1] <= 2 * sm.std_rel_se
            mean_err.append(abs(sm.mean - st.mean) / st.std)

    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "file": {"bytes": size, "tensors": len(infos), "dtype": "BF16", "generate_s": gen_s, "first_read_s": warm_s},
        "header_read_ms_median": header_ms,
        "full_stats": {"s_median": full_s, "runs_s": full_times, "GBps": size / full_s / 1e9},
        "attention_fingerprint": {"s_median": fp_s, "runs_s": fp_times, "attention_bytes": attn_bytes,
                                  "GBps": attn_bytes / fp_s / 1e9, "json_bytes": len(fp.to_json()),
                                  "qwen2.5_14b_attention_s_at_this_rate": QWEN14B_ATTN_BYTES / (attn_bytes / fp_s)},
        "row_stride_16": {"s_median": s16_s, "runs_s": s16_times, "GBps": size / s16_s / 1e9,
                          "tensors_sampled": sampled,
                          "std_rel_error_max": max(rel_std, default=0.0),
                          "std_rel_error_median": statistics.median(rel_std) if rel_std else 0.0,
                          "mean_error_over_std_max": max(mean_err, default=0.0),
                          "std_rel_se_estimate_median": statistics.median(ses) if ses else None,
                          "std_rel_se_estimate_max": max(ses, default=None),
                          "errors_within_2_se": covered},
        "naive_numpy_whole_tensor_GBps": size / naive_s / 1e9,
        "heap_peak_bytes_full_stats": heap_peak,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    gb = size / 1e9
    print(f"\n{gb:.2f} GB bf16 safetensors, {len(infos)} tensors, page cache warm, "
          f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| measurement | result |")
    print("|---|---|")
    print(f"| header read (median of 200) | {header_ms:.2f} ms |")
    print(f"| full per-tensor stats + digest (median of {args.runs}) | {full_s:.2f} s, **{gb / full_s:.2f} GB/s** |")
    print(f"| attention-only fingerprint (median of {args.runs}) | {fp_s:.2f} s for {attn_bytes / 1e9:.2f} GB "
          f"({attn_bytes / fp_s / 1e9:.2f} GB/s); Qwen2.5-14B attention (6.04 GB) at this rate: "
          f"{result['attention_fingerprint']['qwen2.5_14b_attention_s_at_this_rate']:.1f} s |")
    print(f"| row_stride=16 stats + full digest (median of {args.runs}) | {s16_s:.2f} s, **{gb / s16_s:.2f} GB/s**; "
          f"std error max {max(rel_std, default=0) * 100:.2f} % (median {result['row_stride_16']['std_rel_error_median'] * 100:.2f} %), "
          f"mean error max {max(mean_err, default=0) * 100:.2f} % of std, {sampled} tensors sampled; "
          f"stated error (estimated SE of std) median {statistics.median(ses) * 100 if ses else 0:.2f} %, "
          f"max {max(ses, default=0) * 100:.2f} %, {covered}/{sampled} errors within 2 SE |")
    print(f"| naive numpy (whole tensor to float32, np.mean/np.std), once | {gb / naive_s:.2f} GB/s |")
    print(f"| heap peak, full stats (tracemalloc) | {heap_peak / 2**20:.1f} MiB |")
    print(f"| fingerprint JSON (attention-only, {len(slots)} slots) | {len(fp.to_json()) / 1e3:.0f} kB |")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    if not args.keep:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
