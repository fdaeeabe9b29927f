"""The HL7 FHIR Validator on an adopted build (`fhirpkg build --canonical ...`): 0 errors on the R5
transaction Bundle (with the adopted package.tgz loaded, so its canonicals resolve) and on the R4
one, each in a JVM of its own.  No -allow-example-urls: the adopted content has no example URLs left.
"""
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg.cli import main

from . import hl7, package_build

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]


def test_an_adopted_build_has_no_errors(hl7_validator, tmp_path):
    out = tmp_path / "build"
    r = CliRunner().invoke(main, ["build", "--project", str(ROOT / "definitions"), "--out", str(out),
                                  "--canonical", "https://their.org/fhir/nepc", "--publisher", "Their Health System",
                                  "--version", "1.0.0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    runs = [(next(out.glob("*.transaction.json")), "5.0.0", [str(out / "package.tgz")]),
            (next((out / "r4").glob("*.transaction.r4.json")), "4.0.1", [])]
    for path, version, igs in runs:
        # with the control Library appended: see package_build.mimetype_artefact
        checked = package_build.with_control(path, tmp_path / path.name)
        issues, tolerated = package_build.without_artefact(
            hl7.validate_files([checked], igs=igs, fhir_version=version)[checked])
        errors = hl7.errors(issues)
        print(f"\nHL7 validator {version} on {path.name}: {len(errors)} errors, "
              f"{sum(i['severity'] == 'warning' for i in issues)} warnings "
              f"({tolerated} mimetype messages tolerated: the control shows them too)")
        assert not errors, "\n".join(f"{e['expression']}: {e['message']}" for e in errors[:30])
