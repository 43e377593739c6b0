"""Tokenizer vocabularies: find them in a tree, read them as raw bytes, fingerprint and compare them.

A model's tokenizer is an artifact, not code: copying one is the cheapest way to start a model,
and a vocabulary keeps the order of its tokens (their ids index the embedding matrix), so a
copy shows even when it was extended. This module reads every common on-disk form, turns each
token into the bytes it stands for, so that the same tokenizer compares equal in every form,
and measures what is shared.

Forms read (never executed, never unpickled, every file size-capped):

* ``tokenizer.json`` (Hugging Face ``tokenizers``: BPE, Unigram, WordPiece, WordLevel);
* ``vocab.json`` + ``merges.txt`` (GPT-2 style), with ``added_tokens.json``;
* ``vocab.txt`` (WordPiece, BERT style);
* SentencePiece ``*.model`` (the ModelProto protobuf, parsed here from the wire format);
* tiktoken files (``base64token rank`` per line: ``*.tiktoken``, and ``*.model`` files in that
  format);
* Mistral's ``tekken*.json`` (tiktoken ranks in JSON, ids offset by the special tokens).

Normalisation to raw bytes: the GPT-2 byte-level alphabet (``Ġ`` = space ...) is inverted;
SentencePiece's ``▁`` becomes a space and its byte-fallback pieces ``<0x0A>`` the byte itself;
a WordPiece continuation ``##ab`` becomes ``WORDPIECE_CONTINUATION + b"ab"`` (a marker that
no UTF-8 text contains, so that ``##ab`` never equals a word-initial ``ab``); tiktoken tokens
are bytes already.

Comparison signals, strongest first: the fraction of shared learned tokens that have the same
id (1.0 for copies; at most 0.006 between families, see ``SAME_ID_DERIVED``), the fraction of
shared tokens whose id neighbour is shared too (catches a copy renumbered by inserted tokens),
the shared prefix of the merge list, and the vocabulary Jaccard (MinHash for lookup, exact
for the verdict). Vocabulary overlap alone proves little: tokenizers trained on similar text
share most of their common tokens.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import errno
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import xxhash

from scanner.errors import ProvscanError
from scanner.walk import FileTooLarge, NotRegularFile, open_regular, read_regular
from signatures.minhash import MinHasher, to_hash32


class VocabError(ProvscanError):
    """A tokenizer file that cannot be read safely (too big, not a regular file, malformed)."""


# ---------------------------------------------------------------------------------------------
# Limits. The largest real vocabularies we know have ~262k tokens (Gemma 3) and ship a
# tokenizer.json of ~33 MB; Mistral's tekken.json is 19 MB, Qwen 3.5's tiktoken file 4.6 MB.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_VOCAB = 1 << 21  # highest id + 1 accepted (2,097,152: 8x the largest real vocabulary)
MAX_MERGES = MAX_VOCAB  # a BPE has fewer merges than tokens
# Bounds on what a JSON file may hold, checked before it is parsed: json.loads of 64 MiB of "[],"
# takes ~1.4 GB, of short distinct strings ~0.5 GB. A real tokenizer.json has one array per merge
# (new format) and two strings per merge and one per token.
MAX_JSON_CONTAINERS = MAX_VOCAB + 65_536
MAX_JSON_STRINGS = 3 * MAX_VOCAB
MAX_TOKEN_BYTES = 64 * 1024  # one token's bytes (real: < 1 KiB; long whitespace runs)
MAX_LISTED = 1000  # added / special tokens kept by name in a fingerprint
MAX_TEXT = 100  # characters of one listed token
EXAMPLES = 10  # tokens quoted in a comparison

# A WordPiece continuation piece ("##ab") is stored as this prefix + b"ab". 0xFF never occurs
# in UTF-8, so no text token and no byte-level merge of UTF-8 text starts with it.
WORDPIECE_CONTINUATION = b"\xff##"

NUM_PERM = 128
MINHASH_SEED = 1
FINGERPRINT_SCHEMA = "provscan/vocab-fingerprint/v1"

# Per-id flags in a fingerprint.
FLAG_BASE = 1  # a single byte: the universal alphabet, ordered by convention, not by training
FLAG_SPECIAL = 2  # a special / control / unknown token
FLAG_ADDED = 4  # an added token (tokenizer.json added_tokens, added_tokens.json, SentencePiece user-defined)

# ---------------------------------------------------------------------------------------------
# Verdict thresholds, measured (docs/artifacts.md has the tables): 12 real
# vocabularies from PyPI packages (bench/vocab_bench.py, 132 ordered pairs) and the test fixtures.
# "Learned" tokens leave out single bytes (the 256-byte alphabet sits at the same ids in most
# byte-level vocabularies by convention) and special tokens.
#
# Same-id fraction of shared learned tokens. Copies and extensions: 1.0 (Mistral v2/v3/v7 among
# themselves, every fixture copy). Real vocabularies of different families: at most 0.0003 (102
# pairs; issue 8 measured <= 0.006 counting every token). Fixtures: a tokenizer trained
# independently on another sample of the very same text distribution 0.12, on a sibling language
# <= 0.03. From 0.5 up, half of what is shared sits at the very same embedding rows: no
# independent training does that.
SAME_ID_DERIVED = 0.5
# Neighbour-aligned fraction: shared learned tokens whose id neighbour (id - 1 or id + 1) holds
# the token that neighbours it in the other vocabulary. A copy renumbered by inserted tokens keeps
# it (Mistral v2 = v1 with 768 control tokens inserted at id 3: 0.9997; Qwen vs OpenAI's
# cl100k_base, which Qwen's report says it started from: 0.9993; Qwen 3.6 vs cl100k_base 0.986).
# Different families: at most 0.0012; fixtures: 0.18 for the same-distribution sample.
ALIGNED_DERIVED = 0.5
# Extended copy: this fraction of the reference's tokens (special tokens aside) kept at their
# ids. 0.999 tolerates a few reserved slots ("[unused1]") given new meanings, which are listed.
EXTENDED_MIN_KEPT = 0.999
# Below this many shared learned tokens no id-based verdict is given (too little evidence).
MIN_SHARED_LEARNED = 20



# =============================================================================================
# Finding tokenizers in a tree


@dataclass(frozen=True)
class TokenizerFiles:
    """One tokenizer in a tree: the files its vocabulary is read from, relative to ``root``."""

    root: Path
    directory: str  # '/'-separated, relative to root ('' for the root itself)
    format: str  # tokenizer.json | vocab.json+merges.txt | vocab.txt | sentencepiece | tiktoken | tekken
    files: tuple[str, ...]  # read, in this order; the first is the main file
    also: tuple[str, ...] = ()  # other forms of the same tokenizer in the same directory (not read)

    @property
    def name(self) -> str:
        return self.files[0]


_SP_NAME = re.compile(r"\.model(\.[A-Za-z0-9_]+)?$")  # tokenizer.model, spiece.model, tokenizer.model.v3
# SentencePiece files that transformers' slow tokenizers read beside a tokenizer.json.
_SP_SLOW_NAMES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "sentencepiece.model")
_TEKKEN_NAME = re.compile(r"^tekken.*\.json$")
_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/=]+ [0-9]+\r?$")


def _sniff(root: Path, rel: str, size: int = 256) -> bytes:
    try:
        fd = open_regular(root / rel)
    except OSError:
        return b""
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def _model_file_format(root: Path, rel: str) -> str | None:
    """'sentencepiece', 'tiktoken' or None for a *.model file, from its first bytes."""
    head = _sniff(root, rel)
    if not head:
        return None
    first = head.split(b"\n", 1)[0]
    if b"\n" in head and _TIKTOKEN_LINE.match(first):
        return "tiktoken"
    # ModelProto starts with field 1 (pieces), wire type 2: tag byte 0x0A.
    if head[0] == 0x0A:
        return "sentencepiece"
    return None


def find_tokenizers(root: Path, files: list[str]) -> list[TokenizerFiles]:
    """Group a tree's files ('/'-separated paths relative to root) into tokenizers.

    One tokenizer per directory for the Hugging Face forms, preferring tokenizer.json over
    vocab.json + merges.txt over vocab.txt (the others are listed in ``also``); a
    ``tokenizer.model`` / ``spiece.model`` next to a tokenizer.json is the same tokenizer (listed in
    ``also``);
    every other SentencePiece model, tiktoken file and tekken JSON is a tokenizer of its own.
    """
    root = Path(root)
    by_dir: dict[str, dict[str, str]] = {}
    for rel in files:
        p = PurePosixPath(rel)
        parent = "" if str(p.parent) == "." else str(p.parent)
        by_dir.setdefault(parent, {})[p.name] = rel
    found: list[TokenizerFiles] = []
    for directory in sorted(by_dir):
        names = by_dir[directory]
        extras = tuple(names[n] for n in ("added_tokens.json", "special_tokens_map.json", "tokenizer_config.json") if n in names)
        hf: TokenizerFiles | None = None
        also = tuple(names[n] for n in ("vocab.json", "merges.txt", "vocab.txt", *_SP_SLOW_NAMES) if n in names)
        if "tokenizer.json" in names:
            hf = TokenizerFiles(root, directory, "tokenizer.json", (names["tokenizer.json"],), also)
        elif "vocab.json" in names and "merges.txt" in names:
            hf = TokenizerFiles(root, directory, "vocab.json+merges.txt",
                                (names["vocab.json"], names["merges.txt"], *extras),
                                tuple(a for a in also if not a.endswith(("vocab.json", "merges.txt"))))
        elif "vocab.txt" in names:
            hf = TokenizerFiles(root, directory, "vocab.txt", (names["vocab.txt"], *extras),
                                tuple(a for a in also if not a.endswith("vocab.txt")))
        if hf is not None:
            found.append(hf)
        for name in sorted(names):
            rel = names[name]
            if hf is not None and hf.format == "tokenizer.json" and name in _SP_SLOW_NAMES:
                continue  # the "slow" form of the same tokenizer (listed in ``also``)
            if name.endswith(".tiktoken"):
                found.append(TokenizerFiles(root, directory, "tiktoken", (rel,)))
            elif _TEKKEN_NAME.match(name):
                found.append(TokenizerFiles(root, directory, "tekken", (rel,)))
            elif _SP_NAME.search(name):
                fmt = _model_file_format(root, rel)
                if fmt is not None:
                    found.append(TokenizerFiles(root, directory, fmt, (rel,)))
    return found


# =============================================================================================
# Reading


@dataclass
class Vocabulary:
    """A tokenizer's vocabulary as raw bytes, indexed by id (None: no token has that id)."""

    kind: str  # bpe | unigram | wordpiece | wordlevel
    format: str  # see TokenizerFiles.format
    tokens: list[bytes | None]
    merges: list[tuple[bytes, bytes]] = field(default_factory=list)
    added: dict[int, bytes] = field(default_factory=dict)
    special: set[int] = field(default_factory=set)
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(t is not None for t in self.tokens)

    def ids(self) -> dict[bytes, int]:
        """Token -> its lowest id."""
        out: dict[bytes, int] = {}
        for i, t in enumerate(self.tokens):
            if t is not None and t not in out:
                out[t] = i
        return out


def token_text(token: bytes | None) -> str:
    """A token as one printable line: '##' for WordPiece continuations, escapes for bytes."""
    if token is None:
        return "<none>"
    prefix = ""
    if token.startswith(WORDPIECE_CONTINUATION):
        prefix, token = "##", token[len(WORDPIECE_CONTINUATION):]
    text = prefix + repr(token.decode("utf-8", "backslashreplace"))[1:-1].replace("\\\\x", "\\x")
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _read_capped(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refusing symlinks, devices, FIFOs and anything above ``limit``."""
    try:
        return read_regular(path, limit)
    except FileTooLarge as exc:
        if exc.grew:
            raise VocabError(f"{path}: grew past the {_size(limit)} limit while being read") from None
        raise VocabError(f"{path}: {_size(exc.size)}, over the {_size(limit)} limit for a tokenizer file") from None
    except NotRegularFile:
        raise VocabError(f"{path}: not a regular file") from None
    except OSError as exc:
        reason = "a symlink" if exc.errno == errno.ELOOP or path.is_symlink() else (exc.strerror or str(exc))
        raise VocabError(f"{path}: cannot open ({reason})") from None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _load_json(path: Path, data: bytes):
    containers = data.count(b"[") + data.count(b"{")
    if containers > MAX_JSON_CONTAINERS:
        raise VocabError(f"{path}: {containers:,} JSON arrays and objects (limit {MAX_JSON_CONTAINERS:,})")
    if data.count(b'"') // 2 > MAX_JSON_STRINGS:
        raise VocabError(f"{path}: over {MAX_JSON_STRINGS:,} JSON strings")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Invalid UTF-8 inside strings: keep the bytes (lone surrogates round-trip to them).
        text = data.decode("utf-8", "surrogateescape")
    try:
        return json.loads(text)
    except RecursionError:
        raise VocabError(f"{path}: JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; so are huge ints
        raise VocabError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return s.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return s.encode("utf-8", "surrogatepass")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_ENCODER = _bytes_to_unicode()
_BYTE_DECODER = {c: b for b, c in _BYTE_ENCODER.items()}
_BYTE_ALPHABET = frozenset(_BYTE_DECODER)
# Characters that only a byte-level vocabulary writes (the images of control bytes and space).
_BYTE_LEVEL_ONLY = frozenset(c for b, c in _BYTE_ENCODER.items() if ord(c) >= 256)
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_METASPACE = "▁"


class _Decoder:
    """Turns a vocabulary's strings into raw bytes according to its pre-tokenizer family."""

    def __init__(self, mode: str, *, metaspace: str = _METASPACE, byte_fallback: bool = False,
                 continuation: str | None = None):
        self.mode = mode  # bytelevel | metaspace | plain
        self.metaspace = metaspace
        self.byte_fallback = byte_fallback
        self.continuation = continuation  # WordPiece prefix

    def __call__(self, s: str) -> bytes:
        if self.byte_fallback and len(s) == 6:
            m = _BYTE_PIECE.match(s)
            if m:
                return bytes([int(m.group(1), 16)])
        if self.continuation and s.startswith(self.continuation) and len(s) > len(self.continuation):
            return WORDPIECE_CONTINUATION + _utf8(s[len(self.continuation):])
        if self.mode == "bytelevel":
            dec = _BYTE_DECODER
            try:
                return bytes(dec[c] for c in s)
            except KeyError:
                # Tokens written as text in a byte-level vocabulary (added tokens): their UTF-8.
                return b"".join(bytes([dec[c]]) if c in dec else _utf8(c) for c in s)
        if self.mode == "metaspace":
            return _utf8(s.replace(self.metaspace, " "))
        return _utf8(s)


def _components(node) -> list[dict]:
    """Every normalizer / pre-tokenizer / decoder dict in a (possibly nested Sequence) node."""
    out, stack = [], [node]
    while stack and len(out) < 1000:
        n = stack.pop()
        if isinstance(n, dict):
            out.append(n)
            for key in ("normalizers", "pretokenizers", "decoders", "processors"):
                if isinstance(n.get(key), list):
                    stack.extend(n[key])
        elif isinstance(n, list):
            stack.extend(n)
    return out


def _guess_mode(strings: list[str]) -> str:
    """bytelevel / metaspace / plain from the strings alone (vocab.json without a config)."""
    sample = [s for s in strings if isinstance(s, str)][:200_000]
    if not sample:
        return "plain"
    in_alphabet = sum(all(c in _BYTE_ALPHABET for c in s) for s in sample)
    has_only = sum(any(c in _BYTE_LEVEL_ONLY for c in s) for s in sample)
    if in_alphabet >= 0.98 * len(sample) and has_only:
        return "bytelevel"
    if sum(_METASPACE in s for s in sample) >= 0.05 * len(sample):
        return "metaspace"
    return "plain"


def _put(tokens: list[bytes | None], i, tok: bytes, where: str, notes: list[str], conflicts: list[int]) -> None:
    if isinstance(i, bool) or not isinstance(i, int) or i < 0 or i >= MAX_VOCAB:
        raise VocabError(f"{where}: token id {str(i)[:40]!s} is not an id in 0..{MAX_VOCAB - 1}")
    if len(tok) > MAX_TOKEN_BYTES:
        raise VocabError(f"{where}: a token of {len(tok)} bytes (limit {MAX_TOKEN_BYTES})")
    if i >= len(tokens):
        tokens.extend([None] * (i + 1 - len(tokens)))
    if tokens[i] is not None and tokens[i] != tok:
        conflicts.append(i)
        return
    tokens[i] = tok


def _conflict_note(conflicts: list[int], notes: list[str]) -> None:
    if conflicts:
        notes.append(f"{len(conflicts)} ids given twice with different tokens (first kept), e.g. id {conflicts[0]}")


def _merge_pair(m, decode) -> tuple[bytes, bytes] | None:
    if isinstance(m, str):
        parts = m.split(" ")
        if len(parts) != 2:
            return None
        a, b = parts
    elif isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
        a, b = m
    else:
        return None
    return decode(a), decode(b)


def _read_merges(items, decode, where: str, notes: list[str]) -> list[tuple[bytes, bytes]]:
    if not isinstance(items, list):
        return []
    if len(items) > MAX_MERGES:
        raise VocabError(f"{where}: {len(items)} merges (limit {MAX_MERGES})")
    merges, bad = [], 0
    for m in items:
        pair = _merge_pair(m, decode)
        if pair is None:
            bad += 1
            continue
        merges.append(pair)
    if bad:
        notes.append(f"{bad} malformed merges skipped")
    return merges


def _read_tokenizer_json(path: Path, limit: int) -> Vocabulary:
    doc = _load_json(path, _read_capped(path, limit))
    if not isinstance(doc, dict):
        raise VocabError(f"{path}: not a tokenizer.json (top level is not an object)")
    if isinstance(doc.get("vocab"), list) and isinstance(doc.get("config"), dict):
        return _tekken_from_doc(path, doc)
    model = doc.get("model")
    if not isinstance(model, dict):
        raise VocabError(f"{path}: not a tokenizer.json (no model object)")
    vocab = model.get("vocab")
    mtype = model.get("type")
    if not isinstance(mtype, str):
        mtype = "Unigram" if isinstance(vocab, list) else "BPE" if "merges" in model else (
            "WordPiece" if "continuing_subword_prefix" in model else "WordLevel")
    kind = {"BPE": "bpe", "Unigram": "unigram", "WordPiece": "wordpiece", "WordLevel": "wordlevel"}.get(mtype)
    if kind is None:
        raise VocabError(f"{path}: unknown tokenizer model type {mtype[:40]!r}")
    notes: list[str] = []
    # Which alphabet the vocabulary is written in.
    comps = _components([doc.get("normalizer"), doc.get("pre_tokenizer"), doc.get("decoder")])
    types = {c.get("type") for c in comps}
    metaspace = _METASPACE
    for c in comps:
        if c.get("type") == "Metaspace" and isinstance(c.get("replacement"), str) and c["replacement"]:
            metaspace = c["replacement"]
    replace_meta = any(
        c.get("type") == "Replace" and isinstance(c.get("pattern"), dict)
        and _METASPACE in (c["pattern"].get("String"), c.get("content")) for c in comps)
    if isinstance(vocab, dict):
        strings = list(vocab)
    elif isinstance(vocab, list):
        strings = [e[0] for e in vocab if isinstance(e, list) and e and isinstance(e[0], str)]
    else:
        strings = []
    if "ByteLevel" in types:
        mode = "bytelevel"
    elif "Metaspace" in types or replace_meta or kind == "unigram":
        mode = "metaspace"
    else:
        mode = _guess_mode(strings) if kind == "bpe" else "plain"
    continuation = None
    if kind == "wordpiece":
        prefix = model.get("continuing_subword_prefix")
        continuation = prefix if isinstance(prefix, str) else "##"
    decode = _Decoder(mode, metaspace=metaspace, byte_fallback=bool(model.get("byte_fallback")),
                      continuation=continuation or None)
    tokens: list[bytes | None] = []
    conflicts: list[int] = []
    where = str(path)
    if isinstance(vocab, dict):
        if len(vocab) > MAX_VOCAB:
            raise VocabError(f"{path}: {len(vocab)} tokens (limit {MAX_VOCAB})")
        for s, i in vocab.items():
            _put(tokens, i, decode(s), where, notes, conflicts)
    elif isinstance(vocab, list):
        if len(vocab) > MAX_VOCAB:
            raise VocabError(f"{path}: {len(vocab)} tokens (limit {MAX_VOCAB})")
        bad = 0
        for i, e in enumerate(vocab):
            s = e[0] if isinstance(e, list) and e and isinstance(e[0], str) else e if isinstance(e, str) else None
            if s is None:
                bad += 1
                tokens.append(None)
                continue
            tokens.append(decode(s))
        if bad:
            notes.append(f"{bad} malformed vocabulary entries skipped")
    else:
        raise VocabError(f"{path}: the model has no vocabulary")
    merges = _read_merges(model.get("merges"), decode, where, notes) if kind == "bpe" else []
    added: dict[int, bytes] = {}
    special: set[int] = set()
    raw_added = doc.get("added_tokens")
    if isinstance(raw_added, list):
        for a in raw_added[:MAX_VOCAB]:
            if not isinstance(a, dict) or not isinstance(a.get("content"), str):
                continue
            i = a.get("id")
            tok = _utf8(a["content"])  # added tokens are stored as text, not in the model's alphabet
            if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(tokens) and tokens[i] not in (None, tok):
                tokens[i] = tok  # the added token is what the tokenizer emits for that id
            else:
                _put(tokens, i, tok, where, notes, conflicts)
            added[i] = tok
            if a.get("special"):
                special.add(i)
    unk = model.get("unk_id")
    if kind == "unigram" and isinstance(unk, int) and 0 <= unk < len(tokens):
        special.add(unk)
    _conflict_note(conflicts, notes)
    return Vocabulary(kind, "tokenizer.json", tokens, merges, added, special, str(path), notes)


def _special_strings(doc) -> set[str]:
    """Token strings named in a special_tokens_map.json / tokenizer_config.json."""
    out: set[str] = set()
    stack = [doc]
    while stack and len(out) < MAX_VOCAB:
        n = stack.pop()
        if isinstance(n, str):
            out.add(n)
        elif isinstance(n, dict):
            if isinstance(n.get("content"), str):
                out.add(n["content"])
            else:
                stack.extend(v for k, v in n.items() if k.endswith(("_token", "_tokens")))
        elif isinstance(n, list):
            stack.extend(n)
    return out


def _read_extras(files: list[Path], tokens, added, special, decode_added, limit, notes, conflicts) -> None:
    """added_tokens.json, special_tokens_map.json, tokenizer_config.json beside a vocab file."""
    specials: set[str] = set()
    for p in files:
        try:
            doc = _load_json(p, _read_capped(p, min(limit, 16 * 1024 * 1024)))
        except VocabError as exc:
            notes.append(f"{p.name} ignored: {str(exc).split(': ', 1)[-1]}")
            continue
        if p.name == "added_tokens.json" and isinstance(doc, dict):
            for s, i in doc.items():
                tok = decode_added(s)
                _put(tokens, i, tok, str(p), notes, conflicts)
                added[i] = tok
        elif p.name == "tokenizer_config.json" and isinstance(doc, dict):
            dec = doc.get("added_tokens_decoder")
            if isinstance(dec, dict):
                for k, v in dec.items():
                    if not (isinstance(v, dict) and isinstance(v.get("content"), str) and k.isdigit()):
                        continue
                    i, tok = int(k), decode_added(v["content"])
                    if i < len(tokens) and tokens[i] is not None and tokens[i] != tok:
                        tokens[i] = tok
                    else:
                        _put(tokens, i, tok, str(p), notes, conflicts)
                    added[i] = tok
                    if v.get("special"):
                        special.add(i)
            specials |= _special_strings({k: v for k, v in doc.items() if k.endswith(("_token", "_tokens"))})
        elif p.name == "special_tokens_map.json":
            specials |= _special_strings(doc)
    if specials:
        wanted = {_utf8(s) for s in specials}
        for i, t in enumerate(tokens):
            if t in wanted:
                special.add(i)


def _read_vocab_merges(vocab_path: Path, merges_path: Path, extras: list[Path], limit: int) -> Vocabulary:
    doc = _load_json(vocab_path, _read_capped(vocab_path, limit))
    if not isinstance(doc, dict):
        raise VocabError(f"{vocab_path}: not a vocab.json (expected an object of token: id)")
    if len(doc) > MAX_VOCAB:
        raise VocabError(f"{vocab_path}: {len(doc)} tokens (limit {MAX_VOCAB})")
    notes: list[str] = []
    mode = _guess_mode(list(doc))
    decode = _Decoder(mode, byte_fallback=mode == "metaspace")
    tokens: list[bytes | None] = []
    conflicts: list[int] = []
    for s, i in doc.items():
        _put(tokens, i, decode(s), str(vocab_path), notes, conflicts)
    text = _read_capped(merges_path, limit).decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges, bad = [], 0
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            continue
        pair = _merge_pair(line, decode)
        if pair is None:
            bad += 1
        else:
            merges.append(pair)
        if len(merges) > MAX_MERGES:
            raise VocabError(f"{merges_path}: over {MAX_MERGES} merges")
    if bad:
        notes.append(f"{bad} malformed lines in {merges_path.name} skipped")
    added: dict[int, bytes] = {}
    special: set[int] = set()
    _read_extras(extras, tokens, added, special, _utf8, limit, notes, conflicts)
    _conflict_note(conflicts, notes)
    return Vocabulary("bpe", "vocab.json+merges.txt", tokens, merges, added, special, str(vocab_path), notes)


def _read_vocab_txt(path: Path, extras: list[Path], limit: int) -> Vocabulary:
    text = _read_capped(path, limit).decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_VOCAB:
        raise VocabError(f"{path}: {len(lines)} tokens (limit {MAX_VOCAB})")
    decode = _Decoder("plain", continuation="##")
    tokens: list[bytes | None] = [decode(line.rstrip("\r")) for line in lines]
    notes: list[str] = []
    conflicts: list[int] = []
    added: dict[int, bytes] = {}
    special: set[int] = set()
    _read_extras(extras, tokens, added, special, _utf8, limit, notes, conflicts)
    if not special:  # BERT's conventional specials when no map says otherwise
        for i, t in enumerate(tokens):
            if t in (b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]"):
                special.add(i)
    _conflict_note(conflicts, notes)
    return Vocabulary("wordpiece", "vocab.txt", tokens, [], added, special, str(path), notes)


# --- SentencePiece ModelProto ----------------------------------------------------------------

_SP_NORMAL, _SP_UNKNOWN, _SP_CONTROL, _SP_USER, _SP_UNUSED, _SP_BYTE = 1, 2, 3, 4, 5, 6
_SP_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
_META_BYTES = _METASPACE.encode()


class _Truncated(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]  # IndexError on truncation
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    pos += 1
    while True:
        b = buf[pos]
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Truncated("varint too long")


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, value) of a message; value is an int or a (start, end) slice."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        fnum, wt = key >> 3, key & 7
        if fnum == 0:
            raise _Truncated("field number 0")
        if wt == 0:
            v, pos = _varint(buf, pos)
            yield fnum, wt, v
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise _Truncated("length past the end")
            yield fnum, wt, (pos, pos + n)
            pos += n
        elif wt == 5:
            if pos + 4 > end:
                raise _Truncated("fixed32 past the end")
            yield fnum, wt, (pos, pos + 4)
            pos += 4
        elif wt == 1:
            if pos + 8 > end:
                raise _Truncated("fixed64 past the end")
            yield fnum, wt, (pos, pos + 8)
            pos += 8
        else:
            raise _Truncated(f"wire type {wt}")
    if pos != end:
        raise _Truncated("message overruns its length")


def _read_sentencepiece(path: Path, limit: int) -> Vocabulary:
    buf = _read_capped(path, limit)
    tokens: list[bytes | None] = []
    special: set[int] = set()
    added: dict[int, bytes] = {}
    model_type, byte_fallback, types_seen = None, False, set()
    try:
        for fnum, wt, v in _fields(buf, 0, len(buf)):
            if fnum == 1 and wt == 2:
                piece, ptype = b"", _SP_NORMAL
                for f2, w2, v2 in _fields(buf, v[0], v[1]):
                    if f2 == 1 and w2 == 2:
                        piece = buf[v2[0]:v2[1]]
                    elif f2 == 3 and w2 == 0:
                        ptype = v2
                if len(piece) > MAX_TOKEN_BYTES:
                    raise VocabError(f"{path}: a piece of {len(piece)} bytes (limit {MAX_TOKEN_BYTES})")
                i = len(tokens)
                if i >= MAX_VOCAB:
                    raise VocabError(f"{path}: over {MAX_VOCAB} pieces")
                types_seen.add(ptype)
                if ptype == _SP_BYTE and len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
                    try:
                        tokens.append(bytes([int(piece[3:5], 16)]))
                    except ValueError:
                        tokens.append(piece.replace(_META_BYTES, b" "))
                else:
                    tokens.append(piece.replace(_META_BYTES, b" "))
                if ptype in (_SP_UNKNOWN, _SP_CONTROL):
                    special.add(i)
                elif ptype == _SP_USER:
                    added[i] = tokens[i]
            elif fnum == 2 and wt == 2:  # TrainerSpec
                for f2, w2, v2 in _fields(buf, v[0], v[1]):
                    if f2 == 3 and w2 == 0:
                        model_type = v2
                    elif f2 == 35 and w2 == 0:
                        byte_fallback = bool(v2)
    except (_Truncated, IndexError) as exc:
        raise VocabError(f"{path}: not a valid SentencePiece model ({exc or 'truncated'})") from None
    if not tokens:
        raise VocabError(f"{path}: not a SentencePiece model (no pieces)")
    notes = []
    kind = _SP_MODEL_TYPES.get(model_type, "unigram")
    if model_type is None:
        notes.append("no trainer spec: model type taken as unigram")
    if byte_fallback and _SP_BYTE not in types_seen:
        notes.append("byte_fallback set but no byte pieces")
    return Vocabulary(kind, "sentencepiece", tokens, [], added, special, str(path), notes)


# --- tiktoken and tekken ---------------------------------------------------------------------


def _read_tiktoken(path: Path, limit: int) -> Vocabulary:
    data = _read_capped(path, limit)
    pairs: list[tuple[int, bytes]] = []
    a2b = binascii.a2b_base64
    for n, line in enumerate(data.split(b"\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or len(parts[1]) > 9:
            raise VocabError(f"{path}:{n}: not a tiktoken line (expected 'base64token rank')")
        try:
            tok = a2b(parts[0], strict_mode=True)
        except (binascii.Error, ValueError):
            raise VocabError(f"{path}:{n}: bad base64 token") from None
        pairs.append((int(parts[1]), tok))
    if not pairs:
        raise VocabError(f"{path}: empty tiktoken file")
    if len(pairs) > MAX_VOCAB:
        raise VocabError(f"{path}: {len(pairs)} tokens (limit {MAX_VOCAB})")
    notes: list[str] = []
    if all(r == i for i, (r, _) in enumerate(pairs)) and max(map(len, (t for _, t in pairs))) <= MAX_TOKEN_BYTES:
        tokens: list[bytes | None] = [t for _, t in pairs]
    else:
        tokens, conflicts = [], []
        for r, tok in pairs:
            _put(tokens, r, tok, str(path), notes, conflicts)
        _conflict_note(conflicts, notes)
    return Vocabulary("bpe", "tiktoken", tokens, [], {}, set(), str(path), notes)


def _tekken_from_doc(path: Path, doc: dict) -> Vocabulary:
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    vocab = doc["vocab"]
    specials = doc.get("special_tokens") if isinstance(doc.get("special_tokens"), list) else []
    n_special = config.get("default_num_special_tokens")
    if not isinstance(n_special, int) or isinstance(n_special, bool) or not 0 <= n_special < MAX_VOCAB:
        n_special = len(specials)
    size = config.get("default_vocab_size")
    notes: list[str] = []
    if len(vocab) > MAX_VOCAB:
        raise VocabError(f"{path}: {len(vocab)} tokens (limit {MAX_VOCAB})")
    keep = len(vocab)
    if isinstance(size, int) and not isinstance(size, bool) and n_special <= size < n_special + len(vocab):
        keep = size - n_special
        notes.append(f"{len(vocab)} ranks in the file, the first {keep} used (default_vocab_size {size})")
    tokens: list[bytes | None] = [None] * n_special
    conflicts: list[int] = []
    special: set[int] = set(range(n_special))
    added: dict[int, bytes] = {}
    for e in specials[:n_special]:
        if isinstance(e, dict) and isinstance(e.get("rank"), int) and isinstance(e.get("token_str"), str) and 0 <= e["rank"] < n_special:
            tokens[e["rank"]] = _utf8(e["token_str"])
    if n_special and not specials:
        notes.append(f"{n_special} special ids without names in the file")
    for e in vocab:
        if not isinstance(e, dict):
            continue
        r = e.get("rank")
        if not isinstance(r, int) or isinstance(r, bool) or r < 0 or r >= keep:
            continue
        try:
            tok = base64.b64decode(e.get("token_bytes", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise VocabError(f"{path}: bad base64 token at rank {r}") from None
        _put(tokens, r + n_special, tok, str(path), notes, conflicts)
    _conflict_note(conflicts, notes)
    return Vocabulary("bpe", "tekken", tokens, [], added, special, str(path), notes)


def _read_tekken(path: Path, limit: int) -> Vocabulary:
    doc = _load_json(path, _read_capped(path, limit))
    if not (isinstance(doc, dict) and isinstance(doc.get("vocab"), list)):
        raise VocabError(f"{path}: not a tekken file (no vocab list)")
    return _tekken_from_doc(path, doc)


def read_tokenizer(files: TokenizerFiles, *, max_file_bytes: int = MAX_FILE_BYTES) -> Vocabulary:
    """Read one tokenizer's vocabulary. Raises VocabError (one line) when it cannot be read safely."""
    paths = [files.root / f for f in files.files]
    fmt = files.format
    if fmt == "tokenizer.json":
        vocab = _read_tokenizer_json(paths[0], max_file_bytes)
    elif fmt == "vocab.json+merges.txt":
        vocab = _read_vocab_merges(paths[0], paths[1], paths[2:], max_file_bytes)
    elif fmt == "vocab.txt":
        vocab = _read_vocab_txt(paths[0], paths[1:], max_file_bytes)
    elif fmt == "sentencepiece":
        vocab = _read_sentencepiece(paths[0], max_file_bytes)
    elif fmt == "tiktoken":
        vocab = _read_tiktoken(paths[0], max_file_bytes)
    elif fmt == "tekken":
        vocab = _read_tekken(paths[0], max_file_bytes)
    else:
        raise VocabError(f"unknown tokenizer format {fmt!r}")
    vocab.source = files.name
    while vocab.tokens and vocab.tokens[-1] is None:
        vocab.tokens.pop()
    if not any(t is not None for t in vocab.tokens):
        raise VocabError(f"{files.name}: no tokens")
    return vocab


def read_path(path: Path | str, *, max_file_bytes: int = MAX_FILE_BYTES) -> Vocabulary:
    """Read a tokenizer from one file, or from a directory holding one (convenience for tools)."""
    path = Path(path)
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir() if p.is_file() and not p.is_symlink())
        found = find_tokenizers(path, names)
    else:
        found = find_tokenizers(path.parent, [path.name])
        if not found and path.suffix == ".json":
            found = [TokenizerFiles(path.parent, "", "tokenizer.json", (path.name,))]
    if not found:
        raise VocabError(f"{path}: no tokenizer found")
    return read_tokenizer(found[0], max_file_bytes=max_file_bytes)


# =============================================================================================
# Fingerprints

_HASHER: MinHasher | None = None


def _hasher() -> MinHasher:
    global _HASHER
    if _HASHER is None:
        _HASHER = MinHasher(NUM_PERM, MINHASH_SEED)
    return _HASHER


def _token_hash(tok: bytes) -> int:
    h = xxhash.xxh64_intdigest(tok)
    return h or 1  # 0 marks "no token at this id"


def _merge_hash(a: bytes, b: bytes) -> int:
    return xxhash.xxh64_intdigest(struct.pack("<I", len(a)) + a + b) or 1


@dataclass
class VocabFingerprint:
    """What an index stores of a vocabulary: per-id hashes, flags, merges' hashes, MinHash, names.

    Size: 9 bytes per id (a 150k vocabulary is 1.35 MB raw, 1.8 MB in JSON's base64) plus 8 per
    merge; acceptable for an index of a few hundred reference tokenizers.
    """

    kind: str
    format: str
    hashes: np.ndarray  # uint64[id]: xxh64 of the token's raw bytes; 0 = no token
    flags: np.ndarray  # uint8[id]: FLAG_BASE | FLAG_SPECIAL | FLAG_ADDED
    merges: np.ndarray  # uint64[merge]: hash of each merge pair, in order
    minhash: np.ndarray  # uint32[NUM_PERM] of the token set
    added: dict[int, str] = field(default_factory=dict)  # id -> token text (first MAX_LISTED)
    special: dict[int, str] = field(default_factory=dict)
    source: str = ""
    # The vocabulary it was made from, when made in this process (quotes token texts in a
    # comparison); never stored.
    vocab: Vocabulary | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return int(np.count_nonzero(self.hashes))

    @property
    def digest(self) -> str:
        """Identity of the id -> token table (equal digests: a copy)."""
        return xxhash.xxh64_hexdigest(np.ascontiguousarray(self.hashes, dtype="<u8").tobytes())

    def to_json(self) -> dict:
        def b64(a: np.ndarray, dtype: str) -> str:
            return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")

        return {
            "schema": FINGERPRINT_SCHEMA, "kind": self.kind, "format": self.format, "source": self.source,
            "size": self.size, "ids": len(self.hashes), "digest": self.digest,
            "minhash": {"num_perm": NUM_PERM, "seed": MINHASH_SEED, "scheme": "affine32", "values": b64(self.minhash, "<u4")},
            "hashes": b64(self.hashes, "<u8"), "flags": b64(self.flags, "u1"), "merges": b64(self.merges, "<u8"),
            "added": {str(k): v for k, v in self.added.items()}, "special": {str(k): v for k, v in self.special.items()},
        }

    @classmethod
    def from_json(cls, doc: dict) -> VocabFingerprint:
        try:
            if doc.get("schema") != FINGERPRINT_SCHEMA:
                raise VocabError(f"not a {FINGERPRINT_SCHEMA} fingerprint")
            mh = doc["minhash"]
            if (mh["num_perm"], mh["seed"], mh["scheme"]) != (NUM_PERM, MINHASH_SEED, "affine32"):
                raise VocabError("fingerprint made with other MinHash parameters")

            hashes = np.frombuffer(base64.b64decode(doc["hashes"], validate=True), dtype="<u8").astype(np.uint64)
            flags = np.frombuffer(base64.b64decode(doc["flags"], validate=True), dtype=np.uint8).copy()
            merges = np.frombuffer(base64.b64decode(doc["merges"], validate=True), dtype="<u8").astype(np.uint64)
            minhash = np.frombuffer(base64.b64decode(mh["values"], validate=True), dtype="<u4").astype(np.uint32)
            if len(flags) != len(hashes) or len(minhash) != NUM_PERM:
                raise VocabError("fingerprint arrays of inconsistent lengths")
            return cls(str(doc["kind"]), str(doc["format"]), hashes, flags, merges, minhash,
                       {int(k): str(v) for k, v in doc.get("added", {}).items()},
                       {int(k): str(v) for k, v in doc.get("special", {}).items()}, str(doc.get("source", "")))
        except VocabError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise VocabError(f"malformed vocabulary fingerprint ({type(exc).__name__}: {str(exc)[:80]})") from None


def fingerprint(vocab: Vocabulary) -> VocabFingerprint:
    """A vocabulary's fingerprint (deterministic: the same vocabulary gives the same bytes)."""
    tokens = vocab.tokens
    n = len(tokens)
    hashes = np.fromiter((0 if t is None else _token_hash(t) for t in tokens), dtype=np.uint64, count=n)
    flags = np.fromiter((t is not None and len(t) == 1 for t in tokens), dtype=np.uint8, count=n) * np.uint8(FLAG_BASE)
    for i in vocab.special:
        if 0 <= i < n:
            flags[i] |= FLAG_SPECIAL
    for i in vocab.added:
        if 0 <= i < n:
            flags[i] |= FLAG_ADDED
    merges = np.fromiter((_merge_hash(a, b) for a, b in vocab.merges), dtype=np.uint64, count=len(vocab.merges))
    present = np.unique(hashes[hashes != 0])
    minhash = _hasher().signature(to_hash32(present))
    added = {i: token_text(t) for i, t in sorted(vocab.added.items())[:MAX_LISTED] if t is not None}
    special = {i: token_text(tokens[i]) for i in sorted(vocab.special)[:MAX_LISTED] if 0 <= i < n and tokens[i] is not None}
    return VocabFingerprint(vocab.kind, vocab.format, hashes, flags, merges, minhash, added, special, vocab.source, vocab)


def estimate_jaccard(a: VocabFingerprint, b: VocabFingerprint) -> float:
    """MinHash estimate of the token-set Jaccard (for lookup; verdicts use the exact figure)."""
    return float(np.mean(a.minhash == b.minhash))


# =============================================================================================
# Comparison


@dataclass
class VocabComparison:
    """How a scanned vocabulary relates to a reference one."""

    verdict: str  # copy | extended-copy | derived | unrelated
    reason: str  # one sentence a reviewer can act on
    scanned_size: int  # distinct tokens
    reference_size: int
    shared: int  # distinct tokens in both
    jaccard: float  # exact, over distinct tokens
    jaccard_estimate: float  # MinHash
    containment: float  # shared / reference's distinct tokens
    shared_learned: int  # shared tokens that are neither single bytes nor special in either
    same_id: int  # of those, how many have the same id in both
    same_id_fraction: float
    aligned_fraction: float  # of shared learned tokens, those whose id neighbour maps to the neighbouring id
    order_preserved: float  # longest run of shared learned tokens in the same relative order / shared_learned
    id_offsets: list[tuple[int, int]]  # most common (reference id - scanned id, tokens), up to 3
    reference_kept: float  # reference's non-special tokens found at the same id in the scanned one
    merge_prefix: int | None  # merges equal from the first on (None: one side has no merges)
    merge_prefix_fraction: float | None  # merge_prefix / reference merges
    added_ids: int  # ids that have a token in the scanned vocabulary and none in the reference
    added_examples: list[tuple[int, str]]
    added_range: tuple[int, int] | None  # lowest and highest such id
    added_at_end: bool  # all added ids come after the reference's last id
    replaced_ids: int  # ids whose token differs (both have one)
    replaced_examples: list[tuple[int, str, str]]  # (id, scanned, reference)
    removed: int  # reference tokens missing from the scanned vocabulary
    new_tokens: int  # scanned tokens missing from the reference vocabulary
    special_added: list[str]
    special_removed: list[str]

    @property
    def finding_kind(self) -> str | None:
        """The artifact finding this comparison supports, if any."""
        if self.verdict in ("copy", "extended-copy"):
            return "tokenizer-copy"
        if self.verdict == "derived":
            return "tokenizer-derived"
        return None

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["id_offsets"] = [list(x) for x in self.id_offsets]
        d["added_examples"] = [list(x) for x in self.added_examples]
        d["replaced_examples"] = [list(x) for x in self.replaced_examples]
        d["added_range"] = list(self.added_range) if self.added_range else None
        d["finding_kind"] = self.finding_kind
        return d


def _as_fp(v: Vocabulary | VocabFingerprint) -> tuple[VocabFingerprint, Vocabulary | None]:
    fp = fingerprint(v) if isinstance(v, Vocabulary) else v
    return fp, fp.vocab


def _text_at(fp: VocabFingerprint, vocab: Vocabulary | None, i: int) -> str:
    if vocab is not None and 0 <= i < len(vocab.tokens):
        return token_text(vocab.tokens[i])
    return fp.added.get(i) or fp.special.get(i) or f"<id {i}>"


def _lis_length(seq: np.ndarray) -> int:
    tails: list[int] = []
    for x in seq.tolist():
        k = bisect.bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
    return len(tails)


def _first_ids(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nonzero hashes (sorted) and the lowest id of each."""
    ids = np.nonzero(h)[0]
    vals = h[ids]
    order = np.lexsort((ids, vals))
    vals, ids = vals[order], ids[order]
    keep = np.ones(len(vals), dtype=bool)
    keep[1:] = vals[1:] != vals[:-1]
    return vals[keep], ids[keep]


def _pct(x: float) -> str:
    if 0 < x < 0.01 or 0.999 <= x < 1:
        return f"{100 * x:.2f}%"
    return f"{100 * x:.1f}%"


def compare(scanned: Vocabulary | VocabFingerprint, reference: Vocabulary | VocabFingerprint) -> VocabComparison:
    """Compare a scanned vocabulary with a reference one, each as read or as a fingerprint.

    Comparing one scanned vocabulary with many references: fingerprint it once and pass the
    fingerprint (it keeps the vocabulary it was made from, to quote added tokens by name).
    """
    s, sv = _as_fp(scanned)
    r, rv = _as_fp(reference)
    hs, hr = s.hashes, r.hashes
    n = min(len(hs), len(hr))
    vs, ids_s = _first_ids(hs)
    vr, ids_r = _first_ids(hr)
    shared_vals = np.intersect1d(vs, vr, assume_unique=True)
    shared = len(shared_vals)
    union = len(vs) + len(vr) - shared
    jaccard = shared / union if union else 0.0
    containment = shared / len(vr) if len(vr) else 0.0

    # Learned tokens: not single bytes, not special in either vocabulary.
    def not_learned(fp: VocabFingerprint) -> np.ndarray:
        return np.unique(fp.hashes[(fp.flags & (FLAG_BASE | FLAG_SPECIAL)) != 0])

    excluded = np.union1d(not_learned(s), not_learned(r))
    learned = np.setdiff1d(shared_vals, excluded, assume_unique=True)
    shared_learned = len(learned)
    # Same id: the token sits at one common id in both.
    eq = (hs[:n] == hr[:n]) & (hs[:n] != 0)
    same_vals = np.intersect1d(np.unique(hs[:n][eq]), learned, assume_unique=True)
    same_id = len(same_vals)
    same_id_fraction = same_id / shared_learned if shared_learned else 0.0
    # Map scanned id -> reference id for learned shared tokens (lowest ids).
    pos_s = np.searchsorted(vs, learned)
    pos_r = np.searchsorted(vr, learned)
    i_s, i_r = ids_s[pos_s], ids_r[pos_r]
    order = np.argsort(i_s, kind="stable")
    i_s, i_r = i_s[order], i_r[order]
    mapping = np.full(len(hs) + 2, -2, dtype=np.int64)
    mapping[i_s + 1] = i_r  # shifted by one so that i - 1 and i + 1 stay in bounds
    aligned = (mapping[i_s] == i_r - 1) | (mapping[i_s + 2] == i_r + 1)
    aligned_fraction = float(np.count_nonzero(aligned)) / shared_learned if shared_learned else 0.0
    order_preserved = _lis_length(i_r) / shared_learned if shared_learned else 0.0
    offsets: list[tuple[int, int]] = []
    if shared_learned:
        d, c = np.unique(i_r - i_s, return_counts=True)
        top = np.argsort(-c, kind="stable")[:3]
        offsets = [(int(d[k]), int(c[k])) for k in top]

    # Reference tokens kept at their ids, and what the scanned vocabulary adds or replaces.
    ref_normal = (hr != 0) & ((r.flags & FLAG_SPECIAL) == 0)
    kept_mask = np.zeros(len(hr), dtype=bool)
    kept_mask[:n] = hs[:n] == hr[:n]
    reference_kept = float(np.count_nonzero(kept_mask & ref_normal)) / max(1, int(np.count_nonzero(ref_normal)))
    hr_pad = np.zeros(len(hs), dtype=np.uint64)
    hr_pad[:n] = hr[:n]
    added_idx = np.nonzero((hs != 0) & (hr_pad == 0))[0]
    replaced_idx = np.nonzero((hs[:n] != 0) & (hr[:n] != 0) & (hs[:n] != hr[:n]))[0]
    last_ref = int(np.nonzero(hr)[0][-1]) if np.count_nonzero(hr) else -1
    added_examples = [(int(i), _text_at(s, sv, int(i))) for i in added_idx[:EXAMPLES]]
    replaced_examples = [(int(i), _text_at(s, sv, int(i)), _text_at(r, rv, int(i))) for i in replaced_idx[:EXAMPLES]]
    removed = len(vr) - shared
    new_tokens = len(vs) - shared

    merge_prefix = merge_fraction = None
    if len(s.merges) and len(r.merges):
        m = min(len(s.merges), len(r.merges))
        diff = np.nonzero(s.merges[:m] != r.merges[:m])[0]
        merge_prefix = int(diff[0]) if len(diff) else m
        merge_fraction = merge_prefix / len(r.merges)

    s_special, r_special = set(s.special.values()), set(r.special.values())
    special_added = sorted(s_special - r_special)[:EXAMPLES * 5]
    special_removed = sorted(r_special - s_special)[:EXAMPLES * 5]

    identical = len(hs) == len(hr) and bool(np.array_equal(hs, hr)) and len(vs) > 0
    verdict, reason = _verdict(
        identical=identical, s=s, r=r, sv=sv, rv=rv, shared_learned=shared_learned, same_id_fraction=same_id_fraction,
        aligned_fraction=aligned_fraction, reference_kept=reference_kept, added_idx=added_idx,
        replaced_idx=replaced_idx, last_ref=last_ref, offsets=offsets, containment=containment, removed=removed,
        jaccard=jaccard, special_added=special_added, special_removed=special_removed)
    return VocabComparison(
        verdict=verdict, reason=reason, scanned_size=len(vs), reference_size=len(vr), shared=shared,
        jaccard=jaccard, jaccard_estimate=estimate_jaccard(s, r), containment=containment,
        shared_learned=shared_learned, same_id=same_id, same_id_fraction=same_id_fraction,
        aligned_fraction=aligned_fraction, order_preserved=order_preserved, id_offsets=offsets,
        reference_kept=reference_kept, merge_prefix=merge_prefix, merge_prefix_fraction=merge_fraction,
        added_ids=len(added_idx), added_examples=added_examples,
        added_range=(int(added_idx[0]), int(added_idx[-1])) if len(added_idx) else None,
        added_at_end=bool(len(added_idx)) and int(added_idx[0]) > last_ref,
        replaced_ids=len(replaced_idx), replaced_examples=replaced_examples, removed=removed,
        new_tokens=new_tokens, special_added=special_added, special_removed=special_removed)


def _quote(examples: list[str], total: int) -> str:
    shown = ", ".join(repr(e) if not e.startswith("<id ") else e for e in examples[:5])
    return shown + (f" and {total - len(examples[:5])} more" if total > len(examples[:5]) else "")


def _verdict(*, identical, s, r, sv, rv, shared_learned, same_id_fraction, aligned_fraction, reference_kept, added_idx,
             replaced_idx, last_ref, offsets, containment, removed, jaccard, special_added,
             special_removed) -> tuple[str, str]:
    ref_name = r.source or "the reference"
    if identical:
        extra = ""
        if special_added or special_removed:
            extra = (f" (special-token markings differ: {len(special_added)} only here, {len(special_removed)} only in the "
                     "reference)")
        return "copy", (f"The same {r.size:,} tokens at the same ids as {ref_name}{extra}: this tokenizer is a copy of "
                        "it; credit it and keep its licence.")
    if (reference_kept >= EXTENDED_MIN_KEPT and shared_learned >= MIN_SHARED_LEARNED
            and len(added_idx) + len(replaced_idx) > 0):
        parts = []
        if len(added_idx):
            texts = [_text_at(s, sv, int(i)) for i in added_idx[:5]]
            where = "appended at" if int(added_idx[0]) > last_ref else "added at"
            parts.append(f"{len(added_idx):,} tokens {where} ids {int(added_idx[0])}–{int(added_idx[-1])} "
                         f"({_quote(texts, len(added_idx))})")
        if len(replaced_idx):
            i = int(replaced_idx[0])
            parts.append(f"{len(replaced_idx):,} ids given other tokens (e.g. id {i}: {_text_at(s, sv, i)!r} for "
                         f"{_text_at(r, rv, i)!r})")
        kept = "All" if reference_kept == 1.0 else _pct(reference_kept) + " of"
        what = "additions" if len(added_idx) else "some ids reassigned"
        return "extended-copy", (
            f"{kept} the non-special tokens of {ref_name} kept at their ids, with " + " and ".join(parts)
            + f": this tokenizer is the reference's with {what}; credit it.")
    if shared_learned >= MIN_SHARED_LEARNED and same_id_fraction >= SAME_ID_DERIVED:
        return "derived", (
            f"{_pct(same_id_fraction)} of the {shared_learned:,} shared learned tokens have the same id as in {ref_name}, "
            f"but {removed:,} of its tokens are gone or moved ({_pct(reference_kept)} kept in place): the two share an "
            "origin (one built from the other, or both from a common one); check how it was changed and credit it.")
    if shared_learned >= MIN_SHARED_LEARNED and aligned_fraction >= ALIGNED_DERIVED:
        off = offsets[0] if offsets else (0, 0)
        shift = (f"ids shifted by {off[0]:+,} for {off[1]:,} of them" if off[1] >= shared_learned / 2
                 else f"ids shifted by varying amounts, the commonest {off[0]:+,} for {off[1]:,}")
        return "derived", (
            f"{_pct(aligned_fraction)} of the {shared_learned:,} shared learned tokens keep their id neighbours from "
            f"{ref_name} although only {_pct(same_id_fraction)} keep their ids ({shift}; {_pct(containment)} of its "
            "vocabulary present): the two share an origin, renumbered by inserted or removed tokens; credit it.")
    return "unrelated", (
        f"Only {_pct(same_id_fraction)} of {shared_learned:,} shared learned tokens share an id with {ref_name} "
        f"(vocabulary Jaccard {jaccard:.2f}): no sign that one tokenizer was built from the other.")
