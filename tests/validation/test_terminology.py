"""The offline terminology engine and its validation layer.

Membership is checked against the real packages (R5 core, hl7.terminology 7.0.1,
extensions); the layer's wording is checked against the HL7 validator's recorded
outcomes in the conformance suite where a case is purely local.
"""
from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest

from fhirpkg.issues import Severity
from fhirpkg.fhir.model import Binding, ElementDef, Node, ResourceFrame
from fhirpkg.fhir.packages import R5_DEFAULT_PACKAGES, PackageRef, installed
from fhirpkg.validation.terminology.codes import Terminology
from fhirpkg.validation.terminology.grammars import IsoData, check_bcp47, check_mime_type, check_ucum, load_iso_codes
from fhirpkg.validation.terminology.systems import BCP13, BCP47, LOINC, RXNORM, SNOMED, UCUM
from fhirpkg.validation.terminology.layer import check_binding, check_coding_systems, check_node

CONFORMANCE = Path("/work/shared/conformance/fhir-test-cases/validator")
VS = "http://hl7.org/fhir/ValueSet/"
GENDER_CS = "http://hl7.org/fhir/administrative-gender"


def _packages():
    pkgs = [installed(PackageRef(*r)) for r in R5_DEFAULT_PACKAGES]
    if any(p is None for p in pkgs):
        pytest.skip("R5 core, hl7.terminology.r5 and the extensions package must be installed")
    return pkgs


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.from_packages(_packages())


# --- membership in real value sets ----------------------------------------------------

def test_administrative_gender(term):
    assert term.validate_code(VS + "administrative-gender", None, "male").valid
    assert term.validate_code(VS + "administrative-gender", GENDER_CS, "female").valid
    bad = term.validate_code(VS + "administrative-gender", None, "man")
    assert bad.invalid
    assert "Unknown code 'man'" in bad.message and GENDER_CS in bad.message
    assert term.validate_code(VS + "administrative-gender", "http://example.org/other", "male").invalid
    # a versioned canonical must match: R5 core ships 5.0.0 only
    assert term.validate_code(VS + "administrative-gender|5.0.0", None, "male").valid
    assert term.validate_code(VS + "administrative-gender|4.0.1", None, "male").status == "unknown-value-set"


def test_publication_status_and_request_intent(term):
    for code in ("draft", "active", "retired", "unknown"):
        assert term.validate_code(VS + "publication-status", None, code).valid
    assert term.validate_code(VS + "publication-status", None, "Active").invalid  # case-sensitive system
    assert term.validate_code(VS + "request-intent", None, "original-order").valid
    assert term.validate_code(VS + "request-intent", None, "order-set").invalid


def test_plan_definition_type_from_tho(term):
    system = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
    exp = term.expand(VS + "plan-definition-type")
    assert exp.enumerable and exp.codes[system] == {
        "order-set", "clinical-protocol", "eca-rule", "workflow-definition", "protocol"}
    assert term.validate_code(VS + "plan-definition-type", system, "eca-rule").valid
    assert term.validate_code(VS + "plan-definition-type", system, "pathway").invalid


def test_is_a_filter_over_v3_hierarchy(term):
    url = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
    exp = term.expand(url)
    assert exp.enumerable
    act = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert exp.codes[act] == {"AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR"}
    assert term.validate_code(url, act, "AMB").valid
    assert term.validate_code(url, act, "CASH").invalid  # an ActCode outside the sub-tree


def test_descendent_of_and_is_not_a(term):
    url = "http://terminology.hl7.org/ValueSet/v3-PersonNameUse"
    exp = term.expand(url)
    system = "http://terminology.hl7.org/CodeSystem/v3-EntityNameUse"
    assert exp.enumerable and "_PersonNameUse" not in exp.codes[system] and exp.codes[system]
    contact = term.expand(VS + "patient-contactrelationship")
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0131"
    assert contact.enumerable and "O" not in contact.codes[v2] and "C" in contact.codes[v2]


def test_regex_filter_with_grammar(term):
    url = VS + "iso3166-1-2"
    assert term.validate_code(url, "urn:iso:std:iso:3166", "US").status in ("valid", "not-checked")
    assert term.validate_code(url, "urn:iso:std:iso:3166", "USA").invalid  # fails the [A-Z]{2} filter


def test_v2_value_sets_pinned_to_an_older_version(term):
    """THO 7.0.1's v2 value sets pin version 2.0.0 of code systems it ships as 3.0.0."""
    url = "http://terminology.hl7.org/ValueSet/v2-0001"
    exp = term.expand(url)
    assert exp.enumerable
    assert exp.version_fallbacks
    assert term.validate_code(url, "http://terminology.hl7.org/CodeSystem/v2-0001", "F").valid


def test_not_checked_for_server_side_systems(term):
    for system, name in ((SNOMED, "SNOMED CT"), (LOINC, "LOINC"), (RXNORM, "RxNorm")):
        res = term.validate_in_system(system, "12345")
        assert res.status == "not-checked" and res.reason == "server-side"
        assert f"{name} is not available offline" in res.message
    res = term.validate_code(VS + "clinical-findings", SNOMED, "22298006")
    assert res.status == "not-checked" and "SNOMED CT is not available offline" in res.message
    # ...but a code from another system is decidably not in a SNOMED-only value set
    assert term.validate_code(VS + "clinical-findings", LOINC, "8867-4").invalid
    # LOINC codes a value set lists are members without LOINC itself
    assert term.validate_code(VS + "observation-vitalsignresult", LOINC, "8867-4").valid


def test_unknown_and_unavailable(term):
    assert term.validate_code("http://example.org/ValueSet/nope", None, "x").status == "unknown-value-set"
    res = term.validate_in_system("http://example.org/codes", "x")
    assert res.status == "not-checked" and res.reason == "unknown-system"
    assert "could not be found" in res.message


def test_display_and_case(term):
    assert not term.validate_in_system(GENDER_CS, "male", "Male").findings
    assert not term.validate_in_system(GENDER_CS, "male", "MALE").findings  # case-insensitive, as HL7
    kinds = [k for k, _ in term.validate_in_system(GENDER_CS, "male", "Man").findings]
    assert kinds == ["display"]
    ws = term.validate_in_system(GENDER_CS, "male", "Male ")  # normalised whitespace still differs
    assert [k for k, _ in ws.findings] == ["display-ws"]


def test_bare_code_in_multi_system_value_set(term):
    # the system of a `code` value is inferred from the value set
    res = term.validate_code(VS + "mimetypes", None, "json")  # R5 format code, accepted as HL7 does
    assert res.valid
    assert term.validate_code(VS + "mimetypes", None, "application/fhir+json").valid
    assert term.validate_code(VS + "mimetypes", None, "fhir+json").invalid


def test_member_of(term):
    url = VS + "administrative-gender"
    assert term.member_of("male", url) is True
    assert term.member_of("nope", url) is False
    assert term.member_of({"system": GENDER_CS, "code": "other"}, url) is True
    assert term.member_of({"coding": [{"system": "http://x", "code": "a"},
                                      {"system": GENDER_CS, "code": "female"}]}, url) is True
    assert term.member_of({"coding": [{"system": "http://x", "code": "a"}]}, url) is False
    assert term.member_of({"system": SNOMED, "code": "1"}, VS + "clinical-findings") is None
    assert term.member_of("male", "http://example.org/unknown") is None
    assert term.member_of(42, url) is None


def test_compose_inactive_and_exclude():
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "version": "1", "content": "complete",
          "caseSensitive": True,
          "concept": [{"code": "a", "display": "A"},
                      {"code": "b", "display": "B", "property": [{"code": "inactive", "valueBoolean": True}]},
                      {"code": "c", "display": "C", "property": [{"code": "status", "valueCode": "retired"}],
                       "concept": [{"code": "c1", "display": "C one"}]}]}
    active_only = {"resourceType": "ValueSet", "url": "http://example.org/vs-active",
                   "compose": {"inactive": False, "include": [{"system": "http://example.org/cs"}],
                               "exclude": [{"system": "http://example.org/cs", "concept": [{"code": "c1"}]}]}}
    imports = {"resourceType": "ValueSet", "url": "http://example.org/vs-import",
               "compose": {"include": [{"valueSet": ["http://example.org/vs-active"]}]}}
    broken = {"resourceType": "ValueSet", "url": "http://example.org/vs-broken",
              "compose": {"include": [{"valueSet": ["http://example.org/missing"]}]}}
    term = Terminology.from_resources([(r, "test") for r in (cs, active_only, imports, broken)], iso_codes=None)
    assert term.validate_code("http://example.org/vs-active", None, "a").valid
    res = term.validate_code("http://example.org/vs-active", "http://example.org/cs", "b")
    assert res.invalid and "not active" in res.message
    assert term.validate_code("http://example.org/vs-active", None, "c1").invalid  # excluded
    assert term.validate_code("http://example.org/vs-import", None, "a").valid
    assert term.validate_code("http://example.org/vs-import", None, "c1").invalid
    assert term.validate_code("http://example.org/vs-broken", None, "a").status == "not-checked"
    found = term.validate_in_system("http://example.org/cs", "c", "C")
    assert found.valid and [k for k, _ in found.findings] == ["inactive"]
    assert "status of retired" in found.findings[0][1]


def test_pickle_round_trip_is_small(term):
    blob = pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < 4_000_000
    again = pickle.loads(blob)
    assert again.validate_code(VS + "administrative-gender", None, "male").valid
    assert again.validate_code(VS + "all-languages", None, "en-US").valid
    assert again.expand("http://terminology.hl7.org/ValueSet/v3-ActEncounterCode").size() == 11


# --- grammars ---------------------------------------------------------------------

GOOD_TAGS = ["en", "en-US", "zh-Hant-TW", "sr-Latn-RS", "de-CH-1996", "es-419", "x-private", "i-klingon",
             "en-GB-oed", "zh-yue-HK", "en-US-u-ca-gregory", "fr-x-foo", "nl-BE", "sgn-BE-FR"]
BAD_TAGS = ["", "en_US", "en--US", "123", "e", "en-US-US", "de-1996-1996", "en-a-bbb-a-ccc", "en-x", "en-",
            "toolongtag", "en-a"]


@pytest.mark.parametrize("tag", GOOD_TAGS)
def test_bcp47_syntax_good(tag):
    assert check_bcp47(tag)[0], check_bcp47(tag)[1]


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_bcp47_syntax_bad(tag):
    assert not check_bcp47(tag)[0]


def test_bcp47_subtags_with_iso_data():
    iso = load_iso_codes()
    if iso is None:
        pytest.skip("the iso-codes data is not installed")
    for tag in GOOD_TAGS:
        assert check_bcp47(tag, iso)[0], (tag, check_bcp47(tag, iso))
    ok, why = check_bcp47("english", iso)
    assert not ok and "english" in why
    ok, why = check_bcp47("eng-US", iso)
    assert not ok and "'en'" in why  # the registry has the two-letter code only
    assert check_bcp47("en-QQ", iso)[0]  # QM-QZ are private-use regions
    assert not check_bcp47("en-KK", iso)[0]  # no such country
    assert not check_bcp47("en-Abcd", iso)[0]  # no such script
    assert check_bcp47("iw", iso)[0]  # deprecated, still registered


def test_bcp47_without_data_is_syntax_only():
    data = IsoData(source="test", languages=frozenset({"en"}), regions=frozenset({"US"}))
    assert check_bcp47("en-US", data)[0]
    assert not check_bcp47("fr", data)[0]


@pytest.mark.parametrize("value,ok", [
    ("application/fhir+json", True), ("text/plain; charset=utf-8", True), ('text/plain; charset="utf-8"', True),
    ("image/svg+xml", True), ("application/dicom; variant=DICOM STOW-RS", True), ("x-application/hl7-v2+er7", True),
    ("text", False), ("foo/bar", False), ("text/", False), ("/plain", False), ("text/plain;", False),
    ("text /plain", False),
])
def test_mime_types(value, ok):
    assert check_mime_type(value)[0] is ok


@pytest.mark.parametrize("code,ok", [
    ("mg", True), ("mg/dL", True), ("10*3/uL", True), ("mL/min/{1.73_m2}", True), ("{score}", True),
    ("/min", True), ("kg/m2", True), ("mm[Hg]", True), ("[lb_av]", True), ("%", True), ("1", True),
    ("s-1", True), ("mg.kg-1.d-1", True), ("(mL/min)/m2", True), ("Cel", True), ("[degF]", True),
    ("mg/", False), ("m g", False), ("", False), ("mg)", False), ("(mg", False), ("{unclosed", False),
    ("xyz", None),
])
def test_ucum(code, ok):
    assert check_ucum(code)[0] is ok


def test_grammar_systems_through_the_engine(term):
    assert term.validate_in_system(BCP47, "en-AU").valid
    assert term.validate_in_system(BCP47, "en_AU").invalid
    assert term.validate_in_system(BCP13, "text/html").valid
    assert term.validate_in_system(UCUM, "mg/dL").valid
    assert term.validate_in_system(UCUM, "mg/").invalid
    assert term.validate_in_system("http://hl7.org/fhir/color-rgb", "#FFaa00").valid
    assert term.validate_in_system("http://hl7.org/fhir/color-rgb", "red").invalid
    m49 = "http://unstats.un.org/unsd/methods/m49/m49.htm"
    assert term.validate_code(VS + "jurisdiction", m49, "001").valid  # World: every HL7 resource says it
    assert term.validate_code(VS + "jurisdiction", m49, "840").invalid  # a country, not a region
    assert term.validate_in_system(m49, "1234").invalid
    cur = term.validate_code(VS + "currencies", None, "EUR")
    assert cur.valid or (cur.status == "not-checked" and term.iso is None)
    assert term.validate_code(VS + "currencies", None, "euro").invalid


# --- the layer: Issues from Nodes -------------------------------------------------------

def _node(value, type_code, strength=None, value_set=None, path="Patient.gender", base_path=None,
          expression=None):
    binding = Binding(strength, value_set) if strength else None
    edef = ElementDef(id=path, path=path, name=path.rsplit(".", 1)[-1], min=0, max=1, binding=binding,
                      base_path=base_path or path)
    frame = ResourceFrame({"resourceType": path.split(".")[0]}, path.split(".")[0], path.split(".")[0], ())
    expr = expression or path
    return Node(value, None, type_code, edef, expr, tuple(expr.split(".")[1:]), frame)


def _issues(term, node, **kw):
    return list(check_node(term, node, **kw))


def test_layer_required_code(term):
    assert _issues(term, _node("male", "code", "required", VS + "administrative-gender|5.0.0")) == []
    issues = _issues(term, _node("man", "code", "required", VS + "administrative-gender|5.0.0"))
    assert len(issues) == 1
    i = issues[0]
    assert (i.severity, i.code, i.rule) == (Severity.ERROR, "code-invalid", "binding-required")
    assert i.message.startswith("The value provided ('man') was not found in the value set 'AdministrativeGender' "
                                "(http://hl7.org/fhir/ValueSet/administrative-gender|5.0.0), and a code is required")
    assert i.expression == "Patient.gender" and i.location == ("gender",)


def test_layer_extensible_codeable_concept(term):
    cc = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MC"}]}
    issues = _issues(term, _node(cc, "CodeableConcept", "extensible", VS + "identifier-type",
                                 path="Patient.identifier.type", expression="Patient.identifier[0].type"))
    assert [(i.severity, i.rule) for i in issues] == [(Severity.WARNING, "binding-extensible")]
    assert "(codes = http://terminology.hl7.org/CodeSystem/v2-0203#MC)" in issues[0].message
    ok = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
    assert _issues(term, _node(ok, "CodeableConcept", "extensible", VS + "identifier-type",
                               path="Patient.identifier.type")) == []
    text_only = _issues(term, _node({"text": "x"}, "CodeableConcept", "extensible", VS + "identifier-type",
                                    path="Patient.identifier.type"))
    assert [(i.severity, i.rule) for i in text_only] == [(Severity.WARNING, "binding-extensible")]
    required_text_only = _issues(term, _node({"text": "x"}, "CodeableConcept", "required", VS + "identifier-type",
                                             path="Patient.identifier.type"))
    assert [i.severity for i in required_text_only] == [Severity.ERROR]


def test_layer_preferred_and_example(term):
    cc = {"coding": [{"system": "http://example.org/x", "code": "1"}]}
    args = dict(path="Patient.maritalStatus")
    node = _node(cc, "CodeableConcept", "preferred", VS + "marital-status", **args)
    assert list(check_binding(term, node)) == []  # a base-spec preferred binding: HL7 stays silent
    issues = list(check_binding(term, node, report_preferred=True))
    assert [(i.severity, i.rule) for i in issues] == [(Severity.INFORMATION, "binding-preferred")]
    assert list(check_binding(term, _node(cc, "CodeableConcept", "example", VS + "marital-status", **args))) == []


def test_layer_required_not_enumerable_is_information(term):
    cc = {"coding": [{"system": SNOMED, "code": "22298006"}]}
    issues = list(check_binding(term, _node(cc, "CodeableConcept", "required", VS + "clinical-findings",
                                            path="Condition.code")))
    assert [(i.severity, i.code, i.rule) for i in issues] == [
        (Severity.INFORMATION, "not-supported", "terminology-not-checked")]
    assert "SNOMED CT is not available offline" in issues[0].message


def test_layer_coding_and_quantity_bindings(term):
    coding = {"system": GENDER_CS, "code": "mal"}
    issues = list(check_binding(term, _node(coding, "Coding", "required", VS + "administrative-gender",
                                            path="Extension.valueCoding")))
    assert [i.rule for i in issues] == ["binding-required"]
    assert issues[0].message.startswith(f"The Coding provided ({GENDER_CS}#mal) was not found in the value set")
    qty = {"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}
    assert list(check_binding(term, _node(qty, "Quantity", "required", VS + "ucum-bodyweight",
                                          path="Observation.valueQuantity"))) == []
    qty_bad = dict(qty, code="mm")
    assert [i.rule for i in check_binding(term, _node(qty_bad, "Quantity", "required", VS + "ucum-bodyweight",
                                                       path="Observation.valueQuantity"))] == ["binding-required"]
    ref = {"concept": {"coding": [{"system": GENDER_CS, "code": "x"}]}}
    issues = list(check_binding(term, _node(ref, "CodeableReference", "required", VS + "administrative-gender",
                                            path="Thing.reason")))
    assert [i.expression for i in issues] == ["Thing.reason.concept"]


def test_layer_unknown_value_set_and_language(term):
    issues = list(check_binding(term, _node("official", "code", "required", VS + "identifier-use|4.0.1",
                                            path="Patient.identifier.use")))
    assert [(i.severity, i.message) for i in issues] == [
        (Severity.WARNING, "ValueSet 'http://hl7.org/fhir/ValueSet/identifier-use|4.0.1' not found")]
    lang = VS + "all-languages|5.0.0"
    assert list(check_binding(term, _node("en-AU", "code", "required", lang, path="Patient.language"))) == []
    bad = list(check_binding(term, _node("en_AU", "code", "required", lang, path="Patient.language")))
    assert [i.severity for i in bad] == [Severity.ERROR] and "en_AU" in bad[0].message


def test_layer_codings_without_binding(term):
    in_cc = dict(path="CodeableConcept.coding", expression="Observation.code.coding[0]")
    unknown = _issues(term, _node({"system": GENDER_CS, "code": "nope"}, "Coding", **in_cc))
    assert [(i.severity, i.rule, i.expression) for i in unknown] == [
        (Severity.ERROR, "code-unknown", "Observation.code.coding[0].code")]
    assert unknown[0].message == f"Unknown code 'nope' in the CodeSystem '{GENDER_CS}' version '5.0.0'"
    display = _issues(term, _node({"system": GENDER_CS, "code": "male", "display": "Man"}, "Coding", **in_cc))
    assert [(i.severity, i.rule) for i in display] == [(Severity.ERROR, "code-display")]
    assert display[0].message.startswith(f"Wrong Display Name 'Man' for {GENDER_CS}#male. Valid display is 'Male'")
    snomed_cc = _issues(term, _node({"system": SNOMED, "code": "1"}, "Coding", **in_cc))
    assert [(i.severity, i.rule) for i in snomed_cc] == [(Severity.WARNING, "terminology-not-checked")]
    assert "SNOMED CT is not available offline" in snomed_cc[0].message
    lone = dict(path="Extension.valueCoding", expression="Extension.valueCoding")
    snomed_lone = _issues(term, _node({"system": SNOMED, "code": "1"}, "Coding", **lone))
    assert [(i.severity, i.code) for i in snomed_lone] == [(Severity.WARNING, "business-rule")]
    assert "running without terminology services" in snomed_lone[0].message
    other = _issues(term, _node({"system": "http://example.org/codes", "code": "1"}, "Coding", **lone))
    assert [(i.severity, i.rule) for i in other] == [(Severity.INFORMATION, "code-system-unknown")]
    no_system = _issues(term, _node({"code": "1"}, "Coding", **in_cc))
    assert [(i.severity, i.rule) for i in no_system] == [(Severity.WARNING, "coding-no-system")]
    wrong = _issues(term, _node({"system": "http://hl7.org/fhir/no-such-system", "code": "1"}, "Coding", **lone))
    assert [(i.severity, i.rule) for i in wrong] == [(Severity.ERROR, "code-system-invalid")]
    for found in (unknown, display, snomed_cc, snomed_lone, other, no_system):
        assert all(i.severity <= Severity.ERROR for i in found)


def test_layer_never_errors_for_unavailable_systems(term):
    for system in (SNOMED, LOINC, RXNORM, "http://hl7.org/fhir/sid/icd-10-cm", "http://example.org/x"):
        for path in ("CodeableConcept.coding", "Extension.valueCoding"):
            issues = _issues(term, _node({"system": system, "code": "123"}, "Coding", path=path))
            assert issues and all(i.severity < Severity.ERROR for i in issues), (system, path, issues)


def test_layer_quantity_units(term):
    q = dict(path="Observation.valueQuantity")
    assert _issues(term, _node({"value": 1, "system": UCUM, "code": "mg/dL"}, "Quantity", **q)) == []
    bad = _issues(term, _node({"value": 1, "system": UCUM, "code": "mg/"}, "Quantity", **q))
    assert [(i.severity, i.rule) for i in bad] == [(Severity.ERROR, "code-invalid")]
    odd = _issues(term, _node({"value": 1, "system": UCUM, "code": "xyz"}, "Quantity", **q))
    assert [(i.severity, i.rule) for i in odd] == [(Severity.INFORMATION, "terminology-not-checked")]


# --- agreement with the HL7 validator's recorded outcomes -------------------------------------

def _outcome(name: str) -> list[dict]:
    path = CONFORMANCE / "outcomes" / "java" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"conformance outcome {name} not available")
    return json.loads(path.read_text()).get("issue", [])


def test_matches_hl7_patient_au_5(term):
    """R5.patient-au-5-base: an identifier type outside the extensible value set."""
    expected = [i["details"]["text"] for i in _outcome("R5.patient-au-5-base") if i["code"] == "code-invalid"]
    cc = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MC"}]}
    node = _node(cc, "CodeableConcept", "extensible", VS + "identifier-type|5.0.0", path="Patient.identifier.type",
                 expression="Patient.identifier[0].type")
    assert [i.message for i in check_binding(term, node)] == expected


def test_matches_hl7_obs_sampled_data(term):
    """R5.obs-sampled-data-base: a text-only CodeableConcept under an extensible binding."""
    expected = [i["details"]["text"] for i in _outcome("R5.obs-sampled-data-base") if i["code"] == "code-invalid"]
    node = _node({"text": "x"}, "CodeableConcept", "extensible", VS + "observation-interpretation|5.0.0",
                 path="Observation.interpretation", expression="Observation.interpretation[0]")
    assert [i.message for i in check_binding(term, node)] == expected


def test_matches_hl7_mcode_versioned_value_set(term):
    expected = {i["details"]["text"] for i in _outcome("R5.mcode-pat-base")}
    node = _node("usual", "code", "required", VS + "name-use|4.0.1", path="Patient.name.use")
    assert {i.message for i in check_binding(term, node)} <= expected


def test_matches_hl7_inactive_codes():
    """R5.inactive-*-base: an inactive code is a warning, whatever the value set says."""
    files = [CONFORMANCE / n for n in ("inactive-cs.json", "inactive-ex-inactive.json")]
    if not all(f.is_file() for f in files):
        pytest.skip("conformance files not available")
    cs, ex = (json.loads(f.read_text()) for f in files)
    term = Terminology.from_resources([(cs, "test")], iso_codes=None)
    coding = ex["parameter"][0]["valueCoding"]
    node = _node(coding, "Coding", path="Parameters.parameter.value[x]",
                 expression="Parameters.parameter[0].value.ofType(Coding)")
    issues = list(check_coding_systems(term, node))
    expected = [i for i in _outcome("R5.inactive-inactive-active-base") if i["code"] == "business-rule"]
    assert [(i.severity.code, i.message) for i in issues] == [
        (e["severity"], e["details"]["text"]) for e in expected]


# --- census of required bindings in the R5 core resources ---------------------------------------

def test_census_of_required_bindings(term):
    """How many of the 557 required bindings of the R5 resource snapshots are checkable offline.

    Prints the reasons for the rest.  Enumerable: the value set's members can be
    listed from the packages; grammar: membership is decided by a grammar or an
    ISO/IANA list (BCP-47, BCP-13, ISO 4217/3166, IANA time zones, RGB colours).
    """
    core = _packages()[0]
    kinds: Counter = Counter()
    reasons: Counter = Counter()
    total = 0
    for sd in core.resources(types={"StructureDefinition"}):
        if sd.get("kind") != "resource" or sd.get("derivation") != "specialization":
            continue
        for e in sd.get("snapshot", {}).get("element", ()):
            b = e.get("binding") or {}
            if b.get("strength") != "required":
                continue
            total += 1
            kind, why = term.enumerability(b.get("valueSet") or "")
            kinds[kind] += 1
            if kind != "enumerable":
                reasons[(kind, why)] += 1
    print(f"\nrequired bindings: {total}; {dict(kinds)}")
    for (kind, why), n in reasons.most_common():
        print(f"  {n:4d}  {kind:15s} {why}")
    assert total == 557
    assert kinds["enumerable"] >= 369
    # everything but the LOINC answer list MolecularSequence binds to (not in any package) is checkable;
    # without the iso-codes data ISO 4217 and ISO 3166 fall to syntax checks, without tzdata time zones
    floor = 556 - (0 if term.iso is not None else 2) - (0 if term.time_zones else 1)
    assert kinds["enumerable"] + kinds["grammar"] >= floor
    assert kinds["unknown"] == 1


def test_derive_keeps_the_original_untouched(term):
    extra = {"resourceType": "ValueSet", "url": "http://example.org/vs-derived",
             "compose": {"include": [{"system": GENDER_CS, "concept": [{"code": "male"}]}]}}
    child = term.derive()
    child.add(extra)
    assert child.validate_code("http://example.org/vs-derived", None, "male").valid
    assert term.validate_code("http://example.org/vs-derived", None, "male").status == "unknown-value-set"
    assert child.validate_code(VS + "administrative-gender", None, "female").valid


def test_stale_pickle_is_refused(term):
    from fhirpkg.validation.terminology.codes import StaleIndexError
    state = term.__getstate__()
    state["format"] = "0"
    fresh = Terminology.__new__(Terminology)
    with pytest.raises(StaleIndexError):
        fresh.__setstate__(state)


def test_a_code_system_that_supplements_another_is_no_coding_system():
    """As the HL7 validator (ValueSetValidator: content = supplement, or a supplements element): a
    Coding cannot use a supplement's URL as its system.  R4 cases supplement-1/1b state
    ``supplements`` with content 'complete'."""
    base = {"resourceType": "CodeSystem", "url": "http://example.org/base", "content": "complete",
            "concept": [{"code": "a", "display": "A"}]}
    stated = {"resourceType": "CodeSystem", "url": "http://example.org/supp-stated", "content": "supplement",
              "supplements": "http://example.org/base", "concept": [{"code": "a", "display": "Ah"}]}
    implied = {"resourceType": "CodeSystem", "url": "http://example.org/supp-implied", "content": "complete",
               "supplements": "http://example.org/base", "concept": [{"code": "a", "display": "Ah"}]}
    term = Terminology.from_resources([(r, "test") for r in (base, stated, implied)], iso_codes=None)
    assert term.validate_in_system("http://example.org/base", "a", "A").valid
    for url in ("http://example.org/supp-stated", "http://example.org/supp-implied"):
        found = term.validate_in_system(url, "a", None)
        assert found.invalid and found.message == (f"CodeSystem {url} is a supplement, so can't be used as a "
                                                   "value in Coding.system")
