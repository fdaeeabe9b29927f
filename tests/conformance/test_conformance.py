"""The HL7 validator's own test cases: our verdict must match its recorded one.

The runner is scripts/conformance.py (run it to see the table and every
disagreement).  The floor is set from the measured agreement and only ever raised.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = 0.935  # measured 116/124 = 93.5 % when set (was 91.1 %); raise it as agreement improves
#: R4 (the suite's version 4.0 JSON cases): measured 386/450 = 85.8 % when raised (81.3 % before, 76.2 % when
#: first set); docs/cross-version.md lists what the remaining disagreements need (a terminology server for
#: display names, packages npm lacks, HL7-only rule sets).
FLOOR_R4 = 0.85


def _runner():
    spec = importlib.util.spec_from_file_location("conformance", ROOT / "scripts" / "conformance.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["conformance"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows():
    mod = _runner()
    return mod, mod.run()


@pytest.fixture(scope="module")
def rows_r4():
    from fhirpkg.fhir import packages as pk
    if pk.installed(pk.PackageRef(*pk.R4_CORE)) is None:
        pytest.skip("hl7.fhir.r4.core#4.0.1 is not in the package cache (run: make packages)")
    mod = _runner()
    return mod, mod.run("r4")


def test_agreement_floor_and_no_crashes(rows):
    mod, results = rows
    table = mod.table(results)
    print(f"\nconformance: {table}")
    assert table["crashes"] == 0, [r.reason for r in results if r.status == "crash"]
    assert table["agreement"] >= FLOOR, f"agreement {table['agreement']:.1%} is below the floor {FLOOR:.0%}"


def test_skips_say_why(rows):
    _, results = rows
    for r in results:
        if r.status == "skipped":
            assert r.reason, r.case


def test_r4_agreement_floor_and_no_crashes(rows_r4):
    mod, results = rows_r4
    table = mod.table(results)
    print(f"\nconformance R4: {table}")
    assert table["rows"] >= 400, "the R4 suite lost cases"
    assert table["crashes"] == 0, [r.reason for r in results if r.status == "crash"]
    assert table["agreement"] >= FLOOR_R4, f"agreement {table['agreement']:.1%} is below the floor {FLOOR_R4:.0%}"


def test_r4_skips_say_why(rows_r4):
    _, results = rows_r4
    assert all(r.reason for r in results if r.status in ("skipped", "unrecorded"))
