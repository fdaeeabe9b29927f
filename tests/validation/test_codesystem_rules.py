"""CodeSystem property rules (fhirpkg/validation/codesystem.py) and the not-active code rule.

Expected results are written from the HL7 validator's message texts (Messages.properties) and
the behaviour its CodeSystemValidator / ValueSetValidator describe: a ``code`` property without
value set information holds codes of the code system itself; a property uri ``base#code`` names
a property or concept of the code system ``base``; a value set with compose.inactive = false
leaves inactive codes out.
"""
from __future__ import annotations


import pytest

UTG = "http://terminology.hl7.org/CodeSystem/utg-concept-properties"
CP = "http://hl7.org/fhir/concept-properties"


def code_system(properties, concepts, **changes) -> dict:
    cs = {"resourceType": "CodeSystem", "id": "cs", "url": "http://example.org/CodeSystem/cs", "name": "Cs",
          "status": "draft", "content": "complete", "caseSensitive": True, "hierarchyMeaning": "is-a",
          "property": properties, "concept": concepts}
    cs.update(changes)
    return cs


def of(issues, rule):
    return [i for i in issues if i.rule == rule]


# --- CODESYSTEM_PROPERTY_URI_INVALID ---------------------------------------------------------

def test_property_uri_naming_nothing_in_its_code_system_is_a_warning(check):
    cs = code_system([{"code": "status", "uri": f"{UTG}#status", "type": "string"}],
                     [{"code": "a", "display": "A", "definition": "A"}])
    found = of(check(cs), "codesystem-property-uri")
    assert [(i.severity.code, i.expression) for i in found] == [("warning", "CodeSystem.property[0]")]
    assert found[0].message == (f"The uri '{UTG}#status' for the property 'status' implies a property with that URI "
                                f"exists in the CodeSystem UTG Specific Concept Properties for {UTG}, or the code "
                                "'status' does, but neither were found")


def test_property_uri_naming_a_concept_of_its_code_system_is_fine(check):
    # utg-concept-properties defines the concept v2-table-deprecated
    cs = code_system([{"code": "deprecated", "uri": f"{UTG}#v2-table-deprecated", "type": "string"},
                      {"code": "parent", "uri": f"{CP}#parent", "type": "code"}],
                     [{"code": "a", "display": "A", "definition": "A"}])
    assert of(check(cs), "codesystem-property-uri") == []


def test_property_uri_with_an_unknown_base_is_not_this_rule(check):
    cs = code_system([{"code": "x", "uri": "http://example.org/unknown-cs#x", "type": "string"}],
                     [{"code": "a", "display": "A", "definition": "A"}])
    assert of(check(cs), "codesystem-property-uri") == []


# --- CODESYSTEM_PROPERTY_BAD_INTERNAL_REFERENCE / _CODE_DEFAULT_WARNING ----------------------------

def test_code_property_without_value_set_holds_internal_codes(check):
    cs = code_system([{"code": "replacedBy", "type": "code"}],
                     [{"code": "a", "display": "A", "definition": "A",
                       "property": [{"code": "replacedBy", "valueCode": "zz"}]},
                      {"code": "b", "display": "B", "definition": "B",
                       "property": [{"code": "replacedBy", "valueCode": "a"}],
                       "concept": [{"code": "b1", "display": "B1", "definition": "B1",
                                    "property": [{"code": "replacedBy", "valueCode": "zz"}]}]}])
    issues = check(cs)
    info = of(issues, "codesystem-property-internal")
    assert [(i.severity.code, i.expression) for i in info] == [("information", "CodeSystem.property[0]")]
    bad = of(issues, "codesystem-property-code")
    # 'zz' is not a code of the code system: a warning, reported once; 'a' is a code
    assert [(i.severity.code, i.expression, i.message) for i in bad] == [
        ("warning", "CodeSystem.concept[0].property[0]", "The code 'zz' is not a valid code in this code system")]


def test_parent_property_value_must_be_a_code_of_the_system_error(check):
    cs = code_system([{"code": "parent", "uri": f"{CP}#parent", "type": "code"}],
                     [{"code": "a", "display": "A", "definition": "A"},
                      {"code": "b", "display": "B", "definition": "B",
                       "property": [{"code": "parent", "valueCode": "a"}]},
                      {"code": "c", "display": "C", "definition": "C",
                       "property": [{"code": "parent", "valueCode": "nope"}]}])
    issues = check(cs)
    bad = of(issues, "codesystem-property-code")
    assert [(i.severity.code, i.expression) for i in bad] == [("error", "CodeSystem.concept[2].property[0]")]
    assert of(issues, "codesystem-property-internal") == []  # a FHIR-defined property: no default-rule note


def test_code_property_bound_to_a_value_set_is_not_an_internal_code(check):
    prop = {"code": "kind", "type": "code", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/codesystem-property-valueset",
         "valueCanonical": "http://hl7.org/fhir/ValueSet/administrative-gender"}]}
    cs = code_system([prop], [{"code": "a", "display": "A", "definition": "A",
                               "property": [{"code": "kind", "valueCode": "male"}]}])
    issues = check(cs)
    assert of(issues, "codesystem-property-code") == [] and of(issues, "codesystem-property-internal") == []


def test_string_property_values_are_not_checked_as_codes(check):
    cs = code_system([{"code": "note", "type": "string"}],
                     [{"code": "a", "display": "A", "definition": "A",
                       "property": [{"code": "note", "valueString": "zz"}]}])
    assert of(check(cs), "codesystem-property-code") == []


# --- STATUS_CODE_WARNING_CODE ---------------------------------------------------------------

@pytest.fixture(scope="module")
def not_active_validator(defs):
    from fhirpkg import api
    from fhirpkg.validation import Options, Validator
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/CodeSystem/st", "name": "St", "status": "draft",
          "content": "complete", "caseSensitive": True,
          "concept": [{"code": "on", "display": "On"},
                      {"code": "off", "display": "Off", "property": [{"code": "inactive", "valueBoolean": True}]}]}
    vs = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/st-active", "name": "StActive",
          "status": "draft", "compose": {"inactive": False, "include": [{"system": cs["url"]}]}}
    sd = {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/st-params",
          "name": "StParams", "status": "draft", "fhirVersion": "5.0.0", "kind": "resource", "abstract": False,
          "type": "Parameters", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
          "derivation": "constraint",
          "differential": {"element": [{"id": "Parameters.parameter.value[x]", "path": "Parameters.parameter.value[x]",
                                        "type": [{"code": "Coding"}],
                                        "binding": {"strength": "required", "valueSet": vs["url"]}}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [cs, vs, sd])
    return Validator(d, Options(profiles=(sd["url"],)))


def _params(code):
    return {"resourceType": "Parameters",
            "parameter": [{"name": "p", "valueCoding": {"system": "http://example.org/CodeSystem/st", "code": code}}]}


def test_inactive_code_from_an_active_only_value_set_is_not_active(not_active_validator):
    issues = not_active_validator.validate_resource(_params("off"))
    found = of(issues, "code-not-active")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("error", "Parameters.parameter[0].valueCoding.code", "The concept 'off' is valid but is not active")]
    assert of(issues, "binding-required")  # and the code is not in the value set


def test_active_code_is_not_reported_not_active(not_active_validator):
    issues = not_active_validator.validate_resource(_params("on"))
    assert of(issues, "code-not-active") == [] and of(issues, "binding-required") == []
