"""The HL7 FHIR Validator on what `fhirpkg apply` returns: 0 errors for every patient of the panel.

Same set-up as test_package_hl7: offline, the package loaded (-ig package.tgz of a fresh build) so
the canonicals in CarePlan/RequestOrchestration resolve, and -allow-example-urls true for the
documented placeholder base http://example.org/fhir/nepc.
"""
import json
from pathlib import Path

import pytest

from . import package_build

pytestmark = pytest.mark.interop
PATIENTS = Path(__file__).resolve().parents[1] / "patients"


def cases():
    expected = PATIENTS / "expected.json"
    if not expected.is_file():
        return []
    return [(name, case["subject"]) for name, case in sorted(json.loads(expected.read_text()).items())]


def test_hl7_validator_reports_no_errors_on_apply_output(hl7_validator, tmp_path):
    from fhirpkg.api import apply
    from fhirpkg.fhir.serialize import dumps

    if not cases():
        pytest.skip("no test-patient panel (tests/patients/expected.json) yet")
    out = package_build.built()
    files = []
    for name, subject in cases():
        result = apply("nepc-pathway", str(PATIENTS / name), subject)
        path = tmp_path / f"apply-{name}"
        path.write_text(dumps(result.bundle))
        files.append(path)
    results = hl7_validator.validate_files(files, igs=[str(out / "package.tgz")],
                                           extra_args=["-allow-example-urls", "true"])
    errors = [(f.name, i["expression"], i["message"]) for f, issues in results.items()
              for i in issues if i["severity"] in ("error", "fatal")]
    print(f"\nHL7 validator on fhirpkg apply output: {len(files)} Bundles, {len(errors)} errors")
    assert len(results) == len(files)
    assert not errors, "\n".join(f"{f}: {e}: {m}" for f, e, m in errors[:30])
