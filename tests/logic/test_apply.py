"""fhirpkg apply ($apply) on a small hand-made package and hand-made patients; the CLI's errors.

The package here is written in the test: two PlanDefinitions (a pathway whose group names a nested
recommendation PlanDefinition), two ActivityDefinitions, one ValueSet and a Library whose ELM is
written by hand in the translator's shape.  Expected results follow the $apply rules in
notes/apply-contract (conditions all true -> included; false or null -> dropped with what is under it).
The package's real content is applied by tests/logic/test_panel.py on the test-patient panel.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg.cli import main
from fhirpkg.errors import ApplyError, UnsupportedElm
from fhirpkg.logic.apply import apply

BASE = "http://example.org/t"
SNOMED = "http://snomed.info/sct"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ROOT = Path(__file__).resolve().parents[2]


def retrieve_confirmed(vs_name):
    """exists ([Condition: "<vs>"] C where C.verificationStatus ~ "confirmed")"""
    return {"type": "Exists", "operand": {"type": "Query", "source": [{"alias": "C", "expression": {
        "type": "Retrieve", "dataType": "{http://hl7.org/fhir}Condition", "codeProperty": "code",
        "codeComparator": "in", "codes": {"type": "ValueSetRef", "name": vs_name}}}],
        "where": {"type": "Equivalent", "operand": [
            {"type": "FunctionRef", "name": "ToConcept", "libraryName": "FHIRHelpers",
             "operand": [{"type": "Property", "path": "verificationStatus", "scope": "C"}]},
            {"type": "ToConcept", "operand": {"type": "CodeRef", "name": "confirmed"}}]}}}


ELM = {"library": {
    "identifier": {"id": "TestLogic", "version": "0.0.1"},
    "codeSystems": {"def": [{"name": "ConditionVerificationStatus", "id": VER}]},
    "valueSets": {"def": [{"name": "NEPC Diagnosis", "id": f"{BASE}/ValueSet/nepc"},
                          {"name": "Bone Metastasis", "id": f"{BASE}/ValueSet/bone"}]},
    "codes": {"def": [{"name": "confirmed", "id": "confirmed", "codeSystem": {"name": "ConditionVerificationStatus"}}]},
    "statements": {"def": [
        {"name": "Has Confirmed NEPC Diagnosis", "context": "Patient", "expression": retrieve_confirmed("NEPC Diagnosis")},
        {"name": "Bone Metastases", "context": "Patient", "expression": {"type": "And", "operand": [
            {"type": "ExpressionRef", "name": "Has Confirmed NEPC Diagnosis"}, retrieve_confirmed("Bone Metastasis")]}},
        {"name": "Unknown", "context": "Patient", "expression": {"type": "Null"}},
        {"name": "Unsupported", "context": "Patient", "expression": {"type": "Message", "locator": "40:3-40:20"}},
    ]}}}


def write(folder: Path, res: dict) -> None:
    d = folder / res["resourceType"]
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{res['id']}.json").write_text(json.dumps(res, indent=2))


def cond(name, language="text/cql-identifier"):
    return {"kind": "applicability", "expression": {"language": language, "expression": name}}


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pkg")
    (root / "package.json").write_text(json.dumps({"name": "org.example.t", "version": "0.0.1", "canonical": BASE}))
    for vid, code in (("nepc", "396198006"), ("bone", "94222008")):
        write(root, {"resourceType": "ValueSet", "id": vid, "url": f"{BASE}/ValueSet/{vid}", "status": "draft",
                     "compose": {"include": [{"system": SNOMED, "concept": [{"code": code}]}]}})
    write(root, {"resourceType": "Library", "id": "TestLogic", "url": f"{BASE}/Library/TestLogic", "version": "0.0.1",
                 "status": "draft", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                                                          "code": "logic-library"}]},
                 "content": [{"contentType": "application/elm+json",
                              "data": base64.b64encode(json.dumps(ELM).encode()).decode()}]})
    write(root, {"resourceType": "ActivityDefinition", "id": "ad-med", "url": f"{BASE}/ActivityDefinition/ad-med",
                 "version": "0.0.1", "status": "draft", "kind": "MedicationRequest", "intent": "proposal",
                 "productCodeableConcept": {"coding": [{"system": RXNORM, "code": "2555"}], "text": "cisplatin"},
                 "dosage": [{"text": "as the regimen says"}]})
    write(root, {"resourceType": "ActivityDefinition", "id": "ad-sr", "url": f"{BASE}/ActivityDefinition/ad-sr",
                 "version": "0.0.1", "status": "draft", "kind": "ServiceRequest", "intent": "proposal",
                 "code": {"text": "bone agent"}})
    write(root, {"resourceType": "PlanDefinition", "id": "rec", "url": f"{BASE}/PlanDefinition/rec", "version": "0.0.1",
                 "status": "draft", "library": [f"{BASE}/Library/TestLogic|0.0.1"], "action": [
                     {"id": "offer", "title": "Offer", "condition": [cond("Has Confirmed NEPC Diagnosis")],
                      "definitionCanonical": f"{BASE}/ActivityDefinition/ad-med|0.0.1"},
                     {"id": "bone", "condition": [cond("Bone Metastases")],
                      "definitionCanonical": f"{BASE}/ActivityDefinition/ad-sr"},
                     {"id": "unknown", "condition": [cond("Unknown")], "action": [{"id": "under-unknown"}]}]})
    write(root, {"resourceType": "PlanDefinition", "id": "root", "url": f"{BASE}/PlanDefinition/root",
                 "version": "0.0.1", "status": "draft", "action": [
                     {"id": "group", "title": "Group", "action": [
                         {"id": "first", "definitionCanonical": f"{BASE}/PlanDefinition/rec"}]},
                     {"id": "info", "textEquivalent": "Some information", "code": {"text": "inform"}}]})
    write(root, {"resourceType": "PlanDefinition", "id": "fhirpath", "url": f"{BASE}/PlanDefinition/fhirpath",
                 "status": "draft", "library": [f"{BASE}/Library/TestLogic"],
                 "action": [{"id": "a", "condition": [cond("true", "text/fhirpath")]}]})
    write(root, {"resourceType": "PlanDefinition", "id": "broken", "url": f"{BASE}/PlanDefinition/broken",
                 "status": "draft", "library": [f"{BASE}/Library/TestLogic"],
                 "action": [{"id": "a", "condition": [cond("Unsupported")]}]})
    return root


def patient(*conditions) -> dict:
    entries = [{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Patient", "id": "p1"}}]
    for n, code in enumerate(conditions):
        entries.append({"resource": {
            "resourceType": "Condition", "id": f"c{n}", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": SNOMED, "code": code}]},
            "verificationStatus": {"coding": [{"system": VER, "code": "confirmed"}]}}})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_diagnosis_without_bone_metastases(pkg):
    r = apply("root", patient("396198006"), "Patient/p1", package=pkg)
    assert r.actions == ["rec#offer", "root#first", "root#group", "root#info"]
    assert r.activities == ["ad-med"]
    assert [(c[1], c[3]) for c in r.conditions] == [("offer", True), ("bone", False), ("unknown", None)]
    types = [e["resource"]["resourceType"] for e in r.bundle["entry"]]
    # the nested plan's RequestOrchestration; the null condition's action and its child are left out
    assert types == ["CarePlan", "RequestOrchestration", "RequestOrchestration", "MedicationRequest",
                     "CommunicationRequest"]


def test_diagnosis_with_bone_metastases(pkg):
    r = apply("root", patient("396198006", "94222008"), "Patient/p1", package=pkg)
    assert r.actions == ["rec#bone", "rec#offer", "root#first", "root#group", "root#info"]
    assert r.activities == ["ad-med", "ad-sr"]


def test_both_spellings_of_the_cql_identifier_language(pkg, tmp_path):
    """R5 spells the language text/cql-identifier; the May 2021 R5 ballot spelled it text/cql.identifier:
    a condition in the older spelling is evaluated the same (translate.is_cql_identifier)."""
    import shutil
    root = tmp_path / "pkg"
    shutil.copytree(pkg, root)
    write(root, {"resourceType": "PlanDefinition", "id": "dotted", "url": f"{BASE}/PlanDefinition/dotted",
                 "status": "draft", "library": [f"{BASE}/Library/TestLogic|0.0.1"], "action": [
                     {"id": "offer", "condition": [cond("Has Confirmed NEPC Diagnosis", "text/cql.identifier")],
                      "definitionCanonical": f"{BASE}/ActivityDefinition/ad-med|0.0.1"},
                     {"id": "bone", "condition": [cond("Bone Metastases", "text/cql.identifier")],
                      "definitionCanonical": f"{BASE}/ActivityDefinition/ad-sr"}]})
    r = apply("dotted", patient("396198006"), "Patient/p1", package=root)
    assert [(c[1], c[3]) for c in r.conditions] == [("offer", True), ("bone", False)]
    assert r.activities == ["ad-med"]


def test_container_action_kept_when_nested_plan_yields_nothing(pkg):
    r = apply("root", patient(), "Patient/p1", package=pkg)
    assert r.actions == ["root#first", "root#group", "root#info"]
    assert r.activities == []
    nested = r.bundle["entry"][2]["resource"]
    assert nested["resourceType"] == "RequestOrchestration" and "action" not in nested
    assert r.bundle["entry"][1]["resource"]["action"][0]["action"][0]["resource"] == {
        "reference": r.bundle["entry"][2]["fullUrl"]}
    assert [e["resource"]["resourceType"] for e in r.bundle["entry"][3:]] == ["CommunicationRequest"]


def test_bundle_shape(pkg):
    r = apply(str(pkg / "PlanDefinition/root.json"), patient("396198006"), "Patient/p1")
    care_plan, ro, nested, med, inform = (e["resource"] for e in r.bundle["entry"])
    urls = [e["fullUrl"] for e in r.bundle["entry"]]
    assert care_plan["instantiatesCanonical"] == [f"{BASE}/PlanDefinition/root|0.0.1"]
    assert (care_plan["status"], care_plan["intent"]) == ("draft", "proposal")
    assert care_plan["subject"] == {"reference": "Patient/p1"}
    assert care_plan["activity"] == [{"plannedActivityReference": {"reference": urls[1]}}]
    group = ro["action"][0]
    assert group["linkId"] == "group"
    first = group["action"][0]
    assert first["definitionCanonical"] == f"{BASE}/PlanDefinition/rec"
    assert first["resource"] == {"reference": urls[2]}           # the nested plan's own RequestOrchestration
    assert nested["instantiatesCanonical"] == [f"{BASE}/PlanDefinition/rec|0.0.1"]
    assert [x["linkId"] for x in nested["action"]] == ["offer"]
    offer = nested["action"][0]
    assert offer["resource"] == {"reference": urls[3]}
    assert "'Has Confirmed NEPC Diagnosis' evaluated to true" in offer["condition"][0]["expression"]["description"]
    info = ro["action"][1]
    assert info["code"] == [{"text": "inform"}]                  # 0..1 in the plan, a list in the orchestration
    assert info["resource"] == {"reference": urls[4]}            # rqg-1: information goes in a CommunicationRequest
    assert inform["payload"] == [{"contentCodeableConcept": {"text": "Some information"}}]
    assert med["medication"] == {"concept": {"coding": [{"system": RXNORM, "code": "2555"}], "text": "cisplatin"}}
    assert med["dosageInstruction"] == [{"text": "as the regimen says"}]
    assert (med["status"], med["intent"], med["subject"]) == ("draft", "proposal", {"reference": "Patient/p1"})
    again = apply(str(pkg / "PlanDefinition/root.json"), patient("396198006"), "Patient/p1")
    assert again.bundle == r.bundle  # same input, same output (fullUrls included)


def test_resolve_by_canonical_and_reference(pkg):
    a = apply(f"{BASE}/PlanDefinition/rec|0.0.1", patient("396198006"), "Patient/p1", package=pkg)
    b = apply("PlanDefinition/rec", patient("396198006"), "Patient/p1", package=pkg)
    assert a.actions == b.actions == ["rec#offer"]


def test_output_validates_without_errors(pkg, defs):
    from fhirpkg import api
    r = apply("root", patient("396198006", "94222008"), "Patient/p1", package=pkg)
    errors = [i for i in api.validate_resource(r.bundle, defs=defs) if i.is_error]
    assert errors == []


@pytest.mark.parametrize("call,message", [
    (lambda pkg: apply("nope", patient(), "Patient/p1", package=pkg), "PlanDefinition nope not found"),
    (lambda pkg: apply("root", {"resourceType": "Patient", "id": "p1"}, "Patient/p1", package=pkg),
     "must be a FHIR Bundle"),
    (lambda pkg: apply("root", patient(), "Patient/p2", package=pkg), "subject Patient/p2 is not in the data"),
    (lambda pkg: apply("fhirpath", patient(), "Patient/p1", package=pkg), "unsupported expression language"),
])
def test_errors(pkg, call, message):
    with pytest.raises(ApplyError, match=message):
        call(pkg)


def test_unsupported_elm_node(pkg):
    with pytest.raises(UnsupportedElm, match=r"unsupported ELM node Message at 40:3-40:20"):
        apply("broken", patient(), "Patient/p1", package=pkg)


# --- the CLI ---------------------------------------------------------------------------------------
def run_cli(*args):
    return CliRunner().invoke(main, ["apply", *args])  # click >= 8.2 keeps stderr apart


@pytest.fixture
def data_file(tmp_path):
    def make(value, name="data.json"):
        p = tmp_path / name
        p.write_text(value if isinstance(value, str) else json.dumps(value, indent=2))
        return str(p)
    return make


def test_cli_writes_bundle_and_explains(pkg, data_file, tmp_path):
    out = tmp_path / "out.json"
    r = run_cli("root", "--data", data_file(patient("396198006")), "--subject", "Patient/p1", "-o", str(out),
                "--explain", "--package", str(pkg))
    assert r.exit_code == 0, r.output
    assert "rec#offer: 'Has Confirmed NEPC Diagnosis' = true" in r.stderr
    assert "rec#bone: 'Bone Metastases' = false" in r.stderr
    assert "rec#unknown: 'Unknown' = null" in r.stderr
    assert "  rec#offer" in r.stdout
    assert json.loads(out.read_text())["entry"][0]["resource"]["resourceType"] == "CarePlan"


@pytest.mark.parametrize("data,subject,plan,message", [
    ('{"resourceType": "Bundle",\n  "entry": [,]}', "Patient/p1", "root", ":2:13: not JSON"),
    ({"resourceType": "Patient", "id": "p1"}, "Patient/p1", "root", "must be a FHIR Bundle (found Patient)"),
    (patient(), "Patient/zz", "root", "subject Patient/zz is not in the data"),
    (patient(), "Patient/p1", "missing", "PlanDefinition missing not found"),
    (patient(), "Patient/p1", "fhirpath", "unsupported expression language 'text/fhirpath'"),
    (patient(), "Patient/p1", "broken", "unsupported ELM node Message at 40:3-40:20"),
])
def test_cli_errors_exit_2_with_one_line(pkg, data_file, data, subject, plan, message):
    r = run_cli(plan, "--data", data_file(data), "--subject", subject, "--package", str(pkg))
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("fhirpkg apply: ")
    assert "Traceback" not in r.output


def test_lazy_top_level_export():
    import fhirpkg
    from fhirpkg import api
    assert fhirpkg.apply is api.apply


# --- the package's own Library ------------------------------------------------------------------
#: docs/logic.md's data contract on a record with nothing in it: only the "no prior platinum" definition holds.
EMPTY_RECORD = {
    "Has Confirmed NEPC Diagnosis": False, "Completed Prostate Biopsy": False,
    "Neuroendocrine Pathology Report": False, "Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate": False,
    "Biopsy Confirmation Not Found": False, "Prior Platinum Chemotherapy": False,
    "No Prior Platinum Chemotherapy": True, "Disease Progression After Platinum": False,
    "Tumour Genomic Testing Available": False, "Tumour Genomic Testing Not Found": False,
    "Homologous Recombination Repair Gene Alteration": False, "PARP Trial Consideration Applies": False,
    "Bone Metastases": False}


def test_package_library_on_an_empty_record():
    from fhirpkg.logic import elm
    from fhirpkg.logic.apply import load_package
    pkg = load_package(ROOT / "definitions")
    url = "http://example.org/fhir/nepc/Library/NEPCLogic|0.1.0"
    if pkg.canonical(url) is None:
        pytest.skip("definitions/ has no NEPCLogic Library yet")
    lib = pkg.library(url)
    ctx = elm.Context(elm.Data.of(patient(), "p1"), pkg.valuesets)
    got = {name: lib.evaluate(name, ctx) for name in EMPTY_RECORD}
    assert got == EMPTY_RECORD
    for name in lib.statements:  # every definition compiles: no unsupported ELM node in the package
        lib.evaluate(name, ctx)


def test_library_problems_are_apply_errors(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": "org.example.t", "version": "0.0.1", "canonical": BASE}))
    write(root, {"resourceType": "Library", "id": "NoElm", "url": f"{BASE}/Library/NoElm", "status": "draft",
                 "type": {"text": "logic"}, "content": [{"contentType": "text/cql", "data": "bGlicmFyeQ=="}]})
    for lib in ("NoElm", "Missing"):
        write(root, {"resourceType": "PlanDefinition", "id": f"pd-{lib}", "url": f"{BASE}/PlanDefinition/pd-{lib}",
                     "status": "draft", "library": [f"{BASE}/Library/{lib}"],
                     "action": [{"id": "a", "condition": [cond("X")]}]})
    with pytest.raises(ApplyError, match="has no application/elm\\+json content"):
        apply("pd-NoElm", patient(), "Patient/p1", package=root)
    with pytest.raises(ApplyError, match="library .*/Library/Missing is not in the package"):
        apply("pd-Missing", patient(), "Patient/p1", package=root)
