"""One build of definitions/ for the interop tests (into a temporary folder, never build/)."""
from __future__ import annotations

import functools
import json
import tarfile
import tempfile
from pathlib import Path

from fhirpkg.fhir.packages import resource_files

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def built() -> Path:
    """Build definitions/ once per test session; returns the output folder."""
    from fhirpkg.publish import build as b

    out = Path(tempfile.mkdtemp(prefix="fhirpkg-interop-build-")) / "build"
    b.write(b.build(ROOT / "definitions"), out)
    with tarfile.open(out / "package.tgz") as tar:
        tar.extractall(out.parent / "package-tgz", filter="data")
    return out


def transaction(out: Path) -> Path:
    return next(p for p in out.glob("*.transaction.json"))


def package_resources(out: Path) -> list[Path]:
    folder = out.parent / "package-tgz" / "package"
    return resource_files(folder)


# --- the HL7 validator's offline mimetype artefact ----------------------------------------------
#: Offline (-tx n/a), once the HL7 validator 6.10.4 has validated enough of a run, every later
#: Attachment.contentType (application/json as much as text/cql) fails with "The System URI could not
#: be determined for the code ... in the ValueSet 'http://hl7.org/fhir/ValueSet/mimetypes'"
#: (urn:ietf:bcp:13 has a grammar and no offline expansion; hapifhir/org.hl7.fhir.core#1248); the
#: same Library alone gets information only.  It is tolerated only where a control Library with
#: the plain IANA type application/json, appended to the same Bundle, shows it too.
MIMETYPES = "http://hl7.org/fhir/ValueSet/mimetypes"
CONTROL_ID = "fhirpkg-mimetype-control"


def mimetype_artefact(issue: dict) -> bool:
    message = issue["message"]
    return (str(issue["expression"] or "").endswith(".contentType") and MIMETYPES in message
            and ("could not be determined for the code" in message or "was not found in the value set" in message))


def with_control(bundle: Path, dest: Path) -> Path:
    """A copy of ``bundle`` with the control Library appended as its last entry."""
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    control = {"resourceType": "Library", "id": CONTROL_ID, "status": "draft",
               "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                                    "code": "logic-library"}]},
               "content": [{"contentType": "application/json", "data": "e30="}]}
    first = str(doc["entry"][0]["fullUrl"])  # the content's own base, so no new base appears
    entry = {"fullUrl": f"{first.rsplit('/', 2)[0]}/Library/{CONTROL_ID}", "resource": control}
    if doc.get("type") == "transaction":
        entry["request"] = {"method": "PUT", "url": f"Library/{CONTROL_ID}"}
    doc.setdefault("entry", []).append(entry)
    dest.write_text(json.dumps(doc), encoding="utf-8")
    return dest


def without_artefact(issues: list[dict]) -> tuple[list[dict], int]:
    """``issues`` less the mimetype artefact when the control shows it (and the control's issues);
    and how many were tolerated.  The control must have no other error."""
    control = [i for i in issues if f"Library/{CONTROL_ID}" in str(i["expression"] or "")]
    other = [i for i in control if i["severity"] in ("error", "fatal") and not mimetype_artefact(i)]
    assert not other, other
    shown = any(mimetype_artefact(i) for i in control)
    kept = [i for i in issues if i not in control and not (shown and mimetype_artefact(i))]
    return kept, len(issues) - len(control) - len(kept)
