"""Questionnaire derivation (fhirpkg/validation/questionnaire.py): the rules as the HL7 validator's
QUESTIONNAIRE_Q_* messages state them; the base questionnaire comes from the resolver."""
from __future__ import annotations

import pytest

from fhirpkg.validation import Validator
from fhirpkg.validation.references import Resolver

BASE_URL = "http://example.org/Questionnaire/base"
EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-derivationType"
BASE = {"resourceType": "Questionnaire", "url": BASE_URL, "status": "draft", "item": [
    {"linkId": "a", "text": "A", "type": "string", "required": True, "maxLength": 10},
    {"linkId": "g", "text": "G", "type": "group", "item": [
        {"linkId": "c", "text": "C", "type": "coding", "answerOption": [
            {"valueCoding": {"system": "http://example.org/cs", "code": "x"}}]}]}]}


def derived(mode: str | None, items: list, url: str = BASE_URL) -> dict:
    q = {"resourceType": "Questionnaire", "status": "draft", "derivedFrom": [url], "item": items}
    if mode:
        q["_derivedFrom"] = [{"extension": [{"url": EXT, "valueCoding": {
            "system": "http://hl7.org/fhir/questionnaire-derivationType", "code": mode}}]}]
    return q


@pytest.fixture(scope="module")
def run(defs):
    resolver = Resolver()
    resolver.add(BASE)
    validator = Validator(defs, resolver=resolver)

    def go(q):
        return [(i.severity.code, i.expression, i.message) for i in validator.validate_resource(q, "Questionnaire")
                if i.rule == "questionnaire-derivation"]
    return go


def item_a(**changes):
    return {"linkId": "a", "text": "A", "type": "string", "required": True, "maxLength": 10, **changes}


def test_a_conforming_derivation_is_clean(run):
    assert run(derived("compliesWith", [item_a(maxLength=5)])) == []


def test_type_repeats_required_and_max_length_cannot_loosen(run):
    found = run(derived("extends", [item_a(type="text", repeats=True, required=False, maxLength=20)]))
    prefix = f"The item with linkId 'a' found in questionnaire '{BASE_URL}' "
    assert found == [
        ("error", "Questionnaire.item[0].type", prefix + "has the type 'string', and this cannot change to 'text'"),
        ("error", "Questionnaire.item[0].repeats", prefix + "does not repeat, so it cannot repeat here"),
        ("error", "Questionnaire.item[0].required", prefix + "is required, so it must be required here"),
        ("error", "Questionnaire.item[0].maxLength",
         prefix + "has the maxLength of '10', so the max length cannot be greater than that")]


def test_new_answer_options_are_not_allowed(run):
    item = {"linkId": "c", "text": "C", "type": "coding", "answerOption": [
        {"valueCoding": {"system": "http://example.org/cs", "code": "x"}},
        {"valueCoding": {"system": "http://example.org/cs", "code": "y"}}]}
    found = run(derived("extends", [item]))
    assert found == [("error", "Questionnaire.item[0].answerOption[1]",
                      f"The item with linkId 'c' found in questionnaire '{BASE_URL}' does not have this answerOption, "
                      "so it is not valid")]


def test_new_items_are_allowed_when_extending_but_not_when_complying(run):
    new = {"linkId": "new", "text": "New", "type": "string"}
    assert run(derived("extends", [new])) == []
    assert run(derived("compliesWith", [new])) == [
        ("error", "Questionnaire.item[0]", f"No item with linkId 'new' found in questionnaire '{BASE_URL}'")]


def test_missing_derivation_type_and_unknown_base_are_warnings(run):
    assert run(derived(None, [item_a(type="text")])) == [
        ("warning", "Questionnaire.derivedFrom[0]", f"The questionnaire '{BASE_URL}' has no derivation type specified "
         f"using the '{EXT}' extension, so derivation has not been checked")]
    assert run(derived("extends", [], url="http://example.org/Questionnaire/unknown")) == [
        ("warning", "Questionnaire.derivedFrom[0]",
         "The questionnaire 'http://example.org/Questionnaire/unknown' referred to in the derivation could not be found")]


def test_inspired_by_is_not_checked(run):
    found = run(derived("inspiredBy", [item_a(type="text")]))
    assert [s for s, _, _ in found] == ["information"]
