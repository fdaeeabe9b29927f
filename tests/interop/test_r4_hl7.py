"""The HL7 FHIR Validator in R4 mode (-version 4.0.1) on the R4 export, and an R4-invalid control.

The engine loads hl7.fhir.r4.core#4.0.1 (built by fhirpkg from hl7.fhir.r4.examples),
hl7.terminology.r4#7.0.1 and hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1 into its private cache.
Every file gets a fresh JVM: in one long-lived JVM, a file validated after the R4 Bundle was seen
to get terminology errors that it does not get alone, so results are kept independent by
construction.  -allow-example-urls true: the content's canonical base is the documented
placeholder http://example.org/fhir/nepc (see test_package_hl7.py).
"""
import json

import pytest

from . import hl7, package_build

pytestmark = pytest.mark.interop

ARGS = ["-allow-example-urls", "true"]


def _alone(path):
    """Issues for one file, in a JVM of its own."""
    return hl7.validate_files([path], extra_args=ARGS, fhir_version="4.0.1")[path]


def test_the_r4_export_has_no_errors(hl7_validator, tmp_path):
    out = package_build.built()
    files = sorted((out / "r4").glob("*.r4.json"))
    assert {f.name.split(".")[-3] for f in files} == {"transaction", "collection"}, files
    for f in files:
        # with the control Library appended: see package_build.mimetype_artefact
        issues, tolerated = package_build.without_artefact(_alone(package_build.with_control(f, tmp_path / f.name)))
        errors = hl7.errors(issues)
        warnings = sum(1 for i in issues if i["severity"] == "warning")
        print(f"\nHL7 validator 4.0.1 on {f.name}: {len(errors)} errors, {warnings} warnings "
              f"({tolerated} mimetype messages tolerated: the control shows them too)")
        assert not errors, "\n".join(f"{e['expression']}: {e['message']}" for e in errors[:30])


def test_an_r4_invalid_control_is_rejected(hl7_validator, tmp_path):
    # R5-only elements (PlanDefinition.versionAlgorithm[x], action.linkId) and a type R4 lacks
    control = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://example.org/fhir/PlanDefinition/pd1",
         "resource": {"resourceType": "PlanDefinition", "id": "pd1", "status": "draft",
                      "versionAlgorithmString": "semver", "action": [{"linkId": "a1", "title": "x"}]}},
        {"fullUrl": "http://example.org/fhir/ClinicalUseDefinition/cud1",
         "resource": {"resourceType": "ClinicalUseDefinition", "id": "cud1", "type": "indication"}}]}
    path = tmp_path / "control.r4.json"
    path.write_text(json.dumps(control, indent=2))
    found = {(e["expression"], e["message"]) for e in hl7.errors(_alone(path))}
    assert ("Bundle.entry[0].resource", "Unrecognized property 'versionAlgorithmString'") in found, found
    assert ("Bundle.entry[0].resource.action[0]", "Unrecognized property 'linkId'") in found, found
    assert any(x == "Bundle.entry[1].resource" and "ClinicalUseDefinition" in m for x, m in found), found
