"""The Python API the CLI stands on: ``fhirpkg.validate`` and friends."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fhirpkg

ROOT = Path(__file__).resolve().parent.parent


def test_validate_returns_located_issues(defs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "gender": "bogus"}, indent=2))
    issues = fhirpkg.validate(str(tmp_path), defs=defs)
    errors = [i for i in issues if i.is_error]
    assert len(errors) == 1 and isinstance(errors[0], fhirpkg.Issue)
    e = errors[0]
    assert (Path(e.file).name, e.line, e.expression) == ("bad.json", 4, "Patient.gender")
    assert "bogus" in e.message


def test_validate_resource_and_project(defs):
    issues = fhirpkg.validate_resource({"resourceType": "Patient", "gender": "x"}, defs=defs)
    assert [i.expression for i in issues if i.is_error] == ["Patient.gender"]
    project, issues, _ = fhirpkg.validate_project(ROOT / "definitions", defs=defs)
    assert len(project.resources) >= 100 and not [i for i in issues if i.is_error]


def test_import_fhirpkg_stays_cheap():
    """`import fhirpkg` must not pull in the validator (the CLI's cold start depends on it)."""
    code = "import sys, fhirpkg; print('fhirpkg.api' in sys.modules, 'fhirpkg.validation' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
