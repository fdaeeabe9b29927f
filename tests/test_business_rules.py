"""Prose rules of the spec the HL7 validator applies (fhirpkg/validation/business_rules.py).

Expected messages are the HL7 validator's texts (Messages.properties, see docs/rule-coverage.md).
"""
from __future__ import annotations

import copy

import pytest

EXT_URL = "http://example.org/fhir/StructureDefinition/my-ext"


def extension_sd(**changes) -> dict:
    sd = {
        "resourceType": "StructureDefinition", "id": "my-ext", "url": EXT_URL, "name": "MyExt",
        "status": "draft", "kind": "complex-type", "abstract": False, "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension", "derivation": "constraint",
        "context": [{"type": "element", "expression": "Patient"}],
        "differential": {"element": [
            {"id": "Extension", "path": "Extension", "max": "1"},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": EXT_URL},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "string"}]}]},
    }
    sd.update(changes)
    return sd


def rules_of(issues, *rules):
    return [i for i in issues if i.rule in rules]


def test_extension_definition_with_matching_fixed_url_is_clean(check):
    assert rules_of(check(extension_sd()), "extension-url-fixed", "extension-context-element") == []


def test_extension_url_fixed_to_another_url_is_an_error(check):
    sd = extension_sd()
    sd["differential"]["element"][2]["fixedUri"] = "http://example.org/other"
    found = rules_of(check(sd), "extension-url-fixed")
    assert [(i.severity.code, i.message) for i in found] == [
        ("error", f"The fixed value for the extension URL is http://example.org/other which doesn't match the "
                  f"canonical URL {EXT_URL}")]


def test_extension_url_not_fixed_is_an_error(check):
    sd = extension_sd()
    del sd["differential"]["element"][2]["fixedUri"]
    found = rules_of(check(sd), "extension-url-fixed")
    assert [i.message for i in found] == [f"The value of Extension.url is not fixed to the extension URL {EXT_URL}"]


def test_profile_of_another_extension_is_not_checked_for_the_fixed_url(check):
    sd = extension_sd(baseDefinition="http://hl7.org/fhir/StructureDefinition/data-absent-reason")
    sd["differential"]["element"][2]["fixedUri"] = "http://example.org/other"
    assert rules_of(check(sd), "extension-url-fixed") == []


@pytest.mark.parametrize("expression", [
    "Patient.name.given",  # through HumanName's children
    "Questionnaire.item.item.answerOption",  # through contentReference
    "ElementDefinition.type.targetProfile",
    "Parameters.parameter.value",  # a choice named without [x]
    "http://hl7.org/fhir/StructureDefinition/Patient#Patient.contact.name",
])
def test_element_contexts_that_exist(check, expression):
    sd = extension_sd(context=[{"type": "element", "expression": expression}])
    assert rules_of(check(sd), "extension-context-element") == []


@pytest.mark.parametrize("expression", ["ElementDefinition.targetProfile", "Patient.nonsense", "NoSuchType"])
def test_element_context_naming_no_element_is_an_error(check, expression):
    sd = extension_sd(context=[{"type": "element", "expression": "Patient"},
                               {"type": "element", "expression": expression}])
    found = rules_of(check(sd), "extension-context-element")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("error", "StructureDefinition.context[1]", f"The element {expression} is not valid")]


def test_fhirpath_and_extension_contexts_are_not_element_paths(check):
    sd = extension_sd(context=[{"type": "fhirpath", "expression": "Patient.name.where(use='official')"},
                               {"type": "extension", "expression": "http://example.org/x"}])
    assert rules_of(check(copy.deepcopy(sd)), "extension-context-element") == []
