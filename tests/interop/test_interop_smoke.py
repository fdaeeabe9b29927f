"""Smoke tests of the Java interop tools: the HL7 validator harness and the HAPI JPA R5 server."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from fhirpkg.fhir import packages

from . import hapi, hl7

pytestmark = pytest.mark.interop


# ---------------------------------------------------------------- HL7 validator

@pytest.fixture(scope="module")
def patient_example() -> Path:
    pkg = packages.installed(packages.PackageRef(*packages.R5_EXAMPLES))
    if pkg is None:
        pkg = packages.ensure([packages.R5_EXAMPLES])[0]
    path = Path(pkg.folder) / "Patient-example.json"
    assert path.is_file(), path
    return path


def _line_of(text: str, needle: str) -> int:
    for no, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return no
    raise AssertionError(f"{needle!r} not in text")


@pytest.fixture(scope="module")
def broken_patient(patient_example, tmp_path_factory) -> tuple[Path, int, int]:
    """A copy of Patient-example with an unknown element and a code outside the required binding."""
    res = json.loads(patient_example.read_text(encoding="utf-8"))
    res["gender"] = "bogus"
    res["notAnElement"] = "x"
    text = json.dumps(res, indent=2)
    path = tmp_path_factory.mktemp("hl7") / "Patient-broken.json"
    path.write_text(text, encoding="utf-8")
    return path, _line_of(text, '"notAnElement"'), _line_of(text, '"gender": "bogus"')


def test_hl7_known_good_example_has_no_errors(hl7_validator, patient_example):
    issues = hl7_validator.validate_file(patient_example)
    assert hl7.errors(issues) == [], issues
    for issue in issues:  # the plain-dict shape the harness promises
        assert set(issue) == {"severity", "code", "message", "expression", "line", "col", "message_id"}


def test_hl7_broken_copy_reports_errors_at_the_right_lines(hl7_validator, broken_patient):
    path, unknown_line, gender_line = broken_patient
    errs = hl7.errors(hl7_validator.validate_file(path))
    assert errs, "the validator accepted a Patient with an unknown element and gender 'bogus'"
    unknown = [e for e in errs if "notAnElement" in e["message"]]
    assert unknown, errs
    assert unknown[0]["line"] == unknown_line
    assert isinstance(unknown[0]["col"], int) and unknown[0]["col"] > 0
    gender = [e for e in errs if e["expression"] == "Patient.gender"]
    assert gender, errs
    assert {e["line"] for e in gender} == {gender_line}
    assert any(e["message_id"] for e in gender)
    assert all(e["code"] for e in errs)


def test_hl7_one_jvm_for_many_files_maps_outcomes_back(hl7_validator, patient_example, broken_patient, tmp_path):
    """The one-shot API (one JVM, a Bundle of OperationOutcomes) keeps every file apart."""
    broken, unknown_line, _ = broken_patient
    unreadable = tmp_path / "missing.json"  # not created: reported per file, not a crash
    relative = Path(patient_example)
    result = hl7.validate_files([relative, broken, unreadable, broken])  # duplicate on purpose
    assert list(result) == [relative, broken, unreadable]
    assert hl7.errors(result[relative]) == []
    assert any(e["line"] == unknown_line for e in hl7.errors(result[broken]))
    assert [e["message_id"] for e in result[unreadable]] == ["FHIRPKG_HARNESS"]
    assert result[unreadable][0]["severity"] == "fatal"


def test_hl7_parse_outcomes_reads_single_and_bundle():
    oo = {"resourceType": "OperationOutcome",
          "extension": [{"url": hl7.EXT_FILE, "valueString": "/x/a.json"}],
          "issue": [{"severity": "error", "code": "structure", "details": {"text": "bad"},
                     "expression": ["Patient.foo"],
                     "extension": [{"url": hl7.EXT_LINE, "valueInteger": 3},
                                   {"url": hl7.EXT_COL, "valueInteger": 7},
                                   {"url": hl7.EXT_MSG_ID, "valueCode": "X_ID"}]},
                    {"severity": "information", "code": "informational", "details": {"text": "All OK"}}]}
    want = {"/x/a.json": [{"severity": "error", "code": "structure", "message": "bad",
                           "expression": "Patient.foo", "line": 3, "col": 7, "message_id": "X_ID"}]}
    assert hl7.parse_outcomes(oo) == want
    assert hl7.parse_outcomes({"resourceType": "Bundle", "entry": [{"resource": oo}]}) == want
    with pytest.raises(hl7.ValidatorError):
        hl7.parse_outcomes({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "OperationOutcome"}}]})


# ---------------------------------------------------------------- HAPI FHIR JPA server

def _transaction(suffix: str) -> dict:
    pd_url = f"http://example.org/fhir/PlanDefinition/pd-smoke-{suffix}"
    ad_url = f"http://example.org/fhir/ActivityDefinition/ad-smoke-{suffix}"
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pd_url,
         "resource": {"resourceType": "PlanDefinition", "id": f"pd-smoke-{suffix}", "url": pd_url,
                      "version": "1.0.0", "name": "SmokePlan", "status": "active",
                      "action": [{"title": "Do it", "definitionCanonical": ad_url}]},
         "request": {"method": "PUT", "url": f"PlanDefinition/pd-smoke-{suffix}"}},
        {"fullUrl": ad_url,
         "resource": {"resourceType": "ActivityDefinition", "id": f"ad-smoke-{suffix}", "url": ad_url,
                      "version": "1.0.0", "name": "SmokeActivity", "status": "active",
                      "kind": "ServiceRequest"},
         "request": {"method": "PUT", "url": f"ActivityDefinition/ad-smoke-{suffix}"}},
    ]}


def _search_by_url(base: str, rtype: str, url: str) -> list[dict]:
    resp = hapi.request("GET", f"{base}/{rtype}?url={url}")
    assert resp.status == 200, resp.text[:500]
    return [e["resource"] for e in resp.json.get("entry", [])]


def test_hapi_transaction_put_then_read_and_search(hapi_server):
    bundle = _transaction("a1")
    resp = hapi.request("POST", hapi_server, bundle)
    assert resp.status == 200, resp.text[:2000]
    answer = resp.json
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in answer["entry"]] == ["201", "201"]
    for entry in bundle["entry"]:
        res = entry["resource"]
        read = hapi.request("GET", f"{hapi_server}/{res['resourceType']}/{res['id']}")
        assert read.status == 200, read.text[:500]
        assert read.json["url"] == res["url"]
        found = _search_by_url(hapi_server, res["resourceType"], res["url"])
        assert [f["id"] for f in found] == [res["id"]]


def test_hapi_reloading_unchanged_resources_creates_no_new_versions(hapi_server):
    bundle = _transaction("b2")
    first = hapi.request("POST", hapi_server, bundle)
    assert first.status == 200, first.text[:2000]
    second = hapi.request("POST", hapi_server, bundle)
    assert second.status == 200, second.text[:2000]
    # an unchanged PUT answers 200 and leaves the version alone (SUCCESSFUL_UPDATE_NO_CHANGE)
    assert [e["response"]["status"][:3] for e in second.json["entry"]] == ["200", "200"]
    for e in second.json["entry"]:
        assert e["response"]["location"].endswith("/_history/1"), e["response"]
        codes = [c.get("code") for i in e["response"]["outcome"]["issue"]
                 for c in (i.get("details") or {}).get("coding", [])]
        assert "SUCCESSFUL_UPDATE_NO_CHANGE" in codes, e["response"]["outcome"]
    for entry in bundle["entry"]:
        res = entry["resource"]
        read = hapi.request("GET", f"{hapi_server}/{res['resourceType']}/{res['id']}")
        assert read.json["meta"]["versionId"] == "1"
        history = hapi.request("GET", f"{hapi_server}/{res['resourceType']}/{res['id']}/_history")
        assert history.json.get("total", len(history.json.get("entry", []))) == 1


def make_package_tgz(name: str, version: str, resources: list[dict]) -> bytes:
    """An NPM FHIR package in memory: package/package.json, package/.index.json and the resources."""
    manifest = {"name": name, "version": version, "fhirVersions": ["5.0.0"], "type": "fhir.ig",
                "license": "CC0-1.0", "dependencies": {"hl7.fhir.r5.core": "5.0.0"}}
    files, index = {}, []
    for res in resources:
        fname = f"{res['resourceType']}-{res['id']}.json"
        files[fname] = json.dumps(res, indent=2).encode()
        entry = {"filename": fname, "resourceType": res["resourceType"], "id": res["id"]}
        for key in ("url", "version"):
            if key in res:
                entry[key] = res[key]
        index.append(entry)
    files["package.json"] = json.dumps(manifest, indent=2).encode()
    files[".index.json"] = json.dumps({"index-version": 2, "files": index}, indent=2).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, data in files.items():
            info = tarfile.TarInfo(f"package/{fname}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_hapi_package_install_makes_plandefinition_searchable(hapi_server):
    base = "http://example.org/fhir"
    active = {"resourceType": "PlanDefinition", "id": "pd-pkg-active", "url": f"{base}/PlanDefinition/pd-pkg-active",
              "version": "0.1.0", "name": "PkgActive", "status": "active",
              "action": [{"title": "x", "definitionCanonical": f"{base}/ActivityDefinition/ad-pkg"}]}
    activity = {"resourceType": "ActivityDefinition", "id": "ad-pkg", "url": f"{base}/ActivityDefinition/ad-pkg",
                "version": "0.1.0", "name": "PkgActivity", "status": "active", "kind": "ServiceRequest"}
    draft = {"resourceType": "PlanDefinition", "id": "pd-pkg-draft", "url": f"{base}/PlanDefinition/pd-pkg-draft",
             "version": "0.1.0", "name": "PkgDraft", "status": "draft"}
    tgz = make_package_tgz("example.fhirpkg.smoke", "0.1.0", [active, activity, draft])

    outcome = hapi.install_package(hapi_server, tgz)
    assert outcome["name"] == "example.fhirpkg.smoke" and outcome["version"] == "0.1.0"
    assert outcome["resourcesInstalled"].get("PlanDefinition") == 1, outcome
    assert outcome["resourcesInstalled"].get("ActivityDefinition") == 1, outcome

    found = _search_by_url(hapi_server, "PlanDefinition", active["url"])
    assert len(found) == 1, found
    assert found[0]["name"] == "PkgActive"
    assert found[0]["meta"]["source"].startswith("example.fhirpkg.smoke|0.1.0")
    assert len(_search_by_url(hapi_server, "ActivityDefinition", activity["url"])) == 1
    # HAPI's default (validateResourceStatusForPackageUpload=true): non-active resources are skipped
    assert _search_by_url(hapi_server, "PlanDefinition", draft["url"]) == []

    # re-installing the same package changes nothing: no duplicate, no new version
    again = hapi.install_package(hapi_server, tgz)
    assert again["resourcesInstalled"].get("PlanDefinition", 0) == 0, again
    found_again = _search_by_url(hapi_server, "PlanDefinition", active["url"])
    assert [f["id"] for f in found_again] == [found[0]["id"]]
    assert found_again[0]["meta"]["versionId"] == found[0]["meta"]["versionId"]


def test_hapi_package_install_can_include_drafts(hapi_server):
    draft = {"resourceType": "PlanDefinition", "id": "pd-pkg2-draft",
             "url": "http://example.org/fhir/PlanDefinition/pd-pkg2-draft", "version": "0.2.0",
             "name": "Pkg2Draft", "status": "draft"}
    tgz = make_package_tgz("example.fhirpkg.drafts", "0.2.0", [draft])
    outcome = hapi.install_package(hapi_server, tgz, validate_status=False)
    assert outcome["validateResourceStatus"] is False
    assert outcome["resourcesInstalled"].get("PlanDefinition") == 1, outcome
    assert [f["status"] for f in _search_by_url(hapi_server, "PlanDefinition", draft["url"])] == ["draft"]


def test_hapi_package_install_rejects_garbage(hapi_server):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        hapi.install_package(hapi_server, b"this is not a tgz")
