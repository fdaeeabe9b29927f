"""The ELM evaluator on hand-written expectations from the CQL specification (cql.hl7.org, v1.5).

The ELM here is written by hand in the shape the cql-to-elm translator gives for the CQL quoted in
each test (node types and attributes as in the ELM schema); the package's own ELM comes from the
translator and is exercised by tests/logic/test_apply.py and the panel test.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fhirpkg.errors import UnsupportedElm
from fhirpkg.logic import elm
from fhirpkg.logic.cqltypes import DateTime
from fhirpkg.logic.r4data import to_r4_bundle

S = "{urn:hl7-org:elm-types:r1}"
NULL = {"type": "Null"}
T = {"type": "Literal", "valueType": S + "Boolean", "value": "true"}
F = {"type": "Literal", "valueType": S + "Boolean", "value": "false"}
SNOMED = "http://snomed.info/sct"
VS_URL = "http://example.org/fhir/nepc/ValueSet/nepc-diagnosis"


def s(v):
    return {"type": "Literal", "valueType": S + "String", "value": v}


def i(v):
    return {"type": "Literal", "valueType": S + "Integer", "value": str(v)}


def op(kind, *operands, **extra):
    return {"type": kind, "operand": list(operands), **extra}


def lst(*items):
    return {"type": "List", "element": list(items)}


def dt(*parts):
    names = ("year", "month", "day", "hour", "minute", "second", "millisecond")
    return {"type": "DateTime", **{n: i(p) for n, p in zip(names, parts)}}


def library(statements, functions=()):
    return {"library": {
        "identifier": {"id": "Test", "version": "0.0.1"},
        "codeSystems": {"def": [{"name": "SNOMEDCT", "id": SNOMED},
                                {"name": "ConditionVerificationStatus",
                                 "id": "http://terminology.hl7.org/CodeSystem/condition-ver-status"}]},
        "valueSets": {"def": [{"name": "NEPC Diagnosis", "id": VS_URL}]},
        "codes": {"def": [{"name": "confirmed", "id": "confirmed",
                           "codeSystem": {"name": "ConditionVerificationStatus"}}]},
        "statements": {"def": [{"name": n, "context": "Patient", "expression": e} for n, e in statements.items()]
                       + list(functions)}}}


VALUESETS = elm.ValueSets({VS_URL: {"resourceType": "ValueSet", "url": VS_URL, "compose": {"include": [
    {"system": SNOMED, "concept": [{"code": "396198006"}]},
    {"system": "http://data.mskcc.org/ontologies/oncotree", "concept": [{"code": "PRSCC"}, {"code": "PRNE"}]}]}}})


def evaluate(expr, resources=(), functions=()):
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}] + [{"resource": r} for r in resources]}
    lib = elm.load(library({"X": expr}, functions))
    ctx = elm.Context(elm.Data.of(to_r4_bundle(bundle), "p"), VALUESETS)
    return lib.evaluate("X", ctx)


# --- three-valued logic: the truth tables of CQL §12.1 (Logical Operators) ---------------------
@pytest.mark.parametrize("a,b,want", [(T, T, True), (T, F, False), (T, NULL, None), (F, NULL, False),
                                      (NULL, F, False), (NULL, NULL, None)])
def test_and(a, b, want):
    assert evaluate(op("And", a, b)) is want


@pytest.mark.parametrize("a,b,want", [(F, F, False), (T, NULL, True), (NULL, T, True), (F, NULL, None),
                                      (NULL, NULL, None)])
def test_or(a, b, want):
    assert evaluate(op("Or", a, b)) is want


@pytest.mark.parametrize("a,want", [(T, False), (F, True), (NULL, None)])
def test_not(a, want):
    assert evaluate(op("Not", a)) is want


def test_implies_and_xor_with_null():
    assert evaluate(op("Implies", F, NULL)) is True      # false implies anything
    assert evaluate(op("Implies", T, NULL)) is None
    assert evaluate(op("Xor", T, NULL)) is None


# --- nulls in comparisons, lists and existence ---------------------------------------------------
def test_equal_and_equivalent_with_null_and_strings():
    assert evaluate(op("Equal", s("a"), NULL)) is None
    assert evaluate(op("Equivalent", NULL, NULL)) is True   # ~ never returns null
    assert evaluate(op("Equivalent", s("a"), NULL)) is False
    assert evaluate(op("Equal", s("ABC"), s("abc"))) is False
    assert evaluate(op("Equivalent", s("ABC"), s("abc"))) is True  # case-insensitive


def test_exists_ignores_nulls():
    assert evaluate({"type": "Exists", "operand": lst()}) is False
    assert evaluate({"type": "Exists", "operand": lst(NULL)}) is False
    assert evaluate({"type": "Exists", "operand": lst(i(1))}) is True


def test_in_list():
    assert evaluate(op("In", s("final"), lst(s("final"), s("amended")))) is True
    assert evaluate(op("In", s("preliminary"), lst(s("final"), s("amended")))) is False
    assert evaluate(op("In", NULL, lst(s("final")))) is False   # null in a list without nulls
    assert evaluate(op("In", NULL, lst(s("final"), NULL))) is True


def test_union_is_distinct_and_min_skips_nulls():
    assert evaluate(op("Union", lst(i(1), i(2)), lst(i(2), i(3)))) == [1, 2, 3]
    assert evaluate({"type": "Min", "source": lst(i(3), NULL, i(1))}) == 1
    assert evaluate({"type": "Min", "source": lst()}) is None


# --- date/time precision: uncertainty is null (CQL §22 Date and Time Operators) ------------------
def test_datetime_comparison_precision():
    assert evaluate(op("SameOrAfter", dt(2024, 2, 1), dt(2024, 1, 15), precision="Day")) is True
    assert evaluate(op("SameOrAfter", dt(2024, 1), dt(2024, 1, 15))) is None  # month vs day: unknown
    assert evaluate(op("Equal", dt(2024), dt(2024, 1))) is None
    assert evaluate(op("Less", dt(2023, 12), dt(2024, 1, 15))) is True       # decided at the year
    assert evaluate(op("SameAs", dt(2024, 1, 15, 10), dt(2024, 1, 15, 23), precision="Day")) is True


# --- FHIR data: Retrieve, Query, value sets, FHIRHelpers, choice types -------------------------------
def condition(cid, code, status="confirmed"):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": SNOMED, "code": code}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": status}]}}


#: exists ([Condition: "NEPC Diagnosis"] C where C.verificationStatus ~ "confirmed")
CONFIRMED_NEPC = {"type": "Exists", "operand": {"type": "Query", "source": [{"alias": "C", "expression": {
    "type": "Retrieve", "dataType": "{http://hl7.org/fhir}Condition", "codeProperty": "code", "codeComparator": "in",
    "codes": {"type": "ValueSetRef", "name": "NEPC Diagnosis"}}}], "relationship": [],
    "where": op("Equivalent",
                {"type": "FunctionRef", "name": "ToConcept", "libraryName": "FHIRHelpers",
                 "operand": [{"type": "Property", "path": "verificationStatus", "scope": "C"}]},
                {"type": "ToConcept", "operand": {"type": "CodeRef", "name": "confirmed"}})}}


def test_retrieve_by_value_set_and_status():
    assert evaluate(CONFIRMED_NEPC, [condition("c1", "396198006")]) is True
    assert evaluate(CONFIRMED_NEPC, [condition("c1", "396198006", "provisional")]) is False
    assert evaluate(CONFIRMED_NEPC, [condition("c1", "94222008")]) is False   # not in the value set
    assert evaluate(CONFIRMED_NEPC, []) is False


def test_retrieve_is_for_the_subject_only():
    other = condition("c2", "396198006")
    other["subject"] = {"reference": "Patient/someone-else"}
    assert evaluate(CONFIRMED_NEPC, [other]) is False


def test_choice_element_with_as_and_to_datetime():
    """(O.effective as FHIR.dateTime) on R5 data: the Observation's effectiveDateTime."""
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p"}, "effectiveDateTime": "2025-03-04"}
    expr = {"type": "Query", "source": [{"alias": "O", "expression": {
        "type": "Retrieve", "dataType": "{http://hl7.org/fhir}Observation"}}],
        "return": {"expression": {"type": "FunctionRef", "name": "ToDateTime", "libraryName": "FHIRHelpers",
                                  "operand": [{"type": "As", "asType": "{http://hl7.org/fhir}dateTime",
                                               "operand": {"type": "Property", "path": "effective", "scope": "O"}}]}}}
    assert evaluate(expr, [obs]) == [DateTime((2025, 3, 4))]
    period = {"type": "As", "asType": "{http://hl7.org/fhir}Period", "operand": {
        "type": "Property", "path": "effective", "source": {"type": "SingletonFrom", "operand": {
            "type": "Retrieve", "dataType": "{http://hl7.org/fhir}Observation"}}}}
    assert evaluate(period, [obs]) is None   # a dateTime is not a Period


def test_medication_administration_r5_occurence_is_read_as_r4_effective():
    admin = {"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
             "subject": {"reference": "Patient/p"}, "occurenceDateTime": "2025-01-10",
             "medication": {"concept": {"coding": [{"system": SNOMED, "code": "396198006"}]}}}
    expr = {"type": "Query", "source": [{"alias": "A", "expression": {
        "type": "Retrieve", "dataType": "{http://hl7.org/fhir}MedicationAdministration", "codeProperty": "medication",
        "codes": {"type": "ValueSetRef", "name": "NEPC Diagnosis"}}}],
        "return": {"expression": {"type": "FunctionRef", "name": "ToDateTime", "libraryName": "FHIRHelpers",
                                  "operand": [{"type": "As", "asType": "{http://hl7.org/fhir}dateTime",
                                               "operand": {"type": "Property", "path": "effective", "scope": "A"}}]}}}
    assert evaluate(expr, [admin]) == [DateTime((2025, 1, 10))]


def test_function_def_and_expression_ref():
    fdef = {"type": "FunctionDef", "name": "Twice", "context": "Patient",
            "operand": [{"name": "x", "operandTypeSpecifier": {"type": "NamedTypeSpecifier", "name": S + "Integer"}}],
            "expression": op("Add", {"type": "OperandRef", "name": "x"}, {"type": "OperandRef", "name": "x"})}
    assert evaluate({"type": "FunctionRef", "name": "Twice", "operand": [i(21)]}, functions=[fdef]) == 42


def test_unsupported_node_names_type_and_locator():
    with pytest.raises(UnsupportedElm) as e:
        evaluate({"type": "Message", "locator": "12:5-12:30", "source": s("x")})
    assert "Message" in str(e.value) and "12:5-12:30" in str(e.value) and "'X'" in str(e.value)


def test_unsupported_fhirhelpers_function():
    with pytest.raises(UnsupportedElm, match="FHIRHelpers.ToRatio"):
        evaluate({"type": "FunctionRef", "name": "ToRatio", "libraryName": "FHIRHelpers", "localId": "7",
                  "operand": [NULL]})


# --- ELM from the official translator (tests/logic/elm/ContractSample.cql -> .json, cql-to-elm 4.4.0) ----------
FIXTURE = Path(__file__).parent / "elm" / "ContractSample.json"
B = "http://example.org/fhir/nepc/ValueSet/"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
ICDO = "http://terminology.hl7.org/CodeSystem/icd-o-3"
HGNC = "http://www.genenames.org"
SAMPLE_VS = elm.ValueSets({
    B + "nepc-diagnosis": {"compose": {"include": [{"system": SNOMED, "concept": [{"code": "396198006"}]}]}},
    B + "neuroendocrine-histology": {"compose": {"include": [{"system": ICDO, "concept": [{"code": "8041/3"}]}]}},
    B + "platinum-agents": {"compose": {"include": [{"system": RX, "concept": [{"code": "2555"}]}]}},
    B + "hrr-genes": {"compose": {"include": [{"system": HGNC, "concept": [{"code": "HGNC:1101"}]}]}}})
P = {"reference": "Patient/p"}


def cc(system, code):
    return {"coding": [{"system": system, "code": code}]}


def sample(*resources):
    lib = elm.load(json.loads(FIXTURE.read_text()))
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}] + [{"resource": r} for r in resources]}
    ctx = elm.Context(elm.Data.of(to_r4_bundle(bundle), "p"), SAMPLE_VS)
    return lambda name: lib.evaluate(name, ctx)


NEPC = {"resourceType": "Condition", "id": "c", "subject": P, "code": cc(SNOMED, "396198006"),
        "verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed")}
MED = {"resourceType": "Medication", "id": "med1", "code": cc(RX, "2555")}
ADMIN = {"resourceType": "MedicationAdministration", "id": "a1", "subject": P, "status": "completed",
         "medication": {"reference": {"reference": "Medication/med1"}}, "occurencePeriod": {"start": "2024-06-01"}}
ORDER = {"resourceType": "MedicationRequest", "id": "m1", "subject": P, "status": "active", "intent": "order",
         "medication": {"concept": cc(RX, "2555")}, "authoredOn": "2024-05-20"}


def progression(date):
    return {"resourceType": "Observation", "id": "o1", "subject": P, "status": "final", "code": cc(LOINC, "97509-4"),
            "valueCodeableConcept": cc(SNOMED, "271299001"), "effectiveDateTime": date}


def test_translated_elm_diagnosis_and_pathology():
    report = {"resourceType": "DiagnosticReport", "id": "r", "subject": P, "status": "final", "code": {"text": "x"},
              "conclusionCode": [cc(ICDO, "8041/3")]}
    ev = sample(NEPC, report)
    assert ev("Has Confirmed NEPC Diagnosis") is True
    assert ev("Neuroendocrine Pathology Report") is True      # AnyInValueSet over conclusionCode
    prelim = dict(report, status="preliminary")
    assert sample(NEPC, prelim)("Neuroendocrine Pathology Report") is False


def test_translated_elm_platinum_through_medication_reference_and_dates():
    """The translator joins MedicationAdministration.medicationReference to Medication (a With clause);
    the earliest platinum date is the order's authoredOn (2024-05-20), before the administration."""
    ev = sample(NEPC, MED, ADMIN, ORDER, progression("2024-05-20"))
    assert [a["id"] for a in ev("Platinum Administrations")] == ["a1"]
    assert [m["id"] for m in ev("Platinum Orders")] == ["m1"]
    assert ev("No Prior Platinum Chemotherapy") is False
    assert ev("First Platinum Date") == DateTime((2024, 5, 20))
    assert ev("Disease Progression After Platinum") is True    # same day counts: "on or after"
    assert sample(NEPC, MED, ADMIN, ORDER, progression("2024-05-19"))("Disease Progression After Platinum") is False
    assert sample(NEPC, progression("2024-05-19"))("Disease Progression After Platinum") is False  # no platinum
    assert sample(NEPC)("No Prior Platinum Chemotherapy") is True


def test_translated_elm_hrr_component():
    variant = {"resourceType": "Observation", "id": "v", "subject": P, "status": "final", "code": cc(LOINC, "69548-6"),
               "valueCodeableConcept": cc(LOINC, "LA9633-4"),
               "component": [{"code": cc(LOINC, "48018-6"), "valueCodeableConcept": cc(HGNC, "HGNC:1101")}]}
    assert sample(variant)("HRR") is True
    other_gene = copy.deepcopy(variant)
    other_gene["component"][0]["valueCodeableConcept"] = cc(HGNC, "HGNC:11998")
    assert sample(other_gene)("HRR") is False


def test_translated_elm_sort_and_function():
    old = dict(NEPC, id="old", recordedDate="2023-01-01", onsetDateTime="2022-12-01")
    new = dict(NEPC, id="new", recordedDate="2024-01-01")
    ev = sample(new, old)
    assert ev("Earliest Condition")["id"] == "old"
    # a return clause keeps nulls (the condition without an onset); the value is the FHIR dateTime itself
    assert ev("Onsets") == [None, "2022-12-01"]
