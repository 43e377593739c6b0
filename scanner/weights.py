"""Model weights: safetensors headers, per-tensor statistics, weight-copy and weight-lineage evidence.

Everything here reads safetensors files with our own parser (8-byte little-endian header length,
then a JSON header, then the raw tensor bytes) and numpy on a memory map of the raw bytes: never
the safetensors package, never torch, never pickle. A corrupt or hostile file gives a one-line
``WeightsError``; memory stays bounded whatever the tensor size (tensors are streamed in chunks).

Two kinds of evidence (docs/artifacts.md, "Weights", says what each does and does not prove):

* weight-copy: tensors whose bytes are identical (xxh3-128 of the raw bytes) to a reference's.
* weight-lineage: the per-layer standard deviation of the attention projections (Q, K, V, O), the
  fingerprint HonestAGI used, reported with the correction that makes it honest: the raw
  correlation (high for ANY two models that share a depth trend), the correlation after removing
  each model's own depth trend, a null distribution (circular layer shifts, and unrelated model
  pairs when given), and the element-wise correlation of the weights themselves at fixed,
  shape-keyed positions where shapes align.

Fingerprints (``WeightsFingerprint.to_json``) are small (a few hundred KB for a 7B model), so an
index can store them and a scan never needs the reference's weights.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import mmap
import os
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xxhash

from scanner.errors import ProvscanError
from scanner.walk import NotRegularFile, open_regular
from signatures import exit_cleanly_on_bus_error

__all__ = [
    "COPY_MIN_ELEMENTS",
    "DETRENDED_DERIVED_MIN_R",
    "DETRENDED_INDEPENDENT_MAX_R",
    "DETREND_DEGREE",
    "EDGE_LAYERS",
    "ELEMENTWISE_DERIVED_MIN_R",
    "ELEMENTWISE_INDEPENDENT_MAX_R",
    "FORMAT",
    "MAX_HEADER_BYTES",
    "MIN_LAYERS",
    "NULL_Z_DERIVED_MIN",
    "SAMPLE_SIZE",
    "AttentionSlot",
    "TensorInfo",
    "TensorStats",
    "WeightComparison",
    "WeightsError",
    "WeightsFingerprint",
    "attention_slots",
    "compare",
    "fingerprint",
    "is_lfs_pointer",
    "lfs_pointer_info",
    "read_header",
    "read_metadata",
    "sample_positions",
    "tensor_stats",
]


class WeightsError(ProvscanError):
    """A weights file that cannot be read as safetensors (corrupt, hostile, or not safetensors at all)."""


# --------------------------------------------------------------------------------------------------
# Constants. The thresholds are justified in docs/artifacts.md and by tests/test_weights.py.
# --------------------------------------------------------------------------------------------------

FORMAT = "provscan/weights-fingerprint/v1"
MAX_HEADER_BYTES = 100_000_000      # the safetensors library's own cap
MAX_INDEX_BYTES = 50_000_000        # model.safetensors.index.json
MAX_RANK = 64
LFS_PREFIX = b"version https://git-lfs.github.com/spec/v1"
LFS_MAX_BYTES = 1024                # the LFS spec: pointer files are < 1024 bytes

SAMPLE_SIZE = 1024                  # elements sampled per attention tensor for element-wise correlation
CHUNK_ELEMS = 128 * 1024            # elements converted at a time: the float32 scratch stays in L2
BLOCK_BYTES = 2 * 1024 * 1024       # bytes hashed at a time, then reduced while still in cache
ROW_SAMPLE_MIN_ROWS = 8             # with row_stride s, a tensor is sampled only if it has >= 8*s rows

# Weight-copy: a byte-identical tensor counts only if it is a floating-point tensor of at least this
# many elements that is not constant and not a well-known deterministic buffer (rotary inv_freq,
# position ids, causal masks): those are identical between unrelated models by construction.
COPY_MIN_ELEMENTS = 64
TRIVIAL_TENSOR = re.compile(r"(inv_freq|position_ids|masked_bias|\.attn\.bias$|(^|\.)mask$|_cached$|_float_tensor)")

# Weight-lineage. Statistics on the per-layer std profiles of the attention projections:
#  raw r        Pearson r of the concatenated std profiles (HonestAGI's statistic). NEVER decides:
#               independent models that share a depth trend reach 0.93 (measured for the issue;
#               0.91 for deepseek-llm-7b vs llama2-7b per the Pangu team; the B~A fixture ~0.95).
#  detrended r  log std, first/last EDGE_LAYERS dropped, a degree-DETREND_DEGREE polynomial in
#               relative depth fitted to EACH model's profile per projection and removed,
#               residuals winsorised at 3 robust SD and standardised per projection, then Pearson r.
#               Measured for the issue: independent pairs < ~0.2, derived pairs > ~0.46.
#  null z       (r - mean) / sd of the same statistic against the reference's residuals circularly
#               shifted by 1..L-1 layers (chance alignment of L residuals); and, when unrelated
#               fingerprints are given, of unrelated pairs (shared-architecture quirks as well).
#  element-wise Pearson r of the weights at SAMPLE_SIZE shape-keyed positions per attention tensor,
#               pooled over tensors whose shapes align. Independent: N(0, 1/sqrt(N)), |r| < 0.02
#               for N >= 10,000.
# Fixtures (tests/test_weights.py, 24 layers): derived A~C raw 0.997, detrended 0.878 (z 6.6),
# element-wise 0.995; A~C2 (more training) 0.995 / 0.775 (z 6.0) / 0.860; independent A~B raw
# 0.975 (the false positive), detrended 0.065 (z 0.7), element-wise 0.005. 10,000 simulated
# unrelated 24-layer pairs: detrended r SD 0.117, 0.02 % reach 0.40 with z >= 3; none at 48 layers.
DETREND_DEGREE = 3
EDGE_LAYERS = 1
MIN_LAYERS = 8                      # fewer compared layers: lineage says nothing
WINSOR_SD = 3.0
DETRENDED_DERIVED_MIN_R = 0.40      # below the lowest derived pair measured (0.46), 2x the independent max (0.2)
DETRENDED_INDEPENDENT_MAX_R = 0.25  # above the highest independent pair measured (0.2)
NULL_Z_DERIVED_MIN = 3.0            # and the detrended r must stand 3 SD above its null
ELEMENTWISE_DERIVED_MIN_R = 0.20    # >= 12 SD of the independent null at N = 4,096 samples
ELEMENTWISE_INDEPENDENT_MAX_R = 0.05  # or 4/sqrt(N) when fewer samples make that larger
ELEMENTWISE_MIN_SAMPLES = 256

# Attention projection names -> canonical labels. Fused tensors whose layout is a plain
# concatenation [q | k | v] are split into thirds (GPT-2 Conv1D c_attn along columns, Qwen-1
# c_attn and Baichuan W_pack along rows); fused tensors that interleave heads (GPT-NeoX, BLOOM,
# Falcon, InternLM2, ChatGLM, MPT, Megatron) keep the label "qkv".
_PROJ_LABEL = {
    **dict.fromkeys(["q_proj", "q", "wq", "query", "q_lin", "query_proj"], "q"),
    **dict.fromkeys(["k_proj", "k", "wk", "key", "k_lin", "key_proj"], "k"),
    **dict.fromkeys(["v_proj", "v", "wv", "value", "v_lin", "value_proj"], "v"),
    **dict.fromkeys(["o_proj", "o", "wo", "out_proj", "dense", "c_proj", "out_lin", "proj", "linear_proj"], "o"),
    **dict.fromkeys(["query_key_value", "qkv_proj", "Wqkv", "wqkv", "qkv", "linear_qkv"], "qkv"),
    "q_a_proj": "q_a", "q_b_proj": "q_b", "kv_a_proj_with_mqa": "kv_a", "kv_b_proj": "kv_b",
}
_SPLIT3 = {"c_attn", "W_pack"}
_ATTN_NAME = re.compile(
    r"^(?P<stack>.+?)\.(?P<idx>\d+)\.(?:layer\.\d+\.)?"
    r"(?P<mod>self_attn|attn|attention|self_attention|SelfAttention|attention\.self|attention\.output|attention\.attention)"
    r"\.(?P<proj>[A-Za-z_]+)\.weight$")
_SIDE_STACK = re.compile(r"(visual|vision|vit\b|image|img|audio|speech|whisper|mm_proj|perceiver|resampler)", re.IGNORECASE)
LABEL_ORDER = ("q", "k", "v", "o", "qkv", "q_a", "q_b", "kv_a", "kv_b")


# --------------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _DType:
    bits: int
    raw: str | None      # numpy dtype of the raw storage (None: sub-byte, hashed only)
    kind: str            # how values are decoded for statistics


def _minifloat_lut(ebits: int, mbits: int, bias: int, variant: str) -> np.ndarray:
    """float32 value of each of the 256 bytes of an 8-bit float format (OCP / AMD FNUZ variants)."""
    lut = np.empty(256, np.float32)
    for b in range(256):
        if variant == "e8m0":
            lut[b] = np.nan if b == 255 else 2.0 ** (b - 127)
            continue
        sign = -1.0 if b >> 7 else 1.0
        e = (b >> mbits) & ((1 << ebits) - 1)
        m = b & ((1 << mbits) - 1)
        if variant == "fnuz" and b == 0x80:
            lut[b] = np.nan
            continue
        if variant == "fn" and e == (1 << ebits) - 1 and m == (1 << mbits) - 1:
            lut[b] = np.nan
            continue
        if variant == "ieee" and e == (1 << ebits) - 1:
            lut[b] = sign * np.inf if m == 0 else np.nan
            continue
        if e == 0:
            lut[b] = sign * (m / (1 << mbits)) * 2.0 ** (1 - bias)
        else:
            lut[b] = sign * (1 + m / (1 << mbits)) * 2.0 ** (e - bias)
    return lut


_F8_LUT = {
    "F8_E4M3": _minifloat_lut(4, 3, 7, "fn"),
    "F8_E5M2": _minifloat_lut(5, 2, 15, "ieee"),
    "F8_E4M3FNUZ": _minifloat_lut(4, 3, 8, "fnuz"),
    "F8_E5M2FNUZ": _minifloat_lut(5, 2, 16, "fnuz"),
    "F8_E8M0": _minifloat_lut(8, 0, 127, "e8m0"),
}

DTYPES: dict[str, _DType] = {
    "F64": _DType(64, "<f8", "f64"), "F32": _DType(32, "<f4", "f32"), "F16": _DType(16, "<f2", "f16"),
    "BF16": _DType(16, "<u2", "bf16"),
    "I64": _DType(64, "<i8", "int64"), "I32": _DType(32, "<i4", "int64"), "I16": _DType(16, "<i2", "int32"),
    "I8": _DType(8, "i1", "int32"), "U64": _DType(64, "<u8", "int64"), "U32": _DType(32, "<u4", "int64"),
    "U16": _DType(16, "<u2", "int32"), "U8": _DType(8, "u1", "int32"), "BOOL": _DType(8, "u1", "int32"),
    **{name: _DType(8, "u1", "f8") for name in _F8_LUT},
    "C64": _DType(64, "<c8", "hash"),
    "F4": _DType(4, None, "hash"), "F6_E2M3": _DType(6, None, "hash"), "F6_E3M2": _DType(6, None, "hash"),
}
_FLOAT_KINDS = {"f64", "f32", "f16", "bf16", "f8"}


# --------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------

class TensorInfo(NamedTuple):
    """One tensor of a safetensors file. start/end are ABSOLUTE byte offsets in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _label(path: str | os.PathLike) -> str:
    return Path(path).name or str(path)


def _open_regular(path: str | os.PathLike):
    """(binary stream, size) of a regular file (walk.open_regular: a FIFO or device would block
    or never end, and a symlink is not followed)."""
    try:
        fd = open_regular(path)
    except NotRegularFile:
        raise WeightsError(f"{_label(path)}: not a regular file") from None
    except OSError as exc:
        raise WeightsError(f"{_label(path)}: cannot read: {exc.strerror or exc}") from None
    return os.fdopen(fd, "rb"), os.fstat(fd).st_size


def is_lfs_pointer(path: str | os.PathLike) -> bool:
    """True for a Git LFS pointer file (the weights were not downloaded): small text starting with the LFS spec line."""
    try:
        fd = open_regular(path)
    except OSError:
        return False
    try:
        return os.fstat(fd).st_size < LFS_MAX_BYTES and os.read(fd, len(LFS_PREFIX)) == LFS_PREFIX
    finally:
        os.close(fd)


def lfs_pointer_info(path: str | os.PathLike) -> dict | None:
    """{'oid': 'sha256:…', 'size': N} of an LFS pointer file (values None when absent), else None."""
    if not is_lfs_pointer(path):
        return None
    info: dict = {"oid": None, "size": None}
    with open(path, "rb") as fh:
        text = fh.read(LFS_MAX_BYTES).decode("utf-8", "replace")
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oid" and re.fullmatch(r"sha256:[0-9a-f]{64}", value.strip()):
            info["oid"] = value.strip()
        elif key == "size" and value.strip().isdigit() and len(value.strip()) < 20:
            info["size"] = int(value.strip())
    return info


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise WeightsError(f"duplicate key {key[:80]!r}")
            seen.add(key)
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _entry_problem(entry: object, data_len: int) -> str:
    """Why a tensor entry is invalid (the slow path: only called for an entry that failed)."""
    if not isinstance(entry, dict):
        return "entry is not an object"
    extra = set(entry) - {"dtype", "shape", "data_offsets"}
    if extra:
        return f"unknown field {min(extra)[:40]!r}"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        return f"unknown dtype {str(dtype)[:20]!r}"
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) for d in shape):
        return f"shape must be a list of at most {MAX_RANK} integers"
    if any(d < 0 or d >= 2**63 for d in shape):
        return f"shape {shape[:8]} has a negative or huge dimension"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        return "data_offsets must be two integers"
    start, end = offsets
    if not 0 <= start <= end:
        return f"data_offsets [{start}, {end}] are not 0 <= start <= end"
    if end > data_len:
        return f"data_offsets end {end} is past the end of the data ({data_len} bytes)"
    bits = math.prod(shape) * DTYPES[dtype].bits
    return f"{end - start} bytes but shape {shape[:8]} of {dtype} needs {bits / 8:g}"


def _parse_header(path: str | os.PathLike) -> tuple[list[TensorInfo], dict[str, str], int]:
    """(tensors sorted by offset, __metadata__, file size). Raises WeightsError with a one-line reason."""
    name = _label(path)
    fh, size = _open_regular(path)
    with fh:
        if size < LFS_MAX_BYTES and is_lfs_pointer(path):
            raise WeightsError(f"{name}: weights not downloaded (Git LFS pointer)")
        if size < 8:
            raise WeightsError(f"{name}: not a safetensors file ({size} bytes, shorter than the 8-byte header length)")
        (hlen,) = struct.unpack("<Q", fh.read(8))
        if hlen > MAX_HEADER_BYTES:
            raise WeightsError(f"{name}: header length {hlen} exceeds the {MAX_HEADER_BYTES}-byte limit")
        if hlen > size - 8:
            raise WeightsError(f"{name}: header length {hlen} runs past the end of the file ({size} bytes)")
        if hlen < 2:
            raise WeightsError(f"{name}: header length {hlen} is too short for a JSON object")
        raw = fh.read(hlen)
    if len(raw) != hlen:
        raise WeightsError(f"{name}: file truncated while reading the header")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{name}: header is not valid UTF-8 (byte {exc.start})") from None
    if not text.lstrip().startswith("{"):
        raise WeightsError(f"{name}: header is not a JSON object")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except WeightsError as exc:
        raise WeightsError(f"{name}: header has a {exc}") from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise WeightsError(f"{name}: header is not valid JSON ({reason})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{name}: header is not a JSON object")

    base = 8 + hlen
    data_len = size - base
    metadata: dict[str, str] = {}
    infos: list[TensorInfo] = []
    for key, entry in header.items():
        shown = key[:80]
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise WeightsError(f"{name}: __metadata__ must map strings to strings")
            metadata = entry
            continue
        # Fast path first (a big MoE shard has thousands of entries); the reason is worked out on failure.
        if type(entry) is dict and len(entry) == 3:
            dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
            spec = DTYPES.get(dtype) if type(dtype) is str else None
            if (spec is not None and type(shape) is list and len(shape) <= MAX_RANK and type(offsets) is list
                    and len(offsets) == 2 and type(offsets[0]) is int and type(offsets[1]) is int):
                numel, ok = 1, True
                for d in shape:
                    if type(d) is not int or not 0 <= d < 2**63:
                        ok = False
                        break
                    numel *= d
                start, end = offsets
                if ok and 0 <= start <= end <= data_len and numel * spec.bits == (end - start) * 8:
                    infos.append(TensorInfo(key, dtype, tuple(shape), base + start, base + end))
                    continue
        raise WeightsError(f"{name}: tensor {shown!r}: {_entry_problem(entry, data_len)}")
    infos.sort(key=lambda t: (t.start, t.end))
    position = base
    for info in infos:
        if info.start < position:
            raise WeightsError(f"{name}: tensor {info.name[:80]!r} overlaps the previous tensor's bytes")
        if info.start > position:
            raise WeightsError(f"{name}: gap before tensor {info.name[:80]!r} (bytes {position - base}..{info.start - base} "
                               "belong to no tensor; the safetensors library refuses such files)")
        position = info.end
    if position != size:
        raise WeightsError(f"{name}: {size - position} bytes after the last tensor (the safetensors library refuses such files)")
    return infos, metadata, size


def read_header(path: str | os.PathLike) -> list[TensorInfo]:
    """Tensors of a safetensors file (names, dtypes, shapes, absolute byte ranges) from its header alone."""
    return _parse_header(path)[0]


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header's ``__metadata__`` (string to string; empty when absent)."""
    return _parse_header(path)[1]


# --------------------------------------------------------------------------------------------------
# Streaming statistics
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorStats:
    """mean/std over the finite values (None when not computed: sub-byte or complex dtypes, or no finite value).

    digest is xxh3-128 (hex) of ALL the tensor's bytes, also when the statistics were computed on every
    row_stride-th row only (row_stride > 1; 1 means every element). nonfinite counts NaN/inf values.
    std_rel_se (sampled tensors only): the estimated relative standard error of std, from the spread
    of the sampled rows' mean squares (rows treated as a random sample)."""

    dtype: str
    shape: tuple[int, ...]
    mean: float | None
    std: float | None
    digest: str
    row_stride: int = 1
    nonfinite: int = 0
    std_rel_se: float | None = None


class _Moments:
    """Count, mean and sum of squared deviations, combined chunk by chunk (Chan et al.) in float64."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, n: int, mean: float, m2: float) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def result(self) -> tuple[float | None, float | None]:
        if self.n == 0 or not (math.isfinite(self.mean) and math.isfinite(self.m2)):
            return None, None
        return self.mean, math.sqrt(max(self.m2, 0.0) / self.n)


class _Reducer:
    """Converts raw chunks to float and reduces them. Scratch buffers are reused: memory is O(CHUNK_ELEMS)."""

    def __init__(self, dtype: str, chunk: int = CHUNK_ELEMS, exact: bool = False) -> None:
        self.dtype = dtype
        self.exact = exact            # second pass: finite values only, squares in float64 (no overflow)
        self.kind = DTYPES[dtype].kind
        wide = self.kind in ("f64", "int64")
        self.float = np.float64 if wide else np.float32
        self.scratch = np.zeros(chunk, np.uint32 if self.kind == "bf16" else self.float)
        self.moments = _Moments()
        self.nonfinite = 0
        self.row_energy: list[np.ndarray] | None = None   # per sampled row: mean of x^2 (row sampling only)

    def to_float(self, raw: np.ndarray) -> np.ndarray:
        """raw (any shape, <= chunk elements, maybe strided) as a contiguous 1-D float array; may alias the scratch."""
        k = raw.size
        if self.kind in ("f32", "f64") and raw.flags.aligned and raw.flags.c_contiguous:
            return raw.reshape(-1)
        if self.kind == "bf16" and raw.ndim == 1 and k % 2 == 0 and raw.ctypes.data % 4 == 0:
            # Fast path: read pairs as uint32; the odd elements are the high halves as they stand, the
            # even ones the low halves shifted up. Element order changes, which sums do not mind.
            pairs, half = raw.view(np.uint32), k // 2
            np.bitwise_and(pairs, np.uint32(0xFFFF0000), out=self.scratch[:half])
            np.left_shift(pairs, 16, out=self.scratch[half:k])
            return self.scratch[:k].view(np.float32)
        out = self.scratch[:k].reshape(raw.shape)
        if self.kind == "bf16":
            np.left_shift(raw, 16, out=out, dtype=np.uint32)
            return out.reshape(-1).view(np.float32)
        if self.kind == "f8":
            np.take(_F8_LUT[self.dtype], raw, out=out)
            return out.reshape(-1)
        np.copyto(out, raw, casting="unsafe")
        return out.reshape(-1)

    def add(self, raw: np.ndarray) -> None:
        x = self.to_float(raw)
        n = x.size
        if n == 0:
            return
        if self.row_energy is not None and raw.ndim == 2:
            rows = x.reshape(raw.shape)
            self.row_energy.append(np.einsum("ij,ij->i", rows, rows, dtype=np.float64) / raw.shape[1])
        if self.exact:
            x = x.astype(np.float64)
            mask = np.isfinite(x)
            kept = int(np.count_nonzero(mask))
            self.nonfinite += n - kept
            if kept < n:
                x = x[mask]
                n = kept
                if n == 0:
                    return
        # einsum's unrolled sum beats both np.sum (pairwise) and a BLAS dot with ones; float32 x.x goes to
        # BLAS sdot (fastest here), float64 never does: OpenBLAS threads ddot for n > 10,000, and on a
        # loaded 2-core machine that made a 128K-element ddot 500x slower (20 ms instead of 0.04 ms).
        s = float(np.einsum("i->", x))
        q = float(np.dot(x, x)) if x.dtype == np.float32 else float(np.einsum("i,i->", x, x))
        mean = s / n
        m2 = q - s * mean
        # E[x^2] - mean^2 cancels badly when |mean| >> std (e.g. norm weights near 1): exact two-pass then.
        if mean * mean * n > 100.0 * max(m2, 0.0):
            d = x.astype(np.float64) - mean
            shift = float(d.sum()) / n
            mean += shift
            m2 = float(np.einsum("i,i->", d, d)) - n * shift * shift
        self.moments.add(n, mean, m2)


def _raw_view(mm: mmap.mmap, info: TensorInfo) -> np.ndarray:
    return np.frombuffer(mm, dtype=np.dtype(DTYPES[info.dtype].raw), count=info.numel, offset=info.start)


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        return 1, math.prod(shape)
    return math.prod(shape[:-1]), shape[-1]


def _reduce_pass(reducer: _Reducer, mm: mmap.mmap, info: TensorInfo, row_stride: int,
                 hasher: xxhash.xxh3_128 | None) -> None:
    """One pass over a tensor: hash all bytes (when hasher), reduce every (row_stride-th row of) element."""
    raw = _raw_view(mm, info)
    item = raw.itemsize
    if row_stride == 1:
        per_block = max(1, BLOCK_BYTES // item)
        with memoryview(mm) as mv:
            for b0 in range(0, raw.size, per_block):
                b1 = min(raw.size, b0 + per_block)
                if hasher is not None:
                    hasher.update(mv[info.start + b0 * item: info.start + b1 * item])
                for c0 in range(b0, b1, CHUNK_ELEMS):
                    reducer.add(raw[c0:min(b1, c0 + CHUNK_ELEMS)])
        return
    if hasher is not None:
        _hash_range(mm, info.start, info.end, hasher)
    rows, cols = _rows_cols(info.shape)
    grid = raw.reshape(rows, cols)
    if cols <= CHUNK_ELEMS:
        per = max(1, CHUNK_ELEMS // cols)       # sampled rows per chunk
        for r0 in range(0, rows, per * row_stride):
            block = grid[r0:min(rows, r0 + per * row_stride):row_stride]
            reducer.add(block)
    else:
        for r in range(0, rows, row_stride):
            for c0 in range(0, cols, CHUNK_ELEMS):
                reducer.add(grid[r:r + 1, c0:c0 + CHUNK_ELEMS])
        if reducer.row_energy is not None:      # one entry per column piece: fold them into rows
            pieces = np.concatenate(reducer.row_energy) if reducer.row_energy else np.zeros(0)
            per_row = -(-cols // CHUNK_ELEMS)
            widths = np.array([min(CHUNK_ELEMS, cols - c0) for c0 in range(0, cols, CHUNK_ELEMS)], np.float64)
            reducer.row_energy = [(pieces.reshape(-1, per_row) * widths).sum(axis=1) / cols]


def _hash_range(mm: mmap.mmap, start: int, end: int, hasher) -> None:
    with memoryview(mm) as mv:
        for b0 in range(start, end, 8 * BLOCK_BYTES):
            hasher.update(mv[b0:min(end, b0 + 8 * BLOCK_BYTES)])


def _stats_one(mm: mmap.mmap, info: TensorInfo, row_stride: int) -> TensorStats:
    hasher = xxhash.xxh3_128()
    kind = DTYPES[info.dtype].kind
    if kind == "hash" or info.numel == 0:
        _hash_range(mm, info.start, info.end, hasher)
        return TensorStats(info.dtype, info.shape, None, None, hasher.hexdigest(), 1, 0)
    rows, _ = _rows_cols(info.shape)
    stride = row_stride if row_stride > 1 and rows >= ROW_SAMPLE_MIN_ROWS * row_stride else 1
    reducer = _Reducer(info.dtype)
    if stride > 1:
        reducer.row_energy = []
    with np.errstate(all="ignore"):
        _reduce_pass(reducer, mm, info, stride, hasher)
    mean, std = reducer.moments.result()
    nonfinite = 0
    rel_se = None
    if stride > 1 and std:
        energy = np.concatenate(reducer.row_energy)
        if energy.size > 1 and np.isfinite(energy).all():
            rel_se = float(energy.std(ddof=1) / math.sqrt(energy.size) / (std * std) / 2)
    if mean is None:        # NaN/inf somewhere, or float32 squares overflowed: exact pass over finite values
        reducer = _Reducer(info.dtype, exact=True)
        with np.errstate(all="ignore"):
            _reduce_pass(reducer, mm, info, stride, None)
        mean, std = reducer.moments.result()
        nonfinite = reducer.nonfinite
    return TensorStats(info.dtype, info.shape, mean, std, hasher.hexdigest(), stride, nonfinite, rel_se)


@contextlib.contextmanager
def _mapped(path: str | os.PathLike) -> Iterator[mmap.mmap]:
    fh, _size = _open_regular(path)
    exit_cleanly_on_bus_error()
    with fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{_label(path)}: cannot map: {exc}") from None
    try:
        if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            with contextlib.suppress(OSError):
                mm.madvise(mmap.MADV_SEQUENTIAL)
        yield mm
    finally:
        with contextlib.suppress(BufferError):   # a view still alive (e.g. in a traceback): GC closes it
            mm.close()


def tensor_stats(path: str | os.PathLike, infos: Sequence[TensorInfo] | None = None,
                 names: Iterable[str] | None = None, row_stride: int = 1) -> dict[str, TensorStats]:
    """Per-tensor mean/std/digest, streamed from a memory map (memory bounded whatever the tensor size).

    infos: from read_header(path) (read here when None); names: only these tensors (default all);
    row_stride > 1: statistics over every row_stride-th row (rows = all but the last dimension) of
    tensors with at least 8*row_stride rows; the digest always covers every byte."""
    if not isinstance(row_stride, int) or row_stride < 1:
        raise ValueError("row_stride must be a positive integer")
    if infos is None:
        infos = read_header(path)
    by_name = {info.name: info for info in infos}
    wanted = list(by_name) if names is None else list(names)
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise WeightsError(f"{_label(path)}: no tensor named {missing[0][:80]!r}")
    order = sorted(wanted, key=lambda n: by_name[n].start)        # sequential reads
    out: dict[str, TensorStats] = {}
    with _mapped(path) as mm:
        if len(mm) < max((by_name[n].end for n in order), default=0):
            raise WeightsError(f"{_label(path)}: file is shorter than its header says (changed since it was read?)")
        for n in order:
            out[n] = _stats_one(mm, by_name[n], row_stride)
    return {n: out[n] for n in wanted}


# --------------------------------------------------------------------------------------------------
# Attention slots, samples
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttentionSlot:
    """One attention projection of one layer: tensor `name`, or part `part` of 3 when a fused [q|k|v] tensor is split along `axis`."""

    stack: str
    layer: int
    label: str
    name: str
    axis: int | None = None
    part: int | None = None

    @property
    def key(self) -> str:
        return f"{self.label}.{self.layer}"


def attention_slots(infos: Iterable[TensorInfo]) -> tuple[list[AttentionSlot], dict[str, int]]:
    """Attention projection slots of the main transformer stack, and the layer count of every stack found.

    Recognises HF (model.layers.N.self_attn.q_proj), Llama-original (layers.N.attention.wq), GPT-2
    (h.N.attn.c_attn split in thirds, c_proj), BERT/ViT (attention.self.query, attention.output.dense),
    T5 (block.N.layer.0.SelfAttention.q), OPT/GPT-J (out_proj), Phi (dense), fused qkv schemes
    (NeoX/BLOOM/Falcon/MPT/InternLM2/ChatGLM/Megatron: label "qkv"), DeepSeek MLA (q_a, q_b, kv_a,
    kv_b) and any MoE model using these names. Cross-attention is not attention here. The main
    stack is the one with most layers, vision/audio towers only when nothing else matches."""
    found: dict[str, list[AttentionSlot]] = {}
    for info in infos:
        m = _ATTN_NAME.match(info.name)
        if not m:
            continue
        stack, layer, proj = m["stack"], int(m["idx"]), m["proj"]
        if m["mod"] == "attention.output" and proj != "dense":
            continue
        if m["mod"] == "attention.self" and proj not in ("query", "key", "value"):
            continue
        if proj in _SPLIT3:
            if len(info.shape) != 2:
                continue
            rows, cols = info.shape
            axis = 1 if cols == 3 * rows else 0 if rows % 3 == 0 else 1 if cols % 3 == 0 else None
            if axis is None:
                continue
            for part, label in enumerate("qkv"):
                found.setdefault(stack, []).append(AttentionSlot(stack, layer, label, info.name, axis, part))
            continue
        label = _PROJ_LABEL.get(proj)
        if label is None or len(info.shape) != 2:
            continue
        found.setdefault(stack, []).append(AttentionSlot(stack, layer, label, info.name))
    counts = {stack: len({s.layer for s in slots}) for stack, slots in found.items()}
    if not found:
        return [], counts
    main = max(found, key=lambda s: (not _SIDE_STACK.search(s), counts[s], -len(s), s))
    slots = {}
    for slot in found[main]:
        slots.setdefault(slot.key, slot)          # first tensor wins for duplicate labels
    return sorted(slots.values(), key=lambda s: (s.layer, _label_rank(s.label))), counts


def _label_rank(label: str) -> int:
    return LABEL_ORDER.index(label) if label in LABEL_ORDER else len(LABEL_ORDER)


def _slot_shape(slot: AttentionSlot, shape: tuple[int, ...]) -> tuple[int, int]:
    rows, cols = shape
    if slot.axis == 0:
        return rows // 3, cols
    if slot.axis == 1:
        return rows, cols // 3
    return rows, cols


def sample_positions(shape: Sequence[int], n: int = SAMPLE_SIZE) -> np.ndarray:
    """Sorted flat positions sampled from a tensor of this shape, the same in every model, every numpy version.

    SplitMix64 of a seed from xxh64(shape): two models with the same shapes sample the same positions."""
    numel = math.prod(shape)
    if numel <= n:
        return np.arange(numel, dtype=np.int64)
    seed = xxhash.xxh64_intdigest(("provscan-weights-v1:" + ",".join(str(int(d)) for d in shape)).encode())
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.unique(z % np.uint64(numel)).astype(np.int64)


def _decode(dtype: str, raw: np.ndarray) -> np.ndarray:
    kind = DTYPES[dtype].kind
    if kind == "bf16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if kind == "f8":
        return _F8_LUT[dtype][raw]
    return raw.astype(np.float64)


def _slot_values(mm: mmap.mmap, info: TensorInfo, slot: AttentionSlot) -> tuple[tuple[int, int], np.ndarray]:
    """(part shape, standardized float values at sample_positions(part shape))."""
    shape = _slot_shape(slot, info.shape)
    pos = sample_positions(shape, SAMPLE_SIZE)
    rows, cols = shape
    if slot.axis == 0:
        flat = pos + slot.part * rows * cols
    elif slot.axis == 1:
        flat = (pos // cols) * info.shape[1] + slot.part * cols + pos % cols
    else:
        flat = pos
    values = _decode(info.dtype, _raw_view(mm, info)[flat]).astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():                  # keep positions aligned: a NaN/inf counts as the mean
        values = np.where(finite, values, values[finite].mean() if finite.any() else 0.0)
    sd = values.std() if values.size else 0.0
    z = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    return shape, z


def _part_stats(mm: mmap.mmap, info: TensorInfo, slots: list[AttentionSlot]) -> dict[int, float | None]:
    """std of each third of a fused [q|k|v] tensor (float64, row chunks: fused tensors are small)."""
    rows, cols = info.shape
    raw = _raw_view(mm, info).reshape(rows, cols)
    axis = slots[0].axis
    acc = {s.part: _Moments() for s in slots}
    per = max(1, CHUNK_ELEMS // max(cols, 1))
    for r0 in range(0, rows, per):
        x = _decode(info.dtype, raw[r0:r0 + per]).astype(np.float64)
        for part, moments in acc.items():
            if axis == 1:
                piece = x[:, part * (cols // 3):(part + 1) * (cols // 3)]
            else:
                lo, hi = part * (rows // 3), (part + 1) * (rows // 3)
                piece = x[max(lo - r0, 0):max(min(hi - r0, x.shape[0]), 0)]
            piece = piece[np.isfinite(piece)]
            if piece.size:
                mean = float(piece.mean())
                moments.add(piece.size, mean, float(((piece - mean) ** 2).sum()))
    return {part: m.result()[1] for part, m in acc.items()}


# --------------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------------

def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.7g}")


@dataclass
class WeightsFingerprint:
    """What a scan needs of a model's weights, JSON-able (to_json/from_json), no weights in it.

    tensors: name -> [dtype, shape, digest, mean, std, nonfinite] (digest/mean/std None when not read).
    lineage: {"stack", "layers": [layer indices], "profiles": {label: [std per layer or None]}, "stacks": {stack: layers}}.
    samples: {"label.layer": [shape, base64 float16 standardized values at sample_positions(shape)]}.
    files / lfs_pointers / not_parsed: what was read, what is a Git LFS pointer, what is never parsed (pickle)."""

    name: str = ""
    scope: str = "all"
    row_stride: int = 1
    files: list[dict] = field(default_factory=list)
    lfs_pointers: list[dict] = field(default_factory=list)
    not_parsed: list[dict] = field(default_factory=list)
    tensors: dict[str, list] = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    samples: dict[str, list] = field(default_factory=dict)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "scope": self.scope, "row_stride": self.row_stride,
                "sample_size": SAMPLE_SIZE, "files": self.files, "lfs_pointers": self.lfs_pointers,
                "not_parsed": self.not_parsed, "tensors": self.tensors, "lineage": self.lineage,
                "samples": self.samples}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> WeightsFingerprint:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise WeightsError(f"not a {FORMAT} weights fingerprint")
        try:
            fp = cls(name=str(data.get("name", "")), scope=str(data["scope"]), row_stride=int(data["row_stride"]),
                     files=list(data["files"]), lfs_pointers=list(data["lfs_pointers"]),
                     not_parsed=list(data["not_parsed"]), tensors=dict(data["tensors"]),
                     lineage=dict(data["lineage"]), samples=dict(data["samples"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"weights fingerprint is malformed ({exc.__class__.__name__}: {exc})") from None
        return fp

    @classmethod
    def from_json(cls, text: str | bytes) -> WeightsFingerprint:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise WeightsError(f"weights fingerprint is not valid JSON ({str(exc)[:120]})") from None
        return cls.from_dict(data)

    # -- accessors --------------------------------------------------------------------------------
    @property
    def has_weights(self) -> bool:
        return bool(self.tensors)

    def profile(self) -> tuple[list[int], dict[str, list[float | None]]]:
        return list(self.lineage.get("layers", [])), dict(self.lineage.get("profiles", {}))

    def sample(self, key: str) -> tuple[tuple[int, ...], np.ndarray] | None:
        item = self.samples.get(key)
        if not item:
            return None
        shape, data = item
        return tuple(shape), np.frombuffer(base64.b64decode(data), dtype="<f2").astype(np.float64)


def _resolve(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[list[Path], list[dict], list[dict]]:
    """(safetensors files, LFS pointers, files never parsed) for files, index JSONs and directories."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    pointers: list[dict] = []
    skipped: list[dict] = []

    def add_file(p: Path) -> None:
        info = lfs_pointer_info(p)
        if info is not None:
            pointers.append({"name": p.name, **info})
        elif p not in files:
            files.append(p)

    for item in paths:
        p = Path(item)
        if p.is_dir():
            index = p / "model.safetensors.index.json"
            if index.is_file():
                for shard in _index_shards(index):
                    add_file(p / shard)
            else:
                found = [c for c in sorted(p.iterdir()) if c.suffix == ".safetensors" and c.is_file()]
                consolidated = [c for c in found if c.name.startswith("consolidated")]
                if consolidated and len(consolidated) < len(found):
                    for c in consolidated:   # Mistral ships its original-format copy next to the HF one
                        skipped.append({"name": c.name, "reason": "original-format duplicate of the HF weights: not read"})
                    found = [c for c in found if c not in consolidated]
                for child in found:
                    add_file(child)
            for child in sorted(p.iterdir()):
                if child.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl") and child.is_file():
                    reason = ("Git LFS pointer (weights not downloaded)" if is_lfs_pointer(child)
                              else "pickle-based checkpoint: never unpickled")
                    skipped.append({"name": child.name, "reason": reason})
        elif p.name.endswith(".index.json"):
            for shard in _index_shards(p):
                add_file(p.parent / shard)
        else:
            add_file(p)
    return files, pointers, skipped


def _index_shards(index: Path) -> list[str]:
    fh, size = _open_regular(index)
    with fh:
        if size > MAX_INDEX_BYTES:
            raise WeightsError(f"{index.name}: {size} bytes, more than the {MAX_INDEX_BYTES}-byte limit")
        raw = fh.read()
    if is_lfs_pointer(index):
        raise WeightsError(f"{index.name}: not downloaded (Git LFS pointer)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WeightsError(f"{index.name}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise WeightsError(f"{index.name}: no weight_map of tensor names to shard file names")
    shards: list[str] = []
    for shard in weight_map.values():
        if (not shard or "/" in shard or "\\" in shard or shard in (".", "..") or "\x00" in shard):
            raise WeightsError(f"{index.name}: shard {shard[:80]!r} is not a plain file name in the model directory")
        if shard not in shards:
            shards.append(shard)
    return sorted(shards)


def fingerprint(paths: str | os.PathLike | Iterable[str | os.PathLike], *, scope: str = "all", row_stride: int = 1,
                name: str = "") -> WeightsFingerprint:
    """Fingerprint a model: a .safetensors file, several shards, a model.safetensors.index.json or a directory.

    scope "all": stats and digest of every tensor; "attention": only of the attention projections
    (the lineage fingerprint; other tensors keep dtype and shape). LFS pointers are listed, not read;
    .bin/.pt files are listed as never unpickled. A corrupt shard raises WeightsError."""
    if scope not in ("all", "attention"):
        raise ValueError("scope must be 'all' or 'attention'")
    files, pointers, skipped = _resolve(paths)
    if not name:
        first = Path(paths) if isinstance(paths, (str, os.PathLike)) else None
        name = (first.name if first.is_dir() else first.stem) if first is not None else ""
    fp = WeightsFingerprint(name=name, scope=scope, row_stride=row_stride, lfs_pointers=pointers, not_parsed=skipped)
    headers: list[tuple[Path, list[TensorInfo]]] = []
    owner: dict[str, tuple[Path, TensorInfo]] = {}
    for f in files:
        infos = read_header(f)
        headers.append((f, infos))
        fp.files.append({"name": f.name, "size": f.stat().st_size, "tensors": len(infos)})
        for info in infos:
            if info.name in owner:
                raise WeightsError(f"{f.name}: tensor {info.name[:80]!r} is also in {owner[info.name][0].name}")
            owner[info.name] = (f, info)
    slots, stacks = attention_slots(info for _, infos in headers for info in infos)
    slot_names = {s.name for s in slots}
    stds: dict[str, float | None] = {}
    for f, infos in headers:
        wanted = [i.name for i in infos if scope == "all" or i.name in slot_names]
        stats = tensor_stats(f, infos, wanted, row_stride) if wanted else {}
        for info in infos:
            st = stats.get(info.name)
            fp.tensors[info.name] = ([info.dtype, list(info.shape), None, None, None, 0] if st is None else
                                     [info.dtype, list(info.shape), st.digest, _num(st.mean), _num(st.std), st.nonfinite])
        file_slots = [s for s in slots if owner[s.name][0] == f]
        if not file_slots:
            continue
        by_name = {i.name: i for i in infos}
        with _mapped(f) as mm:
            fused: dict[str, list[AttentionSlot]] = {}
            for slot in file_slots:
                info = by_name[slot.name]
                if DTYPES[info.dtype].kind not in _FLOAT_KINDS or info.numel == 0:
                    continue
                if slot.part is None:
                    stds[slot.key] = stats[slot.name].std
                else:
                    fused.setdefault(slot.name, []).append(slot)
                shape, z = _slot_values(mm, info, slot)
                fp.samples[slot.key] = [list(shape), base64.b64encode(z.astype("<f2").tobytes()).decode("ascii")]
            for tname, parts in fused.items():
                part_std = _part_stats(mm, by_name[tname], parts)
                for slot in parts:
                    stds[slot.key] = part_std[slot.part]
    layers = sorted({s.layer for s in slots})
    labels = sorted({s.label for s in slots}, key=_label_rank)
    fp.lineage = {
        "stack": slots[0].stack if slots else None,
        "layers": layers,
        "profiles": {lab: [_num(stds.get(f"{lab}.{layer}")) for layer in layers] for lab in labels},
        "stacks": stacks,
    }
    return fp


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

@dataclass
class WeightComparison:
    """Weight evidence for one scanned model against one reference. JSON-able via to_dict()/to_json().

    verdict: "copy" | "derived" | "independent" | "inconclusive"; statistic/threshold/margin: the
    statistic that decided, its threshold and how far past it (positive = decisively past; for
    "independent" how far below the derived side); sentence: one line a reviewer can act on."""

    verdict: str
    sentence: str
    statistic: str | None = None
    value: float | None = None
    threshold: float | None = None
    margin: float | None = None
    copy: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float):
                return None if not math.isfinite(v) else round(v, 6)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        return clean({"verdict": self.verdict, "sentence": self.sentence, "statistic": self.statistic,
                      "value": self.value, "threshold": self.threshold, "margin": self.margin,
                      "copy": self.copy, "lineage": self.lineage, "notes": self.notes})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


def _trivial(name: str, entry: list) -> bool:
    dtype, shape, digest, _mean, std = entry[:5]
    return (digest is None or DTYPES.get(dtype, _DType(0, None, "hash")).kind not in _FLOAT_KINDS
            or math.prod(shape) < COPY_MIN_ELEMENTS or not std or bool(TRIVIAL_TENSOR.search(name)))


def _copy_evidence(scanned: WeightsFingerprint, reference: WeightsFingerprint) -> dict:
    ref_by_digest: dict[tuple, list[str]] = {}
    for name, entry in reference.tensors.items():
        if not _trivial(name, entry):
            ref_by_digest.setdefault((entry[2], entry[0], tuple(entry[1])), []).append(name)
    hashed = [(n, e) for n, e in scanned.tensors.items() if e[2] is not None]
    identical, renamed, ident_bytes, total_bytes, trivial_identical = [], 0, 0, 0, 0
    ref_all = {(e[2], e[0], tuple(e[1])) for e in reference.tensors.values() if e[2] is not None}
    for name, entry in hashed:
        nbytes = math.prod(entry[1]) * DTYPES[entry[0]].bits // 8 if entry[0] in DTYPES else 0
        total_bytes += nbytes
        key = (entry[2], entry[0], tuple(entry[1]))
        if _trivial(name, entry):
            trivial_identical += key in ref_all
            continue
        names = ref_by_digest.get(key)
        if names:
            ref_name = name if name in names else names[0]
            identical.append({"tensor": name, "reference": ref_name, "dtype": entry[0], "shape": entry[1]})
            renamed += ref_name != name
            ident_bytes += nbytes
    return {"identical": len(identical), "renamed": renamed, "hashed": len(hashed),
            "identical_bytes": ident_bytes, "hashed_bytes": total_bytes,
            "byte_fraction": ident_bytes / total_bytes if total_bytes else 0.0,
            "trivial_identical": trivial_identical, "tensors": identical[:50]}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


def _aligned_profiles(a: WeightsFingerprint, b: WeightsFingerprint) -> tuple[list[str], list[int], np.ndarray, np.ndarray, str | None]:
    """Common labels, common layers (by index, a common prefix when depths differ), (labels x layers) arrays."""
    la, pa = a.profile()
    lb, pb = b.profile()
    labels = [lab for lab in LABEL_ORDER if lab in pa and lab in pb] + sorted(set(pa) & set(pb) - set(LABEL_ORDER))
    note = None
    if la and lb and len(la) != len(lb):
        note = (f"depths differ ({len(la)} vs {len(lb)} attention layers): compared layers by index over the "
                f"first {min(len(la), len(lb))}")
    ia = {layer: i for i, layer in enumerate(la)}
    ib = {layer: i for i, layer in enumerate(lb)}
    layers = []
    for layer in sorted(set(ia) & set(ib)):
        ok = all(pa[lab][ia[layer]] and pb[lab][ib[layer]] for lab in labels)
        if ok:
            layers.append(layer)
    xa = np.array([[pa[lab][ia[layer]] for layer in layers] for lab in labels], dtype=np.float64).reshape(len(labels), len(layers))
    xb = np.array([[pb[lab][ib[layer]] for layer in layers] for lab in labels], dtype=np.float64).reshape(len(labels), len(layers))
    return labels, layers, xa, xb, note


def _residuals(profile: np.ndarray) -> np.ndarray:
    """log std, edges dropped, own polynomial depth trend removed per label, winsorised, standardised per label."""
    y = np.log(np.maximum(profile[:, EDGE_LAYERS:profile.shape[1] - EDGE_LAYERS], 1e-30))
    n = y.shape[1]
    x = np.linspace(0.0, 1.0, n)
    vander = np.vander(x, min(DETREND_DEGREE, n - 2) + 1)
    coef, *_ = np.linalg.lstsq(vander, y.T, rcond=None)
    res = y - (vander @ coef).T
    out = np.zeros_like(res)
    for i, row in enumerate(res):
        med = np.median(row)
        mad = 1.4826 * np.median(np.abs(row - med)) or row.std()
        if mad > 0:
            row = np.clip(row, med - WINSOR_SD * mad, med + WINSOR_SD * mad)
        sd = row.std()
        out[i] = (row - row.mean()) / sd if sd > 0 else 0.0
    return out


def _detrended_r(ra: np.ndarray, rb: np.ndarray) -> float:
    return _pearson(ra.ravel(), rb.ravel())


def _lineage(scanned: WeightsFingerprint, reference: WeightsFingerprint) -> dict:
    labels, layers, xa, xb, note = _aligned_profiles(scanned, reference)
    out: dict = {"labels": labels, "layers_scanned": len(scanned.lineage.get("layers", [])),
                 "layers_reference": len(reference.lineage.get("layers", [])), "layers_compared": len(layers),
                 "depth_note": note}
    if not labels or len(layers) < MIN_LAYERS:
        out["unavailable"] = (f"{len(layers)} comparable attention layers (need {MIN_LAYERS})" if labels
                              else "no attention projections in common")
        return out
    out["raw_r"] = _pearson(xa.ravel(), xb.ravel())
    ra, rb = _residuals(xa), _residuals(xb)
    r = _detrended_r(ra, rb)
    out["detrended_r"] = r
    shifts = [_detrended_r(ra, np.roll(rb, k, axis=1)) for k in range(1, rb.shape[1])]
    null = np.array([s for s in shifts if math.isfinite(s)])
    if null.size >= 3 and null.std(ddof=1) > 0:
        out["null"] = {"method": "circular layer shifts of the reference's residuals", "n": int(null.size),
                       "mean": float(null.mean()), "sd": float(null.std(ddof=1)),
                       "z": float((r - null.mean()) / null.std(ddof=1)),
                       "p": float((1 + np.sum(null >= r)) / (1 + null.size))}
    return out


def _elementwise(scanned: WeightsFingerprint, reference: WeightsFingerprint) -> dict:
    total, n, per_label, tensors, rs = 0.0, 0, {}, 0, []
    for key in scanned.samples:
        a, b = scanned.sample(key), reference.sample(key)
        if a is None or b is None or a[0] != b[0] or a[1].size != b[1].size or a[1].size == 0:
            continue
        prod = float(a[1] @ b[1])
        total += prod
        n += a[1].size
        tensors += 1
        rs.append(prod / a[1].size)
        lab = key.split(".")[0]
        acc = per_label.setdefault(lab, [0.0, 0])
        acc[0] += prod
        acc[1] += a[1].size
    if n == 0:
        return {"tensors": 0, "samples": 0}
    return {"tensors": tensors, "samples": n, "r": total / n, "median_tensor_r": float(np.median(rs)),
            "z": total / n * math.sqrt(n), "per_label": {lab: acc[0] / acc[1] for lab, acc in per_label.items()}}


def _baseline(reference: WeightsFingerprint, baseline: Sequence) -> list[float]:
    """Detrended r of unrelated pairs: (reference, each unrelated model) and (unrelated, unrelated)."""
    values = [float(b) for b in baseline if isinstance(b, (int, float))]
    fps = [b for b in baseline if isinstance(b, WeightsFingerprint)]
    pairs = [(reference, b) for b in fps] + [(fps[i], fps[j]) for i in range(len(fps)) for j in range(i + 1, len(fps))]
    for a, b in pairs:
        lin = _lineage(a, b)
        if "detrended_r" in lin and math.isfinite(lin["detrended_r"]):
            values.append(lin["detrended_r"])
    return values


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def compare(scanned: WeightsFingerprint, reference: WeightsFingerprint,
            baseline: Sequence[WeightsFingerprint | float] = (), reference_name: str | None = None) -> WeightComparison:
    """Weight-copy and weight-lineage evidence of `scanned` against `reference`.

    baseline: fingerprints of models unrelated to the reference (and/or detrended r values of
    unrelated pairs): their pairwise detrended r form an empirical null that also covers shared
    architecture; without them the built-in null (circular layer shifts) covers chance alignment only."""
    ref = reference_name or reference.name or "the reference"
    notes: list[str] = []
    for fp, who in ((scanned, "scanned model"), (reference, "reference")):
        if fp.lfs_pointers:
            notes.append(f"{who}: {len(fp.lfs_pointers)} weight file(s) not downloaded (Git LFS pointer)")
        if fp.not_parsed:
            notes.append(f"{who}: {len(fp.not_parsed)} pickle-based file(s) not parsed")
    if not scanned.has_weights or not reference.has_weights:
        who = "scanned model" if not scanned.has_weights else "reference"
        why = "weights not downloaded (Git LFS pointer)" if (scanned if who == "scanned model" else reference).lfs_pointers \
            else "no safetensors weights"
        return WeightComparison("inconclusive", f"No weight evidence: the {who} has {why}; fetch the weights "
                                f"(git lfs pull) to compare them with {ref}.", notes=notes)
    copy = _copy_evidence(scanned, reference)
    lineage = _lineage(scanned, reference)
    ew = _elementwise(scanned, reference)
    lineage["elementwise"] = ew
    if lineage.get("depth_note"):
        notes.append(lineage["depth_note"])
    if scanned.scope != "all" or reference.scope != "all":
        notes.append("only attention tensors were hashed (scope 'attention'): other copied tensors would go unseen")

    base = _baseline(reference, baseline) if baseline else []
    derived_r = DETRENDED_DERIVED_MIN_R
    if len(base) >= 2:
        bmean, bsd = float(np.mean(base)), float(np.std(base, ddof=1))
        lineage["baseline"] = {"n": len(base), "mean": bmean, "sd": bsd, "max": max(base),
                               "z": (lineage["detrended_r"] - bmean) / bsd if "detrended_r" in lineage and bsd > 0 else None}
        derived_r = max(derived_r, bmean + NULL_Z_DERIVED_MIN * bsd, max(base))
        lineage["derived_threshold"] = derived_r

    if copy["identical"]:
        frac = copy["byte_fraction"]
        sentence = (f"{copy['identical']} of {copy['hashed']} hashed tensors ({frac:.0%} of their bytes) are byte-identical "
                    f"to {ref}'s" + (f" ({copy['renamed']} under other names)" if copy["renamed"] else "")
                    + ": those weights were copied, not trained; the model card must say so and respect the licence of " + ref + ".")
        return WeightComparison("copy", sentence, "identical_byte_fraction", frac, 0.0, frac, copy, lineage, notes)

    # each line of evidence says derived / independent / unclear / None (not available)
    ew_r = ew.get("r")
    ew_ind_max = max(ELEMENTWISE_INDEPENDENT_MAX_R, 4 / math.sqrt(ew["samples"])) if ew.get("samples") else None
    ew_says = None
    if ew_r is not None and ew["samples"] >= ELEMENTWISE_MIN_SAMPLES:
        ew_says = "derived" if ew_r >= ELEMENTWISE_DERIVED_MIN_R else "independent" if abs(ew_r) < ew_ind_max else "unclear"
    d_r = lineage.get("detrended_r")
    null = lineage.get("null", {})
    z = null.get("z")
    lin_says = None
    if d_r is not None and math.isfinite(d_r):
        powered = null.get("sd") is not None and null["sd"] <= DETRENDED_DERIVED_MIN_R / NULL_Z_DERIVED_MIN
        if d_r >= derived_r and z is not None and z >= NULL_Z_DERIVED_MIN:
            lin_says = "derived"
        elif d_r < DETRENDED_INDEPENDENT_MAX_R and powered:
            lin_says = "independent"
        else:
            lin_says = "unclear"
            if not powered:
                notes.append(f"layer-std profile too short to be conclusive (null sd {_fmt(null.get('sd'))})")
    lineage["elementwise_says"], lineage["lineage_says"] = ew_says, lin_says
    raw = f"raw layer-std r = {_fmt(lineage.get('raw_r'))}"
    detail = (f"{raw}, detrended r = {_fmt(d_r)} (null z = {_fmt(z)}), element-wise r = {_fmt(ew_r)} "
              f"over {ew.get('samples', 0)} shared-position samples")

    if ew_says == "derived":
        if lin_says == "independent":
            notes.append("element-wise correlation says derived but the layer-std profile does not (heavy retraining?)")
        return WeightComparison(
            "derived", f"Attention weights correlate element-wise with {ref}'s ({detail}; threshold "
            f"{ELEMENTWISE_DERIVED_MIN_R}): the model was derived from {ref} (fine-tuned or further trained); "
            f"check that it credits {ref} and follows its licence.",
            "elementwise_r", ew_r, ELEMENTWISE_DERIVED_MIN_R, ew_r - ELEMENTWISE_DERIVED_MIN_R, copy, lineage, notes)
    if lin_says == "derived" and ew_says in (None, "unclear"):
        return WeightComparison(
            "derived", f"The attention layer-std profile matches {ref}'s beyond their shared depth trend ({detail}; "
            f"threshold {derived_r:.2f} with z >= {NULL_Z_DERIVED_MIN:g}): most likely derived from {ref}; "
            f"confirm with the element-wise statistic (needs aligned shapes) before acting.",
            "detrended_r", d_r, derived_r, d_r - derived_r, copy, lineage, notes)
    if lin_says == "derived" and ew_says == "independent":
        return WeightComparison(
            "inconclusive", f"The layer-std profile matches {ref}'s beyond the depth trend but the weights do not "
            f"correlate element-wise ({detail}): consistent with permuted or re-parameterised weights, or a "
            f"coincidence; inspect head/channel permutations before concluding.",
            "detrended_r", d_r, derived_r, d_r - derived_r, copy, lineage, notes)
    if ew_says == "independent" and lin_says in ("independent", "unclear", None) or \
            ew_says is None and lin_says == "independent":
        margins = {}
        if ew_says == "independent":
            margins["elementwise_r"] = ELEMENTWISE_DERIVED_MIN_R - abs(ew_r)
        if lin_says == "independent":
            margins["detrended_r"] = derived_r - d_r
        stat_name = min(margins, key=margins.get)
        value = abs(ew_r) if stat_name == "elementwise_r" else d_r
        threshold = ELEMENTWISE_DERIVED_MIN_R if stat_name == "elementwise_r" else derived_r
        high_raw = lineage.get("raw_r") is not None and lineage["raw_r"] >= 0.8
        return WeightComparison(
            "independent", f"No sign that the weights derive from {ref} ({detail})"
            + (": the high raw correlation is what a shared depth trend alone gives." if high_raw else ".")
            + " Weight evidence does not support a derivation claim.",
            stat_name, value, threshold, margins[stat_name], copy, lineage, notes)
    reason = lineage.get("unavailable") or "the statistics fall between the thresholds"
    return WeightComparison(
        "inconclusive", f"Weight evidence against {ref} is inconclusive ({detail}; {reason}); compare against "
        "unrelated models of the same architecture (baseline) or aligned shapes before drawing conclusions.",
        "detrended_r" if d_r is not None else None, d_r, derived_r, None if d_r is None else d_r - derived_r,
        copy, lineage, notes)
