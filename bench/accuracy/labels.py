"""Ground truth from transformers' own `# Copied from` annotations.

transformers marks copied code with a comment directly above the copy (its CI checks that the
copy still equals the target after the renames):

    # Copied from transformers.models.llama.modeling_llama.LlamaRMSNorm with Llama->Mistral
    class MistralRMSNorm(nn.Module):

The target is a dotted path: a module (a file under the package) followed by a symbol, which
may be a method (`Class.method`). Renames are `A->B` pairs separated by commas, optionally
followed by `all-casing` (the rename applies to lower- and upper-case forms as well).

Labels are on (file path, qualified symbol). Copy groups are the connected components of the
Copied-from graph over (file, top-level symbol): a copy of a copy is a copy of the original.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

COPIED_RE = re.compile(
    r"^\s*#\s*Copied from\s+(?P<target>transformers(?:\.\w+)+)"
    r"(?:\s+with\s+(?P<renames>.*?))?\s*$"
)
_RENAME_RE = re.compile(r"\s*([^,\s]+?)\s*->\s*([^,\s]+)\s*")
ROLES = ("Attention", "MLP", "RMSNorm", "DecoderLayer", "EncoderLayer", "Embeddings", "LayerNorm",
         "SelfOutput", "Intermediate", "Output", "Pooler", "Block")


@dataclass(frozen=True)
class CopiedFrom:
    target: str  # dotted path, e.g. transformers.models.llama.modeling_llama.LlamaRMSNorm
    renames: tuple[tuple[str, str], ...] = ()
    all_casing: bool = False


def parse_copied_from(line: str) -> CopiedFrom | None:
    """The annotation on one comment line, or None when the line is not one."""
    m = COPIED_RE.match(line)
    if not m:
        return None
    text = (m.group("renames") or "").strip()
    all_casing = text.endswith("all-casing")
    if all_casing:
        text = text[: -len("all-casing")].strip()
    renames = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        r = _RENAME_RE.fullmatch(part)
        if r is None:
            return None  # not the syntax transformers' checker accepts: no label rather than a wrong one
        renames.append((r.group(1), r.group(2)))
    return CopiedFrom(m.group("target"), tuple(renames), all_casing)


def resolve(target: str, modules: set[str]) -> tuple[str, str] | None:
    """(file path, qualified symbol) of a dotted target, the module being the longest prefix that
    is a known file: transformers.models.bert.modeling_bert.BertModel.forward ->
    (transformers/models/bert/modeling_bert.py, BertModel.forward)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if path in modules:
            symbol = ".".join(parts[cut:])
            return (path, symbol) if 1 <= len(parts) - cut <= 2 else None
    return None


def framework(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "tf" if name.startswith("modeling_tf_") else "flax" if name.startswith("modeling_flax_") else "pt"


def folder(path: str) -> str:
    """The model folder of transformers/models/<folder>/..., else the file's directory."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "models" else "/".join(parts[:-1])


Symbol = tuple[str, str]  # (path, qualified symbol)


@dataclass
class Labels:
    positives: list[tuple[Symbol, Symbol, CopiedFrom]] = field(default_factory=list)  # (copy, target, annotation)
    unresolved: list[tuple[str, int, str]] = field(default_factory=list)  # (path, line, target)
    parent: dict[Symbol, Symbol] = field(default_factory=dict)  # union-find over (path, top-level symbol)
    links: set[frozenset[str]] = field(default_factory=set)  # folder pairs with a Copied-from link

    def group(self, sym: Symbol) -> Symbol:
        x = (sym[0], sym[1].split(".")[0])
        while self.parent.setdefault(x, x) != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Symbol, b: Symbol) -> None:
        ra, rb = self.group(a), self.group(b)
        if ra != rb:
            self.parent[ra] = rb


def collect(files: dict[str, list[tuple[int, str]]], symbols: dict[str, dict[int, str]]) -> Labels:
    """Labels from each file's comments [(line, text)] and its definitions {start line: symbol}.

    An annotation labels the definition that starts on the next line (decorators included in the
    definition's lines, as provscan's fragments have them).
    """
    modules = set(files)
    labels = Labels()
    for path in sorted(files):
        starts = symbols.get(path, {})
        for line, text in files[path]:
            note = parse_copied_from(text)
            if note is None:
                continue
            copy_symbol = starts.get(line + 1)
            target = resolve(note.target, modules)
            if copy_symbol is None or target is None or target[1] not in symbols.get(target[0], {}).values():
                labels.unresolved.append((path, line, note.target))
                continue
            copy = (path, copy_symbol)
            labels.positives.append((copy, target, note))
            labels.union(copy, target)
            labels.links.add(frozenset((folder(path), folder(target[0]))))
    return labels


def negatives(labels: Labels, symbols: dict[str, dict[int, str]], per_role: int, seed: int = 7) -> list[tuple[Symbol, Symbol]]:
    """Same-role classes (Attention, MLP, ...) from two model folders with no Copied-from link
    between them and in different copy groups, both directions, at most per_role pairs a role."""
    import random

    by_role: dict[str, list[Symbol]] = defaultdict(list)
    for path, defs in sorted(symbols.items()):
        for symbol in defs.values():
            if "." not in symbol and symbol.endswith(ROLES):
                role = max((r for r in ROLES if symbol.endswith(r)), key=len)
                by_role[role].append((path, symbol))
    rng = random.Random(seed)
    out = []
    for role in sorted(by_role):
        items = by_role[role]
        pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1:]]
        rng.shuffle(pairs)
        taken = 0
        for a, b in pairs:
            if taken >= per_role:
                break
            fa, fb = folder(a[0]), folder(b[0])
            if fa == fb or frozenset((fa, fb)) in labels.links or labels.group(a) == labels.group(b):
                continue
            out += [(a, b), (b, a)]
            taken += 1
    return out
