"""Content checks for the NEPC FHIR R5 package in definitions/ (issue #3).

Standard library + json only. What is checked:

* claims      - every source-article claim S1-S20 has carriers that exist and contain the claim's key phrases;
                every Citation used for a claim is verified in the shared evidence and lists the claim in 'supports';
                a claim without a verified citation (S7) is carried as the source article's statement.
* identifiers - every PMID/DOI/PMCID/NCT/RxNorm/ATC/NCIt/SNOMED CT/LOINC/HGNC/OncoTree/M49 identifier in
                definitions/ is in evidence/register.json, and every register entry is verified in
                ../shared/evidence/evidence.json (or, for project-verified entries, has a recorded source).
* integrity   - recommending actions cite a Citation; canonicals are unique and follow <canonical>/<Type>/<id>;
                every reference and canonical resolves inside the package or to an explicitly listed dependency;
                HL7 codes exist in the installed code systems; extensions are used where their context allows.
* draft       - every resource is draft, tagged needs-clinical-review and carries the fixed draft statement.

The shared evidence is read from ../shared/evidence/evidence.json (sibling of the repository). Tests that need it
skip with a visible reason when it is absent; the register-based tests still run against the verbatim copy in
evidence/shared-evidence-subset.json. Tests that need the FHIR package cache (~/.fhir/packages) skip likewise.
"""
from __future__ import annotations

import base64
import json
import os
import re
import unittest
from pathlib import Path

import pytest

pytestmark = pytest.mark.content  # clinical-content checks run with `pytest -m content` (issue 13)

ROOT = Path(__file__).resolve().parents[2]
DEFS = ROOT / "definitions"
EVIDENCE = ROOT / "evidence"
SHARED = Path(os.environ.get("NEPC_SHARED", ROOT.parent / "shared")) / "evidence" / "evidence.json"  # ../shared beside the checkout
PKG_CACHE = Path(os.environ.get("FHIR_PACKAGE_CACHE", Path.home() / ".fhir" / "packages"))

STATEMENT = "DRAFT – not for clinical use: this content needs local clinical review before use."
TAG_SYSTEM_TAIL = "/CodeSystem/nepc-content-status"
TAG_CODE = "needs-clinical-review"
ID_RE = re.compile(r"^(?=.*[a-z])[a-z0-9-]{1,64}$")
NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")

PMID = "https://pubmed.ncbi.nlm.nih.gov"
DOI = "https://doi.org"
PMC = "https://www.ncbi.nlm.nih.gov/pmc/"
CTGOV = "https://clinicaltrials.gov"
# External terminologies: identifiers from these systems must be registered in evidence/register.json.
REGISTERED_SYSTEMS = {
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://www.whocc.no/atc": "atc",
    "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl": "ncit",
    "http://snomed.info/sct": "snomed-ct",
    "http://loinc.org": "loinc",
    "http://www.genenames.org/geneId": "hgnc",
    "http://data.mskcc.org/ontologies/oncotree": "oncotree",
    "http://unstats.un.org/unsd/methods/m49/m49.htm": "m49",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd-10-cm",
    "http://terminology.hl7.org/CodeSystem/icd-o-3": "icd-o-3",  # its canonical URI (hl7.terminology NamingSystem-icd-o-3)
    PMID: "pmid",
    DOI: "doi",
    PMC: "pmcid",
    CTGOV: "nct",
}
# Code systems that are NOT defined in this package or its dependency packages: allowed only if listed here.
EXTERNAL_CODE_SYSTEMS = {s for s in REGISTERED_SYSTEMS if s not in (PMID, DOI, PMC, CTGOV)} | {
    "urn:ietf:bcp:13",            # Expression.language media types (FHIR-defined code system URI)
    "http://unitsofmeasure.org",  # UCUM (Timing durationUnit)
}
# External canonicals (profiles and extensions) the content depends on, with the package that defines them.
EXT_PKG = "hl7.fhir.uv.extensions.r5#5.3.0-ballot-tc1"
CORE_PKG = "hl7.fhir.r5.core#5.0.0"
THO_PKG = "hl7.terminology.r5#7.0.1"
EXTERNAL_CANONICALS = {
    "http://hl7.org/fhir/StructureDefinition/shareableplandefinition": CORE_PKG,
    "http://hl7.org/fhir/StructureDefinition/shareableactivitydefinition": CORE_PKG,
    "http://hl7.org/fhir/StructureDefinition/shareablelibrary": CORE_PKG,
    "http://hl7.org/fhir/StructureDefinition/shareablevalueset": CORE_PKG,
    "http://hl7.org/fhir/StructureDefinition/shareablecodesystem": CORE_PKG,
    "http://hl7.org/fhir/StructureDefinition/cqf-knowledgeCapability": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/cqf-knowledgeRepresentationLevel": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/cqf-resourceType": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-isOwned": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-url": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-version": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-status": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-experimental": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-title": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-description": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-usage": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-date": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-publisher": EXT_PKG,
    "http://hl7.org/fhir/StructureDefinition/artifact-relatedArtifact": EXT_PKG,
}
# HL7-defined code systems: their codes are checked against the installed packages.
HL7_CS_PACKAGES = (CORE_PKG, THO_PKG, EXT_PKG)
HL7_CS_PREFIXES = ("http://hl7.org/fhir/", "http://terminology.hl7.org/CodeSystem/")
DOSE_RE = re.compile(r"\b\d+(\.\d+)?\s*(mg/m²|mg/m2|mg/kg|mg\b|Gy\b)|\bAUC\s*\d", re.I)
DOSE_ATTRIBUTION = ("KEYNOTE-365", "Fizazi", "ASTRO", "Brown 2022", "Corn 2019", "Beltran 2019", "Aggarwal 2025",
                    "PROfound", "cited", "trial", "NCT0", "dossier", "Source excerpt", "Excerpt of a secondary")


# ----------------------------------------------------------------------------------------------------------------
# loading helpers
# ----------------------------------------------------------------------------------------------------------------
def _load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _resources() -> dict[str, dict]:
    out = {}
    for p in sorted(DEFS.glob("*/*.json")):
        out[f"{p.parent.name}/{p.stem}"] = _load_json(p)
    return out


RES = _resources()
PKG = _load_json(DEFS / "package.json")
BASE = PKG["canonical"]
REGISTER = _load_json(EVIDENCE / "register.json")
CLAIMS = _load_json(EVIDENCE / "claims.json")
SUBSET = _load_json(EVIDENCE / "shared-evidence-subset.json")
BY_URL = {r["url"]: (k, r) for k, r in RES.items() if "url" in r}


def _shared():
    if not SHARED.is_file():
        pytest.skip(f"shared evidence not found at {SHARED} (expected sibling checkout ../shared); "
                    "register checks ran against evidence/shared-evidence-subset.json instead")
    return _load_json(SHARED)


def _pkg_dir(pkg: str) -> Path:
    d = PKG_CACHE / pkg / "package"
    if not d.is_dir():
        pytest.skip(f"FHIR package {pkg} not found in package cache {PKG_CACHE}")
    return d


def _strings(o):
    if isinstance(o, dict):
        for v in o.values():
            yield from _strings(v)
    elif isinstance(o, list):
        for v in o:
            yield from _strings(v)
    elif isinstance(o, str):
        yield o


def _text(res) -> str:
    return "\n".join(_strings(res)).lower()


def _walk(o, path=()):
    """Yield (path, dict) for every JSON object in o."""
    if isinstance(o, dict):
        yield path, o
        for k, v in o.items():
            yield from _walk(v, path + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _walk(v, path + (i,))


def _clean_doi(d: str) -> str:
    d = d.rstrip(".,;")
    while d.endswith(")") and d.count(")") > d.count("("):
        d = d[:-1]
    return d


def _cql_codes(res) -> set[tuple[str, str, str | None]]:
    """(system, code, display) of the ``code`` declarations in a Library's CQL (text/cql attachment)."""
    found = set()
    for att in res.get("content", []) if res.get("resourceType") == "Library" else []:
        if att.get("contentType") != "text/cql":
            continue
        cql = base64.b64decode(att["data"]).decode("utf-8")
        systems = dict(re.findall(r"""codesystem "([^"]+)": '([^']+)'""", cql))
        for code, cs, disp in re.findall(r"""code "[^"]+": '([^']+)' from "([^"]+)"(?: display '((?:[^'\\]|\\.)*)')?""", cql):
            found.add((systems.get(cs, cs), code, disp.replace("\\'", "'") if disp else None))
    return found


def extract_identifiers(res) -> set[tuple[str, str, str | None]]:
    """(system, code/value, display) for every registered-system identifier in a resource, incl. ids in URLs/text,
    value set concepts and the codes a Library's CQL declares."""
    found = {x for x in _cql_codes(res) if x[0] in REGISTERED_SYSTEMS}
    for inc in (res.get("compose") or {}).get("include", []) if res.get("resourceType") == "ValueSet" else []:
        if inc.get("system") in REGISTERED_SYSTEMS:
            found |= {(inc["system"], c["code"], c.get("display")) for c in inc.get("concept", [])}
    for _, o in _walk(res):
        s = o.get("system")
        if isinstance(s, str) and s in REGISTERED_SYSTEMS:
            if isinstance(o.get("code"), str):
                found.add((s, o["code"], o.get("display")))
            if isinstance(o.get("value"), str):
                found.add((s, o["value"], None))
    for t in _strings(res):
        for m in re.finditer(r"NCT\d{8}", t):
            found.add((CTGOV, m.group(0), None))
        for m in re.finditer(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d+)", t):
            found.add((PMID, m.group(1), None))
        for m in re.finditer(r"doi\.org/(10\.[^\s\"'<>]+)", t):
            found.add((DOI, _clean_doi(m.group(1)), None))
        for m in re.finditer(r"\bPMC\d+\b", t):
            found.add((PMC, m.group(0), None))
    return found


def _cql_version(res) -> str | None:
    """The version a Library's CQL declares (``library X version 'v'``), or None."""
    for att in res.get("content", []) if res.get("resourceType") == "Library" else []:
        if att.get("contentType") == "text/cql":
            m = re.search(r"^\s*library\s+\S+\s+version\s+'([^']+)'", base64.b64decode(att["data"]).decode("utf-8"), re.M)
            return m.group(1) if m else None
    return None


def _ref_of(res) -> str:
    return f"{res['resourceType']}/{res['id']}"


def _cited_canonicals(res) -> set[str]:
    out = set()
    for _, o in _walk(res):
        if o.get("type") in ("citation", "documentation", "depends-on", "composed-of") and isinstance(o.get("resource"), str):
            out.add(o["resource"].split("|")[0])
    return out


# ----------------------------------------------------------------------------------------------------------------
# layout, package.json, canonical metadata
# ----------------------------------------------------------------------------------------------------------------
class TestLayout(unittest.TestCase):
    def test_one_resource_per_file_named_by_id(self):
        self.assertGreater(len(RES), 50)
        for key, r in RES.items():
            folder, stem = key.split("/")
            self.assertEqual(r["resourceType"], folder, key)
            self.assertEqual(r["id"], stem, key)
            if _cql_version(r):  # a logic Library is named after its CQL library, which engines resolve by name
                self.assertEqual(r["id"], r["name"], key)
            else:
                self.assertRegex(r["id"], ID_RE, key)

    def test_json_style(self):
        for p in sorted(DEFS.rglob("*.json")):
            raw = p.read_bytes()
            text = raw.decode("utf-8")
            self.assertTrue(text.endswith("\n"), p)
            self.assertEqual(text, json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n",
                             f"{p} is not 2-space indented canonical JSON")

    def test_no_narrative_or_safe_narrative(self):
        for key, r in RES.items():
            if "text" in r:
                div = r["text"].get("div", "")
                self.assertTrue(div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">'), key)
                self.assertNotRegex(div.lower(), r"<script|\son[a-z]+=", key)

    def test_package_json(self):
        self.assertRegex(PKG["name"], r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$")
        self.assertFalse(PKG["name"].startswith("hl7."))
        self.assertEqual(PKG["version"], "0.1.0")
        self.assertEqual(PKG["fhirVersions"], ["5.0.0"])
        self.assertEqual(PKG["dependencies"].get("hl7.fhir.r5.core"), "5.0.0")
        self.assertEqual(PKG["type"], "IG")
        self.assertRegex(PKG["date"], r"^\d{14}$")
        self.assertEqual(PKG["license"], "CC-BY-4.0")
        for k in ("title", "description", "author", "jurisdiction", "canonical"):
            self.assertTrue(PKG.get(k), k)
        self.assertIn(STATEMENT, PKG["description"])
        self.assertIn("placeholder", PKG["description"])

    def test_dependencies_are_used(self):
        """Every declared dependency package defines something the content uses."""
        used = set(EXTERNAL_CANONICALS.values())
        for r in RES.values():
            for _, o in _walk(r):
                s = o.get("system")
                if isinstance(s, str) and s.startswith("http://terminology.hl7.org/CodeSystem/"):
                    used.add(THO_PKG)
        for name, ver in PKG["dependencies"].items():
            self.assertIn(f"{name}#{ver}", used, f"dependency {name}#{ver} is declared but not used")

    def test_canonical_metadata(self):
        urls = {}
        names = {}
        for key, r in RES.items():
            if "url" not in r:
                continue
            rt = r["resourceType"]
            self.assertEqual(r["url"], f"{BASE}/{rt}/{r['id']}", key)
            self.assertNotIn(r["url"], urls, f"duplicate canonical {r['url']} in {key} and {urls.get(r['url'])}")
            urls[r["url"]] = key
            # a logic Library has the version of its CQL library (FHIRHelpers 4.0.1; CQL includes resolve by it)
            self.assertEqual(r.get("version"), _cql_version(r) or PKG["version"], key)
            self.assertRegex(r.get("name", ""), NAME_RE, key)
            self.assertNotIn((rt, r["name"]), names, f"duplicate name in {key}")
            names[(rt, r["name"])] = key
            self.assertTrue(r.get("title"), key)
            self.assertEqual(r.get("status"), "draft", key)
            self.assertEqual(r.get("date"), "2026-11-27", key)
            if rt != "ResearchStudy":  # ResearchStudy (R5) has no versionAlgorithm/experimental/publisher/jurisdiction
                self.assertEqual(r.get("versionAlgorithmCoding", {}).get("code"), "semver", key)
                self.assertIs(r.get("experimental"), True, key)
                self.assertTrue(r.get("publisher"), key)
                self.assertTrue(r.get("description"), key)
                self.assertEqual(r["jurisdiction"][0]["coding"][0]["code"], "001", key)

    def test_non_canonical_identifiers(self):
        """HAPI's package installer needs an identifier on MedicationKnowledge/ClinicalUseDefinition (HAPI-1292)."""
        idents = set()
        for key, r in RES.items():
            if r["resourceType"] in ("MedicationKnowledge", "ClinicalUseDefinition"):
                self.assertNotIn("url", r, key)
                ids = r.get("identifier") or []
                self.assertTrue(ids, f"{key} has no identifier")
                k = (ids[0]["system"], ids[0]["value"])
                self.assertNotIn(k, idents, f"duplicate identifier {k}")
                idents.add(k)
                ext = {e["url"].rsplit("/", 1)[1]: e for e in r.get("extension", [])}
                self.assertEqual(ext["artifact-url"]["valueUri"], f"{BASE}/{r['resourceType']}/{r['id']}", key)
                self.assertEqual(ext["artifact-version"]["valueString"], PKG["version"], key)


# ----------------------------------------------------------------------------------------------------------------
# draft status and the clinical-review statement
# ----------------------------------------------------------------------------------------------------------------
class TestDraftStatement(unittest.TestCase):
    def test_every_resource_is_tagged_and_carries_statement(self):
        for key, r in RES.items():
            tags = r.get("meta", {}).get("tag", [])
            self.assertTrue(any(t.get("system", "").endswith(TAG_SYSTEM_TAIL) and t.get("code") == TAG_CODE
                                for t in tags), f"{key} lacks the needs-clinical-review tag")
            rt = r["resourceType"]
            if rt in ("PlanDefinition", "ActivityDefinition", "Library"):
                self.assertIn(STATEMENT, r.get("usage", ""), f"{key}: statement missing from usage")
            elif rt == "Citation":
                self.assertIn(STATEMENT, r.get("description", ""), key)
            elif rt in ("CodeSystem", "ValueSet"):
                self.assertIn(STATEMENT, r.get("purpose", ""), key)
            elif rt == "ResearchStudy":
                self.assertTrue(any(STATEMENT in n.get("text", "") for n in r.get("note", [])), key)
            elif rt in ("MedicationKnowledge", "ClinicalUseDefinition"):
                ext = {e["url"].rsplit("/", 1)[1]: e for e in r.get("extension", [])}
                self.assertEqual(ext.get("artifact-usage", {}).get("valueMarkdown"), STATEMENT, key)
                self.assertIn(STATEMENT, ext.get("artifact-description", {}).get("valueMarkdown", ""), key)
            else:
                self.fail(f"{key}: unexpected resource type {rt}")

    def test_every_resource_is_draft(self):
        for key, r in RES.items():
            if r["resourceType"] in ("MedicationKnowledge", "ClinicalUseDefinition"):
                # MedicationKnowledge.status has no 'draft'; the artifact-status modifier extension says so.
                mods = r.get("modifierExtension", [])
                self.assertIn({"url": "http://hl7.org/fhir/StructureDefinition/artifact-status", "valueCode": "draft"},
                              mods, key)
                self.assertNotEqual(r.get("status"), "active", key)
                if r["resourceType"] == "ClinicalUseDefinition":
                    self.assertEqual(r["status"]["coding"][0]["code"], "draft", key)
            else:
                self.assertEqual(r.get("status"), "draft", key)

    def test_investigational_options_say_investigational(self):
        # The source article says these approaches are "being studied in clinical trials"; it never says
        # "only within a clinical trial" (issue 13, finding 4), so the texts must not claim that either.
        inv = [r for k, r in RES.items() if k.startswith("PlanDefinition/inv-")]
        self.assertGreaterEqual(len(inv), 6)
        for r in inv:
            self.assertTrue(r["description"].startswith("Investigational: consider clinical-trial enrolment"), r["id"])
            self.assertNotIn("only within", json.dumps(r).lower(), r["id"])
            conds = " ".join(c["expression"]["description"].lower() for a in r["action"] for c in a.get("condition", []))
            self.assertIn("biopsy", conds, r["id"])
            self.assertIn("genomic testing", conds, r["id"])
            self.assertIn("platinum", conds, r["id"])
        parp = RES["PlanDefinition/inv-parp-inhibitors"]
        self.assertIn("homologous recombination repair", _text(parp["action"][0]["condition"]))


# ----------------------------------------------------------------------------------------------------------------
# claims
# ----------------------------------------------------------------------------------------------------------------
def _evidence_for_claims():
    """Shared evidence if present, else the verbatim subset copy."""
    return _load_json(SHARED) if SHARED.is_file() else SUBSET


class TestClaims(unittest.TestCase):
    def test_every_seed_claim_is_mapped(self):
        ev = _evidence_for_claims()
        self.assertEqual(len(ev["seed_claims"]), 20)
        self.assertEqual(set(CLAIMS["claims"]), set(ev["seed_claims"]))
        for s, text in ev["seed_claims"].items():
            self.assertEqual(CLAIMS["claims"][s]["text"], text, s)

    def test_every_claim_has_existing_carriers_with_phrases(self):
        for s, c in CLAIMS["claims"].items():
            self.assertTrue(c["carriers"], f"{s} has no carrier")
            for ref, phrases in c["carriers"].items():
                self.assertIn(ref, RES, f"{s}: carrier {ref} does not exist")
                self.assertTrue(phrases, f"{s}: no key phrases for {ref}")
                text = _text(RES[ref])
                for ph in phrases:
                    self.assertIn(ph.lower(), text, f"{s}: phrase {ph!r} not found in {ref}")

    def test_claim_citations_are_verified_support(self):
        ev = _evidence_for_claims()
        by_id = {c["id"]: c for c in ev["citations"]}
        cmap = CLAIMS["citation_map"]
        for s, c in CLAIMS["claims"].items():
            carriers_cite = set()
            for ref in c["carriers"]:
                carriers_cite |= _cited_canonicals(RES[ref])
            for cid in c["citations"]:
                self.assertIn(f"Citation/{cid}", RES, f"{s}: Citation {cid} not in package")
                ev_id = cmap[cid]
                rec = by_id.get(ev_id)
                self.assertIsNotNone(rec, f"{s}: {cid} -> {ev_id} not in evidence")
                self.assertIs(rec["verified"], True, f"{s}: {ev_id} not verified")
                self.assertIn(s, rec["supports"], f"{s}: {ev_id} does not list {s} in supports")
                self.assertIn(f"{BASE}/Citation/{cid}", carriers_cite, f"{s}: no carrier cites {cid}")

    def test_claims_without_verified_citation_are_attributed_to_source_article(self):
        for s, c in CLAIMS["claims"].items():
            if c["citations"]:
                continue
            self.assertTrue(c.get("attribution"), f"{s} has no citation and no attribution note")
            attributed = [ref for ref in c["carriers"] if "source article" in _text(RES[ref])]
            self.assertTrue(attributed, f"{s}: no carrier attributes the statement to the source article")

    def test_s7_has_no_citation(self):
        """The dossier has no verified citation for S7 (toxicities): none may be invented."""
        self.assertEqual(CLAIMS["claims"]["S7"]["citations"], [])
        for ref in CLAIMS["claims"]["S7"]["carriers"]:
            if ref.startswith("ClinicalUseDefinition/"):
                self.assertFalse(any("/Citation/" in c for c in _cited_canonicals(RES[ref])), ref)

    def test_citation_map_matches_package(self):
        cits = {k.split("/")[1] for k in RES if k.startswith("Citation/")}
        self.assertEqual(set(CLAIMS["citation_map"]), cits)


# ----------------------------------------------------------------------------------------------------------------
# identifiers and the evidence register
# ----------------------------------------------------------------------------------------------------------------
def _register_index():
    return {(e["system"], e["code"]): e for e in REGISTER["entries"]}


def _check_shared_ref(test, ev, e):
    """Assert that a register entry is verified in the given evidence document."""
    ref = e["shared_ref"]
    sec = ref["section"]
    code = e["code"]
    if sec == "drugs":
        d = next((x for x in ev["drugs"] if x["name"] == ref["name"]), None)
        test.assertIsNotNone(d, e)
        f = d.get(ref["field"])
        test.assertTrue(f and f.get("verified") is True and f.get("code") == code and f.get("system") == e["system"], e)
        if e.get("display"):
            test.assertEqual(e["display"].lower(), f["display"].lower(), e)
    elif sec == "atc_classes":
        a = next((x for x in ev["atc_classes"] if x["code"] == code), None)
        test.assertTrue(a and a.get("verified") is True and a["system"] == e["system"], e)
        if "UNVERIFIED" in (a.get("note") or "").upper():
            test.assertNotIn("display", e, f"{code}: class display is unverified but used")
        elif e.get("display"):
            test.assertEqual(e["display"], a["display"], e)
    elif sec in ("conditions", "procedures"):
        p = next((x for x in ev[sec] if x["system"] == ref["system"] and x["code"] == code), None)
        test.assertTrue(p and p.get("verified") is True, e)
        if e.get("display"):
            test.assertIn(e["display"].lower(), p["display"].lower(), e)
    elif sec == "genes":
        g = next((x for x in ev["genes"] if x["symbol"] == ref["symbol"]), None)
        test.assertTrue(g and g.get("verified") is True and g["hgnc_id"] == code and g["system"] == e["system"], e)
        if e.get("display"):
            test.assertEqual(e["display"], g["symbol"], e)
    elif sec == "citations":
        c = next((x for x in ev["citations"] if x["id"] == ref["id"]), None)
        test.assertTrue(c and c.get("verified") is True, e)
        test.assertEqual(c.get(ref["field"]), code, e)
        test.assertNotIn(ref["field"], c.get("unverified_fields") or [], e)
    elif sec == "trials":
        t = next((x for x in ev["trials"] if x.get("nct") == code), None)
        test.assertTrue(t and t.get("verified") is True, e)
    else:
        test.fail(f"unknown section {sec} in {e}")


class TestIdentifiers(unittest.TestCase):
    def test_every_identifier_in_definitions_is_registered(self):
        reg = _register_index()
        missing = []
        for key, r in RES.items():
            for s, code, disp in extract_identifiers(r):
                e = reg.get((s, code))
                if e is None:
                    missing.append(f"{key}: {s}|{code}")
                    continue
                if disp is not None:
                    self.assertEqual(disp, e.get("display"), f"{key}: display of {s}|{code} differs from register")
        self.assertEqual(missing, [], "identifiers not in evidence/register.json")

    def test_register_has_no_stale_entries(self):
        used = set()
        for r in RES.values():
            used |= {(s, c) for s, c, _ in extract_identifiers(r)}
        stale = [f"{e['system']}|{e['code']}" for e in REGISTER["entries"] if (e["system"], e["code"]) not in used]
        self.assertEqual(stale, [])

    def test_register_entries_have_sources(self):
        for e in REGISTER["entries"]:
            self.assertIn(e["system"], REGISTERED_SYSTEMS, e)
            self.assertEqual(e["kind"], REGISTERED_SYSTEMS[e["system"]], e)
            self.assertTrue(e.get("source"), e)
            if e["verified_by"] == "project":
                self.assertTrue(e.get("seen") and e.get("names") and e.get("quality"), e)
            else:
                self.assertEqual(e["verified_by"], "shared-evidence", e)
                self.assertTrue(e.get("shared_ref"), e)

    def test_register_verified_in_local_subset(self):
        for e in REGISTER["entries"]:
            if e["verified_by"] == "shared-evidence":
                _check_shared_ref(self, SUBSET, e)

    def test_register_verified_in_shared_evidence(self):
        ev = _shared()
        for e in REGISTER["entries"]:
            if e["verified_by"] == "shared-evidence":
                _check_shared_ref(self, ev, e)

    def test_project_entries_are_not_unverified_in_shared_evidence(self):
        """A project-verified identifier must not be one the shared dossier marks as NOT verified."""
        ev = _shared()
        bad = []
        for e in REGISTER["entries"]:
            if e["verified_by"] != "project":
                continue
            for d in ev["drugs"]:
                for f in ("rxnorm", "atc", "ncit", "unii"):
                    x = d.get(f)
                    if x and x.get("code") == e["code"] and x.get("verified") is False:
                        bad.append(e["code"])
            for c in ev["conditions"] + ev["procedures"]:
                if c.get("code") == e["code"] and c.get("verified") is False:
                    bad.append(e["code"])
        self.assertEqual(bad, [])

    def test_local_subset_is_verbatim_copy(self):
        ev = _shared()
        self.assertEqual(SUBSET["seed_claims"], ev["seed_claims"])
        keys = {"citations": "id", "trials": "nct", "genes": "symbol", "drugs": "name", "regimen_facts": "regimen"}
        for sec, k in keys.items():
            orig = {x.get(k): x for x in ev[sec]}
            for rec in SUBSET[sec]:
                self.assertEqual(rec, orig.get(rec.get(k)), f"{sec}: {rec.get(k)} differs from shared evidence")
        for sec in ("atc_classes", "conditions", "procedures"):
            for rec in SUBSET[sec]:
                self.assertIn(rec, ev[sec], sec)

    def test_citations_only_from_verified_evidence(self):
        ev = _evidence_for_claims()
        by_id = {c["id"]: c for c in ev["citations"]}
        for cid, ev_id in CLAIMS["citation_map"].items():
            c = by_id[ev_id]
            self.assertIs(c["verified"], True, ev_id)
            r = RES[f"Citation/{cid}"]
            ids = {i["system"]: i["value"] for i in r["citedArtifact"].get("identifier", [])}
            for sys_, field in ((PMID, "pmid"), (DOI, "doi"), (PMC, "pmcid")):
                if field in (c.get("unverified_fields") or []) or not c.get(field):
                    self.assertNotIn(sys_, ids, f"{cid}: {field} is not verified but used")
                else:
                    self.assertEqual(ids.get(sys_), c[field], f"{cid}: {field}")
            unv = " ".join(c.get("unverified_fields") or [])
            if "title" in unv or (c.get("title") or "").startswith("UNVERIFIED"):
                self.assertNotIn("title", r["citedArtifact"], f"{cid}: unverified title used")
            else:
                self.assertEqual(r["citedArtifact"]["title"][0]["text"], c["title"], cid)
            if "authors" in (c.get("unverified_fields") or []) or any(a.startswith("UNVERIFIED") for a in c["authors"]):
                self.assertNotIn("contributorship", r["citedArtifact"], f"{cid}: unverified authors used")

    def test_no_unverified_dose(self):
        """The often-quoted cisplatin 75 mg/m2 dose is not verified; no cisplatin dose is shown at all."""
        for key, r in RES.items():
            for t in _strings(r):
                self.assertNotRegex(t, r"\b75\s*mg/m", key)
                self.assertNotRegex(t.lower(), r"cisplatin\s+\d", key)

    def test_doses_are_attributed(self):
        for key, r in RES.items():
            for t in _strings(r):
                if DOSE_RE.search(t):
                    self.assertTrue(any(m.lower() in t.lower() for m in DOSE_ATTRIBUTION),
                                    f"{key}: dose without attribution: {t[:120]}")
        # no structured (orderable) doses anywhere
        for key, r in RES.items():
            for _, o in _walk(r):
                self.assertNotIn("doseAndRate", o, key)


# ----------------------------------------------------------------------------------------------------------------
# recommendations, references, canonicals, codes, extensions
# ----------------------------------------------------------------------------------------------------------------
def _pd_type(r):
    return r.get("type", {}).get("coding", [{}])[0].get("code")


def _all_actions(actions):
    for a in actions or []:
        yield a
        yield from _all_actions(a.get("action"))


class TestIntegrity(unittest.TestCase):
    def test_recommending_actions_cite_a_citation(self):
        recs = [r for r in RES.values() if r["resourceType"] == "PlanDefinition" and _pd_type(r) == "eca-rule"]
        self.assertGreaterEqual(len(recs), 10)
        for r in recs:
            self.assertTrue(any(ra.get("type") == "citation" for ra in r.get("relatedArtifact", [])), r["id"])
            top = [id(a) for a in r["action"]]
            for a in _all_actions(r["action"]):
                if "definitionCanonical" not in a and id(a) not in top:
                    continue  # grouping sub-action without an order of its own
                cits = [d for d in a.get("documentation", []) if d.get("type") == "citation"]
                self.assertTrue(cits, f"{r['id']} action {a.get('id')} has no citation")
                for d in cits:
                    self.assertIn(d["resource"].split("|")[0], BY_URL, d)
                    self.assertEqual(BY_URL[d["resource"].split("|")[0]][1]["resourceType"], "Citation")
        # recommendations point at regimens/activities
        for rid in ("rec-first-line-platinum-etoposide", "rec-second-line-single-agent"):
            tgt = RES[f"PlanDefinition/{rid}"]["action"][0]["definitionCanonical"]
            self.assertEqual(_pd_type(BY_URL[tgt][1]), "order-set", rid)

    def test_no_strength_or_quality_ratings_without_source(self):
        """No cited verified source rates these uses in NEPC, so no rating extension may appear."""
        for key, r in RES.items():
            for _, o in _walk(r):
                u = o.get("url", "")
                self.assertNotIn("cqf-strengthOfRecommendation", u, key)
                self.assertNotIn("cqf-qualityOfEvidence", u, key)

    def test_regimen_structure(self):
        r = RES["PlanDefinition/regimen-platinum-etoposide"]
        cycle = r["action"][0]
        rep = cycle["timingTiming"]["repeat"]
        self.assertEqual((rep["duration"], rep["durationUnit"]), (21, "d"))
        plat = next(a for a in cycle["action"] if a["id"] == "platinum")
        self.assertEqual(plat["selectionBehavior"], "exactly-one")
        self.assertEqual({a["id"] for a in plat["action"]}, {"cisplatin", "carboplatin"})
        eto = next(a for a in cycle["action"] if a["id"] == "etoposide")
        self.assertEqual(eto["relatedAction"][0]["targetId"], "platinum")
        ids = {a.get("id") for a in _all_actions(r["action"])}
        for a in _all_actions(r["action"]):
            for ra in a.get("relatedAction", []):
                self.assertIn(ra["targetId"], ids)

    def test_references_resolve(self):
        for key, r in RES.items():
            contained = {c["id"] for c in r.get("contained", [])}
            for path, o in _walk(r):
                ref = o.get("reference")
                if isinstance(ref, str) and path and path[-1] != "extension":
                    if ref.startswith("#"):
                        self.assertIn(ref[1:], contained, f"{key}: {ref}")
                    else:
                        self.assertIn(ref, RES, f"{key}: reference {ref} does not resolve in the package")

    def _canonical_values(self, r):
        """(path, canonical) for canonical-typed values."""
        for path, o in _walk(r):
            for k in ("definitionCanonical", "subjectCanonical", "valueCanonical"):
                if isinstance(o.get(k), str):
                    yield path + (k,), o[k]
            if isinstance(o.get("library"), list):
                for v in o["library"]:
                    yield path + ("library",), v
            if "type" in o and isinstance(o.get("resource"), str) and isinstance(o.get("type"), str):
                yield path + ("resource",), o["resource"]
            if isinstance(o.get("url"), str) and ":" in o["url"] \
                    and path and path[-2 if isinstance(path[-1], int) else -1] in ("extension", "modifierExtension"):
                yield path + ("url",), o["url"]
        for p in r.get("meta", {}).get("profile", []):
            yield ("meta", "profile"), p

    def test_canonicals_resolve(self):
        for key, r in RES.items():
            for path, c in self._canonical_values(r):
                url, _, ver = c.partition("|")
                if url.startswith(BASE + "/"):
                    self.assertIn(url, BY_URL, f"{key}: canonical {c} does not resolve in the package")
                    if ver:
                        self.assertEqual(ver, BY_URL[url][1]["version"], f"{key}: {c}")
                    if "definitionCanonical" in path:
                        self.assertIn(BY_URL[url][1]["resourceType"], ("ActivityDefinition", "PlanDefinition"), c)
                elif url in EXTERNAL_CANONICALS:
                    pass
                elif url in EXTERNAL_CODE_SYSTEMS and "resource" in path:
                    pass  # manifest depends-on a terminology
                elif url.startswith(HL7_CS_PREFIXES) and "resource" in path and key.startswith("Library/"):
                    pass  # a Library depends-on an HL7 code system (existence: test_manifest_hl7_code_systems_exist)
                else:
                    self.fail(f"{key}: canonical {c} at {'.'.join(map(str, path))} is neither in the package nor a listed dependency")

    def test_external_canonicals_exist_in_dependency_packages(self):
        for url, pkg in sorted(EXTERNAL_CANONICALS.items()):
            d = _pkg_dir(pkg)
            name = url.rsplit("/", 1)[1]
            f = d / f"StructureDefinition-{name}.json"
            self.assertTrue(f.is_file(), f"{url} not found in {pkg}")
            self.assertEqual(_load_json(f)["url"], url)
            self.assertIn(pkg.split("#")[0], PKG["dependencies"])

    def test_code_systems_are_known(self):
        local = {r["url"]: r for r in RES.values() if r["resourceType"] == "CodeSystem"}
        for key, r in RES.items():
            for _, o in _walk(r):
                s = o.get("system")
                if not (isinstance(s, str) and isinstance(o.get("code"), str)):
                    continue
                if s in local:
                    self.assertIn(o["code"], {c["code"] for c in local[s]["concept"]}, f"{key}: {s}|{o['code']}")
                elif s.startswith("http://hl7.org/fhir/") or s.startswith("http://terminology.hl7.org/"):
                    pass  # checked against the packages in test_hl7_codes_exist
                else:
                    self.assertIn(s, EXTERNAL_CODE_SYSTEMS, f"{key}: unknown code system {s}")

    def test_hl7_codes_exist(self):
        systems = {}
        for pkg in HL7_CS_PACKAGES:
            for f in _pkg_dir(pkg).glob("CodeSystem-*.json"):
                cs = _load_json(f)

                def walk(cc, acc):
                    for c in cc:
                        acc.add(c["code"])
                        walk(c.get("concept", []), acc)
                    return acc
                systems.setdefault(cs["url"], set()).update(walk(cs.get("concept", []), set()))
        for key, r in RES.items():
            for _, o in _walk(r):
                s = o.get("system")
                if isinstance(s, str) and isinstance(o.get("code"), str) and (
                        s.startswith("http://hl7.org/fhir/") or s.startswith("http://terminology.hl7.org/")):
                    self.assertIn(s, systems, f"{key}: code system {s} not in {HL7_CS_PACKAGES}")
                    self.assertIn(o["code"], systems[s], f"{key}: {s}|{o['code']} does not exist")

    def test_action_behaviour_codes(self):
        """Plain code elements with required bindings (not Codings) hold codes of their R5 code systems."""
        fields = {"groupingBehavior": "action-grouping-behavior", "selectionBehavior": "action-selection-behavior",
                  "requiredBehavior": "action-required-behavior", "precheckBehavior": "action-precheck-behavior",
                  "cardinalityBehavior": "action-cardinality-behavior", "relationship": "action-relationship-type",
                  "kind": None, "intent": "request-intent"}
        d = _pkg_dir(CORE_PKG)

        def codes(name):
            out = set()

            def walk(cc):
                for c in cc:
                    out.add(c["code"])
                    walk(c.get("concept", []))
            walk(_load_json(d / f"CodeSystem-{name}.json")["concept"])
            return out
        allowed = {f: codes(cs) for f, cs in fields.items() if cs}
        allowed["condition.kind"] = codes("action-condition-kind")
        allowed["relatedArtifact.type"] = codes("related-artifact-type")
        for key, r in RES.items():
            for path, o in _walk(r):
                for f in fields:
                    if f in allowed and isinstance(o.get(f), str):
                        self.assertIn(o[f], allowed[f], f"{key}: {f}={o[f]}")
                if "condition" in path and isinstance(o.get("kind"), str):
                    self.assertIn(o["kind"], allowed["condition.kind"], key)
                if any(p in ("relatedArtifact", "documentation") for p in path if isinstance(p, str)) \
                        and isinstance(o.get("type"), str):
                    self.assertIn(o["type"], allowed["relatedArtifact.type"], key)

    def test_manifest_hl7_code_systems_exist(self):
        urls = set()
        for pkg in HL7_CS_PACKAGES:
            for f in _pkg_dir(pkg).glob("CodeSystem-*.json"):
                urls.add(_load_json(f)["url"])
        for ra in RES["Library/nepc-manifest"]["relatedArtifact"]:
            if ra["type"] == "depends-on" and ra["resource"].startswith(HL7_CS_PREFIXES) \
                    and "/StructureDefinition/" not in ra["resource"] \
                    and ra["resource"] not in REGISTERED_SYSTEMS:  # e.g. ICD-O-3: a NamingSystem, content external
                self.assertIn(ra["resource"], urls, f"manifest depends-on {ra['resource']} not in dependency packages")

    def test_extension_contexts(self):
        d = _pkg_dir(EXT_PKG)
        ctx = {}
        for url in EXTERNAL_CANONICALS:
            f = d / f"StructureDefinition-{url.rsplit('/', 1)[1]}.json"
            if f.is_file():
                sd = _load_json(f)
                ctx[url] = {c["expression"] for c in sd.get("context", []) if c["type"] == "element"}
                ctx[url + "#modifier"] = sd["snapshot"]["element"][0].get("isModifier", False)
        for key, r in RES.items():
            rt = r["resourceType"]
            for path, o in _walk(r):
                for kind in ("extension", "modifierExtension"):
                    for e in o.get(kind, []) if isinstance(o.get(kind), list) else []:
                        url = e["url"]
                        if url not in ctx:
                            continue
                        self.assertEqual(kind == "modifierExtension", ctx[url + "#modifier"],
                                         f"{key}: {url} used as {kind}")
                        if not path:
                            where = {rt, "DomainResource", "Resource"}
                        elif "action" in path:
                            where = {f"{rt}.action"}
                        elif path[-1] == "_resource":
                            where = {"canonical"}
                        elif "relatedArtifact" in path:
                            where = {"RelatedArtifact"}
                        else:
                            where = {".".join([rt] + [p for p in path if isinstance(p, str)])}
                        self.assertTrue(ctx[url] & where, f"{key}: {url} not allowed at {path} (contexts {sorted(ctx[url])})")

    def test_manifest_lists_every_artifact_and_dependency(self):
        lib = RES["Library/nepc-manifest"]
        self.assertEqual(lib["type"]["coding"][0]["code"], "asset-collection")
        composed = []
        deps = set()
        for ra in lib["relatedArtifact"]:
            if ra["type"] == "composed-of":
                composed.append(ra.get("resourceReference", {}).get("reference") or
                                _ref_of(BY_URL[ra["resource"].split("|")[0]][1]))
                if "resource" in ra:
                    target = BY_URL[ra["resource"].split("|")[0]][1]
                    self.assertEqual(ra["resource"].split("|")[1], _cql_version(target) or PKG["version"])
            elif ra["type"] == "depends-on":
                deps.add(ra["resource"])
        self.assertEqual(len(composed), len(set(composed)), "duplicate composed-of entries")
        self.assertEqual(set(composed), set(RES) - {"Library/nepc-manifest"})
        used = set()
        for r in RES.values():
            for path, c in self._canonical_values(r):
                if c in EXTERNAL_CANONICALS:
                    used.add(c)
            for _, o in _walk(r):
                s = o.get("system")
                if isinstance(s, str) and isinstance(o.get("code"), str) and not s.startswith(BASE):
                    used.add(s)
        self.assertEqual(used - deps, set(), "external dependencies missing from the manifest")

    def test_research_studies(self):
        rs = [r for k, r in RES.items() if k.startswith("ResearchStudy/")]
        self.assertGreaterEqual(len(rs), 5)
        for r in rs:
            ident = r["identifier"][0]
            self.assertEqual(ident["system"], CTGOV)
            self.assertRegex(ident["value"], r"^NCT\d{8}$")
            self.assertEqual(r["id"], "rs-" + ident["value"].lower())
            self.assertEqual(r["phase"]["coding"][0]["system"], "http://terminology.hl7.org/CodeSystem/research-study-phase")
            self.assertTrue(any("2026-11-27" in n["text"] and "status" in n["text"] for n in r["note"]), r["id"])
            for ps in r.get("progressStatus", []):
                self.assertEqual(ps["state"]["coding"][0]["system"], "http://hl7.org/fhir/research-study-status")


if __name__ == "__main__":
    unittest.main()
