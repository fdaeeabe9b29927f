"""Reading JSON: encodings, syntax errors, duplicates, exact numbers, positions."""
from decimal import Decimal

from fhirpkg.issues import Severity
from fhirpkg.fhir.jsonsource import PositionMap, decode, lexeme, parse, read_documents


def test_positions_point_at_keys_and_items():
    text = '{\n  "a": 1,\n  "b": [\n    {"c": true},\n    2\n  ]\n}'
    pm = PositionMap.scan(text)
    assert pm.line_col(pm.offsets[("a",)]) == (2, 3)
    assert pm.line_col(pm.offsets[("b", 0, "c")]) == (4, 6)
    assert pm.line_col(pm.offsets[("b", 1)]) == (5, 5)


def test_decimals_stay_exact_and_keep_their_lexeme():
    doc = parse('{"v": 0.40, "w": 1.000000000000000000001, "x": 1e5}')
    assert doc.value["v"] == Decimal("0.40") and lexeme(doc.value["v"]) == "0.40"
    assert doc.value["w"] == Decimal("1.000000000000000000001")
    assert lexeme(doc.value["x"]) == "1e5"


def test_duplicate_key_is_reported_with_position():
    doc = parse('{\n "a": 1,\n "a": 2\n}', "f.json")
    dup = [i for i in doc.issues if i.rule == "json-duplicate-key"]
    assert len(dup) == 1 and dup[0].line == 3 and dup[0].column == 2
    assert doc.value["a"] == 2


def test_nan_and_infinity_are_not_json():
    doc = parse('{"a": NaN, "b": -Infinity}')
    assert sorted(i.message.split("'")[1] for i in doc.issues if i.rule == "json-number") == ["-Infinity", "NaN"]


def test_syntax_error_has_line_and_column():
    doc = parse('{\n  "a": 1,\n}')
    assert not doc.ok
    (i,) = doc.issues
    assert i.severity is Severity.FATAL and i.rule == "json-syntax" and (i.line, i.column) == (3, 1)


def test_bom_is_a_warning_utf16_and_bad_utf8_are_fatal():
    text, issues = decode(b"\xef\xbb\xbf{}")
    assert text == "{}" and issues[0].rule == "json-bom" and issues[0].severity is Severity.WARNING
    text, issues = decode('{"a":1}'.encode("utf-16"))
    assert text is None and issues[0].rule == "json-encoding"
    text, issues = decode(b'{\n"a": "\xff"}')
    assert text is None and issues[0].rule == "json-encoding" and issues[0].line == 2


def test_empty_and_xml_inputs():
    (doc,) = read_documents(b"  \n", "e.json")
    assert doc.issues[0].rule == "json-empty-file"
    (doc,) = read_documents(b"<Patient xmlns='http://hl7.org/fhir'/>", "x.json")
    assert doc.issues[0].rule == "json-not-json"


def test_deep_nesting_is_refused_not_a_crash():
    (doc,) = read_documents(b"[" * 10000 + b"]" * 10000, "deep.json")
    assert not doc.ok and doc.issues[0].rule == "json-depth"


def test_ndjson_lines_keep_their_line_numbers():
    docs = list(read_documents(b'{"resourceType":"Patient"}\n\n{"resourceType":"Basic",\n', "x.ndjson", ndjson=True))
    assert len(docs) == 2
    assert docs[1].issues[0].rule == "json-syntax" and docs[1].issues[0].line == 3
