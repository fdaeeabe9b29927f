"""The command line, through click's CliRunner: exit codes, formats, stdin, outputs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg.cli import main

GOOD = {"resourceType": "Patient", "id": "p1", "gender": "female",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p></div>"}}
BAD = dict(GOOD, gender="bogus")
WARN = dict(GOOD, name=[{"family": "   "}])


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    (tmp_path / "bad.json").write_text(json.dumps(BAD, indent=2))
    (tmp_path / "warn.json").write_text(json.dumps(WARN))
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_valid_file_exits_0(files):
    r = run("validate", str(files / "good.json"))
    assert r.exit_code == 0 and "0 errors" in r.output


def test_errors_exit_1_with_located_lines(files):
    r = run("validate", str(files / "bad.json"))
    assert r.exit_code == 1
    line = next(l for l in r.output.splitlines() if "error [binding-required]" in l)
    assert line.startswith(f"{files / 'bad.json'}:4:3: error [binding-required]") and line.endswith("(Patient.gender)")


def test_fail_on_warning(files):
    assert run("validate", str(files / "warn.json")).exit_code == 0
    assert run("validate", str(files / "warn.json"), "--fail-on", "warning").exit_code == 1


def test_usage_errors_exit_2(files):
    assert run("validate").exit_code == 2
    assert run("validate", str(files), "--format", "pdf").exit_code == 2
    assert run("validate", str(files), "--profile", "http://example.org/no/such/profile").exit_code == 2


def test_folder_is_recursive_and_stdin_works(files):
    (files / "sub").mkdir()
    (files / "sub" / "deep.json").write_text(json.dumps(BAD))
    r = run("validate", str(files), "--format", "json")
    report = json.loads(r.output)
    assert report["files"] == 4 and {i["file"].split("/")[-1] for i in report["issues"] if i["severity"] == "error"} == {
        "bad.json", "deep.json"}
    r = run("validate", "-", input=json.dumps(BAD))
    assert r.exit_code == 1 and "<input>" not in r.output and "-:1:" in r.output


def test_ndjson_reports_lines(files):
    (files / "x.ndjson").write_text(json.dumps(GOOD) + "\n" + json.dumps(BAD) + "\n")
    r = run("validate", str(files / "x.ndjson"))
    assert r.exit_code == 1 and f"{files / 'x.ndjson'}:2:" in r.output


def test_operation_outcome_has_line_and_column_extensions(files):
    r = run("validate", str(files / "bad.json"), "--format", "operationoutcome")
    oo = json.loads(r.output)
    assert oo["resourceType"] == "OperationOutcome"
    issue = next(i for i in oo["issue"] if i["severity"] == "error")
    exts = {e["url"].rsplit("-", 1)[-1]: e for e in issue["extension"]}
    assert exts["line"]["valueInteger"] == 4 and exts["col"]["valueInteger"] == 3
    assert issue["expression"] == ["Patient.gender"]


def test_operation_outcome_output_is_itself_valid(files, tmp_path):
    """Our OperationOutcome validates, except for the one known conflict: issue-col is written as
    valueInteger (what the HL7 validator writes and reads) while the Extensions Pack ballot says string."""
    out = tmp_path / "oo.json"
    run("validate", str(files / "bad.json"), "--format", "operationoutcome", "-o", str(out))
    r = run("validate", str(out), "--format", "json")
    errors = [i for i in json.loads(r.output)["issues"] if i["severity"] in ("error", "fatal")]
    assert errors and all("issue-col" in i["message"] or i["message"] == "Unrecognized property 'valueInteger'"
                          for i in errors), errors


def test_junit_and_sarif(files):
    r = run("validate", str(files / "good.json"), str(files / "bad.json"), "--format", "junit")
    root = ET.fromstring(r.output)
    assert root.get("tests") == "2" and root.get("failures") == "1"
    r = run("validate", str(files / "bad.json"), "--format", "sarif")
    sarif = json.loads(r.output)
    result = sarif["runs"][0]["results"][0]
    assert sarif["version"] == "2.1.0" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 4


def test_output_file_is_written_whole(files, tmp_path):
    out = tmp_path / "report.json"
    r = run("validate", str(files), "--format", "json", "--output", str(out))
    assert r.exit_code == 1 and json.loads(out.read_text())["files"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.json")]


def test_missing_file_is_reported_not_a_traceback(tmp_path):
    r = run("validate", str(tmp_path / "nope.json"))
    assert r.exit_code == 1 and "No such file" in r.output


def test_internal_error_is_one_line_exit_3(files, monkeypatch):
    import fhirpkg.api as api

    def boom(*a, **k):
        raise RuntimeError("simulated failure")
    monkeypatch.setattr(api, "iter_parts", boom)
    r = CliRunner().invoke(main, ["validate", str(files / "good.json")])
    assert r.exit_code == 3
    assert "internal error: RuntimeError: simulated failure" in r.output and "Traceback" not in r.output


def test_packages_list_and_bad_spec():
    r = run("packages", "list")
    assert r.exit_code == 0 and "hl7.fhir.r5.core#5.0.0" in r.output
    assert run("packages", "install", "not-a-package").exit_code == 2


def test_diff_cli(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "a.json").write_text(json.dumps(GOOD))
    (new / "a.json").write_text(json.dumps(dict(GOOD, gender="male")))
    r = run("diff", str(old), str(new), "--exit-code")
    assert r.exit_code == 1 and "Patient/p1" in r.output and "gender" in r.output
    r = run("diff", str(old), str(old), "--exit-code")
    assert r.exit_code == 0
    assert run("diff", str(old), str(tmp_path / "missing")).exit_code == 2


def test_push_refuses_credentials_in_the_url(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []}))
    r = run("push", str(tmp_path / "b.json"), "--server", "https://user:secret@127.0.0.1:9/fhir")
    assert r.exit_code == 2 and "secret" not in r.output


def _profile_package(path, sd):
    import io
    import tarfile
    with tarfile.open(path, "w:gz") as t:
        for name, obj in (("package/package.json", {"name": "my.ig", "version": "0.1.0", "fhirVersions": ["5.0.0"]}),
                          ("package/StructureDefinition-mypat.json", sd)):
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_ig_package_archive_profiles_apply_and_bad_ig_is_exit_2(tmp_path):
    """--ig takes a package .tgz (read without unpacking); a missing or unreadable one is a setup error."""
    url = "http://example.org/StructureDefinition/mypat"
    _profile_package(tmp_path / "ig.tgz", {
        "resourceType": "StructureDefinition", "id": "mypat", "url": url, "name": "MyPat", "status": "draft",
        "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}})
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "gender"} | {"meta": {"profile": [url]}}))
    r = run("validate", "--ig", str(tmp_path / "ig.tgz"), str(patient))
    assert r.exit_code == 1 and "error [cardinality-min] Patient.gender: minimum required = 1" in r.output, r.output
    (tmp_path / "bad.tgz").write_text("not an archive")
    r = run("validate", "--ig", str(tmp_path / "bad.tgz"), str(patient))
    assert r.exit_code == 2 and "not a gzip, bzip2, xz or tar archive" in r.output
    r = run("validate", "--ig", str(tmp_path / "missing.tgz"), str(patient))
    assert r.exit_code == 2 and "no such file or folder" in r.output and "Traceback" not in r.output


# --- issue 16: a report that fits a screen, exit codes that mean something ------------------------

def test_repeats_are_grouped_and_verbose_lists_every_issue(tmp_path):
    """Three files with the same binding error: one line by default (first place at the start, the
    count, the next places), three lines with -v; the summary counts resources and files."""
    for n in (1, 2, 3):
        (tmp_path / f"bad{n}.json").write_text(json.dumps(dict(BAD, id=f"p{n}"), indent=2))
    r = run("validate", str(tmp_path))
    lines = [l for l in r.output.splitlines() if "[binding-required]" in l]
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert lines[0].startswith(f"{tmp_path / 'bad1.json'}:4:3: error [binding-required]")
    assert lines[0].endswith(f"[3 like this; also {tmp_path / 'bad2.json'}:4:3, {tmp_path / 'bad3.json'}:4:3]")
    assert r.output.splitlines()[-1] == "3 resources in 3 files: 3 errors, 0 warnings, 0 information"
    r = run("validate", str(tmp_path), "--verbose")
    assert [l.split(":")[0] for l in r.output.splitlines() if "[binding-required]" in l] == [
        str(tmp_path / f"bad{n}.json") for n in (1, 2, 3)]


def test_quiet_shows_errors_only(files):
    r = run("validate", str(files), "-q")
    body = r.output.splitlines()[:-1]
    assert r.exit_code == 1 and body and all(": error [" in l for l in body), r.output
    assert r.output.splitlines()[-1] == "3 resources in 3 files: 1 error, 1 warning, 0 information"
    r = run("validate", str(files), "--level", "warning")
    assert {l.split(": ")[1].split(" ")[0] for l in r.output.splitlines()[:-1]} == {"error", "warning"}


def test_summary_counts_ndjson_lines_and_bundle_entries(tmp_path):
    (tmp_path / "x.ndjson").write_text("\n".join(json.dumps(dict(GOOD, id=f"p{n}")) for n in range(4)) + "\n")
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:0000000{n}-0000-4000-8000-000000000000",
                         "resource": dict(GOOD, id=f"q{n}")} for n in range(2)]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    r = run("validate", str(tmp_path))
    # 4 NDJSON lines + the Bundle and its 2 entries
    assert r.output.splitlines()[-1].startswith("7 resources in 2 files: 0 errors"), r.output
    assert json.loads(run("validate", str(tmp_path), "--format", "json").output)["resources"] == 7


@pytest.mark.parametrize("make", ["empty", "non-json", "symlink-loops"])
def test_nothing_to_validate_is_exit_2_naming_the_folder(tmp_path, make):
    folder = tmp_path / "in"
    folder.mkdir()
    if make == "non-json":
        (folder / "notes.txt").write_text("{}")
    if make == "symlink-loops":
        (folder / "a.json").symlink_to("b.json")
        (folder / "b.json").symlink_to("a.json")
    r = CliRunner().invoke(main, ["validate", str(folder)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.count("\n") == 1 and r.output.startswith(f"fhirpkg: {folder}: nothing to validate ("), r.output


PROJECT_MANIFEST = {"name": "org.example.test", "version": "1.0.0", "canonical": "http://example.org/test",
                    "title": "Test", "description": "A tiny project.", "fhirVersions": ["5.0.0"],
                    "dependencies": {"hl7.fhir.r5.core": "5.0.0"}, "author": "tests", "license": "CC0-1.0",
                    "date": "20260101000000"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _project_with_rxnorm_code(root):
    """A project whose one resource carries RxNorm 1547545 (pembrolizumab, in evidence/register.json)
    and RxNorm 1597582 (olaparib, likewise), which cannot be checked offline."""
    (root / "proj" / "Basic").mkdir(parents=True)
    (root / "proj" / "package.json").write_text(json.dumps(PROJECT_MANIFEST))
    (root / "proj" / "Basic" / "b1.json").write_text(json.dumps(
        {"resourceType": "Basic", "id": "b1", "code": {"coding": [{"system": RXNORM, "code": "1547545"},
                                                                  {"system": RXNORM, "code": "1597582"}]}}, indent=1))
    return root / "proj"


def test_codes_the_evidence_register_verified_are_information_with_the_source(tmp_path):
    proj = _project_with_rxnorm_code(tmp_path)
    r = run("validate", str(proj))
    assert r.output.count("warning [terminology-not-checked]") == 1 and "2 warnings" in r.output, r.output
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "register.json").write_text(json.dumps({"entries": [
        {"kind": "rxnorm", "system": RXNORM, "code": "1547545", "verified_by": "project",
         "source": "a test's own record"}]}))
    r = run("validate", str(proj), "-v")
    verified = next(l for l in r.output.splitlines() if "1547545" in l)
    assert verified.startswith(f"{proj / 'Basic' / 'b1.json'}:") and "information [terminology-not-checked]" in verified
    assert "evidence/register.json lists it as verified: 'project: a test’s own record'" in verified
    unverified = next(l for l in r.output.splitlines() if "coding[1]" in l)  # not in the register: still a warning
    assert "warning [terminology-not-checked]" in unverified, r.output
    # loose files are not a project: the register does not apply
    r = run("validate", str(proj / "Basic" / "b1.json"), "-v")
    assert r.output.count("warning [terminology-not-checked]") == 2 and "lists it as verified" not in r.output


def test_ignore_warnings_file_turns_listed_warnings_into_information(tmp_path):
    proj = _project_with_rxnorm_code(tmp_path)
    (proj / "ignoreWarnings.txt").write_text(
        "== Suppressed Messages ==\n\n# RxNorm is checked by the content tests\n"
        "%could not be found, so the code cannot be validated (RxNorm is not available offline)\n")
    r = run("validate", str(proj), "-v")
    lines = [l for l in r.output.splitlines() if "[terminology-not-checked]" in l]
    assert len(lines) == 2 and all("information [terminology-not-checked]" in l for l in lines), r.output
    assert all("(listed in " in l and "ignoreWarnings.txt: RxNorm is checked by the content tests)" in l for l in lines)
    assert "0 warnings" in r.output


def test_version_names_the_fhir_packages_in_use(tmp_path, monkeypatch):
    r = run("--version")
    lines = r.output.splitlines()
    assert r.exit_code == 0 and lines[0].startswith("fhirpkg 0.1.0 (Python ")
    # the validator's R5 packages and the R4B export's, as packages.py pins them
    for ref in ("R5   hl7.fhir.r5.core#5.0.0", "R5   hl7.terminology.r5#7.0.1",
                "R5   hl7.fhir.uv.extensions.r5#5.3.0-ballot-tc1", "R4B  hl7.fhir.r4b.core#4.3.0"):
        assert f"  {ref}" in lines, r.output
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path))
    r = run("--version")
    assert f"FHIR packages (in {tmp_path}):" in r.output
    assert "  R5   hl7.fhir.r5.core#5.0.0  (not installed: installed on first use)" in r.output.splitlines()


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_pre_commit_hook_validates_fhir_json(tmp_path):
    """`pre-commit try-repo` installs this checkout's fhirpkg-validate hook as users get it (a virtualenv
    and `pip install .`: needs PyPI for the build backend and the dependencies, nothing else) and runs it
    on a repository with a valid, an invalid and a non-FHIR JSON file (package.json, excluded)."""
    pre_commit = shutil.which("pre-commit", path=os.path.dirname(sys.executable)) or shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (it is in the test extra: pip install -e '.[test]')")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: pre-commit try-repo needs one")
    repo = tmp_path / "content"
    repo.mkdir()
    (repo / "good.json").write_text(json.dumps(GOOD))
    (repo / "bad.json").write_text(json.dumps(BAD, indent=2))
    (repo / "package.json").write_text(json.dumps({"name": "some-npm-project", "version": "1.0.0"}))
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), FHIRPKG_OFFLINE="1")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "."], cwd=repo, check=True)

    def hook(*files):
        args = ["--files", *files] if files else ["--all-files"]
        return subprocess.run([pre_commit, "try-repo", str(ROOT), "fhirpkg-validate", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=900)
    r = hook("good.json", "package.json")
    assert r.returncode == 0 and "Passed" in r.stdout, r.stdout + r.stderr
    r = hook()
    assert r.returncode == 1 and "Failed" in r.stdout, r.stdout + r.stderr
    assert "bad.json:4:3: error [binding-required]" in r.stdout and "package.json" not in r.stdout.split("Failed")[1]
    assert "2 resources in 2 files: 1 error" in r.stdout


def test_ci_workflow_in_the_docs_uploads_sarif_then_gates(tmp_path, monkeypatch):
    """docs/ci.md's workflow: SARIF uploaded whatever the verdict, the gate after it, and its
    validate command line really writes a SARIF report."""
    import re
    import shlex
    yaml = pytest.importorskip("yaml")  # PyYAML comes with pre-commit (the test extra)
    text = (ROOT / "docs" / "ci.md").read_text()
    workflow = yaml.safe_load(re.search(r"```yaml\n(# \.github/workflows/.*?)```", text, re.S).group(1))
    assert workflow["permissions"]["security-events"] == "write"
    steps = workflow["jobs"]["validate"]["steps"]
    validate = next(n for n, s in enumerate(steps) if s.get("id") == "validate")
    upload = next(n for n, s in enumerate(steps) if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    gate = next(n for n, s in enumerate(steps) if "steps.validate.outputs.exit" in s.get("run", ""))
    assert validate < upload < gate and steps[upload]["if"] == "always()"
    command = next(l for l in steps[validate]["run"].splitlines() if l.strip().startswith("fhirpkg"))
    args = shlex.split(command)[1:]
    assert args[args.index("-o") + 1] == steps[upload]["with"]["sarif_file"]
    args[args.index("-o") + 1] = str(tmp_path / "out.sarif")
    args[args.index("definitions")] = str(ROOT / "definitions")
    monkeypatch.setenv("FHIRPKG_OFFLINE", "1")  # what --offline sets, undone after the test
    r = CliRunner().invoke(main, args)
    sarif = json.loads((tmp_path / "out.sarif").read_text())
    assert r.exit_code == 0 and sarif["version"] == "2.1.0" and sarif["runs"][0]["tool"]["driver"]["name"] == "fhirpkg"


def test_console_script_flushes_everything_before_its_quick_exit(tmp_path):
    """``fhirpkg`` (``cli.run``) ends with os._exit: every byte of a long report still arrives, the
    exit code is validation's, and a reader that stops early gets no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "gender": "nope"}))
    files = [str(bad)] + sorted(str(p) for p in (ROOT / "definitions").glob("*/*.json"))
    cmd = [sys.executable, "-m", "fhirpkg.cli", "validate", "-j", "1", "--format", "json", *files]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)  # complete: it parses
    assert report["files"] == len(files) and len(proc.stdout) > 2**16  # more than a pipe holds
    usage = subprocess.run([sys.executable, "-m", "fhirpkg.cli", "validate"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    reader = subprocess.Popen(cmd[:-len(files)] + ["--format", "text", *files], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.read(10)
    reader.stdout.close()  # like `| head -c 10`
    assert reader.wait() != 0 and b"Traceback" not in reader.stderr.read()


def test_allow_example_urls_lets_unknown_example_org_extensions_pass(tmp_path):
    """The HL7 validator's -allow-example-urls (InstanceValidator.allowUnknownExtension): an unknown
    extension at example.org or acme.com is allowed; any other unknown one stays an error."""
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"resourceType": "Patient", "id": "p", "extension": [
        {"url": "http://example.org/fhir/StructureDefinition/note", "valueString": "x"},
        {"url": "http://hl7.org/fhir/StructureDefinition/no-such-extension", "valueString": "y"}]}))
    strict = run("validate", str(f), "-v")
    assert strict.exit_code == 1 and strict.output.count("error [extension-unknown]") == 2, strict.output
    allowed = run("validate", "--allow-example-urls", str(f), "-v")
    assert allowed.exit_code == 1 and allowed.output.count("error [extension-unknown]") == 1, allowed.output
    assert "information [extension-unknown] Unknown extension http://example.org/" in allowed.output
    assert "no-such-extension could not be found" in allowed.output
