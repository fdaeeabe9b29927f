"""The FHIR NPM package (package.tgz): manifest, index, ImplementationGuide, resources.

The archive is byte-reproducible: members sorted, every timestamp the release
date, owner 0/0 with no names, mode 0644, and a gzip header with no file name
and the same mtime.  HL7 tools (the validator's ``-ig``) and HAPI's package
installer read it; HAPI installs PlanDefinition, MedicationKnowledge and the
other knowledge types only when they are listed in its ``installResourceTypes``.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import tarfile

from fhirpkg.fhir.packages import index_entry

#: Canonical URL of each dependency's ImplementationGuide (ImplementationGuide.dependsOn.uri).
KNOWN_IG_URLS = {
    "hl7.terminology.r5": "http://terminology.hl7.org/ImplementationGuide/hl7.terminology",
    "hl7.fhir.uv.extensions.r5": "http://hl7.org/fhir/extensions/ImplementationGuide/hl7.fhir.uv.extensions",
}


def pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p)


def implementation_guide(manifest, resources: list[dict], date: str) -> dict:
    """The ImplementationGuide that represents the package (required by the package spec)."""
    data = manifest.data
    ig_id = manifest.name
    deps = []
    for pid, ver in manifest.dependencies.items():
        if pid == "hl7.fhir.r5.core":
            continue  # the FHIR version itself, stated in fhirVersion
        deps.append({"id": re.sub(r"[^A-Za-z0-9]", "", pid)[:64], "uri": KNOWN_IG_URLS.get(pid, pid),
                     "packageId": pid, "version": ver})
    ig = {
        "resourceType": "ImplementationGuide",
        "id": ig_id,
        "url": f"{manifest.canonical}/ImplementationGuide/{ig_id}",
        "version": manifest.version,
        "name": pascal(manifest.name),
        "title": manifest.title,
        "status": "draft",
        "experimental": True,
        "date": date,
        "publisher": data.get("author", ""),
        "description": manifest.description,
        "packageId": manifest.name,
        "license": data.get("license", "not-open-source"),
        "fhirVersion": list(manifest.fhir_versions or ["5.0.0"]),
    }
    if data.get("jurisdiction") and "#" in data["jurisdiction"]:
        system, code = data["jurisdiction"].split("#", 1)
        ig["jurisdiction"] = [{"coding": [{"system": system, "code": code}]}]
    if deps:
        ig["dependsOn"] = deps
    ig["definition"] = {"resource": [
        {"reference": {"reference": f"{r['resourceType']}/{r['id']}"},
         **({"name": r["title"]} if isinstance(r.get("title"), str) else {}),
         "isExample": False}
        for r in resources]}
    return ig


def package_json(manifest, date_compact: str) -> dict:
    """package/package.json: the authored manifest plus the fields tools expect."""
    out = dict(manifest.data)
    out["type"] = out.get("type", "IG")
    out["fhirVersions"] = list(manifest.fhir_versions or ["5.0.0"])
    out["url"] = out.get("url", manifest.canonical)
    out["date"] = date_compact
    out.setdefault("tools-version", 3)
    return out


def package_files(manifest, resources: list[dict], other: dict[str, bytes], dumps, date_compact: str) -> dict[str, bytes]:
    """Every member of the package, keyed by its path inside the archive."""
    files: dict[str, bytes] = {}
    entries = []
    for r in resources:
        fn = f"{r['resourceType']}-{r['id']}.json"
        if fn in files:
            raise ValueError(f"two resources would be written to package/{fn}")
        files[f"package/{fn}"] = (dumps(r) + "\n").encode("utf-8")
        entries.append(index_entry(fn, r))
    files["package/package.json"] = (json.dumps(package_json(manifest, date_compact), indent=2,
                                                ensure_ascii=False) + "\n").encode("utf-8")
    entries.sort(key=lambda e: e["filename"])
    files["package/.index.json"] = (json.dumps({"index-version": 2, "files": entries}, indent=1,
                                               ensure_ascii=False) + "\n").encode("utf-8")
    for name, data in other.items():
        files[f"package/other/{name}"] = data
    return files


def tgz(files: dict[str, bytes], mtime: int) -> bytes:
    """A reproducible .tgz: same files and mtime, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
