"""Shared fixtures: the compiled R5 definitions are loaded once per test session."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def defs():
    from fhirpkg import api
    return api.load_definitions()


@pytest.fixture(scope="session")
def validator(defs):
    from fhirpkg.validation import Validator
    return Validator(defs)


@pytest.fixture
def check(validator, tmp_path):
    """Validate a resource written as JSON text; returns the located issues."""
    from fhirpkg.fhir.inputs import Source, read_source

    def run(resource, name="input.json"):
        text = resource if isinstance(resource, str) else json.dumps(resource, indent=2)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        issues = []
        for doc in read_source(Source(str(path), path)):
            issues.extend(validator.validate_document(doc))
        return issues

    return run

