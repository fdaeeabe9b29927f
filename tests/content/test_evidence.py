"""fhirpkg.content.evidence: the warnings a project has answered (register, ignoreWarnings.txt) and only those."""
from __future__ import annotations

import json

from fhirpkg.content import evidence
from fhirpkg.issues import Issue, Severity

ATC = "http://www.whocc.no/atc"
RESOURCE = {"resourceType": "MedicationKnowledge", "id": "mk",
            "code": {"coding": [{"system": ATC, "code": "L01CB01"}, {"system": ATC, "code": "L01XX99"}]}}


def _unchecked(n: int, severity=Severity.WARNING, rule="terminology-not-checked") -> Issue:
    return Issue(severity, "not-supported", f"A definition for CodeSystem '{ATC}' could not be found, so the code "
                 "cannot be validated (ATC is not available offline)", rule,
                 f"MedicationKnowledge.code.coding[{n}].system", "mk.json", 5 + n, 9,
                 location=("code", "coding", n, "system"))


def test_register_answers_only_the_codes_it_lists(tmp_path):
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "register.json").write_text(json.dumps({"entries": [
        {"system": ATC, "code": "L01CB01", "verified_by": "shared-evidence", "source": "evidence.json"},
        {"kind": "pmid", "code": "123"}]}))  # no system: not a code answer
    (tmp_path / "proj").mkdir()
    answers = evidence.find(tmp_path / "proj")  # the register is looked for in the folder above too
    assert answers.codes == {(ATC, "L01CB01"): "shared-evidence: evidence.json"}
    issues = [_unchecked(0), _unchecked(1), _unchecked(0, Severity.ERROR, "code-invalid")]
    out = evidence.answer(issues, {"mk.json": RESOURCE}, answers)
    assert [i.severity for i in out] == [Severity.INFORMATION, Severity.WARNING, Severity.ERROR]
    assert out[0].message == (f"Code 'L01CB01' of '{ATC}' is not checked offline; "
                              f"{tmp_path / 'evidence' / 'register.json'} lists it as verified: "
                              "'shared-evidence: evidence.json'")
    assert (out[0].file, out[0].line, out[0].rule) == ("mk.json", 5, "terminology-not-checked")


def test_ignore_warnings_file_in_the_ig_publisher_format(tmp_path):
    (tmp_path / "ignoreWarnings.txt").write_text(
        "== Suppressed Messages ==\n\n# exact, any case\nA DEFINITION FOR CODESYSTEM 'HTTP://WWW.WHOCC.NO/ATC' COULD NOT BE "
        "FOUND, SO THE CODE CANNOT BE VALIDATED (ATC IS NOT AVAILABLE OFFLINE)\n"
        "# by rule id\ncode-system-unknown\n# partial\n%not available%\n")
    answers = evidence.find(tmp_path)
    assert [r for _, r in answers.suppressed] == ["exact, any case", "by rule id", "partial"]
    other = Issue(Severity.WARNING, "x", "Something else is not available here", "other-rule")
    unrelated = Issue(Severity.WARNING, "x", "Something else entirely", "other-rule")
    error = Issue(Severity.ERROR, "x", "not available, but an error", "code-system-unknown")
    out = evidence.answer([_unchecked(0, rule="code-system-unknown"), _unchecked(1), other, unrelated, error], {}, answers)
    assert [i.severity for i in out] == [Severity.INFORMATION] * 3 + [Severity.WARNING, Severity.ERROR]
    assert out[0].message.endswith(": exact, any case)") and out[2].message.endswith(": partial)")


def test_no_register_no_ignore_file_answers_nothing(tmp_path):
    assert not evidence.find(tmp_path)
