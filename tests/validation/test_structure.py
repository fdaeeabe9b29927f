"""The structure walker (fhirpkg/validation/structure.py): Quantity bounds of a profile.

ElementDefinition.minValue[x] / maxValue[x] may be a Quantity (R5 and R4 both allow it).  The
expected texts are the HL7 validator's, from the official test cases obs-value-min,
obs-value-min-g and obs-value-max-g (fhir-test-cases, validator-r4, outcomes/java): "The value in
the instance (-1 g) is less than the specified minValue (0 kg) after UCUM conversion"; in the
same unit, "... is less than the specified minimum value (...)".
"""
from __future__ import annotations

import pytest

PROFILE = "http://example.org/StructureDefinition/obs-value-min"


@pytest.fixture(scope="module")
def validator(defs):
    from fhirpkg import api
    from fhirpkg.validation import Options, Validator
    bound = {"value": 0, "system": "http://unitsofmeasure.org", "code": "kg"}
    sd = {"resourceType": "StructureDefinition", "url": PROFILE, "name": "ObsValueMin", "status": "draft",
          "fhirVersion": "5.0.0", "kind": "resource", "abstract": False, "type": "Observation",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation", "derivation": "constraint",
          "differential": {"element": [
              {"id": "Observation.value[x]", "path": "Observation.value[x]"},
              {"id": "Observation.value[x]:valueQuantity", "path": "Observation.valueQuantity",
               "minValueQuantity": bound, "maxValueQuantity": dict(bound, value=10)}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    return Validator(d, Options(profiles=(PROFILE,)))


def observation(value, code):
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code}}


def found(validator, resource):
    return [(i.severity.code, i.message) for i in validator.validate_resource(resource) if i.rule == "value-range"]


@pytest.mark.parametrize("value,code,expected", [
    (-1, "kg", "The value in the instance (-1 kg) is less than the specified minimum value (0 kg)"),
    (-1, "g", "The value in the instance (-1 g) is less than the specified minValue (0 kg) after UCUM conversion"),
    (11000, "g", "The value in the instance (11000 g) is greater than the specified maxValue (10 kg) "
                 "after UCUM conversion"),
])
def test_a_quantity_outside_the_profile_bounds_is_an_error(validator, value, code, expected):
    assert found(validator, observation(value, code)) == [("error", expected)]


@pytest.mark.parametrize("value,code", [(0, "kg"), (5, "kg"), (9999, "g"), (10000, "g")])
def test_a_quantity_within_the_bounds_passes(validator, value, code):
    assert found(validator, observation(value, code)) == []


def test_a_quantity_in_units_not_comparable_to_the_bound_is_not_judged(validator):
    assert found(validator, observation(-1, "mL")) == []
