"""JSON value helpers of the structure checks, against the FHIR rules they implement."""
from decimal import Decimal

import pytest

from fhirpkg.validation.json_values import (clip, decimal_out_of_range, json_contains, json_equal, navigate,
                                            split_path, valid_calendar)


def test_fixed_values_compare_decimals_by_value_and_booleans_by_identity():
    # profiling.html#fixed: "exactly the same"; a JSON number's value, not its spelling
    assert json_equal(Decimal("1.50"), Decimal("1.5"))
    assert json_equal({"system": "s", "code": "c"}, {"code": "c", "system": "s"})
    assert not json_equal(True, 1)
    assert not json_equal({"code": "c"}, {"code": "c", "display": "d"})


def test_patterns_need_only_what_they_state():
    # profiling.html#pattern: the instance holds every element of the pattern, and may hold more
    value = {"coding": [{"system": "s", "code": "c", "display": "d"}, {"system": "t", "code": "x"}]}
    assert json_contains(value, {"coding": [{"system": "s", "code": "c"}]})
    assert not json_contains(value, {"coding": [{"system": "s", "code": "x"}]})


def test_discriminator_paths_split_outside_parentheses_and_follow_extensions():
    assert split_path("extension('http://a.b/c').value") == ["extension('http://a.b/c')", "value"]
    ext = {"extension": [{"url": "http://a.b/c", "valueCode": "x"}, {"url": "other", "valueCode": "y"}]}
    assert navigate(ext, "extension('http://a.b/c').value") == ["x"]
    assert navigate({"valueQuantity": {"value": 1}}, "value[x]") == [{"value": 1}]


@pytest.mark.parametrize("text, out", [("1" * 18, False), ("1" * 19, True), ("1.5e1234", False), ("1e12345", True)])
def test_decimal_bounds_of_the_hl7_validator(text, out):
    assert decimal_out_of_range(text) is out


@pytest.mark.parametrize("text, ok", [("2024-02-29", True), ("2023-02-29", False), ("2023-13", False), ("2023", True)])
def test_calendar_dates(text, ok):
    assert valid_calendar(text) is ok


def test_long_values_are_clipped_in_messages():
    assert clip("x" * 200, 10) == "xxxxxxxxxx... (200 characters)"
