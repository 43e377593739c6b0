"""Tokenizer vocabularies (scanner/vocab.py): every on-disk form, byte normalisation, verdicts, hostile files.

Fixtures are trained here, offline, on generated text: byte-level BPE, WordPiece and Unigram with
the `tokenizers` package, unigram and BPE models with `sentencepiece` (test dependencies only:
the reader parses SentencePiece's protobuf itself). Without those packages the tests that train
skip, and fail under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need
from scanner import vocab as V
from scanner.errors import ProvscanError
from scanner.vocab import (
    WORDPIECE_CONTINUATION,
    TokenizerFiles,
    VocabError,
    VocabFingerprint,
    compare,
    find_tokenizers,
    fingerprint,
    read_path,
    read_tokenizer,
    token_text,
)

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI") == "true"


_need = need


# --- generated text --------------------------------------------------------------------------

def _language(seed: int, onsets: list[str], vowels: list[str], codas: list[str], words: int = 30_000) -> list[str]:
    """Lines of a made-up language: words of 1-3 syllables with a Zipf-like frequency."""
    rng = random.Random(seed)
    lexicon = ["".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 3)))
               for _ in range(800)]
    weights = [1 / (k + 1) for k in range(len(lexicon))]
    out, line = [], []
    for w in rng.choices(lexicon, weights, k=words):
        line.append(w.capitalize() if not line else w)
        if rng.random() < 0.08:
            out.append(" ".join(line) + rng.choice([".", "!", "?", ","]))
            line = []
    return out


TEXT_A = _language(1, ["t", "th", "s", "k", "m", "r", "l", "n", "p", "b", "d", "w", ""], ["a", "e", "i", "o", "u", "ea"],
                   ["", "n", "r", "s", "t", "ng"])
# A sibling language: the same syllables, another lexicon (independent tokenizers of similar text
# share many tokens; that alone must not look like a copy).
TEXT_B = _language(3, ["t", "th", "s", "k", "m", "r", "l", "n", "p", "b", "d", "w", ""], ["a", "e", "i", "o", "u", "ea"],
                   ["", "n", "r", "s", "t", "ng"])


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_fifo())


def _one(root: Path) -> TokenizerFiles:
    found = find_tokenizers(root, _files(root))
    assert len(found) == 1, found
    return found[0]


def _read(root: Path) -> V.Vocabulary:
    return read_tokenizer(_one(root))


# --- fixtures trained with `tokenizers` ------------------------------------------------------

def _bpe(lines: list[str], vocab_size: int, specials: list[str]):
    tk = _need("tokenizers")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    return tok


ADDED = ["<tool_call>", "frobnicate", "ёжик"]
ADDED_SPECIAL = ["<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Directories, one tokenizer each: base (tokenizer.json), base_files (vocab.json + merges.txt),
    extended (base + added tokens), unrelated, truncated (derived), renumbered (derived)."""
    tk = _need("tokenizers")
    root = tmp_path_factory.mktemp("tok")
    base = _bpe(TEXT_A, 800, ["<unk>", "<s>", "</s>"])
    (root / "base").mkdir()
    base.save(str(root / "base" / "tokenizer.json"))
    (root / "base_files").mkdir()
    base.model.save(str(root / "base_files"))  # vocab.json + merges.txt
    ext = tk.Tokenizer.from_file(str(root / "base" / "tokenizer.json"))
    ext.add_tokens(ADDED)
    ext.add_special_tokens(ADDED_SPECIAL)
    (root / "extended").mkdir()
    ext.save(str(root / "extended" / "tokenizer.json"))
    other = _bpe(TEXT_B, 1000, ["<pad>", "<unk>"])
    (root / "unrelated").mkdir()
    other.save(str(root / "unrelated" / "tokenizer.json"))
    # Derived by hand from the base's files: the last 60 tokens dropped (with the merges making them).
    vocab = json.loads((root / "base_files" / "vocab.json").read_text())
    merges = (root / "base_files" / "merges.txt").read_text().splitlines()
    keep = {t: i for t, i in vocab.items() if i < len(vocab) - 60}
    header, pairs = merges[:1], merges[1:]
    _write(root / "truncated" / "vocab.json", json.dumps(keep))
    _write(root / "truncated" / "merges.txt", "\n".join(header + pairs[: len(pairs) - 60]) + "\n")
    # Renumbered: 12 control tokens inserted at id 3, every later id shifted (Mistral v3 did this to v1).
    shifted = {t: (i if i < 3 else i + 12) for t, i in vocab.items()}
    shifted.update({f"[control_{k}]": 3 + k for k in range(12)})
    _write(root / "renumbered" / "vocab.json", json.dumps(shifted))
    _write(root / "renumbered" / "merges.txt", "\n".join(merges) + "\n")
    return root


def test_find_groups_forms_by_directory(tmp_path):
    _write(tmp_path / "m" / "tokenizer.json", "{}")
    _write(tmp_path / "m" / "tokenizer.model", b"\x0a\x05\x0a\x03<s>")
    _write(tmp_path / "m" / "vocab.txt", "a\n")
    _write(tmp_path / "m" / "spiece.model", b"\x0a\x05\x0a\x03<s>")
    _write(tmp_path / "g" / "vocab.json", "{}")
    _write(tmp_path / "g" / "merges.txt", "")
    _write(tmp_path / "g" / "added_tokens.json", "{}")
    _write(tmp_path / "sp" / "spiece.model", b"\x0a\x05\x0a\x03<s>")
    _write(tmp_path / "sp" / "tokenizer.model.v3", b"\x0a\x05\x0a\x03<s>")
    _write(tmp_path / "sp" / "word2vec.model", b"\x80\x04\x95pickle")  # a pickle: never a tokenizer
    _write(tmp_path / "k" / "tiktoken.model", b"IQ== 0\nIg== 1\n")  # Kimi's tiktoken file is named .model
    _write(tmp_path / "k" / "o.tiktoken", b"IQ== 0\n")
    _write(tmp_path / "k" / "tekken.json", "{}")
    _write(tmp_path / "w" / "vocab.txt", "[PAD]\n")
    got = {(t.directory, t.format, t.files, t.also) for t in find_tokenizers(tmp_path, _files(tmp_path))}
    assert got == {
        ("g", "vocab.json+merges.txt", ("g/vocab.json", "g/merges.txt", "g/added_tokens.json"), ()),
        ("k", "tekken", ("k/tekken.json",), ()),
        ("k", "tiktoken", ("k/o.tiktoken",), ()),
        ("k", "tiktoken", ("k/tiktoken.model",), ()),
        ("m", "tokenizer.json", ("m/tokenizer.json",), ("m/vocab.txt", "m/tokenizer.model", "m/spiece.model")),
        ("sp", "sentencepiece", ("sp/spiece.model",), ()),
        ("sp", "sentencepiece", ("sp/tokenizer.model.v3",), ()),
        ("w", "vocab.txt", ("w/vocab.txt",), ()),
    }


# --- byte-level BPE: the forms agree, the verdicts ---------------------------------------------

def test_byte_level_tokens_are_raw_bytes(trees):
    v = _read(trees / "base")
    assert v.kind == "bpe" and v.format == "tokenizer.json"
    assert v.size == 800 and len(v.merges) > 500
    assert not any(t is not None and "Ġ".encode() in t for t in v.tokens), "the byte-level alphabet must be inverted"
    assert any(t is not None and t.startswith(b" ") and len(t) > 2 for t in v.tokens)
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in v.merges)
    # Every merge's halves are tokens, and their concatenation too (BPE's invariant).
    tokens = set(v.tokens)
    assert all(a in tokens and b in tokens and a + b in tokens for a, b in v.merges)
    assert {v.tokens[i] for i in v.special} == {b"<unk>", b"<s>", b"</s>"}


def test_vocab_json_merges_form_is_identical_to_tokenizer_json(trees):
    a, b = _read(trees / "base"), _read(trees / "base_files")
    assert b.format == "vocab.json+merges.txt"
    assert a.tokens == b.tokens and a.merges == b.merges
    c = compare(b, a)
    assert c.verdict == "copy" and c.jaccard == 1.0 and c.same_id_fraction == 1.0
    assert c.merge_prefix == len(a.merges) and c.merge_prefix_fraction == 1.0
    assert "copy" in c.reason and c.finding_kind == "tokenizer-copy"


def test_extended_copy_lists_the_added_tokens(trees):
    base, ext = _read(trees / "base"), _read(trees / "extended")
    c = compare(ext, base)
    assert c.verdict == "extended-copy", c.reason
    assert c.finding_kind == "tokenizer-copy"
    assert c.reference_kept == 1.0 and c.same_id_fraction == 1.0
    assert c.added_ids == len(ADDED) + len(ADDED_SPECIAL)
    assert c.added_at_end and c.added_range == (800, 804)
    assert [t for _, t in c.added_examples] == ADDED + ADDED_SPECIAL
    assert sorted(c.special_added) == sorted(ADDED_SPECIAL) and c.special_removed == []
    assert "<tool_call>" in c.reason and "800–804" in c.reason and "\n" not in c.reason
    assert ext.added[802] == "ёжик".encode()
    assert json.loads(json.dumps(c.to_json()))["finding_kind"] == "tokenizer-copy"
    # The other way round the reference is the bigger one: not an extension of the smaller.
    assert compare(base, ext).verdict == "derived"


def test_unrelated_tokenizer(trees):
    base, other = _read(trees / "base"), _read(trees / "unrelated")
    c = compare(other, base)
    assert c.verdict == "unrelated", c.reason
    assert c.finding_kind is None
    assert c.shared_learned > 50 and c.jaccard > 0.2  # similar text: many shared tokens ...
    assert c.same_id_fraction < 0.1 and c.aligned_fraction < 0.1  # ... at unrelated ids
    assert c.merge_prefix is not None and c.merge_prefix < 5


def test_independent_training_on_the_same_kind_of_text_is_unrelated(trees, tmp_path):
    """The margin of the thresholds: another sample of the very same text distribution, trained
    independently, shares 90% of the tokens and the first merges, yet few ids and neighbours."""
    _bpe(TEXT_A[::-1][: len(TEXT_A) // 2], 800, ["<unk>", "<s>", "</s>"]).save(str(tmp_path / "tokenizer.json"))
    c = compare(_read(tmp_path), _read(trees / "base"))
    assert c.jaccard > 0.8 and c.merge_prefix >= 5
    assert c.verdict == "unrelated", c.reason
    assert c.same_id_fraction < V.SAME_ID_DERIVED / 2 and c.aligned_fraction < V.ALIGNED_DERIVED / 2


def test_truncated_copy_is_derived(trees):
    c = compare(_read(trees / "truncated"), _read(trees / "base"))
    assert c.verdict == "derived", c.reason
    assert c.same_id_fraction == 1.0 and c.removed == 60 and c.added_ids == 0
    assert c.reference_kept == pytest.approx(737 / 797)  # ids 0-739 kept, 3 of them special
    assert c.merge_prefix == len(_read(trees / "truncated").merges)


def test_renumbered_copy_is_derived_by_neighbours(trees):
    c = compare(_read(trees / "renumbered"), _read(trees / "base"))
    assert c.verdict == "derived", c.reason
    assert c.same_id_fraction < 0.05  # ids all moved ...
    assert c.aligned_fraction > 0.99 and c.order_preserved == 1.0  # ... but kept in order
    assert c.id_offsets[0][0] == -12 and "renumbered" in c.reason


def test_tiktoken_form_of_the_same_vocabulary_is_a_copy(trees, tmp_path):
    base = _read(trees / "base")
    lines = [f"{base64.b64encode(t).decode()} {i}" for i, t in enumerate(base.tokens)]
    _write(tmp_path / "t" / "base.tiktoken", "\n".join(lines) + "\n")
    t = _read(tmp_path / "t")
    assert t.format == "tiktoken" and t.tokens == base.tokens
    assert compare(t, base).verdict == "copy"


# --- fingerprints --------------------------------------------------------------------------

def test_fingerprint_round_trips_through_json(trees):
    ext = _read(trees / "extended")
    fp = fingerprint(ext)
    doc = json.loads(json.dumps(fp.to_json()))
    back = VocabFingerprint.from_json(doc)
    assert np.array_equal(back.hashes, fp.hashes) and np.array_equal(back.flags, fp.flags)
    assert np.array_equal(back.merges, fp.merges) and np.array_equal(back.minhash, fp.minhash)
    assert back.added == fp.added and back.special == fp.special and back.digest == fp.digest
    assert back.hashes.dtype == np.uint64 and back.minhash.dtype == np.uint32
    # A stored reference fingerprint gives the same comparison as the vocabulary itself.
    base = _read(trees / "base")
    ref = VocabFingerprint.from_json(json.loads(json.dumps(fingerprint(base).to_json())))
    c1, c2 = compare(ext, ref), compare(ext, base)
    assert (c1.verdict, c1.same_id_fraction, c1.jaccard, c1.added_examples) == (c2.verdict, c2.same_id_fraction, c2.jaccard, c2.added_examples)
    # ... and even with both sides stored, the added tokens are named (they are kept by name).
    c3 = compare(VocabFingerprint.from_json(fingerprint(ext).to_json()), ref)
    assert c3.verdict == "extended-copy" and [t for _, t in c3.added_examples] == ADDED + ADDED_SPECIAL


def test_fingerprint_is_reproducible_across_processes(trees):
    path = trees / "base" / "tokenizer.json"
    here = json.dumps(fingerprint(read_path(path)).to_json(), sort_keys=True)
    assert here == json.dumps(fingerprint(read_path(path)).to_json(), sort_keys=True)
    code = ("import json,sys; from scanner.vocab import fingerprint, read_path; "
            "print(json.dumps(fingerprint(read_path(sys.argv[1])).to_json(), sort_keys=True))")
    other = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert other == here


def test_minhash_estimate_tracks_exact_jaccard(trees):
    base, other, ext = _read(trees / "base"), _read(trees / "unrelated"), _read(trees / "extended")
    for a, b in ((ext, base), (other, base)):
        c = compare(a, b)
        assert abs(c.jaccard_estimate - c.jaccard) < 0.15  # 128 permutations: standard error <= 0.045


def test_fingerprint_json_rejects_malformed():
    with pytest.raises(VocabError):
        VocabFingerprint.from_json({"schema": "other"})
    with pytest.raises(VocabError):
        VocabFingerprint.from_json({"schema": V.FINGERPRINT_SCHEMA, "minhash": {"num_perm": 128, "seed": 1, "scheme": "affine32", "values": "!!"}})
    with pytest.raises(VocabError):
        VocabFingerprint.from_json({"schema": V.FINGERPRINT_SCHEMA, "minhash": {"num_perm": 64, "seed": 1, "scheme": "affine32", "values": ""}})


# --- other tokenizers-package models ---------------------------------------------------------

def test_wordpiece_tokenizer_json_and_vocab_txt_agree(tmp_path):
    tk = _need("tokenizers")
    tok = tk.Tokenizer(tk.models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    tok.decoder = tk.decoders.WordPiece()
    tok.train_from_iterator(TEXT_A, tk.trainers.WordPieceTrainer(
        vocab_size=500, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    (tmp_path / "j").mkdir()
    tok.save(str(tmp_path / "j" / "tokenizer.json"))
    (tmp_path / "t").mkdir()
    tok.model.save(str(tmp_path / "t"))  # vocab.txt
    a, b = _read(tmp_path / "j"), _read(tmp_path / "t")
    assert a.kind == b.kind == "wordpiece" and b.format == "vocab.txt"
    assert a.tokens == b.tokens
    cont = [t for t in a.tokens if t.startswith(WORDPIECE_CONTINUATION)]
    assert cont and not any(t.startswith(b"##") for t in a.tokens)
    assert token_text(cont[0]).startswith("##")
    assert {a.tokens[i] for i in a.special} == {a.tokens[i] for i in b.special} == {b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]"}
    assert compare(b, a).verdict == "copy"


def test_unigram_tokenizer_json_metaspace(tmp_path):
    tk = _need("tokenizers")
    tok = tk.Tokenizer(tk.models.Unigram())
    tok.pre_tokenizer = tk.pre_tokenizers.Metaspace()
    tok.decoder = tk.decoders.Metaspace()
    tok.train_from_iterator(TEXT_A, tk.trainers.UnigramTrainer(vocab_size=400, special_tokens=["<unk>"], unk_token="<unk>",
                                                                show_progress=False))
    (tmp_path / "u").mkdir()
    tok.save(str(tmp_path / "u" / "tokenizer.json"))
    v = _read(tmp_path / "u")
    assert v.kind == "unigram" and v.size == 400
    assert not any("▁".encode() in t for t in v.tokens if t)
    assert sum(t.startswith(b" ") for t in v.tokens if t) > 50
    assert v.tokens[0] == b"<unk>" and 0 in v.special


# --- SentencePiece ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sp_models(tmp_path_factory):
    spm = _need("sentencepiece")
    root = tmp_path_factory.mktemp("sp")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(TEXT_A + ["Ünïcødé ✓ naïve café 東京"]) + "\n")
    out = {}
    for name, kind, extra in (("unigram", "unigram", {}), ("bpe", "bpe", {"byte_fallback": True})):
        (root / name).mkdir()
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(root / name / "tokenizer"), vocab_size=600,
                                       model_type=kind, user_defined_symbols=["<tool>"], num_threads=1,
                                       minloglevel=2, **extra)
        (root / name / "tokenizer.vocab").unlink()
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_sentencepiece_reader_matches_sentencepiece(sp_models, name):
    spm = _need("sentencepiece")
    path = sp_models[name] / "tokenizer.model"
    proc = spm.SentencePieceProcessor(model_file=str(path))
    v = _read(sp_models[name])
    assert v.format == "sentencepiece" and v.kind == name
    assert len(v.tokens) == proc.get_piece_size()
    for i in range(proc.get_piece_size()):
        piece = proc.id_to_piece(i)
        want = bytes([int(piece[3:5], 16)]) if proc.is_byte(i) else piece.replace("▁", " ").encode()
        assert v.tokens[i] == want, (i, piece)
        assert (i in v.special) == (proc.is_control(i) or proc.is_unknown(i))
    assert [v.tokens[i] for i in v.added] == [b"<tool>"]
    if name == "bpe":
        assert sum(len(t) == 1 for t in v.tokens) >= 256  # byte-fallback pieces became bytes


def test_sentencepiece_and_llama_style_tokenizer_json_agree(sp_models, tmp_path):
    """A SentencePiece BPE and its tokenizer.json conversion (Llama's shape) read to the same bytes."""
    spm = _need("sentencepiece")
    proc = spm.SentencePieceProcessor(model_file=str(sp_models["bpe"] / "tokenizer.model"))
    pieces = [proc.id_to_piece(i) for i in range(proc.get_piece_size())]
    doc = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": pieces[i], "special": True} for i in range(3)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                      {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "byte_fallback": True, "vocab": {p: i for i, p in enumerate(pieces)}, "merges": []},
    }
    _write(tmp_path / "hf" / "tokenizer.json", json.dumps(doc))
    a, b = _read(tmp_path / "hf"), _read(sp_models["bpe"])
    assert a.tokens == b.tokens
    assert compare(a, b).verdict == "copy"


# --- hostile and odd inputs (no training needed) -----------------------------------------------

def _err(tmp_path: Path, name: str, data: bytes | str, fmt: str = "tokenizer.json", **kw) -> str:
    for p in tmp_path.iterdir():
        if p.is_file():
            p.unlink()
    _write(tmp_path / name, data)
    found = find_tokenizers(tmp_path, [name])
    files = found[0] if found else TokenizerFiles(tmp_path, "", fmt, (name,))
    with pytest.raises(VocabError) as info:
        read_tokenizer(files, **kw)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ProvscanError)
    return msg


def test_huge_file_is_refused_without_reading(tmp_path):
    big = tmp_path / "tokenizer.json"
    with open(big, "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: 2 GiB that takes no disk
    with pytest.raises(VocabError, match=r"2\.0 GiB, over the 64\.0 MiB limit"):
        read_tokenizer(TokenizerFiles(tmp_path, "", "tokenizer.json", ("tokenizer.json",)))
    assert "over the" in _err(tmp_path, "vocab.tiktoken", b"IQ== 0\n" * 100, max_file_bytes=100)


def test_garbage_and_deep_json(tmp_path):
    assert "not valid JSON" in _err(tmp_path, "tokenizer.json", os.urandom(4096))
    assert "nested too deeply" in _err(tmp_path, "tokenizer.json", "[" * 200_000 + "]" * 200_000)
    assert "JSON arrays and objects" in _err(tmp_path, "tokenizer.json", "[" + "[]," * 3_000_000 + "[]]")  # ~200 MB once parsed
    assert "JSON strings" in _err(tmp_path, "tokenizer.json", "[" + '"",' * 7_000_000 + '""]')
    assert "no model" in _err(tmp_path, "tokenizer.json", json.dumps({"model": "BPE"}))
    assert "not a tokenizer.json" in _err(tmp_path, "tokenizer.json", "[1, 2]")
    assert "no vocabulary" in _err(tmp_path, "tokenizer.json", json.dumps({"model": {"type": "BPE", "vocab": "x"}}))
    assert "unknown tokenizer model type" in _err(tmp_path, "tokenizer.json", json.dumps({"model": {"type": "Magic", "vocab": {}}}))
    assert "not valid JSON" in _err(tmp_path, "tokenizer.json", '{"model": {"vocab": {"a": ' + "9" * 5000 + "}}}")


def test_bad_ids(tmp_path):
    for bad in (10**12, -1, True, "3", 1.5):
        doc = {"model": {"type": "BPE", "vocab": {"a": 0, "b": bad}, "merges": []}}
        assert "is not an id" in _err(tmp_path, "tokenizer.json", json.dumps(doc))


def test_odd_shapes_are_tolerated(tmp_path):
    doc = {"model": {"vocab": {"a": 0, "b": 1, "ab": 2, "c": 2}, "merges": ["a b", ["a", "b"], {"x": 1}, "a b c", 7]},
           "added_tokens": [{"id": 3, "content": "<x>", "special": True}, "junk", {"id": 9}],
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": "not a list"}}
    _write(tmp_path / "tokenizer.json", json.dumps(doc))
    v = read_path(tmp_path / "tokenizer.json")
    assert v.tokens == [b"a", b"b", b"ab", b"<x>"] and v.special == {3}
    assert v.merges == [(b"a", b"b"), (b"a", b"b")]
    assert any("malformed merges" in n for n in v.notes) and any("ids given twice" in n for n in v.notes)


def test_invalid_utf8_tokens_keep_their_bytes(tmp_path):
    _write(tmp_path / "vocab.json", b'{"ok": 0, "bad\xff\xfe": 1, "\\ud800": 2}')
    _write(tmp_path / "merges.txt", b"#version: 0.2\no k\n\xff \xfe\n")
    v = _read(tmp_path)
    assert v.tokens[0] == b"ok" and v.tokens[1] == b"bad\xff\xfe" and v.tokens[2] == "\ud800".encode("utf-8", "surrogatepass")
    assert v.merges == [(b"o", b"k"), (b"\xff", b"\xfe")]
    fingerprint(v)  # hashes whatever bytes there are
    assert token_text(b"bad\xff") == "bad\\xff"


def test_tiktoken_errors(tmp_path):
    assert ":2: bad base64" in _err(tmp_path, "x.tiktoken", b"IQ== 0\n!!!! 1\n")
    assert ":1: not a tiktoken line" in _err(tmp_path, "x.tiktoken", b"IQ== zero\n")
    assert ":1: not a tiktoken line" in _err(tmp_path, "x.tiktoken", b"IQ== 99999999999\n")
    assert "empty" in _err(tmp_path, "x.tiktoken", b"\n\n")
    v = read_path(_write(tmp_path / "x.tiktoken", b"IQ== 0\nIg== 1\n\nISI= 5\r\n"))
    assert v.tokens == [b"!", b'"', None, None, None, b'!"']


def _sp_piece(piece: bytes, ptype: int | None = None) -> bytes:
    body = b"\x0a" + bytes([len(piece)]) + piece + b"\x15\x00\x00\x80\xbf"  # piece, score -1.0
    if ptype is not None:
        body += b"\x18" + bytes([ptype])
    return b"\x0a" + bytes([len(body)]) + body


def test_handmade_sentencepiece_protobuf(tmp_path):
    trainer = b"\x12\x04\x18\x02\x20\x05"  # TrainerSpec {model_type: BPE, vocab_size: 5}
    model = (_sp_piece(b"<unk>", 2) + _sp_piece(b"<s>", 3) + _sp_piece(b"<0x0A>", 6) + _sp_piece("▁the".encode())
             + _sp_piece(b"<t>", 4) + trainer + b"\x1a\x00")  # an empty NormalizerSpec, skipped
    _write(tmp_path / "tokenizer.model", model)
    v = _read(tmp_path)
    assert v.kind == "bpe" and v.tokens == [b"<unk>", b"<s>", b"\n", b" the", b"<t>"]
    assert v.special == {0, 1} and v.added == {4: b"<t>"}


def test_bad_protobuf(tmp_path):
    good = _sp_piece(b"abc") + _sp_piece(b"de")
    assert "not a valid SentencePiece model" in _err(tmp_path, "tokenizer.model", good[:-3])  # truncated
    assert "not a valid SentencePiece model" in _err(tmp_path, "tokenizer.model", b"\x0a\xff\xff\xff\xff\x0f abc")  # length past the end
    assert "wire type" in _err(tmp_path, "tokenizer.model", good + b"\x0b\x0c")  # group wire types
    assert "not a valid SentencePiece model" in _err(tmp_path, "tokenizer.model", b"\x0a" + b"\xff" * 20)  # varint overflow
    assert "no pieces" in _err(tmp_path, "tokenizer.model", b"\x12\x02\x18\x01", "sentencepiece")
    rng = random.Random(7)
    for _ in range(200):  # random bytes: a clean error or a vocabulary, never anything else
        data = b"\x0a" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        _write(tmp_path / "tokenizer.model", data)
        try:
            read_tokenizer(TokenizerFiles(tmp_path, "", "sentencepiece", ("tokenizer.model",)))
        except VocabError:
            pass


def test_fifo_and_symlink_are_refused(tmp_path):
    os.mkfifo(tmp_path / "tokenizer.json")
    with pytest.raises(VocabError, match="not a regular file"):  # and does not block
        read_tokenizer(TokenizerFiles(tmp_path, "", "tokenizer.json", ("tokenizer.json",)))
    secret = _write(tmp_path / "outside" / "secret.json", json.dumps({"model": {"vocab": {"a": 0}}}))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "tokenizer.json").symlink_to(secret)
    with pytest.raises(VocabError, match="symlink"):
        read_tokenizer(TokenizerFiles(tmp_path / "in", "", "tokenizer.json", ("tokenizer.json",)))


def test_tekken_file(tmp_path):
    vocab = [{"rank": r, "token_bytes": base64.b64encode(t).decode(), "token_str": None}
             for r, t in enumerate([b"a", b"b", b"ab", b" ab", b"zz"])]
    doc = {"config": {"default_vocab_size": 7, "default_num_special_tokens": 3}, "vocab": vocab,
           "special_tokens": [{"rank": 0, "token_str": "<unk>"}, {"rank": 1, "token_str": "<s>"}, {"rank": 2, "token_str": "</s>"}]}
    _write(tmp_path / "tekken.json", json.dumps(doc))
    v = _read(tmp_path)
    assert v.format == "tekken" and v.tokens == [b"<unk>", b"<s>", b"</s>", b"a", b"b", b"ab", b" ab"]
    assert v.special == {0, 1, 2}
    doc["vocab"][1]["token_bytes"] = "%%%"
    assert "bad base64" in _err(tmp_path, "tekken.json", json.dumps(doc))


def test_compare_handles_empty_overlap_and_wordpiece_vs_bytes(tmp_path):
    a = V.Vocabulary("bpe", "tiktoken", [b"x", b"yy"])
    b = V.Vocabulary("wordpiece", "vocab.txt", [b"[PAD]", WORDPIECE_CONTINUATION + b"yy"], special={0})
    c = compare(a, b)
    assert c.verdict == "unrelated" and c.shared == 0 and c.jaccard == 0.0 and c.merge_prefix is None
