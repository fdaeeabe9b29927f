"""`fhirpkg validate -j N`: worker processes give the same reports as one process, and NDJSON
read line by line gives the same documents as NDJSON read whole."""
from __future__ import annotations

import codecs
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg import api, parallel, reports
from fhirpkg.fhir import inputs
from fhirpkg.cli import main
from fhirpkg.fhir.jsonsource import read_documents
from fhirpkg.validation import Validator


def examples_dir() -> Path:
    """The R5 examples package folder (installed on first use, like the other example tests)."""
    from fhirpkg.fhir import packages as pk
    return pk.ensure([pk.R5_EXAMPLES])[0].folder


pytestmark = pytest.mark.skipif(not parallel.available(), reason="worker processes need fork (not on this platform)")

GOOD_OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "Weight"}}
# Observation.status is bound (required) to observation-status: 'bogus' is not one of its codes
BAD_STATUS = {"resourceType": "Observation", "status": "bogus", "code": {"text": "Weight"}}
# Patient.gender is a code: a number is not a string
BAD_GENDER = {"resourceType": "Patient", "gender": 42}


def run(paths, jobs):
    """(file names, issues) as the CLI collects them."""
    validator = Validator(api.load_definitions(log=None))
    names, issues = [], []
    for name, file_issues in api.iter_validate([str(p) for p in paths], validator, jobs=jobs):
        names.append(name)
        issues.extend(file_issues)
    return names, issues


def same_in_every_format(paths):
    n1, i1 = run(paths, 1)
    n2, i2 = run(paths, 2)
    assert n2 == n1
    for fmt in reports.FORMATS:
        assert reports.render(fmt, i2, n2) == reports.render(fmt, i1, n1), fmt
    return n1, i1


def test_examples_subset_same_with_two_jobs(tmp_path):
    files = [p for p in sorted(examples_dir().glob("*.json")) if not p.name.startswith(".")
             and p.name != "package.json"][:120:3]
    for p in files:
        shutil.copy(p, tmp_path / p.name)
    names, issues = same_in_every_format([tmp_path])
    assert len(names) == len(files) and issues  # the R5 examples do have issues (warnings at least)


def ndjson_lines(count):
    out = []
    for n in range(count):
        res = dict(BAD_STATUS if n % 97 == 5 else BAD_GENDER if n % 131 == 7 else GOOD_OBS)
        res["id"] = f"r{n}"
        out.append(json.dumps(res))
    return out


def test_ndjson_in_chunks_same_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "NDJSON_RANGE_BYTES", 1000)  # many ranges, one ending mid-way through the file
    lines = ndjson_lines(300)
    lines.insert(40, "")  # a blank line: skipped, and the line numbers after it still count it
    lines.insert(80, "{not json")
    path = tmp_path / "bulk.ndjson"
    path.write_bytes(codecs.BOM_UTF8 + ("\r\n".join(lines)).encode())
    names, issues = same_in_every_format([path])
    assert names == [str(path)]
    status = sorted(i.line for i in issues if i.expression == "Observation.status" and i.is_error)
    # 'bogus' is on resources n = 5, 102, 199, 296: on file line n + 1, plus 2 after the two lines
    # inserted before them (the blank line 41 and the broken line 81)
    assert status == [6, 105, 202, 299]
    assert [i.line for i in issues if i.rule == "json-bom"] == [1]
    assert any(i.line == 81 and i.severity.code == "fatal" for i in issues)


def test_folder_with_errors_same_with_two_jobs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "good.json").write_text(json.dumps(GOOD_OBS))
    (tmp_path / "a" / "bad.json").write_text(json.dumps(BAD_STATUS, indent=2))
    (tmp_path / "broken.json").write_text('{"resourceType": "Patient",')
    (tmp_path / "manifest.json").write_text('{"name": "not a resource"}')
    (tmp_path / "lines.ndjson").write_text("\n".join(ndjson_lines(30)) + "\n")
    (tmp_path / "latin1.ndjson").write_bytes(b'{"resourceType": "Patient", "name": [{"text": "Jos\xe9"}]}\n')
    (tmp_path / "empty.ndjson").write_text("\n\n")
    (tmp_path / "old.r4.json").write_text(json.dumps({**GOOD_OBS, "versionAlgorithmString": "x"}))
    names, issues = same_in_every_format([tmp_path])
    assert len(names) == 8
    by_rule = {i.rule for i in issues}
    assert {"json-encoding", "json-empty-file", "not-a-resource"} <= by_rule
    # the R4 file is validated against R4 (in a worker too): an element R4 lacks is an error
    assert any(i.is_error and i.file.endswith("old.r4.json") for i in issues)


def test_cli_jobs_option(tmp_path):
    for n in range(3):
        (tmp_path / f"o{n}.json").write_text(json.dumps(BAD_STATUS if n == 1 else GOOD_OBS))
    outs = [CliRunner().invoke(main, ["validate", "-j", j, "--format", "sarif", str(tmp_path)]) for j in ("1", "2")]
    assert outs[0].exit_code == outs[1].exit_code == 1
    assert outs[0].output == outs[1].output
    assert CliRunner().invoke(main, ["validate", "-j", "0", str(tmp_path)]).exit_code == 2


def test_standard_input_among_other_files(tmp_path):
    """Workers have no standard input: '-' is read and validated by the parent, in its place."""
    for n in range(2):
        (tmp_path / f"o{n}.json").write_text(json.dumps(GOOD_OBS))
    args = ["validate", "--format", "json", str(tmp_path / "o0.json"), "-", str(tmp_path / "o1.json")]
    outs = [CliRunner().invoke(main, [*args[:1], "-j", j, *args[1:]], input=json.dumps(BAD_STATUS))
            for j in ("1", "2")]
    assert outs[0].output == outs[1].output
    report = json.loads(outs[1].output)
    assert report["files"] == 3
    assert any(i["file"] == "-" and i["expression"] == "Observation.status" for i in report["issues"])


@pytest.mark.parametrize("data", [
    b'{"resourceType": "Patient"}\n\n{"resourceType": "Basic"}\n',
    b'{"resourceType": "Patient"}\r\n  \r\n{"a": 1}',                     # CRLF, no final newline
    codecs.BOM_UTF8 + b'{"resourceType": "Patient"}\n',                  # BOM: a warning on line 1
    b'\xc2\xa0\n{"resourceType": "Patient"}\n',                          # a no-break space line is blank
    b'{"resourceType": "Patient", "x": "\xff"}\n',                       # invalid UTF-8: the file is refused
    b'{"resourceType": "Patient"}\n\x00\n',                              # NUL: binary
    b'\n \n',                                                            # empty
    codecs.BOM_UTF8,                                                     # only a BOM
    b'{"resourceType": "Patient", "name": [{"text": "\xe2\x82\xac"}]}',  # multi-byte character
], ids=["plain", "crlf", "bom", "nbsp", "latin1", "nul", "empty", "bom-only", "utf8"])
def test_streamed_ndjson_reads_as_whole_file(tmp_path, data, monkeypatch):
    monkeypatch.setattr(inputs, "STREAM_BLOCK", 3)  # blocks that split characters and lines
    path = tmp_path / "x.ndjson"
    path.write_bytes(data)
    streamed = list(inputs.read_source(inputs.Source(str(path), path)))
    whole = list(read_documents(data, str(path), ndjson=True))
    assert [(d.text, d.value, d.line_offset, d.issues) for d in streamed] == \
        [(d.text, d.value, d.line_offset, d.issues) for d in whole]


def test_build_with_two_jobs_gives_the_same_bytes(defs):
    from pathlib import Path

    from fhirpkg.publish import build as b
    definitions = Path(__file__).resolve().parent.parent / "definitions"
    one = b.build(definitions, defs=defs, jobs=1, site=False)
    two = b.build(definitions, defs=defs, jobs=2, site=False)
    assert sorted(two.files) == sorted(one.files) and len(one.files) > 5
    assert [p for p in one.files if one.files[p] != two.files[p]] == []
    assert two.issues == one.issues


def test_site_pages_rendered_by_workers_are_the_same_bytes(defs, monkeypatch):
    """Resource pages of a large package are rendered by forked workers: same bytes as one process,
    and the narrative verdicts the workers reach come back to the build (its cache keeps them)."""
    from fhirpkg.publish import build as b
    from fhirpkg.publish import site
    from fhirpkg.publish.cache import BuildCache
    one = b.build(Path(__file__).resolve().parent.parent / "definitions", defs=defs, jobs=1, site=True)
    monkeypatch.setattr(site, "PARALLEL_PAGES", 1)
    monkeypatch.setattr(site, "PAGES_PER_TASK", 7)
    cache = BuildCache()
    two = b.build(Path(__file__).resolve().parent.parent / "definitions", defs=defs, jobs=2, site=True, cache=cache)
    pages = [p for p in one.files if p.startswith("site/")]
    assert len(pages) > 50 and all(one.files[p] == two.files[p] for p in pages)
    assert cache.done["site"] == 1 and len(cache.get("site", "narrative verdicts")) >= 50


@pytest.mark.parametrize("data", [
    b'{"resourceType": "Patient"}\n\n{"resourceType": "Basic"}\n',
    b'{"resourceType": "Patient"}\r\n  \r\n{"a": 1}',                     # CRLF, no final newline
    codecs.BOM_UTF8 + b'{"resourceType": "Patient"}\n{"b": 2}\n',         # BOM: skipped, not a line
    b'\xc2\xa0\n{"resourceType": "Patient"}\n',                          # a no-break space line is blank
    b'{"resourceType": "Patient", "name": [{"text": "\xe2\x82\xac"}]}\n' * 3,  # multi-byte characters
], ids=["plain", "crlf", "bom", "nbsp", "utf8"])
@pytest.mark.parametrize("range_bytes", [1, 5, 40, 2**20])
def test_ndjson_ranges_give_the_lines_the_stream_gives(tmp_path, data, range_bytes):
    """Workers read their own byte ranges: together the ranges hold every line of the file, once,
    with the number the one-process reader gives it, whatever the range size (even inside a line)."""
    path = tmp_path / "x.ndjson"
    path.write_bytes(data)
    with open(path, "rb") as f:
        issues, lines = inputs.ndjson_stream(f, str(path))
        expected = list(lines)
    prefix, cuts = inputs.ndjson_ranges(inputs.Source(str(path), path), range_bytes)
    cuts = list(cuts)
    assert prefix == issues
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))  # adjacent, no gap and no overlap
    assert cuts[-1][1] == len(data)
    assert [line for cut in cuts for line in inputs.range_lines(path, *cut)] == expected
    for start, end, _ in cuts[:-1]:  # each range stops at the first line end after range_bytes
        assert data[end - 1:end] == b"\n" and end - start >= range_bytes
        assert b"\n" not in data[start + range_bytes - 1:end - 1]


def test_project_manifest_problems_are_reported_where_load_puts_them(tmp_path):
    """The manifest's schema check runs while the workers validate: its issues keep their place."""
    from fhirpkg.content import project as proj
    root = tmp_path / "p"
    shutil.copytree(Path(__file__).resolve().parent.parent / "definitions", root)
    manifest = json.loads((root / "package.json").read_text())
    manifest.update(name="hl7.fhir.mine", version="one")
    (root / "package.json").write_text(json.dumps(manifest, indent=2))
    (root / "Basic").mkdir()
    (root / "Basic" / "broken.json").write_text("{not json")
    loaded = proj.load(root).issues
    assert [i.rule for i in loaded[:2]] == ["manifest-invalid"] * 2 and loaded[-1].rule == "json-syntax"
    for jobs in (1, 2):
        _, issues, _ = api.validate_project(root, jobs=jobs)
        assert issues[:len(loaded)] == loaded


def _wait_for_marker(task):
    """Task 0 waits (patience tenths of a second) for a file task 40 writes; other tasks write theirs."""
    import time
    n, folder, patience = task
    if n == 0:
        marker = Path(folder) / "from-task-40"
        for _ in range(patience):
            if marker.exists():
                return "saw the later task"
            time.sleep(0.1)
        return "timed out"
    (Path(folder) / f"from-task-{n}").write_text("x")
    return n


def test_workers_go_on_with_later_tasks_while_a_long_one_runs(tmp_path):
    """Results come out in task order, but a long first task does not hold the other worker up:
    task 40 (beyond the tasks queued per worker) runs while task 0 is still running. Before, the
    parent waited for task 0 with 8 tasks in flight, so task 0 waited 60 s for nothing."""
    if not parallel.available():
        pytest.skip("no fork on this platform: one process")
    tasks = [(n, str(tmp_path), 600) for n in range(60)]
    out = list(parallel.ordered_map(_wait_for_marker, tasks, 2))
    assert [t for t, _ in out] == tasks
    assert out[0][1] == "saw the later task"
    assert [r for _, r in out[1:]] == list(range(1, 60))


def test_results_held_behind_a_long_task_are_bounded(tmp_path, monkeypatch):
    """At most jobs * AHEAD tasks are out at once: with AHEAD = 5 and 2 jobs, task 40 is not
    started while task 0 runs (task 0 gives up after 3 s), and every result still comes, in order."""
    if not parallel.available():
        pytest.skip("no fork on this platform: one process")
    monkeypatch.setattr(parallel, "AHEAD", 5)
    tasks = [(n, str(tmp_path), 30) for n in range(60)]
    out = list(parallel.ordered_map(_wait_for_marker, tasks, 2))
    assert [r for _, r in out] == ["timed out", *range(1, 60)]
