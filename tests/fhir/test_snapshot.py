"""Snapshots from differentials (fhirpkg/fhir/snapshot.py): recursive elements.

Parameters.parameter.part has contentReference #Parameters.parameter.  The official case
params-recursion (fhir-test-cases, validator-r4; the Da Vinci PDex multi-member-match profile)
constrains ``part`` to 3..4 slices told apart by ``$this.name``, each slice with ``part`` 0..0.
The HL7 validator's recorded outcome for it has no error: the constraint on
Parameters.parameter.part is not applied again to part.part, and ``$this.name`` is the
discriminator path ``name``.
"""
from __future__ import annotations

import pytest

URL = "http://example.org/StructureDefinition/params-recursion"


@pytest.fixture(scope="module")
def validator(defs):
    from fhirpkg import api
    from fhirpkg.validation import Options, Validator
    slices = []
    for name, low in (("First", 1), ("Second", 1), ("Third", 0)):
        slices += [
            {"id": f"Parameters.parameter.part:{name}", "path": "Parameters.parameter.part", "sliceName": name,
             "min": low, "max": "1"},
            {"id": f"Parameters.parameter.part:{name}.name", "path": "Parameters.parameter.part.name",
             "patternString": name},
            {"id": f"Parameters.parameter.part:{name}.part", "path": "Parameters.parameter.part.part", "max": "0"}]
    sd = {"resourceType": "StructureDefinition", "url": URL, "name": "ParamsRecursion", "status": "draft",
          "fhirVersion": "5.0.0", "kind": "resource", "abstract": False, "type": "Parameters",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters", "derivation": "constraint",
          "differential": {"element": [
              {"id": "Parameters.parameter", "path": "Parameters.parameter"},
              {"id": "Parameters.parameter.part", "path": "Parameters.parameter.part", "min": 2, "max": "3",
               "slicing": {"discriminator": [{"type": "value", "path": "$this.name"}], "rules": "open"}},
              *slices]}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    return Validator(d, Options(profiles=(URL,)))


def errors(validator, resource):
    return [(i.rule, i.expression, i.message) for i in validator.validate_resource(resource) if i.is_error]


def parameters(*part_names):
    return {"resourceType": "Parameters", "parameter": [
        {"name": "bundle", "part": [{"name": n, "valueString": "x"} for n in part_names]}]}


def test_the_constraint_on_part_is_not_applied_to_part_part(validator):
    assert errors(validator, parameters("First", "Second")) == []


def test_slices_are_told_apart_by_this_name(validator):
    found = errors(validator, parameters("First", "Third"))
    assert [(rule, expr) for rule, expr, _ in found] == [("cardinality-min", "Parameters.parameter[0]")]
    assert "Parameters.parameter.part:Second: minimum required = 1, but only found 0" in found[0][2]


def test_a_slice_still_takes_its_own_constraints(validator):
    resource = parameters("First", "Second")
    resource["parameter"][0]["part"][0]["part"] = [{"name": "nested", "valueString": "y"}]
    assert [rule for rule, _, _ in errors(validator, resource)] == ["cardinality-max"]
