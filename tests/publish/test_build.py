"""fhirpkg build: reproducible, importable, atomic."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from fhirpkg.publish import build as b
from fhirpkg.issues import Severity

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"


@pytest.fixture(scope="session")
def result(defs):
    return b.build(DEFINITIONS, defs=defs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_definitions_have_no_errors(result):
    errors = [i for i in result.issues if i.is_error]
    assert not errors, "\n".join(f"{i.file}:{i.line}: [{i.rule}] {i.message}" for i in errors[:20])


def test_two_builds_give_the_same_bytes(result, defs):
    again = b.build(DEFINITIONS, defs=defs)
    assert sorted(again.files) == sorted(result.files)
    diffs = [p for p in result.files if sha(result.files[p]) != sha(again.files[p])]
    assert not diffs


def test_build_from_a_copy_elsewhere_gives_the_same_bytes(result, defs, tmp_path):
    copy = tmp_path / "elsewhere" / "definitions"
    shutil.copytree(DEFINITIONS, copy)
    (copy.parent / "evidence").mkdir()
    if (ROOT / "evidence").is_dir():
        shutil.rmtree(copy.parent / "evidence")
        shutil.copytree(ROOT / "evidence", copy.parent / "evidence")
    other = b.build(copy, defs=defs)
    diffs = [p for p in result.files if sha(result.files[p]) != sha(other.files.get(p, b""))]
    assert not diffs


def test_environment_does_not_change_the_bytes(result, defs, monkeypatch):
    """A CI machine exporting SOURCE_DATE_EPOCH or another time zone still matches the committed build/."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    other = b.build(DEFINITIONS, defs=defs)
    diffs = [p for p in result.files if sha(result.files[p]) != sha(other.files.get(p, b""))]
    assert not diffs


def test_source_date_epoch_fills_in_a_manifest_without_date(monkeypatch):
    from types import SimpleNamespace
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    assert b.release_time(SimpleNamespace(date=None)) == ("2026-01-01T00:00:00Z", 1767225600)
    assert b.release_time(SimpleNamespace(date="2026-11-27T00:00:00Z"))[0] == "2026-11-27T00:00:00Z"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    with pytest.raises(b.BuildError, match="SOURCE_DATE_EPOCH"):
        b.release_time(SimpleNamespace(date=None))


def test_sha256sums_cover_every_file(result):
    lines = result.files["SHA256SUMS"].decode().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert set(listed) == set(result.files) - {"SHA256SUMS"}
    for path, digest in listed.items():
        assert sha(result.files[path]) == digest


def bundle(result, kind: str) -> dict:
    name = [p for p in result.files if p.endswith(f".{kind}.json") and "/" not in p]
    assert len(name) == 1
    return json.loads(result.files[name[0]])


def test_transaction_entries_are_unique_puts_with_good_ids(result):
    tx = bundle(result, "transaction")
    assert tx["type"] == "transaction"
    keys = [e["request"]["url"] for e in tx["entry"]]
    assert len(keys) == len(set(keys))
    for e in tx["entry"]:
        res = e["resource"]
        assert e["request"]["method"] == "PUT"
        assert e["request"]["url"] == f"{res['resourceType']}/{res['id']}"
        assert e["fullUrl"].endswith(e["request"]["url"])
        assert not res["id"].isdigit() and len(res["id"]) <= 64
        assert (res.get("text") or {}).get("div"), f"{e['request']['url']} has no narrative"


def test_every_output_id_is_server_safe(result):
    for path, data in result.files.items():
        if path.endswith(".json") and not path.startswith("site/"):
            doc = json.loads(data)
            resources = [doc] + [e.get("resource", {}) for e in doc.get("entry", []) if isinstance(e, dict)]
            for r in resources:
                rid = r.get("id") if isinstance(r, dict) else None
                if rid is not None:
                    assert not rid.isdigit() and len(rid) <= 64, (path, rid)


def test_package_tgz_layout_and_index(result):
    tar = tarfile.open(fileobj=io.BytesIO(result.files["package.tgz"]), mode="r:gz")
    members = {m.name: m for m in tar.getmembers()}
    assert "package/package.json" in members and "package/.index.json" in members
    assert all(m.mtime == members["package/package.json"].mtime and m.uid == 0 and m.uname == "" for m in members.values())
    manifest = json.load(tar.extractfile("package/package.json"))
    assert manifest["dependencies"]["hl7.fhir.r5.core"] == "5.0.0" and manifest["fhirVersions"] == ["5.0.0"]
    index = json.load(tar.extractfile("package/.index.json"))
    assert index["index-version"] == 2
    files = {n[len("package/"):] for n in members if n.count("/") == 1 and n.endswith(".json")} - {
        "package.json", ".index.json"}
    assert {e["filename"] for e in index["files"]} == files
    for e in index["files"]:
        res = json.load(tar.extractfile("package/" + e["filename"]))
        assert (res["resourceType"], res["id"]) == (e["resourceType"], e["id"])
        assert e["filename"] == f"{res['resourceType']}-{res['id']}.json"
        if "url" in res:
            assert e["url"] == res["url"]
    igs = [e for e in index["files"] if e["resourceType"] == "ImplementationGuide"]
    assert len(igs) == 1 and igs[0]["url"].endswith(f"/ImplementationGuide/{manifest['name']}")
    assert "package/other/validation-summary.json" in members


def test_outputs_keep_authored_values(result):
    """Nothing authored is changed: same values (numbers exactly), only narratives added."""
    from fhirpkg.fhir import jsonsource
    tx = jsonsource.parse(result.files[[p for p in result.files if p.endswith(".transaction.json")
                                        and "/" not in p][0]].decode()).value
    by_key = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in tx["entry"]}
    for path in sorted(DEFINITIONS.rglob("*.json")):
        if path.name == "package.json":
            continue
        authored = jsonsource.parse(path.read_text(encoding="utf-8")).value
        built = dict(by_key[f"{authored['resourceType']}/{authored['id']}"])
        if "text" not in authored:
            built.pop("text", None)
        assert built == authored, path


def test_validate_build_folder_reports_no_errors(result, tmp_path):
    b.write(result, tmp_path / "build")
    proc = subprocess.run([sys.executable, "-m", "fhirpkg.cli", "validate", str(tmp_path / "build"),
                           "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"] if i["severity"] in ("error", "fatal")]
    assert not errors, errors[:10]
    assert proc.returncode == 0


def test_check_detects_stale_build(result, tmp_path):
    out = tmp_path / "build"
    b.write(result, out)
    assert b.check(result, out) == []
    (out / "SHA256SUMS").write_text("tampered\n")
    (out / "extra.txt").write_text("x")
    stale = b.check(result, out)
    assert "changed: SHA256SUMS" in stale and "extra: extra.txt" in stale


def test_refuses_to_write_with_errors(tmp_path, defs):
    proj = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS, proj)
    victim = sorted((proj / "PlanDefinition").glob("*.json"))[0]
    data = json.loads(victim.read_text())
    data["status"] = "bogus"
    victim.write_text(json.dumps(data))
    with pytest.raises(b.BuildError, match="validation error"):
        b.build(proj, defs=defs)
    forced = b.build(proj, defs=defs, force=True)
    assert any(i.is_error for i in forced.issues)


KILLER = """
import sys, time, fhirpkg.publish.build as b
r = b.build(sys.argv[1])
orig = open
count = [0]
def slow_open(path, mode="r", *a, **k):
    if "w" in mode and ".tmp-" in str(path):
        count[0] += 1
        if count[0] == 3:
            print("WRITING", flush=True)
            time.sleep(30)
    return orig(path, mode, *a, **k)
import builtins
builtins.open = slow_open
b.write(r, sys.argv[2])
"""


def test_killed_build_leaves_previous_build_intact(result, tmp_path):
    out = tmp_path / "build"
    b.write(result, out)
    before = {p: sha(p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(DEFINITIONS), str(out)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "WRITING"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    after = {p: sha(p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before
    # the abandoned temporary folder is not mistaken for a build, and the next build succeeds
    b.write(result, out)
    assert b.check(result, out) == []


def test_r4b_export_validates_against_r4b_core(result):
    from fhirpkg import api
    from fhirpkg.fhir import packages as pk
    from fhirpkg.fhir.jsonsource import parse
    from fhirpkg.validation import Options, Validator
    names = [p for p in result.files if p.startswith("r4b/") and p.endswith(".r4b.json")]
    assert len(names) == 2
    defs = api.load_definitions(pk.R4B_DEFAULT_PACKAGES)
    assert "hl7.fhir.r4b.core#4.3.0" in defs.packages
    v = Validator(defs, Options(layers=frozenset({"json", "structure", "references"})))
    for name in names:
        doc = parse(result.files[name].decode(), name)
        errors = [i for i in v.validate_document(doc) if i.is_error]
        assert not errors, [(i.expression, i.message) for i in errors[:10]]
    losses = json.loads(result.files["r4b/losses.json"])
    assert losses["fhirVersion"] == "4.3.0" and losses["losses"], "the R4B export must list what it loses"


def test_unsafe_generated_narrative_is_reported_as_the_validator_reports_it(tmp_path, defs):
    """The build checks generated narratives with the narrative layer's own rules and codes
    (tested through ``build``: a one-resource project, built with --force past its authored error)."""
    proj = tmp_path / "definitions"
    proj.mkdir()
    shutil.copy(DEFINITIONS / "package.json", proj / "package.json")
    (proj / "Basic").mkdir()
    (proj / "Basic" / "x.json").write_text(json.dumps({
        "resourceType": "Basic", "id": "x", "code": {"text": "x"}, "text": {"status": "generated", "div":
        '<div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div>'}}))
    with pytest.raises(b.BuildError, match="validation error"):
        b.build(proj, defs=defs, site=False, jobs=1)
    forced = b.build(proj, defs=defs, site=False, jobs=1, force=True)
    [issue] = [i for i in forced.issues if (i.file or "").startswith("(generated) ")]
    assert issue.is_error and issue.rule == "xhtml-element"
    assert (issue.file, issue.expression) == ("(generated) Basic/x", "Basic.text.div")
    assert issue.message.startswith("Generated narrative: ") and "script" in issue.message
