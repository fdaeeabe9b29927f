"""The HL7 FHIR Validator on our build: the transaction Bundle and every resource of package.tgz.

Run offline (-tx n/a), with the package itself loaded (-ig package.tgz) so its canonicals
resolve, and -allow-example-urls true: the package's canonical base is the documented
placeholder http://example.org/fhir/nepc, which the HL7 validator otherwise reports as
"example URL" errors (95 of them, one per placeholder URL; see docs/content.md).

The package resources are validated in one call and the transaction Bundle in another: once the
validator (6.10.4, -tx n/a) has validated the Bundle, every Attachment.contentType it checks later in
the same run — `application/json` and `text/plain` as much as the Libraries' `text/cql` and
`application/elm+json` — fails with "The System URI could not be determined for the code ... in the
ValueSet 'http://hl7.org/fhir/ValueSet/mimetypes'" (urn:ietf:bcp:13 has a grammar and no offline
expansion; hapifhir/org.hl7.fhir.core#1248). The resources alone validate without it. In the Bundle
that message is tolerated only on a contentType, and only when a control Library with
`application/json`, validated after the Bundle, shows the same message.
"""
import json

import pytest

from . import package_build

pytestmark = pytest.mark.interop

_mimetype_artefact = package_build.mimetype_artefact


def test_hl7_validator_reports_no_errors_on_the_build(hl7_validator, tmp_path):
    out = package_build.built()
    resources = package_build.package_resources(out)
    assert len(resources) > 100
    igs, args = [str(out / "package.tgz")], ["-allow-example-urls", "true"]
    results = hl7_validator.validate_files(resources, igs=igs, extra_args=args)
    control = tmp_path / "control-library.json"
    control.write_text(json.dumps({"resourceType": "Library", "id": "control", "status": "draft",
                                   "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                                                        "code": "logic-library"}]},
                                   "content": [{"contentType": "application/json", "data": "e30="}]}))
    tx = package_build.transaction(out)
    later = hl7_validator.validate_files([tx, control], igs=igs, extra_args=args)
    artefact = any(_mimetype_artefact(i) for i in later[control])
    results[tx] = [i for i in later[tx] if not (artefact and _mimetype_artefact(i))]
    assert not [i for i in later[control] if i["severity"] in ("error", "fatal") and not _mimetype_artefact(i)]
    files = [tx] + resources
    errors = [(f.name, i["expression"], i["message"]) for f, issues in results.items()
              for i in issues if i["severity"] in ("error", "fatal")]
    warnings = sum(1 for issues in results.values() for i in issues if i["severity"] == "warning")
    tolerated = len(later[tx]) - len(results[tx])
    print(f"\nHL7 validator on build/: {len(files)} files, {len(errors)} errors, {warnings} warnings "
          f"({tolerated} mimetype messages after the Bundle tolerated, control shows them: {artefact})")
    assert len(results) == len(files)
    assert not errors, "\n".join(f"{f}: {e}: {m}" for f, e, m in errors[:30])
