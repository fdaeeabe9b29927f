"""FHIR XML definitions (``--ig FILE.xml``): read into exactly the JSON the spec publishes.

The XML files in tests/fhir/xml/ are two R5 specification resources written by hand in the
FHIR XML form; the expected JSON is the spec's own JSON form of the same resources, from the
HL7 packages (never produced by the reader under test)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg import api
from fhirpkg.cli import main
from fhirpkg.errors import PackageError
from fhirpkg.fhir import packages as pk
from fhirpkg.fhir import xmlformat

XML = Path(__file__).parent / "xml"
SD_URL = "http://hl7.org/fhir/StructureDefinition/example-composition"


def spec_json(ref: tuple[str, str], filename: str) -> dict:
    pkg = pk.installed(pk.PackageRef(*ref))
    if pkg is None:
        pytest.skip(f"{ref[0]}#{ref[1]} is not in the package cache (fhirpkg packages install {ref[0]}@{ref[1]})")
    return json.loads((pkg.folder / filename).read_text(encoding="utf-8"))


def without_text(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "text"}


@pytest.mark.parametrize("xml_file,ref,json_file", [
    ("StructureDefinition-example-composition.xml", pk.R5_EXAMPLES, "StructureDefinition-example-composition.json"),
    ("ValueSet-expression-language.xml", pk.R5_CORE, "ValueSet-expression-language.json"),
])
def test_spec_resources_read_as_the_spec_json(defs, xml_file, ref, json_file):
    """Element order, repeats, id/url attributes, booleans, integers, extensions on a primitive in an
    array (StructureDefinition ``type.profile`` with its ``_profile``): all as in the JSON form."""
    expected = spec_json(ref, json_file)
    got = xmlformat.read_file(XML / xml_file, defs)
    assert without_text(got) == without_text(expected)
    assert got["text"]["status"] == expected["text"]["status"]
    assert got["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


def test_ig_folder_reads_xml_and_skips_other_xml(defs, tmp_path):
    folder = tmp_path / "ig"
    shutil.copytree(XML, folder)
    (folder / "pom.xml").write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"/>')
    found = api.read_conformance_inputs([str(folder)], defs)
    assert sorted(f"{r['resourceType']}/{r['id']}" for r in found) == [
        "StructureDefinition/example-composition", "ValueSet/expression-language"]


@pytest.mark.parametrize("text,why", [
    ('<StructureDefinition xmlns="http://hl7.org/fhir"><id value="x"/>', "not well-formed XML"),
    ('<!DOCTYPE x [<!ENTITY e "e">]><ValueSet xmlns="http://hl7.org/fhir"/>', "DOCTYPE"),
    ('<Nonsense xmlns="http://hl7.org/fhir"/>', "unknown resource type Nonsense"),
])
def test_bad_fhir_xml_is_one_line_naming_the_file(defs, tmp_path, text, why):
    bad = tmp_path / "bad.xml"
    bad.write_text(text)
    with pytest.raises(PackageError, match=f"--ig {bad}: .*{why}"):
        api.read_conformance_inputs([str(bad)], defs)


def test_validate_with_an_xml_profile(tmp_path):
    """The profile's slices section:procedure and section:medications are min 1: a Composition
    without sections breaks both; without the --ig the profile is unknown (exit 2)."""
    comp = tmp_path / "composition.json"
    comp.write_text(json.dumps({"resourceType": "Composition", "id": "c1", "status": "final", "type": {"text": "note"},
                                "date": "2024-01-01", "author": [{"display": "A"}], "title": "T"}))
    runner = CliRunner()
    plain = runner.invoke(main, ["validate", "--profile", SD_URL, str(comp)])
    assert plain.exit_code == 2 and "no such profile" in plain.output
    run = runner.invoke(main, ["validate", "--ig", str(XML / "StructureDefinition-example-composition.xml"),
                               "--profile", SD_URL, str(comp)])
    assert run.exit_code == 1, run.output
    assert "Composition.section:procedure: minimum required = 1" in run.output
    assert "Composition.section:medications: minimum required = 1" in run.output
