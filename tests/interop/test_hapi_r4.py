"""The R4 export in a HAPI FHIR JPA R4 server (the same app, `--fhirpkg.hapi.fhir-version=R4`).

The transaction Bundle imports with every entry created; sent again it creates and updates
nothing (no new versions); every resource read back equals the export, except the meta elements
the server manages (versionId, lastUpdated, source); narratives are compared as XML (canonical
form, C14N 2.0): HAPI re-serializes the XHTML, writing e.g. ``&#x27;`` as ``'``.

A second server runs with request validation on (``--fhirpkg.hapi.request-validation=true``) and the
Extensions Pack's CodeSystems and ValueSets installed (the export's ``artifact-*`` extensions bind
to them): it rejects an R4-invalid control, and it rejects the R4 export for known reasons only (an
R4 expression-language code, and the R5 cross-version extensions it has no definitions for), tracked
as a strict xfail.  Clinical reasoning ($apply) on the R4 server: test_apply_hapi_r4.py.
"""
import io
import json
import tarfile
import xml.etree.ElementTree as ET

import pytest

from . import hapi, hl7, package_build

pytestmark = pytest.mark.interop

SERVER_META = ("versionId", "lastUpdated", "source")


def _server(request, *args):
    from .conftest import check_tools, unavailable
    check_tools()
    try:
        hapi.jar_path()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    server = hapi.HapiServer(extra_args=["--fhirpkg.hapi.fhir-version=R4", *args])
    try:
        server.start()
    except RuntimeError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    print(f"\nHAPI FHIR {hapi.HAPI_VERSION} R4 {' '.join(args)} up at {server.base_url} "
          f"after {server.start_seconds:.1f} s")
    return server


@pytest.fixture(scope="module")
def r4_server(request):
    server = _server(request)
    yield server
    if request.session.testsfailed:
        print(f"\n--- HAPI R4 log tail ---\n{server.log_tail()}")
    server.stop()


@pytest.fixture(scope="module")
def r4_validating_server(request):
    from fhirpkg.fhir import packages as pk
    ext = pk.installed(pk.PackageRef("hl7.fhir.uv.extensions.r4", "5.3.0-ballot-tc1"))
    if ext is None:
        pytest.skip("hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1 is not in the package cache (make packages)")
    server = _server(request, "--fhirpkg.hapi.request-validation=true")
    try:
        installed = hapi.install_package(server.base_url, _tgz(ext.folder), types=["CodeSystem", "ValueSet"],
                                         validate_status=False)
        assert installed["resourcesInstalled"].get("CodeSystem"), installed
        yield server
    finally:
        if request.session.testsfailed:
            print(f"\n--- HAPI R4 (validating) log tail ---\n{server.log_tail()}")
        server.stop()


def _tgz(folder) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(folder.iterdir()):
            if p.is_file():
                tar.add(p, arcname=f"package/{p.name}")
    return buf.getvalue()


def _without_server_meta(resource: dict) -> dict:
    out = dict(resource)
    if isinstance((out.get("text") or {}).get("div"), str):
        out["text"] = dict(out["text"], div=ET.canonicalize(out["text"]["div"]))
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in SERVER_META}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def test_the_server_speaks_r4(r4_server):
    cs = hapi.request("GET", f"{r4_server.base_url}/metadata").json
    assert cs["fhirVersion"] == "4.0.1"


def test_r4_transaction_imports_idempotently_and_reads_back_equal(r4_server):
    out = package_build.built()
    path = next((out / "r4").glob("*.transaction.r4.json"))
    bundle = json.loads(path.read_text())
    base = r4_server.base_url
    first = hapi.request("POST", base, json.dumps(bundle).encode(), "application/fhir+json", timeout=600)
    assert first.status == 200, first.text[:3000]
    statuses = [e["response"]["status"] for e in first.json["entry"]]
    assert len(statuses) == len(bundle["entry"]) and all(s.startswith("201") for s in statuses), statuses
    again = hapi.request("POST", base, json.dumps(bundle).encode(), "application/fhir+json", timeout=600)
    assert again.status == 200, again.text[:3000]
    assert all(e["response"]["status"].startswith("200") for e in again.json["entry"])
    differ = []
    for entry in bundle["entry"]:
        key = entry["request"]["url"]
        held = hapi.request("GET", f"{base}/{key}").json
        assert held["meta"]["versionId"] == "1", f"{key}: the second import made a new version"
        if _without_server_meta(held) != _without_server_meta(entry["resource"]):
            differ.append(key)
    assert not differ, f"{len(differ)} resources read back differently: {differ[:10]}"


def test_request_validation_rejects_an_r4_invalid_control(r4_validating_server):
    bad = {"resourceType": "PlanDefinition", "id": "bad1", "status": "draft", "versionAlgorithmString": "semver"}
    r = hapi.request("PUT", f"{r4_validating_server.base_url}/PlanDefinition/bad1", json.dumps(bad).encode(),
                     "application/fhir+json")
    assert r.status == 422, r.text[:2000]
    assert any("versionAlgorithmString" in (i.get("diagnostics") or "") for i in r.json["issue"]), r.text[:2000]


class KnownHapiR4Gap(AssertionError):
    """The failure the xfail below expects, and no other."""


def _known_gap(error: str) -> bool:
    return "text/cql-identifier" in error or (
        error.startswith("Extension url 'http://hl7.org/fhir/5.0/StructureDefinition/extension-")
        and error.endswith("is not valid (invalid Version '5.0')")) or (
        # R5 research-study-status codes in the progressStatus cross-version extension, with Coding.version
        # 5.0.0: the server checks them against R4's code system of the same URL
        error == "Unknown code 'http://hl7.org/fhir/research-study-status#recruiting'")


@pytest.mark.xfail(strict=True, raises=KnownHapiR4Gap, reason=(
    "HAPI 8.8.0's R4 request validation (HTTP 422): \"Unknown code 'http://hl7.org/fhir/expression-language#"
    "text/cql-identifier'\" (29 errors): R4 core's expression-language CodeSystem is complete and "
    "lacks the code; Expression.language is an extensible binding, so the HL7 validator and fhirpkg only warn. "
    "And every R5 cross-version extension (http://hl7.org/fhir/5.0/StructureDefinition/extension-…, issue 12 "
    "item 5) is \"not valid (invalid Version '5.0')\": the server's validator has no cross-version definitions "
    "(the HL7 validator generates them from hl7.fhir.xver-extensions and reports 0 errors); in one of them an "
    "R5 research-study-status code that says version 5.0.0 is checked against R4's code system (2 errors)"))
def test_the_r4_transaction_passes_request_validation(r4_validating_server):
    bundle = json.loads(next((package_build.built() / "r4").glob("*.transaction.r4.json")).read_text())
    r = hapi.request("POST", r4_validating_server.base_url, json.dumps(bundle).encode(), "application/fhir+json",
                     timeout=900)
    errors = [i.get("diagnostics") for i in (r.json or {}).get("issue", []) if i.get("severity") in ("error", "fatal")] \
        if r.status != 200 else []
    if r.status == 422 and errors and all(_known_gap(e or "") for e in errors):
        raise KnownHapiR4Gap(f"HTTP 422: {len(errors)} errors, all Unknown code text/cql-identifier or a "
                             "cross-version extension URL")
    assert r.status == 200, f"HTTP {r.status}: {len(errors)} errors, e.g. {errors[:3]}"
