"""Per-type checks of conformance resources the HL7 validator makes beyond invariants:
ImplementationGuide dependencies, SearchParameter derivation, ValueSet includes of contained
code systems (fhirpkg/validation/implementation_guide.py, search_parameter.py, business_rules.py).

Expected texts are the HL7 validator's (Messages.properties: IG_DEPENDENCY_*,
SEARCHPARAMETER_*, VALUESET_INCLUDE_CS_*); the cases follow the rules those messages state.
"""
from __future__ import annotations

import pytest

IG_URI = "http://example.org/fhir/ImplementationGuide/other"


def of(issues, *rules):
    return [(i.severity.code, i.expression, i.message) for i in issues if i.rule in rules]


def guide(dep: dict) -> dict:
    return {"resourceType": "ImplementationGuide", "url": "http://example.org/fhir/ImplementationGuide/mine",
            "name": "Mine", "status": "draft", "packageId": "example.mine", "fhirVersion": ["5.0.0"],
            "dependsOn": [dep]}


# --- IG_DEPENDENCY_* ---------------------------------------------------------------------------

@pytest.mark.parametrize("dep,message", [
    ({"uri": IG_URI + "|", "packageId": "example.other", "version": "1.0.0"}, "The canonical URL cannot end in '|'"),
    ({"uri": IG_URI + "|1.0.0", "packageId": "example.other"},
     "The canonical URL specifies the version '1.0.0', while the dependency does not. If a version is specified, it "
     "must be in the explicit version property"),
    ({"uri": "http://example.org/fhir/other", "packageId": "example.other", "version": "1.0.0"},
     "The URL should refer directly to the ImplementationGuide resource (e.g. include '/ImplementationGuide/')"),
])
def test_ig_dependency_errors(validator, dep, message):
    assert of(validator.validate_resource(guide(dep)), "ig-dependency") == [
        ("error", "ImplementationGuide.dependsOn[0]", message)]


def test_ig_dependency_with_matching_versions_is_fine(validator):
    dep = {"uri": IG_URI + "|1.0.0", "packageId": "example.other", "version": "1.0.0"}
    assert of(validator.validate_resource(guide(dep)), "ig-dependency") == []


def test_ig_dependency_on_an_unknown_guide_is_a_warning_and_a_known_one_is_not(defs):
    from fhirpkg.validation import Validator
    from fhirpkg.validation.references import Resolver
    dep = {"uri": IG_URI, "packageId": "example.other", "version": "1.0.0"}
    unknown = of(Validator(defs).validate_resource(guide(dep)), "ig-dependency-unknown")
    assert unknown == [("warning", "ImplementationGuide.dependsOn[0]",
                        f"The canonical URL {IG_URI} doesn't point to an actual ImplementationGuide resource")]
    resolver = Resolver()
    resolver.add({"resourceType": "ImplementationGuide", "url": IG_URI, "name": "Other", "status": "draft",
                  "packageId": "example.other", "fhirVersion": ["5.0.0"]})
    assert of(Validator(defs, resolver=resolver).validate_resource(guide(dep)), "ig-dependency-unknown") == []


# --- SEARCHPARAMETER_* ------------------------------------------------------------------------

def search_parameter(**changes) -> dict:
    sp = {"resourceType": "SearchParameter", "url": "http://example.org/fhir/SearchParameter/x", "name": "X",
          "status": "draft", "description": "x", "code": "address-country", "base": ["Location"], "type": "string",
          "expression": "Location.address.country", "processingMode": "normal",
          "derivedFrom": "http://hl7.org/fhir/SearchParameter/Location-address-country"}
    sp.update(changes)
    return sp


def test_derivation_that_keeps_base_type_and_expression_is_fine(validator):
    assert of(validator.validate_resource(search_parameter()), "searchparameter-derivation") == []


def test_derivation_onto_another_resource_type(validator):
    # Location-address-country has base Location only: Organization is not one of its bases,
    # and Organization.address.country is not its expression restricted to Organization
    found = of(validator.validate_resource(search_parameter(base=["Organization"],
                                                            expression="Organization.address.country")),
               "searchparameter-derivation")
    master = "http://hl7.org/fhir/SearchParameter/Location-address-country"
    assert found == [
        ("error", "SearchParameter", f"The resource type Organization is not listed as a base in the SearchParameter "
                                     f"this is derived from ({master})"),
        ("warning", "SearchParameter", "The expression 'Organization.address.country' is not compatible with the "
                                       f"expression 'Location.address.country' in the derivedFrom SearchParameter "
                                       f"{master}, and this likely indicates that the derivation relationship is not "
                                       "valid")]


def test_derivation_from_an_unknown_parameter_is_a_warning(validator):
    found = of(validator.validate_resource(search_parameter(derivedFrom="http://example.org/SearchParameter/none")),
               "searchparameter-derivation")
    assert [s for s, _, _ in found] == ["warning"] and "Unable to find the base Search Parameter" in found[0][2]


def test_composite_needs_two_components(validator):
    one = [{"definition": "http://hl7.org/fhir/SearchParameter/Location-address-country", "expression": "country"}]
    sp = search_parameter(type="composite", component=one)
    del sp["derivedFrom"]
    assert [s for s, _, _ in of(validator.validate_resource(sp), "searchparameter-composite")] == ["error"]
    sp["component"] = one * 2
    assert of(validator.validate_resource(sp), "searchparameter-composite") == []


def test_code_with_a_rest_special_character_is_a_warning(validator):
    assert [s for s, _, _ in of(validator.validate_resource(search_parameter(code="a.b")),
                                "searchparameter-code")] == ["warning"]
    assert of(validator.validate_resource(search_parameter()), "searchparameter-code") == []


# --- VALUESET_INCLUDE_CS_* --------------------------------------------------------------------

def value_set(system: str, contained: list) -> dict:
    return {"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/v", "name": "V", "status": "draft",
            "contained": contained, "compose": {"include": [{"system": system}]}}


CS = {"resourceType": "CodeSystem", "id": "cs1", "url": "http://example.org/fhir/CodeSystem/cs1", "status": "draft",
      "content": "complete", "concept": [{"code": "a"}]}


def test_include_of_a_missing_contained_code_system(validator):
    assert of(validator.validate_resource(value_set("#nope", [CS])), "valueset-contained-system") == [
        ("error", "ValueSet.compose.include[0]", "No matching contained code system found for system '#nope'")]


def test_include_of_a_contained_resource_that_is_not_a_code_system(validator):
    other = {"resourceType": "ValueSet", "id": "cs1", "status": "draft"}
    found = of(validator.validate_resource(value_set("#cs1", [other])), "valueset-contained-system")
    assert found[0] == ("error", "ValueSet.compose.include[0]",
                        "The include system '#cs1' is a reference to a contained resource, but the contained resource "
                        "with that id is not a CodeSystem, it's a ValueSet")


def test_include_of_the_contained_code_system_is_not_this_rule(validator):
    assert of(validator.validate_resource(value_set("#cs1", [CS])), "valueset-contained-system") == []


# --- SD_PATH_SLICE_INCONSISTENT_MS -------------------------------------------------------------

def profile(ssn_must_support) -> dict:
    ssn = {"id": "Patient.identifier:SSN", "path": "Patient.identifier", "sliceName": "SSN"}
    if ssn_must_support is not None:
        ssn["mustSupport"] = ssn_must_support
    return {"resourceType": "StructureDefinition", "url": "http://example.org/fhir/StructureDefinition/p",
            "name": "P", "status": "draft", "fhirVersion": "5.0.0", "kind": "resource", "abstract": False,
            "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "derivation": "constraint",
            "differential": {"element": [
                {"id": "Patient.identifier", "path": "Patient.identifier", "mustSupport": True,
                 "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
                {"id": "Patient.identifier:MRN", "path": "Patient.identifier", "sliceName": "MRN",
                 "mustSupport": True},
                ssn]}}


@pytest.mark.parametrize("ssn_must_support", [False, None])  # None: inherited from Patient.identifier (not MS)
def test_slice_not_must_support_under_a_must_support_slicing(validator, ssn_must_support):
    assert of(validator.validate_resource(profile(ssn_must_support)), "slice-must-support") == [
        ("warning", "StructureDefinition.differential",
         "The slice 'SSN' on path 'Patient.identifier' is not marked as 'must-support' which is not consistent with "
         "the element that defines the slicing, where 'must-support' is true")]


def test_all_slices_must_support_is_fine(validator):
    assert of(validator.validate_resource(profile(True)), "slice-must-support") == []


# --- IG_HL7_* ---------------------------------------------------------------------------------

EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-"


def test_hl7_guide_must_state_status_and_work_group_and_should_state_maturity(validator):
    ig = guide({"uri": IG_URI, "packageId": "example.other", "version": "1.0.0"})
    ig["url"] = "http://hl7.org/fhir/ImplementationGuide/mine"
    found = of(validator.validate_resource(ig), "ig-hl7-metadata")
    assert [(s, e) for s, e, _ in found] == [("error", "ImplementationGuide")] * 2 + [("warning", "ImplementationGuide")]
    assert found[0][2] == ("HL7 Implementation Guides must state their status explicitly using the extension "
                           f"{EXT}standards-status")
    ig["extension"] = [{"url": f"{EXT}standards-status", "valueCode": "draft"}, {"url": f"{EXT}wg", "valueCode": "fhir"},
                       {"url": f"{EXT}fmm", "valueInteger": 0}]
    assert of(validator.validate_resource(ig), "ig-hl7-metadata") == []


def test_non_hl7_guide_needs_none_of_these(validator):
    ig = guide({"uri": IG_URI, "packageId": "example.other", "version": "1.0.0"})
    assert of(validator.validate_resource(ig), "ig-hl7-metadata") == []


# --- ED_SEARCH_EXPRESSION_ERROR ---------------------------------------------------------------

def test_search_expression_naming_an_element_the_base_lacks(validator):
    # R5 Organization has no address (it moved to Organization.contact.address)
    sp = search_parameter(base=["Organization"], expression="Organization.address.country")
    del sp["derivedFrom"]
    assert of(validator.validate_resource(sp), "searchparameter-expression") == [
        ("error", "SearchParameter.expression",
         "Error in search expression 'Organization.address.country': Error evaluating FHIRPath expression: The name "
         "'address' is not valid for any of the possible types: [http://hl7.org/fhir/StructureDefinition/Organization]"
         " (@char 14)")]


@pytest.mark.parametrize("base,expression", [
    (["Organization"], "Organization.contact.address.country"),
    (["Observation"], "Observation.value.unit"),
    (["Patient", "Practitioner"], "Patient.name.family | Practitioner.name.family"),
    (["Questionnaire"], "Questionnaire.item.item.linkId"),
])
def test_search_expression_with_existing_elements_is_fine(validator, base, expression):
    sp = search_parameter(base=base, expression=expression)
    del sp["derivedFrom"]
    assert of(validator.validate_resource(sp), "searchparameter-expression") == []
