"""The HL7 validator's own test cases: our verdict must match its recorded one.

The runner is scripts/conformance.py (run it to see the table and every
disagreement).  The floor is set from the measured agreement and only ever raised.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 0.91  # measured 113/124 = 91.1 % when set (was 87.9 %); raise it as agreement improves


@pytest.fixture(scope="module")
def rows():
    spec = importlib.util.spec_from_file_location("conformance", ROOT / "scripts" / "conformance.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["conformance"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod, mod.run()


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
