"""fhirpkg validate on Apache Spark (local[2]): the same issues as the local run on the same input.

Expected results are the local run's (``fhirpkg validate`` with one process), which the rest of
the suite checks against the HL7 validator; what is tested here is that spreading the work over
Spark executors changes nothing: order, lines, columns, counts, every report format.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg import api, reports
from fhirpkg.cli import main
from fhirpkg.issues import Severity

pytestmark = pytest.mark.spark

EXAMPLES = Path.home() / ".fhir" / "packages" / "hl7.fhir.r5.examples#5.0.0" / "package"
TYPES = ("Observation", "Patient", "Condition", "Encounter", "MedicationRequest", "Procedure", "DiagnosticReport")


def _pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("FHIRPKG_REQUIRE_INTEROP"):
            pytest.fail("pyspark is not installed and FHIRPKG_REQUIRE_INTEROP=1 (run: make spark-setup)")
        pytest.skip("pyspark is not installed (pip install 'fhirpkg[spark]')")


@pytest.fixture(scope="module")
def spark():
    _pyspark()
    from fhirpkg.spark import session
    s = session("local[2]")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """An NDJSON file of R5 examples with broken lines, and a folder of JSON files."""
    if not EXAMPLES.is_dir():
        pytest.skip("hl7.fhir.r5.examples#5.0.0 is not in the package cache (run: make packages)")
    root = tmp_path_factory.mktemp("spark-input")
    files = sorted(p for p in EXAMPLES.glob("*.json") if p.name.split("-", 1)[0] in TYPES)[:160]
    lines = [json.dumps(json.loads(p.read_text(encoding="utf-8")), separators=(",", ":")) for p in files]
    lines.insert(7, "")                                                       # blank lines are skipped
    lines.insert(20, '{"resourceType": "Patient", "id": "broken",')           # not JSON
    lines.insert(40, '{"resourceType": "Patient", "id": "p-bad", "gender": "bogus", "birthDate": "2020-13-01"}')
    lines.insert(60, '{"resourceType": "NoSuchType", "id": "x"}')
    text = "\n".join(lines[:90]) + "\r\n" + "\n".join(lines[90:]) + "\n"     # one CRLF line end
    (root / "bulk.ndjson").write_text(text, encoding="utf-8")
    folder = root / "json"
    folder.mkdir()
    for p in files[:15]:
        (folder / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "broken.json").write_text('{"resourceType": "Observation", "status": ', encoding="utf-8")
    (folder / "report.json").write_text('{"not": "a resource"}', encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def local(data):
    """The local run (one process) of the same inputs."""
    spec = api.ValidatorSpec()
    validator = api.make_validator(spec, log=None)
    return list(api.iter_validate([str(data / "bulk.ndjson"), str(data / "json")], validator, jobs=1))


def _render(results, fmt):
    issues = [i for r in results for i in r.issues]
    return reports.render(fmt, issues, [r.file for r in results], resources=sum(r.resources for r in results))


def test_ndjson_ranges_cover_the_file_and_keep_line_numbers(data):
    from fhirpkg.spark import tasks
    path = data / "bulk.ndjson"
    cut = tasks([str(path)], range_bytes=40_000)
    assert len(cut) > 3
    assert cut[0].start == 0 and cut[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in zip(cut, cut[1:]))
    raw = path.read_bytes()
    for t in cut:  # each range starts on a line, at the line number the local reader gives it
        assert t.start == 0 or raw[t.start - 1:t.start] == b"\n"
        assert t.first_line == raw[:t.start].count(b"\n")


@pytest.mark.parametrize("fmt", ["json", "sarif", "text"])
def test_spark_reports_are_the_local_reports(spark, data, local, fmt):
    from fhirpkg.spark import run
    results = run(spark, [str(data / "bulk.ndjson"), str(data / "json")], api.ValidatorSpec(), range_bytes=40_000)
    assert [r.file for r in results] == [r.file for r in local]
    assert sum(len(r.issues) for r in local) > 50 and any(i.is_error for r in local for i in r.issues)
    assert _render(results, fmt) == _render(local, fmt)


def test_the_cli_gives_the_same_report_with_spark(spark, data):
    args = ["validate", "--format", "json", str(data / "bulk.ndjson"), str(data / "json")]
    plain = CliRunner().invoke(main, args + ["-j", "1"])
    on_spark = CliRunner().invoke(main, args + ["--spark", "local[2]"])
    assert plain.exit_code == on_spark.exit_code == 1  # the input has errors
    assert json.loads(on_spark.stdout) == json.loads(plain.stdout)


def _key(r) -> tuple:
    return (r["file"], r["line"], r["column"], r["severity"], r["rule"], r["expression"], r["message"])


def test_parquet_has_one_row_per_issue(spark, data, local, tmp_path):
    from fhirpkg.spark import write_parquet
    out = tmp_path / "issues.parquet"
    paths = [str(data / "bulk.ndjson"), str(data / "json")]
    counts = write_parquet(spark, paths, api.ValidatorSpec(), out, range_bytes=40_000)
    rows = spark.read.parquet(str(out)).collect()
    expected = Counter((i.file, i.line, i.column, i.severity.code, i.rule, i.expression, i.message)
                       for r in local for i in r.issues)
    assert Counter(_key(r) for r in rows) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["issues.parquet"]  # written aside, then renamed
    assert counts.errors == sum(1 for r in local for i in r.issues if i.severity >= Severity.ERROR)
    bad = [r for r in rows if r["rule"] and r["line"] == 41 and r["file"].endswith("bulk.ndjson")]
    assert bad and {(r["resource_type"], r["resource_id"]) for r in bad} == {("Patient", "p-bad")}
    again = CliRunner().invoke(main, ["validate", "--spark", "local[2]", "--format", "parquet", "-o", str(out)]
                               + paths)
    assert again.exit_code == 2 and "is a directory" in again.output  # an existing folder is never written over
    assert len(spark.read.parquet(str(out)).collect()) == len(rows)


def test_a_dataframe_of_resources(spark, data, local):
    from fhirpkg.spark import validate
    name = str(data / "bulk.ndjson")
    text = (data / "bulk.ndjson").read_text(encoding="utf-8").split("\n")
    df = spark.createDataFrame([(name, n + 1, line) for n, line in enumerate(text)], "file string, line int, value string")
    rows = validate(spark, df).collect()
    expected = Counter((i.file, i.line, i.column, i.severity.code, i.rule, i.expression, i.message)
                       for r in local if r.file == name for i in r.issues)
    assert Counter(_key(r) for r in rows) == expected


def test_parquet_needs_spark_and_an_output_folder(data):
    r = CliRunner().invoke(main, ["validate", "--format", "parquet", str(data / "json")])
    assert r.exit_code == 2 and "--format parquet needs --spark MASTER and -o DIR" in r.output
