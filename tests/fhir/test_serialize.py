"""The one lexeme-keeping JSON writer: indented for files, compact for diff reports and push bodies."""
from decimal import Decimal

import pytest

from fhirpkg.fhir.jsonsource import read_documents
from fhirpkg.fhir.serialize import dumps
from fhirpkg.publish.diff import diff_resource, render_json, diff

SOURCE = b'{"resourceType": "Observation", "id": "o1", "valueQuantity": {"value": 1.50, "unit": "mg"}, ' \
         b'"component": [{"valueInteger": 100000000000000000001}, {"valueDecimal": 1e2}], "note": [], "x": {}}'


def parsed():
    return next(read_documents(SOURCE, "o1.json")).value


def test_compact_keeps_every_lexeme():
    """Numbers come out as written (1.50 stays 1.50, 1e2 stays 1e2, a 21-digit integer stays exact)."""
    assert dumps(parsed(), indent=None) == (
        '{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50,"unit":"mg"},'
        '"component":[{"valueInteger":100000000000000000001},{"valueDecimal":1e2}],"note":[],"x":{}}')


def test_indented_is_two_spaces_and_the_same_values():
    assert dumps({"a": [Decimal("1.0"), True, None, "é"], "b": {}}) == (
        '{\n  "a": [\n    1.0,\n    true,\n    null,\n    "é"\n  ],\n  "b": {}\n}')


def test_diff_reports_write_through_it():
    """1.50 -> 1.5 is a change in FHIR, and the JSON report shows both lexemes."""
    old = parsed()
    new = next(read_documents(SOURCE.replace(b"1.50", b"1.5"), "o1.json")).value
    (change,) = diff_resource(old, new)
    assert change.path == "Observation.valueQuantity.value"
    text = render_json(diff({"Observation/o1": old}, {"Observation/o1": new}))
    assert '"old": 1.50,' in text and '"new": 1.5\n' in text


def test_unknown_values_are_refused():
    with pytest.raises(TypeError, match="cannot write set"):
        dumps({"a": {1}}, indent=None)
