"""The R4 export in a HAPI FHIR JPA R4 server (the same app, `--fhirpkg.hapi.fhir-version=R4`).

The transaction Bundle imports with every entry created; sent again it creates and updates
nothing (no new versions); every resource read back equals the export, except the meta elements
the server manages (versionId, lastUpdated, source); narratives are compared as XML (canonical
form, C14N 2.0): HAPI re-serializes the XHTML, writing e.g. ``&#x27;`` as ``'``.  Not covered here: request validation and
clinical reasoning ($apply) on the R4 server (issue 12, items 3-4).
"""
import json
import xml.etree.ElementTree as ET

import pytest

from . import hapi, hl7, package_build

pytestmark = pytest.mark.interop

SERVER_META = ("versionId", "lastUpdated", "source")


@pytest.fixture(scope="module")
def r4_server(request):
    from .conftest import _check_tools, unavailable
    _check_tools()
    try:
        hapi.jar_path()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    server = hapi.HapiServer(extra_args=["--fhirpkg.hapi.fhir-version=R4"])
    try:
        server.start()
    except RuntimeError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    print(f"\nHAPI FHIR {hapi.HAPI_VERSION} R4 up at {server.base_url} after {server.start_seconds:.1f} s")
    yield server
    if request.session.testsfailed:
        print(f"\n--- HAPI R4 log tail ---\n{server.log_tail()}")
    server.stop()


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
