"""The label parser of the accuracy benchmark (bench/accuracy): transformers' Copied-from syntax."""

from __future__ import annotations

from bench.accuracy.labels import CopiedFrom, collect, negatives, parse_copied_from, resolve


def test_plain_annotation_and_method_target():
    assert parse_copied_from("# Copied from transformers.models.llama.modeling_llama.LlamaRMSNorm") == CopiedFrom(
        "transformers.models.llama.modeling_llama.LlamaRMSNorm")
    assert parse_copied_from("    # Copied from transformers.models.bert.modeling_bert.BertModel.forward").target == (
        "transformers.models.bert.modeling_bert.BertModel.forward")


def test_renames_with_and_without_spaces_and_all_casing():
    note = parse_copied_from("# Copied from transformers.models.mbart.modeling_mbart.MBartAttention "
                             "with MBart->Speech2Text, MBART->SPEECH_TO_TEXT,mbart->s2t")
    assert note.renames == (("MBart", "Speech2Text"), ("MBART", "SPEECH_TO_TEXT"), ("mbart", "s2t"))
    assert not note.all_casing
    note = parse_copied_from("# Copied from transformers.models.bert.modeling_bert.BertSelfOutput with Bert->Roberta all-casing")
    assert note.renames == (("Bert", "Roberta"),) and note.all_casing


def test_not_annotations():
    assert parse_copied_from("# copied from somewhere else") is None
    assert parse_copied_from("# Copied from numpy.linalg.norm") is None
    assert parse_copied_from("# Copied from transformers.models.x.modeling_x.X with garbage") is None
    assert parse_copied_from("x = 1  # Copied from transformers.models.x.modeling_x.X") is None


def test_resolve_picks_the_longest_module_prefix():
    modules = {"transformers/models/bert/modeling_bert.py", "transformers/models/bert.py"}
    assert resolve("transformers.models.bert.modeling_bert.BertModel.forward", modules) == (
        "transformers/models/bert/modeling_bert.py", "BertModel.forward")
    assert resolve("transformers.models.bert.modeling_bert.BertModel", modules) == (
        "transformers/models/bert/modeling_bert.py", "BertModel")
    assert resolve("transformers.models.gpt2.modeling_gpt2.GPT2Model", modules) is None
    assert resolve("transformers.models.bert.modeling_bert.A.b.c", modules) is None  # too deep for a symbol


def test_groups_are_connected_components_and_negatives_avoid_linked_folders():
    a, b, c, d = (f"transformers/models/{m}/modeling_{m}.py" for m in ("aa", "bb", "cc", "dd"))
    comments = {
        a: [],
        b: [(9, "# Copied from transformers.models.aa.modeling_aa.AaAttention with Aa->Bb")],
        c: [(4, "    # Copied from transformers.models.bb.modeling_bb.BbAttention.forward"),
            (19, "# Copied from transformers.models.zz.modeling_zz.Missing")],
        d: [],
    }
    symbols = {
        a: {1: "AaAttention", 5: "AaAttention.forward"},
        b: {10: "BbAttention", 12: "BbAttention.forward"},
        c: {1: "CcAttention", 5: "CcAttention.forward"},
        d: {1: "DdAttention", 3: "DdMLP"},
    }
    labels = collect(comments, symbols)
    assert [(copy, target) for copy, target, _ in labels.positives] == [
        ((b, "BbAttention"), (a, "AaAttention")),
        ((c, "CcAttention.forward"), (b, "BbAttention.forward")),
    ]
    assert labels.unresolved == [(c, 19, "transformers.models.zz.modeling_zz.Missing")]
    # A copy of a copy is in the original's group; methods belong to their class's group.
    assert labels.group((c, "CcAttention.forward")) == labels.group((a, "AaAttention")) == labels.group((b, "BbAttention"))
    assert labels.group((d, "DdAttention")) != labels.group((a, "AaAttention"))
    pairs = negatives(labels, symbols, per_role=10)
    # Only dd has no link with the others; both directions are listed.
    assert set(pairs) == {((a, "AaAttention"), (d, "DdAttention")), ((d, "DdAttention"), (a, "AaAttention")),
                          ((b, "BbAttention"), (d, "DdAttention")), ((d, "DdAttention"), (b, "BbAttention")),
                          ((c, "CcAttention"), (d, "DdAttention")), ((d, "DdAttention"), (c, "CcAttention"))}
