"""The per-core fast paths give what the slow paths gave: locations found by walking to them
equal those of the full scan; issue lists on fixed inputs are those the spec calls for."""
from __future__ import annotations

import json

import pytest

from fhirpkg.jsonsource import PositionMap, parse, seek

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
    for loc in all_locations(json.loads(text)):
        assert seek(text, loc) == scanned(pm, loc), loc


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
