"""Snapshots from differentials whose elements have no ids (fhirpkg/fhir/snapshot.py).

profiling.html#slicing: in a differential the slices follow the slicing entry, each slice
followed by the constraints on its own elements; without element ids, an element belongs to the
slice last declared on its parent path.  So a value fixed after ``sliceName: phone`` applies to
the phone slice only, and an instance element of the other kind still matches its own slice.
"""
from __future__ import annotations

import pytest

URL = "http://example.org/StructureDefinition/telecom-slices"


@pytest.fixture(scope="module")
def validator(defs):
    from fhirpkg import api
    from fhirpkg.validation import Options, Validator
    sd = {"resourceType": "StructureDefinition", "url": URL, "name": "TelecomSlices", "status": "draft",
          "fhirVersion": "5.0.0", "kind": "resource", "abstract": False, "type": "Patient",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
          "differential": {"element": [
              {"path": "Patient.telecom", "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                                                      "rules": "closed"}},
              {"path": "Patient.telecom", "sliceName": "phone", "max": "1"},
              {"path": "Patient.telecom.system", "fixedCode": "phone"},
              {"path": "Patient.telecom", "sliceName": "email"},
              {"path": "Patient.telecom.system", "fixedCode": "email"},
              {"path": "Patient.telecom.use", "min": 1}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    return Validator(d, Options(profiles=(URL,)))


def errors(issues):
    return [(i.rule, i.expression) for i in issues if i.is_error]


def test_each_slice_gets_the_constraints_listed_after_it(validator):
    patient = {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1"},
                                                      {"system": "email", "value": "a@b.c", "use": "home"}]}
    assert errors(validator.validate_resource(patient)) == []


def test_a_constraint_after_the_second_slice_does_not_reach_the_first(validator):
    # use is required in the email slice only; an email without use breaks it, a phone without use does not
    patient = {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1"},
                                                      {"system": "email", "value": "a@b.c"}]}
    found = errors(validator.validate_resource(patient))
    assert found and all(expr.startswith("Patient.telecom[1]") for _, expr in found), found
