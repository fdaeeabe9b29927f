"""FHIR R4 (4.0.1) and R4B (4.3.0) validation: the derived R4 core package and the CLI.

npm has no hl7.fhir.r4.core; fhirpkg builds it from the official hl7.fhir.r4.examples package
(`make packages` installs it).  Tests that need the real package skip, saying so, when it is absent.
"""
import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg.fhir import packages as pk
from fhirpkg.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _tgz(path: Path, files: dict[str, dict]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, doc in files.items():
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_r4_core_is_built_from_the_examples_package(tmp_path):
    examples = _tgz(tmp_path / "examples.tgz", {
        "package.json": {"name": "hl7.fhir.r4.examples", "version": "4.0.1", "type": "fhir.examples"},
        "StructureDefinition-Patient.json": {"resourceType": "StructureDefinition", "id": "Patient",
                                             "url": "http://hl7.org/fhir/StructureDefinition/Patient"},
        "ValueSet-x.json": {"resourceType": "ValueSet", "id": "x", "url": "http://hl7.org/fhir/ValueSet/x"},
        "Patient-example.json": {"resourceType": "Patient", "id": "example"},
    })
    pkg = pk.install(pk.PackageRef("hl7.fhir.r4.core", "4.0.1"), from_file=examples, cache=tmp_path / "cache")
    manifest = pkg.manifest
    assert (manifest["name"], manifest["version"], manifest["fhirVersions"]) == ("hl7.fhir.r4.core", "4.0.1", ["4.0.1"])
    source = manifest["x-fhirpkg-source"]
    assert source["package"] == "hl7.fhir.r4.examples#4.0.1"
    expected = "sha512-" + base64.b64encode(hashlib.sha512(examples.read_bytes()).digest()).decode()
    assert source["integrity"] == expected
    # conformance resources only: the Patient example is not part of a core package
    assert sorted(e["filename"] for e in pkg.index) == ["StructureDefinition-Patient.json", "ValueSet-x.json"]
    assert not (pkg.folder / "Patient-example.json").exists()
    note = (pkg.folder / pk.SOURCE_NOTE).read_text()
    assert "hl7.fhir.r4.examples#4.0.1" in note and expected in note


def test_an_official_core_archive_is_installed_as_it_is(tmp_path):
    core = _tgz(tmp_path / "core.tgz", {
        "package.json": {"name": "hl7.fhir.r4.core", "version": "4.0.1", "type": "Core"},
        "Patient-example.json": {"resourceType": "Patient", "id": "example"},
    })
    pkg = pk.install(pk.PackageRef("hl7.fhir.r4.core", "4.0.1"), from_file=core, cache=tmp_path / "cache")
    assert "x-fhirpkg-source" not in pkg.manifest
    assert [e["filename"] for e in pkg.index] == ["Patient-example.json"]


def test_another_package_is_refused(tmp_path):
    other = _tgz(tmp_path / "o.tgz", {"package.json": {"name": "hl7.fhir.r5.core", "version": "5.0.0"}})
    with pytest.raises(pk.PackageError, match="not hl7.fhir.r4.core#4.0.1 or hl7.fhir.r4.examples#4.0.1"):
        pk.install(pk.PackageRef("hl7.fhir.r4.core", "4.0.1"), from_file=other, cache=tmp_path / "cache")


def _need(ref):
    if pk.installed(pk.PackageRef(*ref)) is None:
        pytest.skip(f"{ref[0]}#{ref[1]} is not in the package cache (run: make packages)")


@pytest.fixture
def r4():
    for ref in pk.R4_DEFAULT_PACKAGES:
        _need(ref)


def run(*args):
    return CliRunner().invoke(main, ["validate", "--no-progress", *args], catch_exceptions=False)


def write(tmp_path, name, resource):
    path = tmp_path / name
    path.write_text(json.dumps(resource, indent=2))
    return str(path)


def test_the_r4_transaction_bundle_validates(r4):
    bundles = sorted((ROOT / "build" / "r4").glob("*.transaction.r4.json"))
    if not bundles:
        pytest.skip("build/r4 has no transaction Bundle (run: fhirpkg build)")
    r = run("--fhir-version", "4.0.1", *map(str, bundles))
    assert r.exit_code == 0, r.output[-3000:]
    assert " 0 errors" in r.output


def test_an_r5_only_element_is_an_r4_error(r4, tmp_path):
    # versionAlgorithm[x] and action.linkId are new in R5 (R5 PlanDefinition), absent from R4
    pd = {"resourceType": "PlanDefinition", "status": "draft", "versionAlgorithmString": "semver",
          "action": [{"linkId": "a1", "title": "x"}]}
    assert run(write(tmp_path, "pd.json", pd)).exit_code == 0  # valid R5
    r = run("-v", "--level", "error", write(tmp_path, "pd.r4.json", pd))  # the name says R4
    assert r.exit_code == 1
    assert "Unrecognized property 'versionAlgorithmString'" in r.output
    assert "Unrecognized property 'linkId' (PlanDefinition.action[0])" in r.output  # at the object, as HL7 reports it


def test_a_resource_type_r4_lacks_is_an_error(r4, tmp_path):
    cud = {"resourceType": "ClinicalUseDefinition", "type": "indication"}  # new in R4B
    path = write(tmp_path, "cud.json", cud)
    r = run("--fhir-version", "4.0.1", path)
    assert r.exit_code == 1
    assert "Unknown resource type 'ClinicalUseDefinition' (not a FHIR R4 resource type)" in r.output
    _need(pk.R4B_CORE)
    assert run("--fhir-version", "4.3.0", "--level", "error", path).exit_code == 0


def test_r4_invariants_run(r4, tmp_path):
    # pat-1 (R4 Patient.contact): a contact needs details or an organization
    r = run("--fhir-version", "4.0.1", write(tmp_path, "p.json", {"resourceType": "Patient", "contact": [{"gender": "male"}]}))
    assert r.exit_code == 1 and "pat-1" in r.output
    # R4 ref-1 (as the HL7 validator reads it): a Reference with only a display is fine
    ok = {"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
          "generalPractitioner": [{"display": "Dr X"}]}
    r = run("--fhir-version", "4.0.1", write(tmp_path, "ok.json", ok))
    assert r.exit_code == 0, r.output
