"""Adoption: `fhirpkg build --canonical/--publisher/--version` puts every output under the
adopter's canonical base, with no trace of the placeholder base, and the outputs stay valid."""
import base64
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpkg import api
from fhirpkg.content import rebase
from fhirpkg.cli import main
from fhirpkg.fhir.jsonsource import parse
from fhirpkg.fhir.serialize import dumps

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "definitions" / "package.json").read_text())
OLD_BASE, OLD_NAME, OLD_VERSION = MANIFEST["canonical"], MANIFEST["name"], MANIFEST["version"]
NEW_BASE, NEW_NAME, PUBLISHER = "https://their.org/fhir/nepc", "org.their.fhir.nepc", "Their Health System"


def test_package_name_follows_the_base():
    assert rebase.package_name_for(NEW_BASE) == NEW_NAME
    assert rebase.package_name_for("http://example.org/fhir/nepc") == "org.example.fhir.nepc"
    assert rebase.package_name_for("https://9lives.org/fhir") is None  # "org.9lives..." is no package name


@pytest.mark.parametrize("canonical, version, why", [
    ("ftp://their.org/fhir", None, "not a canonical base"),
    ("https://their.org/fhir|1", None, "not a canonical base"),
    (None, "1.0", "not SemVer"),
    ("https://9lives.org/fhir", None, "gives no valid package name"),
])
def test_bad_options_are_refused(canonical, version, why):
    with pytest.raises(rebase.AdoptionError, match=why):
        rebase.plan(MANIFEST, canonical, None, version)


def test_text_replacement_keeps_word_boundaries_and_pins():
    a = rebase.plan({"canonical": "http://example.org/fhir/nepc", "name": "org.example.fhir.nepc",
                     "version": "0.1.0"}, NEW_BASE, None, "1.0.0")
    assert a.text("http://example.org/fhir/nepc/PlanDefinition/x|0.1.0") == f"{NEW_BASE}/PlanDefinition/x|1.0.0"
    assert a.text("http://example.org/fhir/nepc-other/x") == "http://example.org/fhir/nepc-other/x"
    assert a.text("see org.example.fhir.nepc#0.1.0.") == f"see {NEW_NAME}#1.0.0."
    assert a.text("http://other.org/x|0.1.0") == "http://other.org/x|0.1.0"  # not ours: pin unchanged


def test_numbers_and_foreign_values_are_kept():
    a = rebase.plan(MANIFEST, NEW_BASE, PUBLISHER, "1.0.0")
    doc = parse('{"resourceType": "Basic", "version": "%s", "publisher": "x", "n": 1.50, '
                '"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/artifact-version", '
                '"valueString": "%s"}], "note": "2.0.0"}' % (OLD_VERSION, OLD_VERSION))
    out = json.loads(dumps(rebase.adopt_value(doc.value, a)))
    assert '"n": 1.50' in dumps(rebase.adopt_value(doc.value, a))
    assert (out["version"], out["publisher"], out["extension"][0]["valueString"], out["note"]) == \
        ("1.0.0", PUBLISHER, "1.0.0", "2.0.0")


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    out = tmp_path_factory.mktemp("adopted") / "build"
    r = CliRunner().invoke(main, ["build", "--project", str(ROOT / "definitions"), "--canonical", NEW_BASE,
                                  "--publisher", PUBLISHER, "--version", "1.0.0", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def _texts(out: Path):
    """Every output file's text, package.tgz members included."""
    for p in sorted(out.rglob("*")):
        if p.suffix == ".tgz":
            with tarfile.open(p) as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        yield f"{p.name}!{m.name}", tar.extractfile(m).read().decode("utf-8", "replace")
        elif p.is_file():
            yield str(p.relative_to(out)), p.read_text(encoding="utf-8", errors="replace")


def test_no_trace_of_the_old_base(adopted):
    placeholder = next(r for r in (ROOT / "definitions").rglob("PlanDefinition/*.json")).read_text()
    old_publisher = json.loads(placeholder)["publisher"]
    names = [p.name for p in adopted.rglob("*")]
    assert not [n for n in names if OLD_NAME in n]
    hits = [(name, word) for name, text in _texts(adopted)
            for word in (OLD_BASE, OLD_NAME, old_publisher) if word in text]
    assert not hits, hits[:20]
    assert any(NEW_NAME in n for n in names)


def test_package_identity_and_urls(adopted):
    with tarfile.open(adopted / "package.tgz") as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
    assert (manifest["name"], manifest["version"], manifest["canonical"]) == (NEW_NAME, "1.0.0", NEW_BASE)
    bundle = json.loads(next(adopted.glob("*.transaction.json")).read_text())
    urls = [e["resource"]["url"] for e in bundle["entry"] if "url" in e["resource"]]
    assert len(urls) > 50 and all(u.startswith(NEW_BASE + "/") for u in urls)
    assert all(e["fullUrl"].startswith(NEW_BASE + "/") for e in bundle["entry"])
    logic = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]
             if e["resource"]["resourceType"] == "Library" and e["resource"]["id"] in ("NEPCLogic", "FHIRHelpers")}
    versions = {e["resource"].get("version") for e in bundle["entry"]
                if e["resource"].get("id") not in logic} - {None}
    assert versions == {"1.0.0"}
    # a Library that carries CQL keeps the CQL library's own version, and so do the pins to it
    assert (logic["NEPCLogic"]["version"], logic["FHIRHelpers"]["version"]) == ("0.1.0", "4.0.1")
    pins = {lib for e in bundle["entry"] for lib in e["resource"].get("library") or ()}
    assert pins == {f"{NEW_BASE}/Library/NEPCLogic|0.1.0"}
    # the CQL and its ELM (made again by the translator) name the value sets under the new base
    for content in logic["NEPCLogic"]["content"]:
        text = base64.b64decode(content["data"]).decode()
        assert OLD_BASE not in text and f"{NEW_BASE}/ValueSet/nepc-diagnosis" in text, content["contentType"]
    assert {e["resource"].get("publisher") for e in bundle["entry"]} - {None} == {PUBLISHER}


def test_the_adopted_outputs_validate(adopted):
    files = [str(p) for p in sorted(adopted.glob("*.json")) if p.name != "build-report.json"]
    files += [str(adopted / "package.tgz")]
    files += [str(p) for p in sorted((adopted / "r4b").glob("*.r4b.json")) + sorted((adopted / "r4").glob("*.r4.json"))]
    assert len(files) == 7
    errors = [i for i in api.validate(files) if i.is_error]
    assert not errors, [f"{i.file}: {i.message}" for i in errors[:10]]
