"""SPDX 2.3 JSON: the scanned files (with SHA1) and one Snippet per copied fragment.

A snippet names its file, its byte range and line range, the reference's licence as
`licenseConcluded` (an SPDX expression, or a LicenseRef described in
`hasExtractedLicensingInfos`), the reference's copyright lines, and a comment naming the
reference location. Files and byte ranges come from the scanned tree as it is on disk.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re

from reports.json_report import dumps

_IDSTRING = re.compile(r"[^A-Za-z0-9.-]+")
_LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")


def _spdx_id(prefix: str, text: str) -> str:
    return f"SPDXRef-{prefix}-" + _IDSTRING.sub("-", text).strip("-")[:80] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def _line_offsets(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Byte range (1-based, inclusive) of lines start..end, their last newline excluded."""
    lines = data.split(b"\n")
    first = sum(len(line) + 1 for line in lines[:start - 1])
    size = sum(len(line) + 1 for line in lines[start - 1:end]) - 1
    return first + 1, max(first + 1, first + size)


def render_spdx(report) -> str:
    texts = report.texts
    source = str(report.scanned.get("source"))
    files: dict[str, dict] = {}
    for path in sorted({f.path for f in report.findings} | set(texts.paths() if texts is not None else [])):
        data = texts.raw("scanned", None, path) if texts is not None else None
        if data is None:
            continue
        files[path] = {"SPDXID": _spdx_id("File", path), "fileName": "./" + path,
                       "checksums": [{"algorithm": "SHA1", "checksumValue": hashlib.sha1(data).hexdigest()}],
                       "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION", "_data": data}
    extracted: dict[str, dict] = {}
    snippets = []
    for f in report.findings:
        if f.kind not in ("attributed-copy", "unattributed-copy") or f.path not in files or f.reference is None:
            continue
        ref = f.reference
        file_id = files[f.path]["SPDXID"]
        lo, hi = _line_offsets(files[f.path]["_data"], f.start_line, f.end_line)
        licence = ref.license or "NOASSERTION"
        for ref_id in _LICENSE_REF.findall(licence):
            if ref_id not in extracted:
                text = texts.licence_text(ref.name, ref_id) if texts is not None else None
                extracted[ref_id] = {
                    "licenseId": ref_id, "name": ref_id[len("LicenseRef-"):],
                    "extractedText": text or (f"The licence of reference {ref.name}, which provscan identified as "
                                              f"{ref_id} from its notices; its licence file was not part of this scan."),
                    "comment": ("Text of the reference's licence file." if text else
                                "Licence text not available to this scan (scan with --reference SOURCE to include it).")}
        where = f"{ref.name}:{ref.path}:{ref.start_line}-{ref.end_line}" + (f" ({ref.symbol})" if ref.symbol else "")
        snippets.append({
            "SPDXID": _spdx_id("Snippet", f"{f.id}"),
            "snippetFromFile": file_id,
            "ranges": [{"startPointer": {"offset": lo, "reference": file_id}, "endPointer": {"offset": hi, "reference": file_id}},
                       {"startPointer": {"lineNumber": f.start_line, "reference": file_id},
                        "endPointer": {"lineNumber": f.end_line, "reference": file_id}}],
            "licenseConcluded": licence, "licenseInfoInSnippets": ["NOASSERTION"],
            "copyrightText": "\n".join(ref.copyright) if ref.copyright else "NOASSERTION",
            "name": f.symbol or f.path,
            "comment": f"{f.clone_type} copy (similarity {f.similarity}) of {where}; attribution: "
                       f"{f.attribution.status if f.attribution else 'n/a'}.",
        })
    file_list = [{k: v for k, v in entry.items() if k != "_data"} for entry in files.values()]
    package_id = "SPDXRef-Package-scanned"
    verification = hashlib.sha1("".join(sorted(e["checksums"][0]["checksumValue"] for e in file_list)).encode()).hexdigest()
    digest = hashlib.sha256(json.dumps([source, [e["checksums"] for e in file_list], [s["SPDXID"] for s in snippets]],
                                       sort_keys=True).encode()).hexdigest()[:32]
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"provscan report for {source}",
        "documentNamespace": f"https://spdx.org/spdxdocs/provscan-{digest}",
        "creationInfo": {"created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": [f"Tool: provscan-{report.tool_version}"]},
        "documentDescribes": [package_id],
        "packages": [{"SPDXID": package_id, "name": source, "downloadLocation": "NOASSERTION",
                      "filesAnalyzed": bool(file_list), "licenseConcluded": "NOASSERTION",
                      "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
                      **({"packageVerificationCode": {"packageVerificationCodeValue": verification},
                          "hasFiles": [e["SPDXID"] for e in file_list]} if file_list else {})}],
        "files": file_list,
        "snippets": snippets,
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                           "relatedSpdxElement": package_id}]
        + [{"spdxElementId": package_id, "relationshipType": "CONTAINS", "relatedSpdxElement": e["SPDXID"]} for e in file_list],
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = list(extracted.values())
    return dumps(doc, depth=3) + "\n"
