"""The HL7 FHIR Validator on our build: the transaction Bundle and every resource of package.tgz.

Run offline (-tx n/a), with the package itself loaded (-ig package.tgz) so its canonicals
resolve, and -allow-example-urls true: the package's canonical base is the documented
placeholder http://example.org/fhir/nepc, which the HL7 validator otherwise reports as
"example URL" errors (95 of them, one per placeholder URL; see docs/content.md).
"""
import pytest

from . import package_build

pytestmark = pytest.mark.interop


def test_hl7_validator_reports_no_errors_on_the_build(hl7_validator):
    out = package_build.built()
    files = [package_build.transaction(out)] + package_build.package_resources(out)
    assert len(files) > 100
    results = hl7_validator.validate_files(files, igs=[str(out / "package.tgz")],
                                           extra_args=["-allow-example-urls", "true"])
    errors = [(f.name, i["expression"], i["message"]) for f, issues in results.items()
              for i in issues if i["severity"] in ("error", "fatal")]
    warnings = sum(1 for issues in results.values() for i in issues if i["severity"] == "warning")
    print(f"\nHL7 validator on build/: {len(files)} files, {len(errors)} errors, {warnings} warnings")
    assert len(results) == len(files)
    assert not errors, "\n".join(f"{f}: {e}: {m}" for f, e, m in errors[:30])
