"""The Python API the CLI stands on: ``fhirpkg.validate`` and friends."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fhirpkg

ROOT = Path(__file__).resolve().parent.parent


def test_validate_returns_located_issues(defs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "gender": "bogus"}, indent=2))
    issues = fhirpkg.validate(str(tmp_path), defs=defs)
    errors = [i for i in issues if i.is_error]
    assert len(errors) == 1 and isinstance(errors[0], fhirpkg.Issue)
    e = errors[0]
    assert (Path(e.file).name, e.line, e.expression) == ("bad.json", 4, "Patient.gender")
    assert "bogus" in e.message


def test_validate_resource_and_project(defs):
    issues = fhirpkg.validate_resource({"resourceType": "Patient", "gender": "x"}, defs=defs)
    assert [i.expression for i in issues if i.is_error] == ["Patient.gender"]
    project, issues, _ = fhirpkg.validate_project(ROOT / "definitions", defs=defs)
    assert len(project.resources) >= 100 and not [i for i in issues if i.is_error]


def test_import_fhirpkg_stays_cheap():
    """`import fhirpkg` must not pull in the validator (the CLI's cold start depends on it)."""
    code = "import sys, fhirpkg; print('fhirpkg.api' in sys.modules, 'fhirpkg.validation' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- fhirpkg.load: resources as read, or as fhir.resources models -------------------------------------

def test_load_project_gives_raw_json_with_positions_and_r5_models():
    from fhir.resources.plandefinition import PlanDefinition
    pkg = fhirpkg.load(ROOT / "definitions")
    source = ROOT / "definitions" / "PlanDefinition" / "nepc-pathway.json"
    raw = json.loads(source.read_text())
    res = pkg.get("PlanDefinition/nepc-pathway")
    assert res.json == raw and Path(res.file) == source
    title_line = next(n for n, l in enumerate(source.read_text().splitlines(), 1) if l.strip().startswith('"title"'))
    assert res.position("title")[0] == title_line
    model = pkg.model("PlanDefinition/nepc-pathway")
    assert isinstance(model, PlanDefinition) and model.id == "nepc-pathway" and model.title == raw["title"]
    assert len(model.action) == len(raw["action"])
    plans = pkg.models("PlanDefinition")
    assert {m.id for m in plans} == {p.stem for p in (ROOT / "definitions" / "PlanDefinition").glob("*.json")}
    assert all(isinstance(m, PlanDefinition) for m in plans)


def test_load_bundle_ndjson_and_package_archive(tmp_path):
    import io
    import tarfile
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://example.org/Patient/p1", "resource": patient},
        {"fullUrl": "http://example.org/Basic/b1", "resource": {"resourceType": "Basic", "id": "b1",
                                                                "code": {"text": "x"}}}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle, indent=2))
    pkg = fhirpkg.load(tmp_path / "b.json")
    assert [r.key for r in pkg.resources] == ["Patient/p1", "Basic/b1"]
    # indent=2: line 10 is `        "gender": "female"` (entry 0, resource), its key at column 9
    assert pkg.resources[0].position("gender") == (10, 9)
    assert pkg.model("Patient/p1").gender == "female"
    (tmp_path / "x.ndjson").write_text(json.dumps(patient) + "\n" + json.dumps(dict(patient, id="p2")) + "\n")
    assert [r.position()[0] for r in fhirpkg.load(tmp_path / "x.ndjson").resources] == [1, 2]
    with tarfile.open(tmp_path / "p.tgz", "w:gz") as t:
        for name, obj in (("package/package.json", {"name": "x.y", "version": "1.0.0"}),
                          ("package/Patient-p1.json", patient)):
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    (res,) = fhirpkg.load(tmp_path / "p.tgz").resources
    assert res.file.endswith("p.tgz!package/Patient-p1.json") and res.model().id == "p1"


def test_load_r4b_input_gives_r4b_models(tmp_path):
    (tmp_path / "mk.r4b.json").write_text(json.dumps(
        {"resourceType": "MedicationKnowledge", "id": "m1", "status": "active",
         "synonym": ["an R4B element that R5 removed"]}))
    model = fhirpkg.load(tmp_path / "mk.r4b.json").model("MedicationKnowledge/m1")
    assert type(model).__module__.startswith("fhir.resources.R4B.") and model.synonym == ["an R4B element that R5 removed"]


def test_load_build_folder_reads_its_collection_bundle():
    build = ROOT / "build"
    (collection,) = build.glob("*.collection.json")
    entries = json.loads(collection.read_text())["entry"]
    pkg = fhirpkg.load(build)
    assert [r.key for r in pkg.resources] == [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries]
    assert {r.file for r in pkg.resources} == {str(collection)}
    r4b = fhirpkg.load(build / "r4b")
    assert r4b.resources and {r.fhir_version for r in r4b.resources} == {"4.3.0"}


def test_load_refuses_missing_and_empty_paths(tmp_path):
    import pytest
    from fhirpkg.errors import InputError
    with pytest.raises(InputError, match="no such file or folder"):
        fhirpkg.load(tmp_path / "missing")
    with pytest.raises(InputError, match="nothing to validate"):
        fhirpkg.load(tmp_path)
    with pytest.raises(KeyError, match="PlanDefinition/none is not in"):
        fhirpkg.load(ROOT / "definitions").model("PlanDefinition/none")


def test_load_imports_fhir_resources_only_for_models():
    code = ("import sys, fhirpkg; p = fhirpkg.load('definitions'); a = 'fhir.resources' in sys.modules; "
            "p.model('PlanDefinition/nepc-pathway'); print(a, 'fhir.resources' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_manifest_schema_pass_is_remembered_and_failures_are_not(tmp_path, monkeypatch):
    """A package.json that passed the schema check is not checked again (no jsonschema import on
    the next cold start); one that failed reports its problems every time."""
    from fhirpkg.content import project as proj
    monkeypatch.setenv("FHIRPKG_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "p"
    (root / "Basic").mkdir(parents=True)
    good = json.loads((ROOT / "definitions" / "package.json").read_text())
    (root / "package.json").write_text(json.dumps(good, indent=2))
    assert not [i for i in proj.load(root).issues if i.rule == "manifest-invalid"]
    assert len(list((tmp_path / "cache" / "manifest-checks").iterdir())) == 1
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # importing it now raises ImportError
    assert not [i for i in proj.load(root).issues if i.rule == "manifest-invalid"]
    (root / "package.json").write_text(json.dumps({**good, "version": "one"}, indent=2))
    with pytest.raises(ImportError):  # a manifest not seen before is checked
        proj.load(root)
    monkeypatch.delitem(sys.modules, "jsonschema")
    for _ in range(2):
        bad = [i for i in proj.load(root).issues if i.rule == "manifest-invalid"]
        assert [(i.message, i.line) for i in bad] == [
            ("package.json version: version 'one' is not SemVer (major.minor.patch[-label])", 3)]
    assert len(list((tmp_path / "cache" / "manifest-checks").iterdir())) == 1
