"""The per-core fast paths give what the slow paths gave: locations found by walking to them
equal those of the full scan; issue lists on fixed inputs are those the spec calls for."""
from __future__ import annotations

import json

import pytest

from fhirpkg.fhir.jsonsource import PositionMap, parse, seek

TEXT = """{
  "resourceType": "Observation",
  "id": "x",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}, {"code": "a\\"b"}]},
  "k\\u00e9y": [1, 2.5e3, [true, null, {"deep": "v"}]],
  "note": [{"text": "line\\nbreak \\u2603"}],
  "valueQuantity": {"value": 1e400, "unit": "kg"}
}"""


def all_locations(value, loc=()):
    yield loc
    if isinstance(value, dict):
        for k, v in value.items():
            yield from all_locations(v, loc + (k,))
        yield loc + ("absent",)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from all_locations(v, loc + (i,))
        yield loc + (len(value),)


def scanned(pm: PositionMap, loc: tuple):
    while loc and pm.offsets.get(loc) is None:
        loc = loc[:-1]
    return pm.offsets.get(loc)


@pytest.mark.parametrize("text", [TEXT, TEXT.replace("\n", "").replace("  ", ""), "[]", "{}", ' \n {"a": {}}'])
def test_seek_finds_what_the_scan_finds(text):
    pm = PositionMap.scan(text)
    locations = list(all_locations(json.loads(text)))
    for loc in locations:
        assert seek(text, loc) == scanned(pm, loc), loc
    for order in (locations, locations[::-1]):  # one walk cache for all, as a Document keeps it
        walked: dict = {}
        for loc in order:
            assert seek(text, loc, walked) == scanned(pm, loc), loc


BUNDLE = json.dumps({"resourceType": "Bundle", "entry": [
    {"fullUrl": f"urn:uuid:{i}", "resource": {"resourceType": "Patient", "id": str(i), "name": [
        {"given": ["A", "B"][:i % 3], "family": "x" * i}], "active": i % 2 == 0, "extra": [[i], {"k": [i, None]}]}}
    for i in range(12)]}, indent=1)


@pytest.mark.parametrize("text", [TEXT, BUNDLE, BUNDLE.replace("\n", "").replace(" ", "")])
@pytest.mark.parametrize("seed", range(5))
def test_seek_in_any_order_with_one_cache(text, seed):
    """The walks of one document go on from each other (members and items passed on the way, and
    where each container was left): in whatever order the issues come, the offsets are the scan's."""
    import random
    pm = PositionMap.scan(text)
    locations = list(all_locations(json.loads(text)))
    random.Random(seed).shuffle(locations)
    walked: dict = {}
    for loc in locations:
        assert seek(text, loc, walked) == scanned(pm, loc), loc


def test_locate_many_issues_without_the_full_scan():
    """A document with many located issues never needs the position scan (it used to after 8)."""
    doc = parse(BUNDLE, "b.json")
    for i in range(12):
        doc.locate(("entry", 11 - i, "resource", "name", 0, "family"))
    assert doc._positions is None
    pm = PositionMap.scan(BUNDLE)
    for loc in all_locations(json.loads(BUNDLE)):  # lines and columns too (from a line index, not a count per issue)
        assert doc.locate(loc) == pm.line_col(scanned(pm, loc)), loc
    assert doc._positions is None


def test_locate_in_a_long_text_uses_the_line_index_and_agrees_with_the_scan():
    """Lines come from a line index made once per document; in a text of several of its 16 KB blocks
    they and the columns are the scan's."""
    big = json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Basic", "id": str(i), "code": {"text": "t" * (i % 50)}}} for i in range(400)]},
        indent=2)
    assert len(big) > 16 * 1024
    doc, pm = parse(big, "big.json"), PositionMap.scan(big)
    locations = list(all_locations(json.loads(big)))[::7]
    for loc in reversed(locations):
        assert doc.locate(loc) == pm.line_col(scanned(pm, loc)), loc
    assert doc._lines is not None and doc._positions is None


def test_seek_cache_still_gives_up_on_surrogates():
    walked: dict = {}
    assert seek('{"a": "\\ud800", "b": 1}', ("b",), walked) is None and walked == {}
    assert seek('{"a": "\\ud800", "b": 1}', ("b",), walked) is None


def where(needle: str, nth_line: int) -> tuple[int, int]:
    """Line and column of ``needle`` on a line of TEXT, found with str.index."""
    return nth_line, TEXT.splitlines()[nth_line - 1].index(needle) + 1


def test_locate_lines_and_columns():
    doc = parse(TEXT, "x.json")
    assert doc.locate(("status",)) == where('"status"', 4) == (4, 3)
    assert doc.locate(("code", "coding", 1)) == where('{"code": "a', 5)
    assert doc.locate(("note", 0, "text", "nothing-here")) == where('"text"', 7)
    assert doc.locate(("kéy", 2, 2, "deep")) == where('"deep"', 6)


def test_seek_gives_up_on_text_it_cannot_trust():
    assert seek('{"a": [1 2]}', ("a", 1)) is None  # not JSON: no comma
    assert seek('{"a": "\\ud800"}', ("a",)) is None  # lone surrogates: the parser repairs the text


PER_1 = "start.lowBoundary() <= end.highBoundary()"


@pytest.mark.parametrize("start,end,expected", [
    ("2013-04-02T09:30:10+01:00", "2013-04-02T08:30:10Z", True),    # the same instant
    ("2013-04-02T09:30:11+01:00", "2013-04-02T08:30:10Z", False),   # one second later
    ("2013-04-02T10:00:00.5Z", "2013-04-02T10:00:00.4Z", False),    # half a second vs 0.4
    ("2013-04-02T10:00:00Z", "2013-04-02T10:00:00.999Z", True),     # no fraction: .000 .. .999
    ("2013-04-02", "2013-04-01T10:00:00Z", True),                   # from 04-02T00:00+14:00 = 04-01T10:00Z
    ("2013-04-02", "2013-04-01T09:59:59Z", False),
    ("2013-04-02T00:00:00", "2013-04-01T10:00:00Z", True),          # no zone: +14:00 at the earliest
])
def test_period_start_before_end(validator, start, end, expected):
    """per-1: 'If present, start SHALL have a lower or equal value than end' (boundaries as the
    HL7 validator computes them: a missing zone is +14:00 low, -12:00 high)."""
    result = validator.engine.evaluate(PER_1, {"start": start, "end": end}, type_path="Period", resource={})
    assert result == [expected]


def test_fixed_clinical_inputs_give_the_issues_the_spec_calls_for(check):
    lines = [
        {"resourceType": "Encounter", "id": "e1", "status": "completed",
         "actualPeriod": {"start": "2024-01-02T10:00:00Z", "end": "2024-01-01T10:00:00Z"}},
        {"resourceType": "Observation", "id": "o1", "status": "bogus", "code": {"text": "Weight"}},
        {"resourceType": "Patient", "id": "p1", "gender": 42, "birthDate": "2024-02-30"},
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},
    ]
    issues = check("\n".join(json.dumps(x) for x in lines), name="bulk.ndjson")
    errors = sorted((i.line, i.rule, i.expression) for i in issues if i.is_error)
    # Encounter: per-1 on the period; Observation.status: required binding; Patient.gender: a JSON
    # string; birthDate: no 30 February; Condition: clinicalStatus is 1..1 in R5, and nothing else
    assert (1, "per-1", "Encounter.actualPeriod") in errors
    assert any(line == 2 and expr == "Observation.status" for line, _, expr in errors)
    assert any(line == 3 and expr == "Patient.gender" for line, _, expr in errors)
    assert any(line == 3 and expr == "Patient.birthDate" for line, _, expr in errors)
    assert [e for e in errors if e[0] == 4] == [(4, "cardinality-min", "Condition")]
