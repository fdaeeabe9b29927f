"""Reports written a piece at a time from a Collector that does not keep what it does not need.

Expected results: text lines written by hand from the report's documented shape; JSON documents
from the standard library's ``json.dumps`` of the whole document (the streamed writer must give
the same bytes); issue order from ``sorted`` (stable) over every issue.
"""
from __future__ import annotations

import json

import pytest

from fhirpkg import reports
from fhirpkg.issues import Issue, Severity


def issue(file, line, rule="r", message="m", severity=Severity.ERROR, expression=None) -> Issue:
    return Issue(severity, "invalid", message, rule, expression, file=file, line=line, column=1)


def many() -> list[Issue]:
    """Issues in arrival order (not report order), with repeats, ties and every severity."""
    out = []
    for k in range(60):
        out.append(issue(f"f{k % 4}.json", 60 - k, "value", f"Bad value '{k}'", Severity(k % 4)))
        out.append(issue("a.ndjson", k + 1, "ref", "Not found (x)", Severity.WARNING, f"Patient.link[{k}]"))
    out.append(issue("a.ndjson", 3, "ref", "Not found (x)", Severity.WARNING, "tie-after"))  # same key, later
    return out


def test_grouped_text_counts_repeats_and_shows_the_first_places():
    found = [issue("b.json", 9, "cardinality-min", "Patient.name: minimum required = 1, but only found 0"),
             issue("a.json", 4, "cardinality-min", "Patient.name: minimum required = 1, but only found 0"),
             issue("a.json", 2, "cardinality-min", "Patient.name: minimum required = 1, but only found 0"),
             issue("c.json", 1, "cardinality-min", "Patient.name: minimum required = 1, but only found 0"),
             issue("a.json", 7, "code-unknown", "Unknown code 'x'", Severity.WARNING)]
    with reports.Collector(keep_all=False) as c:
        c.add_file("a.json")
        c.add(found[:2], 2)
        c.add(found[2:], 3)
        text = "".join(reports.chunks("text", c, resources=5))
    assert text == (
        "a.json:2:1: error [cardinality-min] Patient.name: minimum required = 1, but only found 0"
        " [4 like this; also a.json:4:1, b.json:9:1 and 1 more]\n"
        "a.json:7:1: warning [code-unknown] Unknown code 'x'\n"
        "5 resources in 1 file: 4 errors, 1 warning, 0 information\n")


def test_quiet_text_hides_lower_severities_but_counts_them():
    found = [issue("a.json", 1, "x", "w", Severity.WARNING), issue("a.json", 2, "y", "e")]
    text = reports.render("text", found, ["a.json"], Severity.ERROR, resources=1)
    assert text == "a.json:2:1: error [y] e\n1 resource in 1 file: 1 error, 1 warning, 0 information\n"


@pytest.mark.parametrize("spill_after", [reports.SPILL_AFTER, 7, 1])
def test_issues_come_out_in_report_order_however_they_were_held(spill_after):
    found = many()
    with reports.Collector(spill_after=spill_after) as c:
        for k in range(0, len(found), 5):
            c.add(found[k:k + 5])
        out = list(c.issues())
    assert out == sorted(found, key=Issue.sort_key)
    ties = [i.expression for i in out if i.file == "a.ndjson" and i.line == 3]
    assert ties == ["Patient.link[2]", "tie-after"]  # equal keys keep their arrival order


@pytest.mark.parametrize("spill_after", [reports.SPILL_AFTER, 3])
def test_grouped_text_is_the_same_from_groups_or_from_every_issue(spill_after):
    found = many()
    texts = []
    for keep_all in (False, True):
        with reports.Collector(keep_all=keep_all, spill_after=spill_after) as c:
            c.add_file("a.ndjson")
            c.add(found, 61)
            texts.append("".join(reports.chunks("text", c, resources=61)))
    assert texts[0] == texts[1]
    assert texts[0].count("\n") == 1 + 4 + 1  # the summary, four value groups (one per severity), one ref group


def test_streamed_json_is_the_whole_document_json_dumps_would_write():
    found = many() + [issue("ü.json", None, "enc", 'quote " and \\ and \u2028 and é')]
    files = ["a.ndjson", "f0.json", "ü.json"]
    ordered = sorted(found, key=Issue.sort_key)
    counts = {s.code: sum(1 for i in found if i.severity == s) for s in Severity}
    expected = json.dumps({"tool": "fhirpkg", "version": reports.__version__, "files": 3, "resources": 99,
                           "summary": counts, "issues": [reports.issue_dict(i) for i in ordered]},
                          indent=2, ensure_ascii=False) + "\n"
    with reports.Collector(spill_after=10) as c:
        for name in files:
            c.add_file(name)
        c.add(found, 99)
        assert "".join(reports.chunks("json", c, resources=99)) == expected


def test_streamed_sarif_and_operation_outcome_match_json_dumps():
    found = many()
    ordered = sorted(found, key=Issue.sort_key)
    sarif = json.loads(reports.render("sarif", found, ["a.ndjson"]))
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["ref", "value"]
    assert run["results"] == [reports.sarif_result(i) for i in ordered]
    assert reports.render("sarif", found, ["a.ndjson"]) == json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"
    oo = reports.render("operationoutcome", found, ["a.ndjson"])
    assert oo == json.dumps({"resourceType": "OperationOutcome", "issue": [reports.oo_issue(i) for i in ordered]},
                            indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("fmt", ["json", "sarif", "operationoutcome"])
def test_empty_reports_are_valid_json(fmt):
    doc = json.loads(reports.render(fmt, [], ["a.json"], resources=1))
    if fmt == "json":
        assert doc["issues"] == [] and doc["files"] == 1
    elif fmt == "sarif":
        assert doc["runs"][0]["results"] == []
    else:
        assert doc["issue"][0]["details"]["text"] == "All OK"


def test_junit_lists_input_files_then_archive_members_in_arrival_order():
    found = [issue("p.tgz!package/b.json", 1, "x", "e"), issue("p.tgz!package/a.json", 1, "x", "w", Severity.WARNING)]
    xml = reports.render("junit", found, ["z.json", "p.tgz"])
    names = [line.split(' name="')[1].split('"')[0] for line in xml.splitlines() if "<testcase" in line]
    assert names == ["z.json", "p.tgz", "p.tgz!package/b.json", "p.tgz!package/a.json"]
    assert 'tests="4" failures="1"' in xml


def test_a_group_only_collector_cannot_list_every_issue():
    with reports.Collector(keep_all=False) as c:
        c.add([issue("a.json", 1)])
        with pytest.raises(ValueError):
            list(c.issues())


@pytest.mark.parametrize("value", [
    {}, [], {"a": {}}, {"a": []}, [[], {}], {"n": 0, "neg": -7, "big": 10 ** 30, "f": 1.5, "e": 1e-300},
    {"t": True, "f": False, "none": None, "list": [True, None, 1, "x"]},
    {"s": "quote \" back \\ tab \t nl \n nul \u0000 sep \u2028 é 😀 \udc80"},
    {"nested": {"deeper": [{"k": [1, [2, [3, {}]]]}]}}, {1: "int key"}, [float("nan"), float("inf")],
    {"sev": Severity.ERROR}, "plain", 3, None,
])
def test_the_indented_writer_gives_json_dumps_text(value):
    """The streamed items are written without json's pure-Python indenting encoder: same text."""
    expected = json.dumps(value, indent=2, ensure_ascii=False)
    assert reports.json_indented(value, "") == expected
    assert reports.json_indented(value, "    ") == expected.replace("\n", "\n    ")
