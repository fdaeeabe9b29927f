"""The logic library and its translation (docs/logic.md): the CQL, the Library resources, the
PlanDefinition conditions, the package rules that keep them consistent, and (marker ``interop``,
needs Java) the official translator reproducing the committed ELM byte for byte.

Expected names and wiring are copied from the tables of docs/logic.md, never from the code."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fhirpkg.logic import jvm
from fhirpkg.content import project
from fhirpkg.logic import translate
from fhirpkg.content import package_rules

ROOT = Path(__file__).resolve().parents[2]
DEFS = ROOT / "definitions"
CANON = "http://example.org/fhir/nepc"
LIBRARY = f"{CANON}/Library/NEPCLogic|0.1.0"

# docs/logic.md, "Definitions and the data they read"
SPEC_DEFINITIONS = [
    "Has Confirmed NEPC Diagnosis", "Completed Prostate Biopsy", "Neuroendocrine Pathology Report",
    "Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate", "Biopsy Confirmation Not Found",
    "Prior Platinum Chemotherapy", "No Prior Platinum Chemotherapy", "Disease Progression After Platinum",
    "Tumour Genomic Testing Available", "Tumour Genomic Testing Not Found",
    "Homologous Recombination Repair Gene Alteration", "PARP Trial Consideration Applies", "Bone Metastases",
]
# docs/logic.md, "Value sets"
SPEC_VALUESETS = ["nepc-diagnosis", "neuroendocrine-histology", "prostate-biopsy", "platinum-agents", "etoposide",
                  "genomic-report", "hrr-genes", "bone-metastasis"]
INV = ["inv-chemotherapy-combinations", "inv-ezh2-inhibitors", "inv-immune-checkpoint-inhibitors",
       "inv-other-molecular-targets", "inv-parp-inhibitors", "inv-sabr", "inv-sox2-ascl1-brn2-pathways"]
# docs/logic.md, "Where each definition is used": PlanDefinition -> action -> conditions
SPEC_WIRING = {
    ("rec-first-line-platinum-etoposide", "offer-platinum-etoposide"):
        ["Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate", "No Prior Platinum Chemotherapy"],
    ("rec-second-line-single-agent", "consider-second-line-agent"):
        ["Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate", "Disease Progression After Platinum"],
    ("info-androgen-deprivation", "adt-information"): ["Has Confirmed NEPC Diagnosis"],
    ("rec-palliative-radiotherapy", "offer-palliative-radiotherapy"): ["Has Confirmed NEPC Diagnosis"],
    ("rec-bone-targeted-agents", "consider-bone-agent"): ["Bone Metastases"],
    ("nepc-pathway", "pain-management"): ["Has Confirmed NEPC Diagnosis"],
}
for _pd in INV:
    SPEC_WIRING[(_pd, "consider-trial")] = (["PARP Trial Consideration Applies"] if _pd == "inv-parp-inhibitors"
                                            else ["Has Confirmed NEPC Diagnosis"])
    # PARP: a consideration is shown only beside its trial option (docs/logic.md)
    _beside = ["PARP Trial Consideration Applies"] if _pd == "inv-parp-inhibitors" else []
    SPEC_WIRING[(_pd, "consideration-biopsy")] = ["Biopsy Confirmation Not Found"] + _beside
    SPEC_WIRING[(_pd, "consideration-genomic-testing")] = ["Tumour Genomic Testing Not Found"] + _beside
BIOPSY_SENTENCE = "Patients typically need to have tissue confirmation of the neuroendocrine histology through biopsy."
GENOMIC_SENTENCE = ("Many trials also require information about specific genetic alterations in the tumor, which can "
                    "be obtained through genomic testing.")


def _load(rel: str) -> dict:
    return json.loads((DEFS / rel).read_text(encoding="utf-8"))


def _actions(items):
    for a in items or []:
        yield a
        yield from _actions(a.get("action"))


def _conditions(action) -> list[str]:
    return [c["expression"]["expression"] for c in action.get("condition", [])
            if c["expression"].get("language") == "text/cql-identifier"]


def _elm(lib: dict) -> dict:
    return json.loads(translate.attachment(lib, translate.ELM_TYPE))["library"]


# ------------------------------------------------------------------------------------ the committed content

def test_cql_declares_the_spec_library_and_every_definition():
    cql = (DEFS / "cql" / "NEPCLogic.cql").read_text(encoding="utf-8")
    assert "library NEPCLogic version '0.1.0'" in cql
    assert "using FHIR version '4.0.1'" in cql
    assert "include FHIRHelpers version '4.0.1'" in cql
    assert "context Patient" in cql
    elm = _elm(_load("Library/NEPCLogic.json"))
    assert elm["identifier"] == {"id": "NEPCLogic", "version": "0.1.0"}
    public = {d["name"] for d in elm["statements"]["def"] if d.get("accessLevel") == "Public"}
    assert set(SPEC_DEFINITIONS) <= public, set(SPEC_DEFINITIONS) - public


def test_cql_value_sets_are_the_package_value_sets():
    elm = _elm(_load("Library/NEPCLogic.json"))
    declared = {d["id"] for d in elm["valueSets"]["def"]}
    for url in declared:
        assert url.startswith(f"{CANON}/ValueSet/"), url
        assert (DEFS / "ValueSet" / f"{url.rsplit('/', 1)[1]}.json").is_file(), url
    # every spec value set exists; all but etoposide (no definition reads it) are declared in the CQL
    for vid in SPEC_VALUESETS:
        vs = _load(f"ValueSet/{vid}.json")
        assert vs["url"] == f"{CANON}/ValueSet/{vid}" and vs["status"] == "draft"
    assert {u.rsplit("/", 1)[1] for u in declared} == set(SPEC_VALUESETS) - {"etoposide"}


def test_value_set_codes_follow_the_spec_table():
    def codes(vid):
        return {(i["system"], c["code"]) for i in _load(f"ValueSet/{vid}.json")["compose"]["include"]
                for c in i["concept"]}
    sct, icdo = "http://snomed.info/sct", "http://terminology.hl7.org/CodeSystem/icd-o-3"
    assert codes("nepc-diagnosis") == {(sct, "396198006"), ("http://data.mskcc.org/ontologies/oncotree", "PRSCC"),
                                       ("http://data.mskcc.org/ontologies/oncotree", "PRNE")}
    assert codes("neuroendocrine-histology") == {(icdo, "8041/3"), (icdo, "8013/3"), (icdo, "8246/3")}
    assert (icdo, "8574/3") not in codes("neuroendocrine-histology")  # not NEPC by itself (spec)
    assert codes("prostate-biopsy") == {(sct, "86273004"), (sct, "301759007")}
    rx, atc = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc"
    assert codes("platinum-agents") == {(rx, "2555"), (rx, "40048"), (atc, "L01XA01"), (atc, "L01XA02")}
    assert codes("etoposide") == {(rx, "4179"), (atc, "L01CB01")}
    assert codes("genomic-report") == {("http://loinc.org", "51969-4"), ("http://loinc.org", "81247-9")}
    assert codes("bone-metastasis") == {(sct, "94222008")}
    hrr = {c for _, c in codes("hrr-genes")}
    assert {"HGNC:1100", "HGNC:1101", "HGNC:795", "HGNC:882", "HGNC:26144", "HGNC:24224", "HGNC:1925",
            "HGNC:16627", "HGNC:952", "HGNC:20473"} <= hrr


def test_plan_definitions_are_wired_as_the_spec_says():
    seen = set()
    for path in sorted((DEFS / "PlanDefinition").glob("*.json")):
        pd = json.loads(path.read_text(encoding="utf-8"))
        has_conditions = False
        for a in _actions(pd.get("action")):
            conds = _conditions(a)
            key = (pd["id"], a.get("id"))
            assert conds == SPEC_WIRING.get(key, []), key
            has_conditions |= bool(conds)
            if conds:
                seen.add(key)
        if has_conditions:
            assert pd.get("library") == [LIBRARY], pd["id"]
        level = [e["valueCode"] for e in pd.get("extension", []) if e["url"].endswith("cqf-knowledgeRepresentationLevel")]
        assert level == ["executable"], pd["id"]
    assert seen == set(SPEC_WIRING)


def test_trial_considerations_quote_the_source_and_create_no_request():
    source = (Path(os.environ.get("FHIRPKG_SEED", ROOT.parent / "shared" / "seed" / "nepc-treatment-options.txt")))
    text = source.read_text(encoding="utf-8") if source.is_file() else None
    for pd_id in INV:
        acts = {a["id"]: a for a in _load(f"PlanDefinition/{pd_id}.json")["action"]}
        for aid, sentence in (("consideration-biopsy", BIOPSY_SENTENCE), ("consideration-genomic-testing", GENOMIC_SENTENCE)):
            a = acts[aid]
            assert "definitionCanonical" not in a and "action" not in a, (pd_id, aid)
            assert sentence in a["textEquivalent"] and sentence in a["description"], (pd_id, aid)
            if text is not None:
                assert sentence in text
        # the trial option itself is not gated on biopsy, genomic testing or prior treatment (spec: "Why soft")
        assert not {"Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate", "Tumour Genomic Testing Available",
                    "Prior Platinum Chemotherapy"} & set(_conditions(acts["consider-trial"]))


def test_library_resources_carry_cql_elm_and_crmi_metadata():
    lib = _load("Library/NEPCLogic.json")
    assert lib["url"] == f"{CANON}/Library/NEPCLogic" and lib["version"] == "0.1.0" and lib["status"] == "draft"
    assert lib["type"]["coding"][0]["code"] == "logic-library"
    assert translate.attachment(lib, "text/cql") == (DEFS / "cql" / "NEPCLogic.cql").read_bytes()
    deps = {ra["resource"] for ra in lib["relatedArtifact"] if ra["type"] == "depends-on"}
    assert f"{CANON}/Library/FHIRHelpers|4.0.1" in deps
    assert {f"{CANON}/ValueSet/{v}" for v in SPEC_VALUESETS if v != "etoposide"} <= deps
    assert {"http://loinc.org", "http://snomed.info/sct", "http://terminology.hl7.org/CodeSystem/icd-o-3"} <= deps
    reqs = {(r["type"], f.get("path"), f.get("valueSet")) for r in lib["dataRequirement"] for f in r.get("codeFilter", [])}
    for rtype, vid in (("Condition", "nepc-diagnosis"), ("Procedure", "prostate-biopsy"),
                       ("MedicationAdministration", "platinum-agents"), ("MedicationRequest", "platinum-agents"),
                       ("DiagnosticReport", "genomic-report"), ("Condition", "bone-metastasis")):
        assert any(t == rtype and vs == f"{CANON}/ValueSet/{vid}" for t, _, vs in reqs), (rtype, vid)
    outs = {p["name"]: p for p in lib["parameter"] if p["use"] == "out"}
    assert set(SPEC_DEFINITIONS) <= set(outs)
    assert all(outs[n]["type"] == "boolean" for n in SPEC_DEFINITIONS)
    assert [p for p in lib["parameter"] if p["use"] == "in"] == [
        {"name": "Patient", "use": "in", "min": 0, "max": "1", "type": "Patient",
         "documentation": "The subject: CQL context Patient"}]
    helpers = _load("Library/FHIRHelpers.json")
    assert helpers["version"] == "4.0.1" and _elm(helpers)["identifier"] == {"id": "FHIRHelpers", "version": "4.0.1"}
    assert b"library FHIRHelpers version '4.0.1'" in translate.attachment(helpers, "text/cql")


# ------------------------------------------------------------------------------------ package rules (no Java)

@pytest.fixture
def pkg(tmp_path) -> Path:
    dest = tmp_path / "definitions"
    shutil.copytree(DEFS, dest)
    return dest


def _rules(root: Path) -> list:
    return [i for i in package_rules.check(project.load(root)) if i.is_error]


def _edit(path: Path, fn) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def test_committed_package_has_no_logic_errors(pkg):
    assert [(i.rule, i.message) for i in _rules(pkg)] == []


def test_stale_cql_is_an_error_without_java(pkg, monkeypatch):
    monkeypatch.setattr(jvm, "java_exe", lambda: None)  # the check must not need a JVM
    with open(pkg / "cql" / "NEPCLogic.cql", "a", encoding="utf-8") as f:
        f.write("\n// edited\n")
    errors = _rules(pkg)
    assert [i.rule for i in errors] == ["logic-cql-stale"]
    assert errors[0].file.endswith("Library/NEPCLogic.json") and errors[0].line


def test_cql_file_without_library_is_an_error(pkg):
    (pkg / "cql" / "Other.cql").write_text("library Other version '0.1.0'\n", encoding="utf-8")
    errors = _rules(pkg)
    assert [(i.rule, Path(i.file).name) for i in errors] == [("logic-cql-stale", "Other.cql")]


def test_condition_naming_an_undefined_identifier(pkg):
    def rename(doc):
        doc["action"][0]["condition"][0]["expression"]["expression"] = "Has Confirmed NEPC Diagnoses"
    _edit(pkg / "PlanDefinition" / "info-androgen-deprivation.json", rename)
    errors = _rules(pkg)
    assert [i.rule for i in errors] == ["logic-identifier-unknown"]
    assert "Has Confirmed NEPC Diagnoses" in errors[0].message
    assert errors[0].expression.startswith("PlanDefinition.action.condition.expression")


def test_cql_identifier_spellings():
    """hl7.fhir.r5.core#5.0.0's expression-language value set has text/cql-identifier; the May 2021 R5
    ballot's had text/cql.identifier. text/cql (a whole library) and text/cql-expression are other languages."""
    assert translate.is_cql_identifier("text/cql-identifier") and translate.is_cql_identifier("text/cql.identifier")
    assert not any(translate.is_cql_identifier(x) for x in ("text/cql", "text/cql-expression", "text/fhirpath", None))


def test_condition_in_the_older_spelling_is_checked_too(pkg):
    """The package rule reads conditions with the same function as apply: an unknown name in the
    text/cql.identifier spelling is reported as well."""
    def rename(doc):
        doc["action"][0]["condition"][0]["expression"] = {"language": "text/cql.identifier",
                                                          "expression": "Has Confirmed NEPC Diagnoses"}
    _edit(pkg / "PlanDefinition" / "info-androgen-deprivation.json", rename)
    assert [i.rule for i in _rules(pkg)] == ["logic-identifier-unknown"]


def test_conditions_without_library(pkg):
    _edit(pkg / "PlanDefinition" / "rec-bone-targeted-agents.json", lambda d: d.pop("library"))
    assert [i.rule for i in _rules(pkg)] == ["logic-library-missing"]


def test_library_that_does_not_resolve(pkg):
    def point_elsewhere(doc):
        doc["library"] = [f"{CANON}/Library/NEPCLogic|9.9.9"]
    _edit(pkg / "PlanDefinition" / "rec-bone-targeted-agents.json", point_elsewhere)
    assert [i.rule for i in _rules(pkg)] == ["logic-library-unresolved"]


def test_logic_library_version_is_its_cql_version(pkg):
    _edit(pkg / "Library" / "FHIRHelpers.json", lambda d: d.update(version="0.1.0"))
    errors = _rules(pkg)
    assert [i.rule for i in errors] == ["package-version"] and "4.0.1" in errors[0].message


def test_validate_and_build_check_fail_on_stale_cql(pkg):
    with open(pkg / "cql" / "NEPCLogic.cql", "a", encoding="utf-8") as f:
        f.write("\n// edited\n")
    cmd = [str(Path(sys.executable).with_name("fhirpkg"))]
    out = subprocess.run([*cmd, "validate", str(pkg)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "[logic-cql-stale]" in out.stdout + out.stderr
    out = subprocess.run([*cmd, "build", "--check", "--project", str(pkg), "--out", str(pkg.parent / "build")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and "logic-cql-stale" in out.stdout + out.stderr


def test_unchanged_cql_needs_no_java(pkg, monkeypatch):
    monkeypatch.setattr(jvm, "java_exe", lambda: None)
    monkeypatch.setattr(jvm, "mvn_exe", lambda: None)
    before = {p: p.read_bytes() for p in (pkg / "Library").glob("*.json")}
    result = translate.update(pkg)
    assert result.translated == [] and result.written == [] and result.unchanged == ["NEPCLogic"]
    assert before == {p: p.read_bytes() for p in (pkg / "Library").glob("*.json")}


def test_changed_cql_without_java_is_a_clear_error(pkg, monkeypatch):
    monkeypatch.setattr(jvm, "java_exe", lambda: None)
    with open(pkg / "cql" / "NEPCLogic.cql", "a", encoding="utf-8") as f:
        f.write("\n// edited\n")
    with pytest.raises(jvm.JavaUnavailable, match="java"):
        translate.update(pkg)


# ------------------------------------------------------------------------------------ the translator (Java)

def _translator():
    """Skip (or fail under FHIRPKG_REQUIRE_INTEROP=1) when Java/Maven cannot build the front end."""
    try:
        return translate.jar_path()
    except jvm.JavaUnavailable as e:
        if os.environ.get("FHIRPKG_REQUIRE_INTEROP", "") not in ("", "0", "false", "no"):
            pytest.fail(f"the CQL translator is required (FHIRPKG_REQUIRE_INTEROP=1) but cannot run: {e}", pytrace=False)
        pytest.skip(f"the CQL translator cannot run here: {e}")


@pytest.mark.interop
def test_evaluator_fixture_is_what_the_translator_makes_now():
    """tests/logic/elm/ContractSample.json (the ELM evaluator's fixture) is this translator's output
    for ContractSample.cql: regenerate it with ``translate.translate`` when the CQL changes."""
    _translator()
    folder = Path(__file__).parent / "elm"
    fresh = translate.translate(folder, ["ContractSample"])["ContractSample"]
    assert fresh.elm == (folder / "ContractSample.json").read_bytes()


@pytest.mark.interop
def test_committed_elm_is_what_the_translator_makes_now():
    _translator()
    fresh = translate.translate(DEFS / "cql", ["NEPCLogic", "FHIRHelpers@4.0.1"])
    for name in ("NEPCLogic", "FHIRHelpers"):
        lib = _load(f"Library/{name}.json")
        assert translate.attachment(lib, "text/cql") == fresh[name].cql, name
        assert translate.attachment(lib, "application/elm+json") == fresh[name].elm, \
            f"{name}: the committed ELM differs from the translator's output (run: fhirpkg cql --force)"
    again = translate.translate(DEFS / "cql", ["NEPCLogic"])
    assert again["NEPCLogic"].elm == fresh["NEPCLogic"].elm  # deterministic output
    info = [a for a in json.loads(fresh["NEPCLogic"].elm)["library"]["annotation"] if a["type"] == "CqlToElmInfo"][0]
    assert info["translatorVersion"] == translate.CQFRAMEWORK_VERSION
    assert info["translatorOptions"] == "EnableAnnotations,EnableLocators,DisableListDemotion,DisableListPromotion"


@pytest.mark.interop
def test_regenerating_the_libraries_gives_the_committed_files(pkg):
    _translator()
    result = translate.update(pkg, force=True)
    assert sorted(result.translated) == ["FHIRHelpers", "NEPCLogic"]
    assert result.written == [], "the committed Library resources are not what `fhirpkg cql` writes"


@pytest.mark.interop
def test_cql_command_translates_a_change_and_reports_errors(pkg):
    _translator()
    exe = Path(sys.executable).with_name("fhirpkg")
    cql = pkg / "cql" / "NEPCLogic.cql"
    cql.write_text(cql.read_text(encoding="utf-8") + '\ndefine "Extra Definition":\n  true\n', encoding="utf-8")
    out = subprocess.run([str(exe), "cql", str(pkg)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lib = json.loads((pkg / "Library" / "NEPCLogic.json").read_text(encoding="utf-8"))
    assert translate.attachment(lib, "text/cql") == cql.read_bytes()
    assert "Extra Definition" in translate.elm_definitions(lib)
    assert _rules(pkg) == []
    before = (pkg / "Library" / "NEPCLogic.json").read_bytes()
    cql.write_text(cql.read_text(encoding="utf-8") + '\ndefine "Broken":\n  exists [Procedur]\n', encoding="utf-8")
    out = subprocess.run([str(exe), "cql", str(pkg)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    lines = cql.read_text(encoding="utf-8").splitlines()
    expected = f"{cql}:{len(lines)}:10: Could not resolve type name Procedur."
    assert expected in out.stderr.splitlines(), out.stderr
    assert "Traceback" not in out.stderr
    assert (pkg / "Library" / "NEPCLogic.json").read_bytes() == before
