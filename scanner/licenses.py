"""Licence and copyright detection from text (DESIGN §5-6: per-file licence and copyright notices).

A licence is recognised by its wording, never by one keyword: the text must contain several of the
licence's distinctive phrases (see ``LICENSE_PHRASES``), or an explicit ``SPDX-License-Identifier``.
Matching runs on a normalised token stream (lowercase words and version numbers, everything else
dropped), so comment markers, quotes, punctuation and line breaks do not matter. Pure stdlib.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache

__all__ = [
    "Copyright",
    "LicenseMatch",
    "LicenseInfo",
    "LICENSE_PHRASES",
    "REPO_LICENSE_FILE_RE",
    "analyse",
    "detect_licenses",
    "find_copyrights",
    "holders_match",
]


@dataclass(frozen=True)
class Copyright:
    line: int  # 1-based line in the text
    text: str  # the line as written, comment markers stripped, whitespace collapsed
    years: str | None  # "2024", "2019-2024", "2023, 2024"
    holder: str  # normalised holder (no "All rights reserved.", no leading (c)/©, no trailing punctuation)


@dataclass(frozen=True)
class LicenseMatch:
    spdx: str  # SPDX id or expression, or LicenseRef-* for model licences
    line: int | None  # 1-based line where the evidence starts
    how: str  # "spdx-id" | "header" | "full-text"
    text: str  # the evidence line(s), shortened to <= 200 chars


@dataclass(frozen=True)
class LicenseInfo:
    licenses: list[LicenseMatch]
    copyrights: list[Copyright]

    @property
    def spdx(self) -> str | None:
        """Distinct licences joined with " AND " in order found.

        A text match already named by an SPDX-License-Identifier expression is that expression's
        evidence, not an extra licence: "Apache-2.0 OR MIT" plus the Apache header stays a choice.
        """
        declared = {_canonical_id(t) for m in self.licenses if m.how == "spdx-id" for t in _expression_ids(m.spdx)}
        exprs: list[str] = []
        for m in self.licenses:
            if m.how != "spdx-id" and _canonical_id(m.spdx) in declared:
                continue
            if m.spdx not in exprs:
                exprs.append(m.spdx)
        if not exprs:
            return None
        if len(exprs) == 1:
            return exprs[0]
        # AND binds tighter than OR in SPDX: a compound OR must keep its own parentheses.
        return " AND ".join(f"({e})" if _has_top_level_or(e) else e for e in exprs)


# --------------------------------------------------------------------------------------------
# Phrase table
# --------------------------------------------------------------------------------------------
# One entry per licence. Phrases are written as in the licence and normalised at first use.
#   declare  - a sentence granting the licence by name ("licensed under the MIT License"); a complete
#              statement on its own, so it scores 2
#   key      - wording only this licence uses (title, URL, notice sentence); scores 1
#   also     - supporting wording, may be shared with other licences; scores 1
#   requires - groups of alternatives; each group must occur (and scores 1)
#   excludes - wording that means a different licence (BSD-2 vs BSD-3, -only vs -or-later)
#   full     - wording found only in the full licence text, not in a short header
# A licence matches with score >= 2 including at least one declare/key phrase, every requires group
# present and no excludes phrase present. A phrase inside a longer matched phrase does not count
# again ("deepseek" inside "deepseek license agreement").

_Spec = dict[str, tuple]
_Span = tuple[int, int]  # [start, end) in the normalised buffer

_GNU_ALSO = (
    "this program is free software",
    "this library is free software",
    "without even the implied warranty of merchantability",
    "gnu.org/licenses",
    "free software foundation",
)


def _gnu(kind: str, names: tuple[str, ...], version: str, dated_title: str) -> dict[str, _Spec]:
    """The -only and -or-later entries of one GNU licence version; they differ only in 'any later version'."""
    spdx_version = version if "." in version else f"{version}.0"
    versions = (version, spdx_version) if version != spdx_version else (version,)
    markers = tuple(
        m
        for v in versions
        for m in (f"version {v} of the license", f"either version {v}", *(f"{n} version {v}" for n in names),
                  *(f"version {v} of the {n}" for n in names), *(f"{n} v{v}" for n in names))
    )
    or_later = ("(at your option) any later version",
                *(m for v in versions for m in (f"version {v} or later", f"version {v} or any later version",
                                                 f"v{v} or later")))
    key = (*(p for n in names for p in (f"modify it under the terms of the {n}",
                                        f"you should have received a copy of the {n}",
                                        f"see the {n} for more details")),
           dated_title)
    base: _Spec = {"key": key, "also": _GNU_ALSO, "full": (dated_title,)}
    return {
        f"{kind}-{spdx_version}-only": {**base, "requires": (markers,), "excludes": or_later},
        f"{kind}-{spdx_version}-or-later": {**base, "requires": (markers, or_later)},
    }


_GPL = ("GNU General Public License",)
_LGPL = ("GNU Lesser General Public License",)
_LIBGPL = ("GNU Library General Public License",)
_AGPL = ("GNU Affero General Public License",)
_BSD_REDIST = "Redistribution and use in source and binary forms, with or without modification, are permitted"
_BSD_ALSO = (
    "Redistributions of source code must retain the above copyright notice",
    "Redistributions in binary form must reproduce the above copyright notice",
    'this software is provided by the copyright holders and contributors "as is"',
)
_BSD_NO_ENDORSE = (
    "Neither the name of",
    "may be used to endorse or promote products derived from this software",
    "may not be used to endorse or promote products derived from this software",
)
_BSD_ADVERTISING = "All advertising materials mentioning features or use of this software must display"
_LLAMA_ALSO = ("Meta Platforms", "Llama Materials", "700 million monthly active users", "Acceptable Use Policy")
_QWEN_ALSO = ("Alibaba Cloud", "Tongyi Qianwen Materials", "Qwen Materials", "100 million monthly active users",
              "Release Date")

LICENSE_PHRASES: dict[str, _Spec] = {
    "Apache-2.0": {
        "declare": ("licensed under the Apache License, Version 2.0", "licensed under the Apache License 2.0",
                    "released under the Apache License, Version 2.0", "licensed under the Apache 2.0 license"),
        "key": ("Apache License, Version 2.0", "Apache License 2.0", "apache.org/licenses/LICENSE-2.0",
                "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"),
        "also": ("you may not use this file except in compliance with the License",
                 'distributed under the License is distributed on an "AS IS" BASIS',
                 "WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied",
                 "See the License for the specific language governing permissions and limitations under the License",
                 "Grant of Copyright License", "Grant of Patent License"),
        "full": ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "Apache License Version 2.0, January 2004"),
    },
    "MIT": {
        "declare": ("licensed under the MIT License", "released under the MIT License",
                    "distributed under the MIT License", "under the terms of the MIT License"),
        "key": ("Permission is hereby granted, free of charge, to any person obtaining a copy", "MIT License",
                "opensource.org/licenses/MIT"),
        "also": ("The above copyright notice and this permission notice shall be included in all copies or "
                 "substantial portions of the Software",
                 "to deal in the Software without restriction",
                 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND'),
        "full": ("Permission is hereby granted, free of charge, to any person obtaining a copy",),
    },
    "BSD-4-Clause": {
        "key": (_BSD_REDIST,), "also": _BSD_ALSO, "requires": ((_BSD_REDIST,), (_BSD_ADVERTISING,)),
        "full": (_BSD_REDIST,),
    },
    "BSD-3-Clause": {
        "key": (_BSD_REDIST,), "also": _BSD_ALSO, "requires": ((_BSD_REDIST,), _BSD_NO_ENDORSE),
        "excludes": (_BSD_ADVERTISING,), "full": (_BSD_REDIST,),
    },
    "BSD-2-Clause": {
        "key": (_BSD_REDIST,), "also": _BSD_ALSO, "requires": ((_BSD_REDIST,),),
        "excludes": (*_BSD_NO_ENDORSE, _BSD_ADVERTISING), "full": (_BSD_REDIST,),
    },
    **_gnu("GPL", _GPL, "2", "GNU General Public License Version 2, June 1991"),
    **_gnu("GPL", _GPL, "3", "GNU General Public License Version 3, 29 June 2007"),
    **_gnu("LGPL", _LIBGPL, "2", "GNU Library General Public License Version 2, June 1991"),
    **_gnu("LGPL", _LGPL + _LIBGPL, "2.1", "GNU Lesser General Public License Version 2.1, February 1999"),
    **_gnu("LGPL", _LGPL, "3", "GNU Lesser General Public License Version 3, 29 June 2007"),
    **_gnu("AGPL", _AGPL, "3", "GNU Affero General Public License Version 3, 19 November 2007"),
    "MPL-2.0": {
        "key": ("Mozilla Public License, v. 2.0", "Mozilla Public License Version 2.0", "mozilla.org/MPL/2.0"),
        "also": ("This Source Code Form is subject to the terms of the Mozilla Public License",
                 "If a copy of the MPL was not distributed with this file",
                 "Exhibit A - Source Code Form License Notice", "Incompatible With Secondary Licenses"),
        "full": ("Exhibit A - Source Code Form License Notice",),
    },
    "LicenseRef-Llama-2-Community": {
        "key": ("Llama 2 Community License", "Llama 2 Version Release Date", "Llama 2 Acceptable Use Policy",
                "ai.meta.com/llama/use-policy"),
        "also": _LLAMA_ALSO,
        "full": ("Llama 2 Version Release Date",),
    },
    "LicenseRef-Llama-3-Community": {
        "key": ("Llama 3 Community License", "Llama 3 Version Release Date", "Built with Meta Llama 3",
                "Llama 3 Acceptable Use Policy", "llama.meta.com/llama3/use-policy"),
        "also": _LLAMA_ALSO,
        "full": ("Llama 3 Version Release Date",),
    },
    "LicenseRef-Llama-3.1-Community": {
        "key": ("Llama 3.1 Community License", "Llama 3.1 Version Release Date", "Llama 3.1 Acceptable Use Policy",
                "llama.meta.com/llama3_1/use-policy"),
        "also": (*_LLAMA_ALSO, "Built with Llama"),
        "full": ("Llama 3.1 Version Release Date",),
    },
    "LicenseRef-Llama-3.2-Community": {
        "key": ("Llama 3.2 Community License", "Llama 3.2 Version Release Date", "Llama 3.2 Acceptable Use Policy",
                "llama.com/llama3_2/use-policy"),
        "also": (*_LLAMA_ALSO, "Built with Llama"),
        "full": ("Llama 3.2 Version Release Date",),
    },
    "LicenseRef-Llama-3.3-Community": {
        "key": ("Llama 3.3 Community License", "Llama 3.3 Version Release Date", "Llama 3.3 Acceptable Use Policy",
                "llama.com/llama3_3/use-policy"),
        "also": (*_LLAMA_ALSO, "Built with Llama"),
        "full": ("Llama 3.3 Version Release Date",),
    },
    "LicenseRef-Llama-4-Community": {
        "key": ("Llama 4 Community License", "Llama 4 Version Effective Date", "Llama 4 Acceptable Use Policy",
                "llama.com/llama4/use-policy"),
        "also": (*_LLAMA_ALSO, "Built with Llama"),
        "full": ("Llama 4 Version Effective Date",),
    },
    "LicenseRef-Tongyi-Qianwen": {
        "key": ("Tongyi Qianwen License Agreement", "Qwen License Agreement"),
        "also": _QWEN_ALSO,
        # The research licence's title contains neither key, but guard against its body naming both.
        "excludes": ("Tongyi Qianwen Research License Agreement", "Qwen Research License Agreement"),
        "full": ("Release Date",),
    },
    "LicenseRef-Qwen-Research": {
        "key": ("Tongyi Qianwen Research License Agreement", "Qwen Research License Agreement"),
        "also": (*_QWEN_ALSO, "non-commercial"),
        "full": ("Release Date",),
    },
    "LicenseRef-DeepSeek-Model": {
        "key": ("DeepSeek License Agreement",),
        "also": ("DeepSeek", "Complementary Material", "Use Restrictions"),
        "full": ("DeepSeek License Agreement Version 1.0",),
    },
    "LicenseRef-Gemma": {
        "key": ("Gemma Terms of Use", "ai.google.dev/gemma/terms", "Gemma Prohibited Use Policy",
                "ai.google.dev/gemma/prohibited_use_policy"),
        "also": ("Google", "Model Derivatives", "Hosted Service"),
        "full": ("Gemma Terms of Use Last modified",),
    },
}


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------
# Words and dotted version numbers ("2.0", "3.1"); "3" and "3.1" are different tokens, so Llama 3
# phrases never match Llama 3.1 text and "version 2" never matches "version 2.1".
_TOKEN_RE = re.compile(r"[^\W_]+(?:\.\d+)*")


def _norm(text: str) -> str:
    return " ".join(_TOKEN_RE.findall(text.casefold()))


@dataclass(frozen=True)
class _Rule:
    spdx: str
    weights: dict[str, int]  # scored phrase -> score
    keys: frozenset[str]  # declare + key phrases
    requires: tuple[tuple[str, ...], ...]
    excludes: tuple[str, ...]
    full: tuple[str, ...]
    phrases: frozenset[str]  # everything to look for
    strong: frozenset[str]  # keys and required wording: where evidence starts
    key_words: tuple[frozenset[str], ...]  # the words of each key phrase: a text lacking some word lacks the phrase


@cache
def _rules() -> tuple[_Rule, ...]:
    rules = []
    for spdx, spec in LICENSE_PHRASES.items():
        weights: dict[str, int] = {}
        for p in spec.get("declare", ()):
            weights[_norm(p)] = 2
        for p in (*spec.get("key", ()), *spec.get("also", ()), *(a for g in spec.get("requires", ()) for a in g)):
            weights.setdefault(_norm(p), 1)
        keys = frozenset(_norm(p) for p in (*spec.get("declare", ()), *spec.get("key", ())))
        requires = tuple(tuple(_norm(a) for a in g) for g in spec.get("requires", ()))
        excludes = tuple(_norm(p) for p in spec.get("excludes", ()))
        full = tuple(_norm(p) for p in spec.get("full", ()))
        rules.append(_Rule(spdx, weights, keys, requires, excludes, full, frozenset(weights).union(excludes, full),
                           keys.union(a for g in requires for a in g), tuple(frozenset(k.split()) for k in keys)))
    return tuple(rules)


@lru_cache(maxsize=65536)
def _norm_line(line: str) -> str:
    """A line's tokens, each followed by a space; a project's files repeat their notice lines."""
    toks = _TOKEN_RE.findall(line.casefold())
    return " ".join(toks) + " " if toks else ""


class _Normalised:
    """The token stream of some lines, with a map from buffer offset back to line number."""

    def __init__(self, lines: list[str]) -> None:
        parts = [" "]
        size = 1
        self.starts: list[int] = []
        for line in lines:
            self.starts.append(size)
            chunk = _norm_line(line) if line else ""  # file headers are mostly blank lines
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        self.buf = _mask_gnu_appendix("".join(parts))
        self.words = frozenset(self.buf.split())
        self._seen: dict[str, list[_Span]] = {}  # rules share phrases (the twelve GNU rules most)

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)  # 1-based: index of last line starting at or before offset, +1

    def occurrences(self, phrase: str, limit: int = 64) -> list[_Span]:
        if (cached := self._seen.get(phrase)) is not None:
            return cached
        pattern = f" {phrase} "
        out = []
        i = self.buf.find(pattern)
        while i != -1 and len(out) < limit:
            out.append((i + 1, i + 1 + len(phrase)))
            i = self.buf.find(pattern, i + 1)
        self._seen[phrase] = out
        return out


_APPENDIX_START = " how to apply these terms to your new "
_APPENDIX_ENDS = (" instead of this license ", " contact you by electronic and paper mail ")


def _mask_gnu_appendix(buf: str) -> str:
    """Blank the sample notice in a GNU licence's "How to Apply" appendix.

    It says "either version 3 ... or (at your option) any later version" as an example, which
    would make every full GPL text look like an -or-later grant.
    """
    start = buf.find(_APPENDIX_START)
    if start == -1:
        return buf
    for marker in _APPENDIX_ENDS:
        end = buf.find(marker, start, start + 6000)
        if end != -1:
            end += len(marker) - 1
            break
    else:
        end = min(len(buf), start + 3000)
    return buf[:start] + " " * (end - start) + buf[end:]


# --------------------------------------------------------------------------------------------
# Licence detection
# --------------------------------------------------------------------------------------------
# A licence's wording sits together: judge each key phrase's neighbourhood on its own, so that one
# text holding several licences (NOTICE, THIRD_PARTY, Debian copyright files) does not let the
# advertising clause of a BSD-4 block veto the BSD-3 block above it. Sizes are in normalised chars.
_WINDOW_BEFORE = 500
_WINDOW_AFTER = 3000


def _match_rule(rule: _Rule, norm: _Normalised) -> tuple[int, int, str] | None:
    """(evidence start, evidence end, how) for the first place the rule's wording is present, else None."""
    if not any(words <= norm.words for words in rule.key_words) or not any(norm.occurrences(k) for k in rule.keys):
        return None  # the common case: none of this licence's own wording, skip its other phrases
    found = {p: occ for p in rule.phrases if (occ := norm.occurrences(p))}
    anchors = sorted((s, p) for p in rule.keys if p in found for s in found[p])
    judged_until = -1
    for start, phrase in anchors:
        if start[0] < judged_until:
            continue  # same notice as a window already judged: a later anchor must not escape its excludes
        # a key phrase seen a second time starts another notice; so does an earlier copy of the anchor
        lo = max([start[0] - _WINDOW_BEFORE] + [e for _, e in found[phrase] if e <= start[0]])
        hi = start[1] + _WINDOW_AFTER
        for key in rule.keys.intersection(found):
            later = [s for s, _ in found[key] if s >= start[0]]
            if len(later) > 1:
                hi = min(hi, later[1])
        local = {p: inside for p, occ in found.items() if (inside := [o for o in occ if lo <= o[0] and o[1] <= hi])}
        verdict = _judge(rule, local)
        if verdict:
            return verdict
        judged_until = hi
    return None


def _judge(rule: _Rule, found: dict[str, list[_Span]]) -> tuple[int, int, str] | None:
    if any(p in found for p in rule.excludes):
        return None
    if not all(any(a in found for a in group) for group in rule.requires):
        return None
    scored = {p: occ for p, occ in found.items() if p in rule.weights}
    counted: dict[str, _Span] = {}
    for phrase, occ in scored.items():
        longer = [o for q, qocc in scored.items() if len(q) > len(phrase) for o in qocc]
        free = next((s for s in occ if not any(o[0] <= s[0] and s[1] <= o[1] for o in longer)), None)
        if free is not None:
            counted[phrase] = free
    if sum(rule.weights[p] for p in counted) < 2 or not rule.keys.intersection(counted):
        return None
    # quote where the licence's own wording starts, not generic text ("free software") nearby
    start, end = min(span for p, span in counted.items() if p in rule.strong)
    how = "full-text" if any(p in found for p in rule.full) else "header"
    return start, end, how


_SPDX_ID_RE = re.compile(r"SPDX-License-Identifier\s*:\s*(?P<expr>.*)", re.I)
_COMMENT_TAIL_RE = re.compile(r"""(?:\s*(?:\*+/|-->|\"\"\"|'''|#\}|%\}|["'`,;]))+\s*$""")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*\+?")
_REF_RE = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?(?:LicenseRef|AdditionRef)-[A-Za-z0-9.\-]+")
# SPDX ids without a version number; anything else must carry one ("Apache-2.0", "BSD-3-Clause").
_BARE_IDS = frozenset({
    "mit", "isc", "unlicense", "zlib", "wtfpl", "x11", "ncsa", "postgresql", "curl", "json", "beerware",
    "libpng", "openssl", "ruby", "vim", "mit-cmu", "mit-0", "blessing", "imagemagick", "sendmail", "ntp",
    "hpnd", "fsfap", "fsful", "bsd-source-code", "bitstream-vera", "info-zip", "naumen", "xnet", "zed",
})
_TOKEN_SPLIT_RE = re.compile(r"\(|\)|[^\s()]+")


def _is_license_id(tok: str) -> bool:
    if _REF_RE.fullmatch(tok):
        return True
    if not _ID_RE.fullmatch(tok) or tok.upper() in ("AND", "OR", "WITH"):
        return False
    return any(c.isdigit() for c in tok) or tok.lower() in _BARE_IDS


def _is_exception_id(tok: str) -> bool:
    if _REF_RE.fullmatch(tok):
        return True
    return bool(_ID_RE.fullmatch(tok)) and ("exception" in tok.lower() or any(c.isdigit() for c in tok))


def _is_op(tok: str, op: str) -> bool:
    return tok in (op, op.lower())  # SPDX operators are all upper or all lower case


def _parse_term(toks: list[str], i: int) -> int | None:
    if i >= len(toks):
        return None
    if toks[i] == "(":
        j = _parse_expr(toks, i + 1)
        return j + 1 if j is not None and j < len(toks) and toks[j] == ")" else None
    if not _is_license_id(toks[i]):
        return None
    i += 1
    if i < len(toks) and _is_op(toks[i], "WITH"):
        return i + 2 if i + 1 < len(toks) and _is_exception_id(toks[i + 1]) else None
    return i


def _parse_expr(toks: list[str], i: int) -> int | None:
    j = _parse_term(toks, i)
    while j is not None and j < len(toks) and (_is_op(toks[j], "AND") or _is_op(toks[j], "OR")):
        j = _parse_term(toks, j + 1)
    return j


def _valid_expression(expr: str) -> bool:
    toks = _TOKEN_SPLIT_RE.findall(expr)
    return bool(toks) and _parse_expr(toks, 0) == len(toks)


def _expression_ids(expr: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT_RE.findall(expr)
            if t not in "()" and not any(_is_op(t, op) for op in ("AND", "OR", "WITH"))]


def _canonical_id(spdx_id: str) -> str:
    """Fold deprecated GNU ids onto current ones: "GPL-2.0" == "GPL-2.0-only", "GPL-2.0+" == "-or-later"."""
    s = spdx_id.lower()
    if s.endswith("+"):
        return s[:-1] + "-or-later"
    if re.fullmatch(r"(?:a|l)?gpl-\d\.\d", s):
        return s + "-only"
    return s


def _has_top_level_or(expr: str) -> bool:
    depth = 0
    for tok in _TOKEN_SPLIT_RE.findall(expr):
        depth += tok == "("
        depth -= tok == ")"
        if depth == 0 and _is_op(tok, "OR"):
            return True
    return False


def _spdx_matches(lines: list[str]) -> list[LicenseMatch]:
    out = []
    for i, line in enumerate(lines, 1):
        m = _SPDX_ID_RE.search(line) if line else None
        if not m:
            continue
        expr = " ".join(_COMMENT_TAIL_RE.sub("", m.group("expr")).split())
        if _valid_expression(expr):
            out.append(LicenseMatch(expr, i, "spdx-id", _shorten(_clean_line(line))))
    return out


def _text_matches(lines: list[str]) -> list[LicenseMatch]:
    norm = _Normalised(lines)
    out = []
    for rule in _rules():
        hit = _match_rule(rule, norm)
        if hit is None:
            continue
        start, end, how = hit
        first, last = norm.line_of(start), norm.line_of(end - 1)
        quoted = " ".join(c for c in (_clean_line(ln) for ln in lines[first - 1:last]) if c)
        out.append(LicenseMatch(rule.spdx, first, how, _shorten(quoted)))
    return out


def _detect(lines: list[str]) -> list[LicenseMatch]:
    found = _spdx_matches(lines) + _text_matches(lines)
    order = {"spdx-id": 0, "header": 1, "full-text": 1}
    return sorted(found, key=lambda m: (m.line or 0, order[m.how]))  # stable: table order within a line


def detect_licenses(text: str) -> list[LicenseMatch]:
    """Licences stated in text: SPDX-License-Identifier lines, then headers and full texts, by line."""
    return _detect(text.splitlines())


# --------------------------------------------------------------------------------------------
# Copyright lines
# --------------------------------------------------------------------------------------------
_COMMENT_LEAD_RE = re.compile(r"""^\s*(?:(?:\#+|//+|/\*+|\*+(?!/)|--+|;+|%+|<!--|[rRuUbB]?\"\"\"|[rRuUbB]?''')\s*)*""")
_COMMENT_END_RE = re.compile(r"""\s*(?:\*+/|-->|\"\"\"|''')\s*$""")


def _clean_line(line: str) -> str:
    """The line without comment markers, whitespace collapsed."""
    return " ".join(_COMMENT_END_RE.sub("", _COMMENT_LEAD_RE.sub("", line)).split())


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_SPDX_COPY_RE = re.compile(r"^SPDX-(?:File|Snippet)CopyrightText\s*:\s*(?P<rest>.*)$", re.I)
_ASSIGN_COPY_RE = re.compile(r"""^(?:__)?copyright(?:__)?\s*[:=]\s*[a-z]?(["'])(?P<rest>.*?)\1\s*,?$""", re.I)
_MARK = r"(?:copyright\b|copr\.|\(c\)|©|&copy;)"
_COPY_LEAD_RE = re.compile(rf"^(?:portions?\s+)?(?P<marks>(?:{_MARK}\s*[:,]?\s*)+)", re.I)
_YEAR = r"(?:19|20)\d{2}"
# "2019-2024", "2019-24", "2017-present", "2017 to present", open "2017-" (written before a space)
_YEAR_RANGE = rf"{_YEAR}(?:\s*(?:[-–—]+|\bto\b)\s*(?:{_YEAR}\b|\d{{2}}\b|present\b|now\b)|[-–—](?=\s))?"
_YEARS = rf"{_YEAR_RANGE}(?:\s*,\s*{_YEAR_RANGE})*"
_LEAD_YEARS_RE = re.compile(rf"^(?P<years>{_YEARS})(?=$|[\s,.:;])[\s,.:;]*(?P<holder>.*)$", re.I)
# "Holder 2024", "Holder, 2019-2024.", "Holder 2013. BSD license, see LICENSE" (a sentence may follow)
_TRAIL_YEARS_RE = re.compile(rf"^(?P<holder>.*?)[\s,]+\(?(?P<years>{_YEARS})\)?\s*(?:\.(?:\s.*)?)?$", re.I)
# Lines that talk about copyright inside licence texts rather than claim it.
_BOILERPLATE_RE = re.compile(
    r"above copyright notice|copyright notice and this permission notice|copyright holders and contributors"
    r"|name of copyright owner|copyright license to reproduce|\[yyyy\]|\{yyyy\}|<year>|\[year\]"
    r"|<name of author>|\[name of|<copyright holders?>|<owner>",
    re.I,
)
# First word of a "holder" that is really prose ("copyright holders", "copyright notice", "copyright law").
_PROSE_STARTS = frozenset({
    "holder", "holders", "owner", "owners", "notice", "notices", "license", "licence", "licenses", "licences",
    "law", "laws", "and", "or", "of", "to", "is", "in", "for", "on", "by", "statement", "statements",
    "protection", "infringement", "claim", "claims", "interest", "interests", "information", "assignment",
    "ownership", "status", "yyyy", "year", "date", "act", "office", "may", "shall", "this", "these", "see",
    "none", "no", "not", "unknown", "public",
})
# Template placeholders ("{__author__}", "%s", "${owner}") and public-domain dedications are not holders.
_NOT_HOLDER_RE = re.compile(r"[{}]|%s|\$\{|\bpublic domain\b", re.I)
_RESERVED_RE = re.compile(r"[\s,.;:\-–—]*\ball rights reserved\b.*$|\.\s+all(?:\s+rights)?$", re.I)  # or wrapped
_LICENSE_TAIL_RE = re.compile(r"[\s,.;:\-–—]*\b(?:licensed|released|distributed)\s+under\b.*$"
                              r"|\s*SPDX-License-Identifier.*$", re.I)
_ANGLE_RE = re.compile(r"\s*<[^>]*>")
_PAREN_URL_RE = re.compile(r"\s*\(\s*(?:https?://|www\.)[^)]*\)")
# Abbreviations whose final period belongs to the name ("Meta Platforms, Inc.").
_ABBREV_END_RE = re.compile(r"(?:\b(?:inc|ltd|co|corp|jr|sr|bros|pty|ltda)|\b(?:[a-z]\.){1,3}[a-z])\.$", re.I)


def _clean_holder(raw: str) -> str:
    h = _RESERVED_RE.sub("", raw)
    h = _LICENSE_TAIL_RE.sub("", h)
    h = _PAREN_URL_RE.sub("", _ANGLE_RE.sub("", h))
    h = re.sub(rf"^(?:{_MARK}\s*)+", "", h.strip(), flags=re.I)
    h = re.sub(r"^(?:[-–—:,;]\s*)*(?:by\s+)?", "", h, flags=re.I)
    h = h.strip(" \t\"'`")
    while True:  # trailing punctuation, except the period of "Inc." and friends
        stripped = h.rstrip(" \t,;:-–—\"'`")
        if stripped.endswith(".") and not _ABBREV_END_RE.search(stripped):
            stripped = stripped[:-1]
        if stripped == h:
            break
        h = stripped
    return " ".join(h.split())


@lru_cache(maxsize=16384)  # a project's files repeat their copyright lines
def _parse_copyright(cleaned: str) -> tuple[str | None, str] | None:
    """(years, holder) for a copyright statement, None for anything else."""
    if _BOILERPLATE_RE.search(cleaned):
        return None
    explicit = True  # a marker that cannot be prose: SPDX tag, ©, "(c)" next to years
    if m := _SPDX_COPY_RE.match(cleaned):
        rest = m.group("rest")
        rest = _COPY_LEAD_RE.sub("", rest)
    elif m := _ASSIGN_COPY_RE.match(cleaned):  # copyright = "2024, The Authors" (Sphinx conf.py)
        rest = _COPY_LEAD_RE.sub("", m.group("rest"))
    elif m := _COPY_LEAD_RE.match(cleaned):
        marks = m.group("marks").lower()
        explicit = "©" in marks or "(c)" in marks or "&copy;" in marks
        if "copyright" not in marks and "copr" not in marks and "©" not in marks and "&copy;" not in marks:
            # a bare "(c)" starts list items in licence texts ("(c) You must retain ..."): demand years
            if not _LEAD_YEARS_RE.match(cleaned[m.end():]):
                return None
        rest = cleaned[m.end():]
    else:
        return None
    years = None
    if ym := _LEAD_YEARS_RE.match(rest):
        years, rest = ym.group("years"), ym.group("holder")
    elif ym := _TRAIL_YEARS_RE.match(_RESERVED_RE.sub("", rest)):
        years, rest = ym.group("years"), ym.group("holder")
    holder = _clean_holder(rest)
    if not holder or not any(c.isalpha() for c in holder) or len(holder) > 200 or _NOT_HOLDER_RE.search(holder):
        return None
    if years is None:  # prose about copyright never carries a year right after the word
        if holder.split()[0].lower().strip(",.;:") in _PROSE_STARTS or holder.lower().startswith("the above"):
            return None
        if not explicit and not (holder[0].isupper() or holder[0].isdigit()):
            return None  # "copyright is held by ..." style prose
    if years is not None:
        years = re.sub(r"\s*,\s*", ", ", re.sub(r"\s*(?:[-–—]+|\bto\b)\s*", "-", years))
    return years, holder


def _copyrights(lines: list[str]) -> list[Copyright]:
    out = []
    for i, line in enumerate(lines, 1):
        if not line:
            continue
        low = line.lower()
        if "copyright" not in low and "(c)" not in low and "©" not in low and "&copy;" not in low and "copr." not in low:
            continue  # cheap pre-filter; most lines say nothing about copyright
        cleaned = _clean_line(line)
        parsed = _parse_copyright(cleaned)
        if parsed:
            out.append(Copyright(i, cleaned, parsed[0], parsed[1]))
    return out


def find_copyrights(text: str) -> list[Copyright]:
    """Copyright statements in text, one per line, boilerplate about copyright excluded."""
    return _copyrights(text.splitlines())


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def analyse(text: str, *, head_lines: int | None = 200) -> LicenseInfo:
    """Licences and copyrights of one file.

    Source files state theirs in the header, so only the first head_lines lines are read (a licence
    quoted in a docstring further down is not the file's licence); None reads everything (LICENSE files).
    """
    if head_lines is not None:
        end = -1
        for _ in range(head_lines):  # cut the head off before splitting: files can be large
            end = text.find("\n", end + 1)
            if end < 0:
                break
        text = text if end < 0 else text[:end]
    lines = text.splitlines()
    if head_lines is not None:
        lines = lines[:head_lines]
    return LicenseInfo(_detect(lines), _copyrights(lines))


@lru_cache(maxsize=8192)
def _holder_key(holder: str) -> str:
    h = holder.casefold().replace("&", " and ")
    h = _RESERVED_RE.sub("", h)
    h = re.sub(rf"^(?:\s*{_MARK}\s*)+", "", h, flags=re.I)
    return "".join(_TOKEN_RE.findall(h)).replace(".", "")


def holders_match(a: str, b: str) -> bool:
    """Same holder, ignoring case, punctuation, whitespace, "&" vs "and", "All rights reserved"."""
    ka, kb = _holder_key(a), _holder_key(b)
    return bool(ka) and ka == kb


REPO_LICENSE_FILE_RE = re.compile(
    # source files named like notices (licenses.py, copyright_check.sh) are code, not notices
    r"^(?!.*\.(?:py|pyi|pyx|ipynb|js|mjs|ts|c|h|cc|cpp|hpp|cu|go|rs|java|kt|rb|sh|bzl|cmake)$)"
    r"(?:(?:licen[cs]e|copying|notice|copyright|credit)s?|acknowledg(?:e?ments?)?|third[_-]?party\w*)"
    r"(?:[._\-].*)?$",
    re.I,
)
