"""The one pipeline every entry point uses: acquire -> walk -> parse -> fingerprint -> match
-> attribute + licences -> Report."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from scanner import __version__
from scanner.acquire import Acquired, acquire, default_cache_dir, redact
from scanner.attribute import (
    REPO_CREDIT_FILE_RE,
    Attribution,
    decide,
    file_evidence,
    fragment_evidence,
    fragment_terms,
    module_path,
    repo_evidence,
    url_key,
)
from scanner.errors import UsageError
from scanner.fingerprint import Params, UnitPrints, default_workers, fingerprint_sources
from scanner.licenses import REPO_LICENSE_FILE_RE, LicenseInfo, analyse, holders_match
from scanner.match import Match, ReferenceCorpus, RefLoc, descendants, iter_matches
from scanner.parse import Fragment, ParsedUnit
from scanner.parsecache import ParseCache
from scanner.reference import Reference, build_stored
from scanner.suppress import apply_inline
from scanner.artifacts import Artifacts
from scanner.artifacts import collect as collect_artifacts
from scanner.artifacts import compare as compare_artifacts
from scanner.configs import is_config
from scanner.report import Finding, Location, Report
from scanner.walk import DEFAULT_MAX_FILE_SIZE, walk_tree
from signatures.store import FORMAT, EmbeddedStore, IndexStoreError, RedisStore, open_store

# Repository documents (licences, credits) larger than this are not read.
_MAX_DOC_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    params: Params = field(default_factory=Params)
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    missing_license: bool = False
    cache_dir: Path | None = None
    timeout: float = 600.0
    index: str | None = None  # index location (directory or redis:// URL); None: the default index
    workers: int | None = None  # fingerprinting processes; None: every core
    ignore: tuple[str, ...] = ()  # scanned paths to leave out (fnmatch), from the project configuration
    require_spdx: bool = False  # licence policy: every file states an SPDX-License-Identifier
    copyright_holders: tuple[str, ...] = ()  # licence policy: every file names one of these holders
    parse_cache: bool = True  # keep parse results by content in the cache directory (scanner.parsecache)


@dataclass
class Tree:
    """A source or reference after acquire -> walk -> parse -> fingerprint."""

    name: str
    acquired: Acquired
    units: list[ParsedUnit]
    prints: list[UnitPrints]
    files: int
    skipped: list[dict]
    notes: list[dict]
    file_info: dict[str, LicenseInfo]
    repo_licenses: list[dict]  # licence/notice files at the root: path, spdx, copyright
    documents: list[tuple[str, str]]  # root-level credit files (NOTICE, README, ...) as text
    packages: set[str]  # top-level package names
    homepages: set[str] = field(default_factory=set)  # project URLs declared in package metadata
    source_bytes: int = 0
    artifacts: Artifacts = field(default_factory=Artifacts)  # model configs, tokenizers, weights

    @property
    def license(self) -> str | None:
        for doc in self.repo_licenses:
            if doc["spdx"]:
                return doc["spdx"]
        counts: dict[str, int] = defaultdict(int)
        for info in self.file_info.values():
            if info.spdx:
                counts[info.spdx] += 1
        return max(counts, key=counts.get) if counts else None


def load_tree(acquired: Acquired, name: str | None, options: ScanOptions, status=None,
              includes: list[str] | None = None, as_reference: bool = False, excludes: tuple[str, ...] = (),
              only: set[str] | None = None, meanwhile=None) -> Tree:
    """walk -> parse -> fingerprint (on every core) an acquired tree.

    as_reference: for a tree that becomes a stored reference (its texts are not kept).
    meanwhile: run in this process while the workers fingerprint (fingerprint_sources).
    """
    if status:
        status(f"reading {acquired.source}")
    walked = walk_tree(acquired.root, max_file_size=options.max_file_size, only=only)
    sources = walked.units
    if includes:
        sources = [u for u in sources if any(fnmatch.fnmatchcase(u.path, g) for g in includes)]
    ignored = sorted({u.path for u in sources if any(fnmatch.fnmatchcase(u.path, g) for g in excludes)})
    if ignored:
        sources = [u for u in sources if u.path not in set(ignored)]
    progress = (lambda done, total: status(f"fingerprinting {acquired.source}", done, total)) if status else None
    cache = ParseCache(options.cache_dir or default_cache_dir()) if options.parse_cache else None
    done = fingerprint_sources(sources, options.params, workers=options.workers, progress=progress,
                               as_reference=as_reference, cache=cache, meanwhile=meanwhile)
    units = [d.unit for d in done]
    prints = [d.prints for d in done]
    notes: list[dict] = []
    file_info: dict[str, LicenseInfo] = {}
    for d in done:
        unit = d.unit
        if unit.error_lines:
            notes.append({"path": unit.path, "kind": "syntax-error", "lines": unit.error_lines[:20],
                          "detail": "syntax errors; fragments that parse were still scanned"})
        if unit.invalid_utf8:
            notes.append({"path": unit.path, "kind": "invalid-utf8", "detail": "undecodable bytes replaced"})
        if d.license is not None:
            file_info[unit.path] = d.license
    repo_licenses, documents = _root_documents(acquired.root, walked.other_files)
    packages = {_top_package(u.path) for u in units} - {None}
    skipped = [{"path": s.path, "reason": s.reason} for s in walked.skipped]
    if status and only is None:
        status(f"reading the model artifacts of {acquired.source}")
    # The hook checks the files it is given: their model configs, not the tokenizers and weights.
    artifacts = collect_artifacts(acquired.root, walked.other_files if only is None else [],
                                  [(d.unit.path, d.architecture) for d in done if d.architecture])
    skipped += artifacts.skipped
    skipped += [{"path": "", "reason": note} for note in acquired.notes]
    skipped += [{"path": path, "reason": "ignored by the project configuration"} for path in ignored]
    files = len({u.path for u in sources}) if includes or ignored or only is not None else walked.files
    return Tree(name or acquired.name, acquired, units, prints, files, skipped, notes, file_info,
                repo_licenses, documents, packages, _metadata_urls(acquired.root, walked.other_files),
                sum(len(s.data) for s in sources), artifacts)


def default_index(options: ScanOptions) -> str:
    return str((options.cache_dir or default_cache_dir()) / "index")


def store_for(options: ScanOptions):
    """The index the options name (or the default one), with its file checks cached per user."""
    return open_store(options.index or default_index(options), options.params.index_key(), __version__,
                      checks=(options.cache_dir or default_cache_dir()) / "index-checks.json")


# References the hook server (scanner/hookserver.py) loaded once for its children to inherit:
# (index location, parameters) -> (the index's stamp when loaded, [(name, Reference)] in index
# order). Used only while the index's stamp is unchanged; empty in every other process.
_WARM: dict[tuple[str, str], tuple[tuple, list[tuple[str, Reference]]]] = {}


def _warm_key(store, options: ScanOptions) -> tuple[str, str]:
    return store.location, repr(sorted(options.params.index_key().items()))


def warm_references(options: ScanOptions) -> None:
    """Load the index the options name, with what a hook run computes from it, for later runs."""
    store = store_for(options)
    if not isinstance(store, EmbeddedStore) or not store.exists():
        return
    stamp = store.stamp()
    refs = [Reference(s) for s in store.load()]
    for ref in refs:
        ref.warm()
    if stamp is not None and stamp == store.stamp():
        _WARM.clear()  # one index at a time: the server's memory stays that of one index
        _WARM[_warm_key(store, options)] = (stamp, [(r.name, r) for r in refs])


def _warm_references(store, options: ScanOptions, names: list[str] | None) -> list[Reference] | None:
    """The warm references of this index, when it has not changed since they were loaded."""
    entry = _WARM.get(_warm_key(store, options)) if _WARM else None
    if entry is None or not isinstance(store, EmbeddedStore) or store.stamp() != entry[0]:
        return None
    by_name = dict(entry[1])
    if names is None:
        return [ref for _, ref in entry[1]]
    if not all(n in by_name for n in names):
        return None  # the usual path says which one is missing
    return [by_name[n] for n in names]


def _could_be_indexed(name: str | None, spec: str) -> bool:
    """A --reference that names an index entry, if the index has it: unnamed, name-like, no such path."""
    return name is None and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec) is not None and not Path(spec).exists()


def load_references(specs: list[tuple[str | None, str]], options: ScanOptions, status=None):
    """The references of a scan, as Reference views, and the Redis store if one serves them.

    A --reference is an index entry when it names one (and is not an existing path); otherwise a
    source, fingerprinted into a cache keyed by its resolved commit or version and the
    fingerprint parameters (local directories, which have neither, are fingerprinted afresh).
    Without any --reference, every reference in the index.
    """
    explicit_index = options.index is not None
    store = store_for(options)
    via_redis = isinstance(store, RedisStore)
    # The default index is consulted only for what could be a name in it: a scan against sources
    # must not depend on the state of an index it does not use.
    could_be_names = any(_could_be_indexed(name, spec) for name, spec in specs)
    consult = explicit_index or ((could_be_names or not specs) and store.exists())
    indexed_names = {e["name"] for e in store.references()} if consult else set()
    if not specs:
        if not indexed_names:
            raise UsageError("no references: give --reference SOURCE, or build an index first "
                             "(provscan index add NAME SOURCE)")
        warm = _warm_references(store, options, None)
        if warm is not None:
            return warm, None
        return [Reference(s, via_redis=via_redis) for s in store.load()], (store if via_redis else None)
    refs: list[Reference] = []
    wanted = [spec for name, spec in specs if name is None and spec in indexed_names and not Path(spec).exists()]
    warm = _warm_references(store, options, wanted) if wanted else None
    if warm is not None:
        loaded = {ref.name: ref for ref in warm}
    else:
        loaded = {s.meta["name"]: Reference(s, via_redis=via_redis) for s in store.load(wanted)} if wanted else {}
    for name, spec in specs:
        if name is None and spec in loaded:
            refs.append(loaded[spec])
        elif explicit_index and _could_be_indexed(name, spec):
            raise UsageError(f"no reference named {spec!r} in index {store.location}, and no such directory")
        else:
            refs.append(_reference_from_source(spec, name, options, status))
    return refs, (store if via_redis and loaded else None)


def _reference_from_source(spec: str, name: str | None, options: ScanOptions, status=None) -> Reference:
    acquired = acquire(spec, options.cache_dir, timeout=options.timeout)
    ref = _reference_from_acquired(acquired, name, options, status)
    ref.root = acquired.root  # where its text is, for the reports that show code
    return ref


def _reference_from_acquired(acquired: Acquired, name: str | None, options: ScanOptions, status=None) -> Reference:
    if acquired.kind == "local":
        return Reference(build_stored(load_tree(acquired, name, options, status, as_reference=True), options.params,
                                      tool_version=__version__), name)
    key = hashlib.sha256(json.dumps([acquired.kind, acquired.url, acquired.commit, acquired.version,
                                     options.params.index_key(), options.max_file_size, FORMAT]).encode()).hexdigest()
    cached = EmbeddedStore((options.cache_dir or default_cache_dir()) / "references" / key[:32],
                           options.params.index_key(), __version__)
    try:
        if cached.exists():
            (stored,) = cached.load()
            return Reference(stored, name or acquired.name)
    except IndexStoreError:
        pass  # a damaged cache entry is rebuilt below
    stored = build_stored(load_tree(acquired, name, options, status, as_reference=True), options.params,
                          tool_version=__version__)
    try:
        cached.add(stored)
    except IndexStoreError:
        pass  # an unwritable cache only costs the next scan a re-fingerprint
    return Reference(stored, name or acquired.name)


_URL_LABELS = re.compile(r"^(home-?page|homepage|source|source code|repository|code|github)$", re.IGNORECASE)


def _metadata_urls(root: Path, others: list[str]) -> set[str]:
    """Home and source URLs a package declares (wheel METADATA, sdist PKG-INFO): they name it in comments."""
    urls: set[str] = set()
    for rel in others:
        if rel.count("/") > 1 or not rel.endswith(("METADATA", "PKG-INFO")):
            continue
        try:
            head = (root / rel).read_bytes()[:65536].decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in head.split("\n"):
            if not line.strip():
                break  # headers end at the first blank line; the long description follows
            key, _, value = line.partition(":")
            if key.lower() == "home-page" and "://" in value:
                urls.add(url_key(value))
            elif key.lower() == "project-url":
                label, _, url = value.partition(",")
                if _URL_LABELS.match(label.strip()) and "://" in url:
                    urls.add(url_key(url))
    # Bare hosts ("github.com") would name every project on them.
    return {u for u in urls if u.count("/") >= 1 and len(u.split("/", 1)[1]) >= 3}


def _top_package(path: str) -> str | None:
    parts = path.split("/")
    if parts[0] in ("src", "lib", "python") and len(parts) > 2:
        parts = parts[1:]
    if len(parts) < 2:
        return None
    return parts[0]


def _root_documents(root: Path, others: list[str]) -> tuple[list[dict], list[tuple[str, str]]]:
    licenses, documents = [], []
    for rel in others:
        if "/" in rel:
            continue
        is_license = REPO_LICENSE_FILE_RE.match(rel) is not None
        is_credit = REPO_CREDIT_FILE_RE.match(rel) is not None
        if not (is_license or is_credit):
            continue
        path = root / rel
        try:
            if path.is_symlink() or path.stat().st_size > _MAX_DOC_BYTES:
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        if is_license:
            info = analyse(text, head_lines=None)
            licenses.append({"path": rel, "spdx": info.spdx, "copyright": [c.holder for c in info.copyrights]})
        if is_credit:
            documents.append((rel, text))
    return licenses, documents


def scan(source: str, references: list[tuple[str | None, str]], options: ScanOptions, status=None,
         only: set[str] | None = None) -> Report:
    """only: scan just these paths of the source (the pre-commit hook's changed files)."""
    started = time.monotonic()
    acquired = acquire(source, options.cache_dir, timeout=options.timeout)
    loaded = []

    def load_indexed():
        loaded.append(load_references(references, options, status))

    # References that come from the index (all of it, or names in it) are loaded while the workers
    # fingerprint the scanned files: this process is idle then. A reference given as a source is
    # fingerprinted after, with every core.
    from_index = all(_could_be_indexed(name, spec) for name, spec in references)
    scanned = load_tree(acquired, None, options, status, excludes=options.ignore, only=only,
                        meanwhile=load_indexed if from_index else None)
    refs, redis_store = loaded[0] if loaded else load_references(references, options, status)
    corpus = ReferenceCorpus(options.params, refs, redis_store)
    progress = (lambda done, total: status("matching", done, total)) if status else None
    # A model's config.json is judged by its architecture (config-copy), not as text.
    model_configs = {c["path"] for c in scanned.artifacts.configs}
    matches: list[Match] = []

    def kept():
        for m in iter_matches(scanned.units, scanned.prints, corpus, progress,
                              workers=options.workers if options.workers is not None else default_workers()):
            if scanned.units[m.unit].path not in model_configs:
                matches.append(m)
                yield m

    # Findings are made as the matches come (the workers go on verifying meanwhile).
    findings = _copy_findings(scanned, corpus, kept())
    findings += _notice_findings(scanned, corpus, matches, findings)
    findings += _artifact_findings(scanned, corpus)
    if options.missing_license:
        findings += _missing_license_findings(scanned)
    if options.require_spdx or options.copyright_holders:
        findings += _policy_findings(scanned, options)
    findings, suppressed, directive_notes = apply_inline(findings, scanned.units)
    findings.sort(key=lambda f: (f.path, f.start_line, f.kind))
    return Report(
        tool_version=__version__,
        scanned=_tree_summary(scanned, sum(len(u.fragments) for u in scanned.units)),
        references=[ref.summary() for ref in refs],
        findings=findings,
        licenses=_license_table(scanned),
        skipped=scanned.skipped,
        notes=scanned.notes + directive_notes,
        suppressed=suppressed,
        elapsed_s=round(time.monotonic() - started, 3),
        texts=SourceTexts({u.path: (None if u.cell else u.text) for u in scanned.units}, scanned.acquired.root,
                          {ref.name: ref.root for ref in refs if ref.root is not None},
                          {ref.name: ref.meta.get("repo_licenses", []) for ref in refs}),
    )


class SourceTexts:
    """The code the reports quote: scanned files from the scan itself, reference files from the
    reference's tree when this scan acquired it (an index holds no text). Never follows a path
    out of its tree; a file over 2 MB or unreadable gives None."""

    _LIMIT = 2 * 1024 * 1024

    def __init__(self, scanned: dict[str, str | None], scanned_root: Path | None, reference_roots: dict[str, Path],
                 licence_files: dict[str, list[dict]] | None = None) -> None:
        self.scanned, self.scanned_root, self.roots = scanned, scanned_root, reference_roots
        self.licence_files = licence_files or {}

    def licence_text(self, name: str, licence_id: str) -> str | None:
        """The text of the reference's own licence file that states licence_id, if this scan has it."""
        for doc in self.licence_files.get(name, []):
            if licence_id in (doc.get("spdx") or ""):
                data = self.raw("reference", name, doc["path"])
                if data:
                    return data.decode("utf-8", errors="replace")
        return None

    def __call__(self, side: str, name: str | None, path: str) -> list[str] | None:
        if side == "scanned" and path in self.scanned:
            text = self.scanned[path]  # a notebook's lines are its cells': no one text to quote
            return text.split("\n") if text is not None else None
        data = self.raw(side, name, path)
        return data.decode("utf-8", errors="replace").split("\n") if data is not None else None

    def paths(self) -> list[str]:
        """The scanned files."""
        return sorted(self.scanned)

    def raw(self, side: str, name: str | None, path: str) -> bytes | None:
        """The file's bytes as they are on disk."""
        root = self.scanned_root if side == "scanned" else self.roots.get(name or "")
        if root is None:
            return None
        try:
            base = root.resolve()
            target = (base / path).resolve()
            if base not in target.parents or not target.is_file() or target.stat().st_size > self._LIMIT:
                return None
            return target.read_bytes()
        except OSError:
            return None


def _tree_summary(tree: Tree, fragments: int) -> dict:
    a = tree.acquired
    return {"source": redact(a.source), "commit": a.commit, "version": a.version, "files": tree.files,
            "fragments": fragments}


def _license_table(tree: Tree) -> list[dict]:
    rows = [dict(doc) for doc in tree.repo_licenses]
    for path, info in sorted(tree.file_info.items()):
        if info.spdx or info.copyrights:
            rows.append({"path": path, "spdx": info.spdx, "copyright": [c.holder for c in info.copyrights]})
    return rows


def _finding_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:16]


def _ref_location(corpus: ReferenceCorpus, loc: RefLoc, with_notice: bool = True) -> Location:
    ref = corpus.refs[loc.ref]
    path, cell, frag = ref.fragment(loc.frag)
    notice = ref.file_notice(path)
    copyright_lines = [c.text for c in notice.copyrights] if notice else []
    if with_notice and not copyright_lines:
        copyright_lines = ref.repo_holders
    note = corpus.copied_note(loc)
    return Location(ref.name, path, frag.start_line, frag.end_line, frag.symbol, cell,
                    (notice.spdx if notice and notice.spdx else ref.license), copyright_lines,
                    {"line": note[0], "text": note[1]} if note else None)


def _copy_findings(scanned: Tree, corpus: ReferenceCorpus, matches: Iterable[Match]) -> list[Finding]:
    terms = [r.terms() for r in corpus.refs]
    # The same few copies are listed by many findings: each Location is built once (none is changed).
    where = lru_cache(maxsize=None)(lambda loc, with_notice=True: _ref_location(corpus, loc, with_notice))
    repo_ev = [repo_evidence(scanned.documents, t) for t in terms]
    findings: list[Finding] = []
    seen_ids: dict[str, int] = defaultdict(int)
    for m in matches:
        unit = scanned.units[m.unit]
        frag = unit.fragments[m.frag]
        ref, ref_path, ref_frag = corpus.fragment(m.ref)
        refloc = where(m.ref)
        fterms = fragment_terms(ref_path, ref_frag.symbol)
        frag_ev = fragment_evidence(unit, frag, terms[m.ref.ref], fterms)
        for member in descendants(m):
            _, m_path, mf = corpus.fragment(member.ref)
            frag_ev += [e for e in fragment_evidence(unit, unit.fragments[member.frag], terms[m.ref.ref],
                                                     fragment_terms(m_path, mf.symbol)) if e not in frag_ev]
        info = scanned.file_info.get(unit.path)
        holders = [(c.line, c.holder) for c in info.copyrights] if info else []
        ref_notice = ref.file_notice(ref_path)
        ref_holders = ([c.holder for c in ref_notice.copyrights] if ref_notice and ref_notice.copyrights
                       else ref.repo_holders)
        file_ev = file_evidence(unit, holders, ref_holders, terms[m.ref.ref], module_path(ref_path),
                                ref_frag.symbol, ref.packages, holders_match)
        attribution = decide(frag_ev, file_ev, repo_ev[m.ref.ref])
        kind = "attributed-copy" if attribution.status == "attributed" else "unattributed-copy"
        severity = {"attributed": "note", "weak": "warning", "unattributed": "error"}[attribution.status]
        base_id = _finding_id("copy", unit.path, unit.cell, frag.symbol, ref.name, ref_path, ref_frag.symbol)
        seen_ids[base_id] += 1
        fid = base_id if seen_ids[base_id] == 1 else _finding_id(base_id, seen_ids[base_id])
        findings.append(Finding(
            id=fid, kind=kind, severity=severity, path=unit.path, cell=unit.cell,
            start_line=frag.start_line, end_line=frag.end_line, symbol=frag.symbol,
            clone_type=m.clone_type, similarity=round(m.similarity, 4),
            similarity_concrete=round(m.similarity_concrete, 4), reference=refloc, attribution=attribution,
            message=_copy_message(frag, m, refloc, attribution),
            matched_lines=[b.to_dict() for b in m.blocks],
            members=[_member(scanned, where, x) for x in descendants(m)],
            other_locations=[where(o, with_notice=False) for o in m.others],
            other_count=m.other_count,
        ))
    return findings


def _member(scanned: Tree, where, m: Match) -> dict:
    frag = scanned.units[m.unit].fragments[m.frag]
    loc = where(m.ref, with_notice=False)
    out = {"symbol": frag.symbol, "start_line": frag.start_line, "end_line": frag.end_line,
           "clone_type": m.clone_type, "similarity": round(m.similarity, 4),
           "reference": {"name": loc.name, "path": loc.path, "start_line": loc.start_line,
                         "end_line": loc.end_line, "symbol": loc.symbol}}
    if m.other_count:
        # The member is named inside its host's reference; the same code elsewhere (often the
        # original the host itself copied) is listed too, best first.
        others = [where(o, with_notice=False) for o in m.others[:_MEMBER_OTHERS]]
        out["other_locations"] = {"count": m.other_count, "locations": [
            {"name": o.name, "path": o.path, "start_line": o.start_line, "end_line": o.end_line, "symbol": o.symbol}
            for o in others]}
    return out


_MEMBER_OTHERS = 5  # alternative locations listed per member (a finding may have hundreds of members)


def _what(frag: Fragment) -> str:
    return f"{frag.kind} {frag.symbol}" if frag.symbol else f"this {frag.kind}"


def _copy_message(frag: Fragment, m: Match, ref: Location, attribution: Attribution) -> str:
    where = f"{ref.name}:{ref.path}:{ref.start_line}-{ref.end_line}" + (f" ({ref.symbol})" if ref.symbol else "")
    licence = f" under {ref.license}" if ref.license else ""
    clone = {"exact": "an exact copy", "renamed": "a renamed copy", "modified": "a modified copy"}[m.clone_type]
    head = f"{_what(frag)} is {clone} of {where}{licence}"
    if attribution.status == "attributed":
        return f"{head}; credited ({attribution.evidence[0].why})."
    if attribution.status == "weak":
        return (f"{head}; credited only at repository level ({attribution.evidence[0].path}): "
                f"add a provenance comment or SPDX snippet tag at the copy.")
    return (f"{head}, with no credit: keep the reference's copyright and licence notice and add a "
            f"provenance comment (e.g. '# Adapted from {ref.symbol or ref.path}') or an SPDX snippet tag.")


def _notice_findings(scanned: Tree, corpus: ReferenceCorpus, matches: list[Match],
                     copies: list[Finding]) -> list[Finding]:
    """Copied code whose reference file carries a copyright holder that the scanned file lacks."""
    groups: dict[tuple[str, int | None, int, str], list[tuple[Match, Finding]]] = defaultdict(list)
    for m, f in zip(matches, copies):
        _, ref_path, _ = corpus.fragment(m.ref)
        groups[(f.path, f.cell, m.ref.ref, ref_path)].append((m, f))
    out = []
    for (path, cell, ri, ref_path), items in groups.items():
        ref = corpus.refs[ri]
        ref_info = ref.file_notice(ref_path)
        if not ref_info or not ref_info.copyrights:
            continue
        info = scanned.file_info.get(path)
        held = [c.holder for c in info.copyrights] if info else []
        missing = [c for c in ref_info.copyrights if not any(holders_match(c.holder, h) for h in held)]
        if not missing:
            continue
        first = min(items, key=lambda it: it[1].start_line)[1]
        last_line = max(f.end_line for _, f in items)
        symbols = [f.symbol or f"lines {f.start_line}-{f.end_line}" for _, f in items]
        loc = first.reference
        notice = "; ".join(c.text for c in missing)
        out.append(Finding(
            id=_finding_id("notice-removed", path, cell, ref.name, ref_path),
            # Credited copies without the notice still breach most licences, but a reviewer has a
            # lead to follow: an error only when the copies are not credited either.
            kind="notice-removed", severity="error" if any(f.attribution and f.attribution.status != "attributed"
                                                           for _, f in items) else "warning",
            path=path, cell=cell,
            start_line=first.start_line, end_line=last_line, symbol=None,
            clone_type=None, similarity=max(f.similarity for _, f in items), similarity_concrete=None,
            reference=Location(ref.name, ref_path, loc.start_line, loc.end_line, loc.symbol, loc.cell,
                               loc.license, [c.text for c in ref_info.copyrights]),
            attribution=items[0][1].attribution,
            message=(f"{path} copies {', '.join(symbols)} from {ref.name}:{ref_path} but lacks its copyright "
                     f"notice ({notice}): restore the notice next to the copied code."),
        ))
    return out


# Severity of an artifact finding nothing credits; one the repository credits is a note.
_ARTIFACT_SEVERITY = {"weight-copy": "error", "weight-lineage": "error", "tokenizer-copy": "warning",
                      "tokenizer-derived": "warning", "config-copy": "warning"}


def _artifact_findings(scanned: Tree, corpus: ReferenceCorpus) -> list[Finding]:
    """Configs, tokenizers and weights related to a reference's, and configs contradicting their
    own weights. Artifacts carry no comments: their credit is the repository's (model card,
    NOTICE, README naming the reference)."""
    out: list[Finding] = []
    for m in scanned.artifacts.mismatches:
        c = m["contradiction"]
        out.append(Finding(
            id=_finding_id("config-mismatch", m["path"], c.field, c.tensor_name), kind="config-mismatch",
            severity="warning", path=m["path"], cell=None, start_line=1, end_line=1, symbol=c.field,
            clone_type=None, similarity=None, similarity_concrete=None, reference=None, attribution=None,
            message=f"{c.message} (weights in {m['weights']}): the config does not describe these weights.",
            details={"field": c.field, "declared": c.declared, "stored": _plain(c.stored), "tensor": c.tensor_name}))
    if not scanned.artifacts:
        return out
    refs = [(ref.name, ref.artifacts) for ref in corpus.refs]
    by_name = {ref.name: ref for ref in corpus.refs}
    for m in compare_artifacts(scanned.artifacts, refs):
        ref = by_name[m.reference]
        evidence = repo_evidence(scanned.documents, ref.terms())
        attribution = Attribution("attributed", evidence) if evidence else Attribution("unattributed", [])
        severity = "note" if evidence else _ARTIFACT_SEVERITY[m.kind]
        credit = ("" if evidence else
                  f" Nothing in the repository credits {ref.name}: name it, with its licence, in the model card or NOTICE.")
        out.append(Finding(
            id=_finding_id(m.kind, m.path, ref.name, m.reference_path), kind=m.kind, severity=severity,
            path=m.path, cell=None, start_line=1, end_line=1, symbol=None, clone_type=None, similarity=None,
            similarity_concrete=None,
            reference=Location(ref.name, m.reference_path, 1, 1, None, None, ref.license, ref.repo_holders),
            attribution=attribution, message=m.message + credit, details=m.details))
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _policy_findings(scanned: Tree, options: ScanOptions) -> list[Finding]:
    """The project's licence policy: an SPDX id in every file, a given copyright holder in every file."""
    out = []
    for path in sorted({u.path for u in scanned.units}):
        if not _has_code(scanned, path):
            continue
        info = scanned.file_info.get(path)
        problems = []
        if options.require_spdx and not (info and any(m.how == "spdx-id" for m in info.licenses)):
            problems.append("states no SPDX-License-Identifier")
        if options.copyright_holders and not (info and any(
                holders_match(c.holder, h) for c in info.copyrights for h in options.copyright_holders)):
            problems.append("names none of the required copyright holders (" + ", ".join(options.copyright_holders) + ")")
        if problems:
            out.append(Finding(
                id=_finding_id("license-policy", path), kind="license-policy", severity="warning", path=path,
                cell=None, start_line=1, end_line=1, symbol=None, clone_type=None, similarity=None,
                similarity_concrete=None, reference=None, attribution=None,
                message=f"{path} " + " and ".join(problems) + ": the project's licence policy requires it in every file's header.",
            ))
    return out


def _has_code(scanned: Tree, path: str) -> bool:
    """Empty files (e.g. a bare __init__.py) need no notice, nor do configs (JSON cannot hold one)."""
    return not is_config(path) and any(len(pr.abs_tok) for u, pr in zip(scanned.units, scanned.prints) if u.path == path)


def _missing_license_findings(scanned: Tree) -> list[Finding]:
    out = []
    for path, info in sorted(scanned.file_info.items()):
        if info.licenses or not _has_code(scanned, path):
            continue
        out.append(Finding(
            id=_finding_id("missing-license", path), kind="missing-license", severity="warning", path=path,
            cell=None, start_line=1, end_line=1, symbol=None, clone_type=None, similarity=None,
            similarity_concrete=None, reference=None, attribution=None,
            message=f"{path} has no licence information: add an SPDX-License-Identifier line to its header.",
        ))
    return out
