"""Decide whether copied code credits its source (DESIGN §5), and quote the evidence.

Levels, strongest first: fragment (SPDX snippet block; a provenance comment naming the
reference), file (the reference's copyright holder kept; a URL of the reference; a
"generated from" banner; an import of the reference module or symbol), repo (NOTICE,
THIRD_PARTY, CREDITS, ACKNOWLEDGEMENTS, README naming the reference: weak).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache

from scanner.parse import Fragment, ParsedUnit

PROVENANCE_RE = re.compile(
    r"\b(copied|adapted|modified|derived|based|borrowed|ported|taken|forked|vendored|lifted|copy)\s+(from|on|of)\b",
    re.IGNORECASE,
)
GENERATED_RE = re.compile(r"\b(auto(matically)?[- ]?)?generated\s+(automatically\s+)?from\b", re.IGNORECASE)
URL_RE = re.compile(r"https?://[^\s'\"<>)\]]+", re.IGNORECASE)
# `# provscan: source=NAME-or-URL` at a fragment: the developer's own statement of where it came from.
SOURCE_TAG_RE = re.compile(r"#\s*provscan:\s*source\s*=\s*(?P<source>\S+)", re.IGNORECASE)
REPO_CREDIT_FILE_RE = re.compile(r"^(notice|third[_-]?party|credits|acknowledg|readme)", re.IGNORECASE)
# Names too generic to identify a reference on their own.
_GENERIC = frozenset(
    "src lib libs utils util model models common core test tests examples example python main app pkg "
    "package modeling layers ops".split()
)


@dataclass(frozen=True)
class Evidence:
    level: str  # fragment | file | repo
    path: str
    line: int
    text: str
    why: str = ""  # what the evidence shows, for people reading the report


@dataclass
class Attribution:
    status: str  # attributed | weak | unattributed
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class ReferenceTerms:
    """What identifies a reference in text: its names, URLs and top-level packages."""

    names: set[str]
    urls: set[str]
    # named_in's answers: a file with many copies asks about the same comments once per finding.
    _named: dict = field(default_factory=dict, repr=False, compare=False)
    # file_evidence's comment evidence per (unit, reference module), for the same reason.
    _comment_evidence: dict = field(default_factory=dict, repr=False, compare=False)

    def named_in(self, text: str, extra: set[str] = frozenset()) -> str | None:
        key = (text, frozenset(extra))
        if key not in self._named:
            if len(self._named) > 100_000:
                self._named.clear()
            self._named[key] = self._find_name(text, extra)
        return self._named[key]

    def _find_name(self, text: str, extra: set[str]) -> str | None:
        low = text.lower()
        for url in self.urls:
            if url and url in low:
                return url
        for term in sorted(self.names | set(extra), key=len, reverse=True):
            if _has_term(low, term.lower()):
                return term
        return None


# A word each pattern cannot match without (lowercase): most comments have none of them, and an
# ASCII comment without them is answered without running the patterns.
_PROVENANCE_WORDS = re.compile("cop|adapted|modified|derived|based|borrowed|ported|taken|forked|vendored|lifted")


@lru_cache(maxsize=65536)
def comment_signals(text: str) -> tuple[tuple[str, ...], bool, bool, str | None]:
    """What one comment may say about provenance: (its URLs, a generated-from banner?, provenance
    wording?, the source a provscan source tag names). Files repeat comments: each is read once."""
    if not text.isascii():  # the patterns ignore case the Unicode way: no lowercase shortcut
        tag = SOURCE_TAG_RE.search(text)
        return (tuple(URL_RE.findall(text)), GENERATED_RE.search(text) is not None,
                PROVENANCE_RE.search(text) is not None, tag.group("source") if tag else None)
    low = text.lower()
    urls = tuple(URL_RE.findall(text)) if "://" in text else ()
    generated = "generated" in low and GENERATED_RE.search(text) is not None
    provenance = _PROVENANCE_WORDS.search(low) is not None and PROVENANCE_RE.search(text) is not None
    tag = SOURCE_TAG_RE.search(text) if "provscan" in low else None
    return urls, generated, provenance, tag.group("source") if tag else None


def _has_term(low_text: str, term: str) -> bool:
    if len(term) < 3 or term in _GENERIC or term not in low_text:  # a substring test first: most terms are absent
        return False
    return re.search(r"(?<![\w])" + re.escape(term) + r"(?![\w])", low_text) is not None


@lru_cache(maxsize=4096)
def url_key(url: str) -> str:
    """host/path of a URL without scheme, user, .git suffix or trailing slash, lowercased."""
    u = re.sub(r"^[a-z+]+://", "", url.strip().lower())
    u = re.sub(r"^[^@/]+@", "", u)
    u = u.replace(":", "/", 1) if "://" not in url and ":" in u.split("/")[0] else u
    return re.sub(r"(\.git)?/*$", "", u)


@lru_cache(maxsize=8192)
def module_path(path: str) -> str:
    """Dotted module path of a .py file relative to its repository root (src/ layouts stripped)."""
    mod = re.sub(r"\.pyi?$", "", path).replace("/", ".")
    mod = re.sub(r"\.__init__$", "", mod)
    return re.sub(r"^(src|lib|python)\.", "", mod)


def fragment_terms(ref_path: str, ref_symbol: str | None) -> set[str]:
    """Terms naming one reference fragment: its module path, file path, file stem, top-level symbol."""
    terms = {module_path(ref_path), ref_path}
    stem = ref_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if len(stem) >= 8:
        terms.add(stem)
    if ref_symbol:
        top = ref_symbol.split(".")[0]
        if len(top) >= 4:
            terms.add(top)
        terms.add(ref_symbol)
    return terms


def _nearby_comments(unit: ParsedUnit, frag: Fragment) -> list[tuple[int, str]]:
    """Comments inside the fragment and in the comment block directly above it."""
    lines = unit.line_texts
    first = frag.start_line
    i = frag.start_line - 1  # 1-based line just above
    blank = 0
    while i >= 1 and frag.start_line - i <= 12:
        stripped = lines[i - 1].strip() if i - 1 < len(lines) else ""
        if stripped.startswith("#"):
            first = i
            blank = 0
        elif not stripped and blank == 0:
            blank += 1
        else:
            break
        i -= 1
    # unit.comments is sorted by line: slice it instead of scanning it.
    lo = bisect_left(unit.comments, (first, ""))
    hi = bisect_left(unit.comments, (frag.end_line + 1, ""))
    return unit.comments[lo:hi]


def provenance_note(unit: ParsedUnit, frag: Fragment) -> tuple[int, str] | None:
    """The provenance comment just above a fragment ("# Copied from ..."), if it has one.

    Used on the reference side: a reference fragment that says it is a copy is not the origin.
    """
    for ln, text in _nearby_comments(unit, frag):
        if ln > frag.start_line:
            break
        if comment_signals(text)[2]:
            return ln, text.strip()
    return None


def _per_unit(unit: ParsedUnit, compute):
    """compute(unit), kept on the unit: a file with many copies is asked once per finding."""
    key = "_" + compute.__name__
    if key not in unit.__dict__:
        unit.__dict__[key] = compute(unit)
    return unit.__dict__[key]


def _snippet_blocks(unit: ParsedUnit) -> list[tuple[int, int, list[tuple[int, str]]]]:
    """SPDX snippet blocks: (begin line, end line, tag lines inside)."""
    return _per_unit(unit, _find_snippet_blocks)


def _find_snippet_blocks(unit: ParsedUnit) -> list[tuple[int, int, list[tuple[int, str]]]]:
    blocks, begin, tags = [], None, []
    for ln, text in unit.comments:
        if "SPDX-SnippetBegin" in text:
            begin, tags = ln, [(ln, text)]
        elif begin is not None and "SPDX-Snippet" in text and "SPDX-SnippetEnd" not in text:
            tags.append((ln, text))
        elif begin is not None and "SPDX-SnippetEnd" in text:
            blocks.append((begin, ln, tags))
            begin = None
    return blocks


def fragment_evidence(unit: ParsedUnit, frag: Fragment, terms: ReferenceTerms, frag_terms: set[str]) -> list[Evidence]:
    evidence: list[Evidence] = []
    for begin, end, tags in _snippet_blocks(unit):
        if begin <= frag.start_line + 1 and end >= frag.end_line:
            for ln, text in tags:
                evidence.append(Evidence("fragment", unit.path, ln, text.strip(), "SPDX snippet block encloses the copy"))
    for ln, text in _nearby_comments(unit, frag):
        _, _, provenance, source = comment_signals(text)
        if source and terms.named_in(source, frag_terms):
            evidence.append(Evidence("fragment", unit.path, ln, text.strip(), "provscan source tag names the reference"))
        elif provenance:
            named = terms.named_in(text, frag_terms)
            if named:
                evidence.append(Evidence("fragment", unit.path, ln, text.strip(), f"provenance comment names {named}"))
    return evidence


def file_evidence(unit: ParsedUnit, file_holders: list[str], ref_holders: list[str], terms: ReferenceTerms,
                  ref_module: str, ref_symbol: str | None, ref_packages: set[str], holders_match) -> list[Evidence]:
    evidence: list[Evidence] = []
    for holder_line, holder in file_holders:
        if any(holders_match(holder, rh) for rh in ref_holders):
            evidence.append(Evidence("file", unit.path, holder_line, holder, "reference copyright holder retained"))
            break
    key = (id(unit), ref_module)  # the units outlive terms, which a scan makes for its findings
    if key not in terms._comment_evidence:
        terms._comment_evidence[key] = _comment_evidence(unit, terms, ref_module)
    evidence += terms._comment_evidence[key]
    top = ref_symbol.split(".")[0] if ref_symbol else None
    for imp in unit.imports:
        # `import ref.module`, or the reference symbol imported from the reference's package.
        if (imp.module == ref_module and not imp.names) or (
            top and top in imp.names and (imp.module == ref_module or imp.module.split(".")[0] in ref_packages)
        ):
            evidence.append(Evidence("file", unit.path, imp.line, _line(unit, imp.line), "imports the reference module or symbol"))
            break
    return evidence


def _comment_evidence(unit: ParsedUnit, terms: ReferenceTerms, ref_module: str) -> list[Evidence]:
    """file_evidence from the unit's comments: URLs of the reference, generated-from banners and
    provenance comments naming it."""
    evidence = []
    for ln, text, urls, generated, provenance in _telling_comments(unit):
        for url in urls:
            if any(u and url_key(url).startswith(u) for u in terms.urls):
                evidence.append(Evidence("file", unit.path, ln, text.strip(), "URL of the reference"))
                break
        if generated and terms.named_in(text, {ref_module}):
            evidence.append(Evidence("file", unit.path, ln, text.strip(), "generated-from banner names the reference"))
        elif provenance and terms.named_in(text):
            evidence.append(Evidence("file", unit.path, ln, text.strip(), "provenance comment in the file names the reference"))
    return evidence


def _telling_comments(unit: ParsedUnit) -> list[tuple[int, str, tuple[str, ...], bool, bool]]:
    """The unit's comments that could be file-level evidence: (line, text, URLs, generated-from
    banner?, provenance wording?)."""
    return _per_unit(unit, _find_telling_comments)


def _find_telling_comments(unit: ParsedUnit) -> list[tuple[int, str, tuple[str, ...], bool, bool]]:
    found = []
    for ln, text in unit.comments:
        urls, generated, provenance, _ = comment_signals(text)
        if urls or generated or provenance:
            found.append((ln, text, urls, generated, provenance))
    return found


def repo_evidence(documents: list[tuple[str, str]], terms: ReferenceTerms) -> list[Evidence]:
    """Repository-level credit files (path, text) naming the reference: weak evidence."""
    evidence = []
    for path, text in documents:
        for ln, line in enumerate(text.split("\n"), start=1):
            named = terms.named_in(line)
            if named:
                evidence.append(Evidence("repo", path, ln, line.strip()[:300], f"{path} names {named}"))
                break
    return evidence


def decide(fragment_ev: list[Evidence], file_ev: list[Evidence], repo_ev: list[Evidence]) -> Attribution:
    if fragment_ev or file_ev:
        return Attribution("attributed", fragment_ev + file_ev)
    if repo_ev:
        return Attribution("weak", repo_ev)
    return Attribution("unattributed", [])


def _line(unit: ParsedUnit, line: int) -> str:
    lines = unit.line_texts
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""
