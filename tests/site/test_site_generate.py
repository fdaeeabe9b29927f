"""The site generator on small made-up packages: structure, safety, determinism (no browser)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fhirpkg.issues import Issue, Severity
from fhirpkg.content.project import Manifest
from fhirpkg.publish.site import coverage, generate, pathway, qa
from fhirpkg.publish.site.html import markdown, wrap
from fhirpkg.publish.site.index import SiteIndex

BASE = "http://example.org/t"
ROOT = Path(__file__).resolve().parents[2]


def pd(rid, ptype, actions, **extra):
    return {"resourceType": "PlanDefinition", "id": rid, "url": f"{BASE}/PlanDefinition/{rid}", "version": "1.0.0",
            "title": extra.pop("title", rid.upper()), "status": "draft",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
                                 "code": ptype, "display": ptype}]},
            "action": actions, **extra}


def ad(rid, code):
    return {"resourceType": "ActivityDefinition", "id": rid, "url": f"{BASE}/ActivityDefinition/{rid}",
            "title": rid, "status": "draft", "kind": "MedicationRequest",
            "productCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": code, "display": rid}]}}


def condition(name):
    return {"kind": "applicability", "expression": {"language": "text/cql-identifier", "expression": name,
                                                    "description": f"{name} (described)"}}


def canon(rtype, rid):
    return f"{BASE}/{rtype}/{rid}"


def resources():
    protocol = pd("path", "clinical-protocol", [
        {"id": "second", "title": "Second line", "definitionCanonical": canon("PlanDefinition", "rec2"),
         "relatedAction": [{"targetId": "first", "relationship": "after-end"}]},
        {"id": "first", "title": "First line", "definitionCanonical": canon("PlanDefinition", "rec1")},
        {"id": "care", "title": "Supportive care", "selectionBehavior": "any", "action": [
            {"id": "rt", "title": "Radiotherapy", "definitionCanonical": canon("ActivityDefinition", "ad-c")},
            {"id": "elsewhere", "title": "Not here", "definitionCanonical": "http://other.org/PlanDefinition/zzz"}]},
        {"id": "info", "title": "Information", "definitionCanonical": canon("PlanDefinition", "info")},
    ], goal=[{"id": "g1", "description": {"text": "Live longer"}}])
    rec1 = pd("rec1", "eca-rule", [{"id": "offer", "title": "Offer", "condition": [condition("Biopsy Confirmed NEPC"),
                                                                                      condition("No Prior Platinum")],
                                    "definitionCanonical": canon("PlanDefinition", "os1")}],
              relatedArtifact=[{"type": "citation", "display": "Smith 2020", "resource": canon("Citation", "cit1")},
                               {"type": "documentation", "resource": canon("ResearchStudy", "rs1")}])
    rec2 = pd("rec2", "eca-rule", [{"id": "offer", "condition": [condition("Biopsy Confirmed NEPC"),
                                                                 condition("Progression After Platinum")]}])
    order_set = pd("os1", "order-set", [{
        "id": "cycle", "title": "Cycle", "selectionBehavior": "all",
        "timingTiming": {"repeat": {"frequency": 1, "period": 21, "periodUnit": "d", "duration": 21, "durationUnit": "d"}},
        "action": [
            {"id": "platinum", "title": "Platinum", "selectionBehavior": "exactly-one", "action": [
                {"id": "a", "title": "Drug A", "definitionCanonical": canon("ActivityDefinition", "ad-a")},
                {"id": "b", "title": "Drug B", "definitionCanonical": canon("ActivityDefinition", "ad-b")}]},
            {"id": "c", "title": "Drug C", "definitionCanonical": canon("ActivityDefinition", "ad-c"),
             "extension": [{"url": pathway.DAYS_OF_CYCLE, "extension": [
                 {"url": "day", "valueInteger": d} for d in (1, 2, 3, 8)]}]}]}])
    info = pd("info", "eca-rule", [{"id": "note", "title": "Does not work"}])
    mk = {"resourceType": "MedicationKnowledge", "id": "mk-a",
          "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/artifact-url",
                         "valueUri": canon("MedicationKnowledge", "mk-a")},
                        {"url": "http://hl7.org/fhir/StructureDefinition/artifact-title", "valueString": "MK Drug A"}],
          "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "111", "display": "a"},
                              {"system": "http://www.whocc.no/atc", "code": "L01XA01", "display": "a"}]},
          "medicineClassification": [{"type": {"text": "ATC level 4"}, "classification": [
              {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01XA", "display": "Platinum compounds"}]}]}],
          "clinicalUseIssue": [{"reference": "ClinicalUseDefinition/cud1"}]}
    cud = {"resourceType": "ClinicalUseDefinition", "id": "cud1", "type": "undesirable-effect",
           "subject": [{"reference": "PlanDefinition/os1"}, {"reference": "ActivityDefinition/ad-a"}],
           "undesirableEffect": {"symptomConditionEffect": {"concept": {"text": "Hair loss"}}},
           "text": {"status": "additional", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><h1>Head</h1><p id="x">Safe '
                    '<a href="#x">self</a> <a href="PlanDefinition/os1">regimen</a> '
                    '<a href="https://example.com/a?b=1&amp;c=2">web</a></p></div>'}}
    rs = {"resourceType": "ResearchStudy", "id": "rs1", "url": canon("ResearchStudy", "rs1"), "status": "draft",
          "title": "A trial", "date": "2026-01-01",
          "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT01234567"}],
          "phase": {"text": "Phase 2"}, "focus": [{"concept": {"coding": [
              {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "111"}]}}],
          "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p>'
                   '<script>alert(1)</script></div>'}}
    cit = {"resourceType": "Citation", "id": "cit1", "url": canon("Citation", "cit1"), "status": "draft",
           "title": "Citation: A study", "description": "claims carried: S1",
           "citedArtifact": {"identifier": [{"system": "https://doi.org", "value": "10.1000/xyz"},
                                            {"system": "https://pubmed.ncbi.nlm.nih.gov", "value": "123"}],
                             "title": [{"text": "A study"}],
                             "contributorship": {"summary": [{"value": "Smith J, Doe A"}]},
                             "publicationForm": [{"publicationDateText": "2020"}]}}
    return [protocol, rec1, rec2, order_set, info, ad("ad-a", "111"), ad("ad-b", "222"), ad("ad-c", "333"),
            mk, cud, rs, cit]


def project(tmp_path, claims=None, hl7=None):
    root = tmp_path / "definitions"
    root.mkdir(exist_ok=True)
    if claims is not None:
        (tmp_path / "evidence").mkdir(exist_ok=True)
        (tmp_path / "evidence" / "claims.json").write_text(json.dumps(claims))
    if hl7 is not None:
        (tmp_path / "qa").mkdir(exist_ok=True)
        (tmp_path / "qa" / "hl7-validator-outcome.json").write_text(json.dumps(hl7))
    manifest = Manifest({"name": "org.example.t", "version": "1.0.0", "canonical": BASE, "title": "Test package",
                         "description": "A **test** package.", "date": "20260101000000", "fhirVersions": ["5.0.0"],
                         "license": "CC0-1.0", "author": "me", "dependencies": {"hl7.fhir.r5.core": "5.0.0"}},
                        root / "package.json")
    return SimpleNamespace(root=root, manifest=manifest, resources=[])


def site(tmp_path, **kw):
    issues = kw.pop("issues", [])
    out = generate(project=project(tmp_path, **kw), resources=resources(), ig=None,
                   files={"org.example.t-1.0.0.transaction.json": b"{}", "package.tgz": b"x"}, issues=issues)
    return {k: v.decode() if k.endswith(".html") else v for k, v in out.items()}


def test_one_page_per_resource_plus_the_shared_pages(tmp_path):
    out = site(tmp_path)
    expected = {"index.html", "artifacts.html", "citations.html", "coverage.html", "qa.html", "style.css"}
    expected |= {f"{r['resourceType']}-{r['id']}.html" for r in resources() if r["resourceType"] != "Citation"}
    assert set(out) == expected


def test_same_input_same_bytes_and_nothing_from_elsewhere(tmp_path):
    a, b = site(tmp_path), site(tmp_path)
    assert a == b
    for name, text in a.items():
        if name.endswith(".html"):
            assert '<html lang="en">' in text and "Content-Security-Policy" in text
            assert "<script" not in text, name
            assert not re.search(r'<(link|img|script|iframe)[^>]+(href|src)="(https?:)?//', text), name


def test_pathway_lanes_follow_the_structure(tmp_path):
    index = SiteIndex.build(resources(), BASE)
    p = pathway.read(index.by_key["PlanDefinition/path"], index)
    kinds = [(lane.kind, [o.key for o in lane.options]) for lane in p.lanes]
    assert kinds == [("sequence", ["first", "second"]), ("group", ["rt", "elsewhere"]), ("single", ["info"])]
    first, second = p.lanes[0].options
    assert second.relation == "after it ends"
    assert first.detail == "(Drug A or Drug B) + Drug C, every 21 days (21-day cycle)"
    assert [c.short for c in p.lanes[0].shared] == ["Biopsy confirmed NEPC"]
    assert [c.short for c in first.criteria] == ["Biopsy confirmed NEPC", "No prior platinum"]
    assert len(first.citations) == 1 and len(first.studies) == 1
    assert p.lanes[2].options[0].informational  # its definition orders nothing
    assert p.lanes[1].options[1].target is None
    svg = pathway.svg(p)
    assert svg.count("data-option=") == 5 and 'data-options="5"' in svg
    assert 'href="PlanDefinition-rec1.html"' in svg and "zzz" not in svg.split("<desc")[0]


def test_home_shows_status_downloads_and_the_diagram(tmp_path):
    home = site(tmp_path)["index.html"]
    assert "Draft content" in home and "status draft" in home
    assert 'href="../org.example.t-1.0.0.transaction.json"' in home and 'href="../SHA256SUMS"' in home
    assert home.count('<svg class="pathway"') == 1
    assert "<strong>test</strong>" in home  # manifest markdown


def test_plan_definition_page_shows_actions_timing_and_evidence(tmp_path):
    page = site(tmp_path)["PlanDefinition-os1.html"]
    assert "every 21 days (21-day cycle)" in page
    assert "days 1–3, 8 of each cycle" in page
    assert "choose exactly one" in page
    assert 'href="ActivityDefinition-ad-a.html"' in page
    assert "Hair loss" in page  # side effects from the ClinicalUseDefinition whose subject it is
    rec = site(tmp_path)["PlanDefinition-rec1.html"]
    assert 'href="citations.html#cit1"' in rec and 'href="ResearchStudy-rs1.html"' in rec


def test_unresolved_canonical_is_text_not_a_link(tmp_path):
    page = site(tmp_path)["PlanDefinition-path.html"]
    assert "http://other.org/PlanDefinition/zzz" in page
    assert 'href="http://other.org' not in page


def test_medication_page_codes_atc_side_effects_regimens_studies(tmp_path):
    page = site(tmp_path)["MedicationKnowledge-mk-a.html"]
    assert "RxNorm" in page and "http://www.nlm.nih.gov/research/umls/rxnorm" in page
    assert "L01XA" in page and "Platinum compounds" in page
    assert "Hair loss" in page
    assert 'href="PlanDefinition-os1.html"' in page  # regimen using it, via its ActivityDefinition
    assert 'href="ResearchStudy-rs1.html"' in page


def test_research_study_page_links_the_registry(tmp_path):
    page = site(tmp_path)["ResearchStudy-rs1.html"]
    assert 'href="https://clinicaltrials.gov/study/NCT01234567"' in page
    assert "Phase 2" in page and "2026-01-01" in page


def test_citations_have_doi_and_pubmed_links(tmp_path):
    page = site(tmp_path)["citations.html"]
    assert 'href="https://doi.org/10.1000/xyz"' in page and 'href="https://pubmed.ncbi.nlm.nih.gov/123/"' in page
    assert 'id="cit1"' in page


def test_unsafe_narrative_is_only_shown_escaped(tmp_path):
    page = site(tmp_path)["ResearchStudy-rs1.html"]
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "failed the XHTML safety check" in page


def test_safe_narrative_is_shown_with_its_ids_and_links_rewritten(tmp_path):
    page = site(tmp_path)["ClinicalUseDefinition-cud1.html"]
    narrative = page.split('class="narrative"', 1)[1].split("</div>", 1)[0]
    assert 'id="n-x"' in narrative and 'href="#n-x"' in narrative
    assert 'href="PlanDefinition-os1.html"' in narrative
    assert 'href="https://example.com/a?b=1&amp;c=2"' in narrative
    assert "xmlns" not in narrative
    assert '<p class="narrative-heading">Head</p>' in narrative and "<h1>Head" not in page


def test_markdown_escapes_and_links_only_the_web():
    html = markdown("<b>x</b> **y** [t](javascript:alert(1)) see https://pubmed.ncbi.nlm.nih.gov/1/c.\n\n"
                    "- one\n- two\n\nplaceholder http://example.org/fhir/t")
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "<strong>y</strong>" in html
    assert 'href="javascript' not in html and "[t](javascript:alert(1))" in html
    assert '<a href="https://pubmed.ncbi.nlm.nih.gov/1/c">' in html
    assert 'href="http://example.org' not in html  # reserved example domains are placeholders
    assert "<ul><li>one</li><li>two</li></ul>" in html


def test_wrap_keeps_words_and_cuts_only_overlong_ones():
    assert wrap("a bb ccc dddd", 6) == ["a bb", "ccc", "dddd"]
    assert all(len(line) <= 5 for line in wrap("abcdefghijkl", 5))


@pytest.mark.parametrize("doc", [
    {"claims": {"S1": {"text": "[1] Claim one", "carriers": {"PlanDefinition/rec1": ["offer"]}, "citations": ["cit1"],
                       "attribution": "source only"}}},
    {"claims": [{"id": "S1", "text": "[1] Claim one", "carriers": [{"resource": canon("PlanDefinition", "rec1"),
                                                                   "phrases": ["offer"]}], "citations": ["cit1"],
                 "note": "source only"}]},
    [{"id": "S1", "text": "[1] Claim one", "carriers": ["rec1"], "phrases": ["offer"], "citations": ["cit1"],
      "note": "source only"}],
])
def test_claim_map_shapes(doc):
    (claim,) = coverage.parse_claims(doc)
    assert (claim.id, claim.text, claim.source_ref, claim.note) == ("S1", "Claim one", "[1]", "source only")
    assert claim.citations == ("cit1",)
    index = SiteIndex.build(resources(), BASE)
    assert all(coverage.resolve_loose(index, c.target).id == "rec1" for c in claim.carriers)


def test_coverage_checks_carriers_and_phrases(tmp_path):
    claims = {"claims": {"S1": {"text": "[1] One", "carriers": {"PlanDefinition/rec1": ["Offer", "absent words"]},
                                "citations": ["cit1"]},
                         "S2": {"text": "[2] Two", "carriers": {"PlanDefinition/nope": []}}}}
    page = site(tmp_path, claims=claims)["coverage.html"]
    assert "1 of 2 claims have at least one carrier" in page
    assert "“Offer” (found)" in page and "“absent words” <strong>(not found)</strong>" in page
    assert "not in this package" in page
    assert 'href="citations.html#cit1">Smith J 2020<' in page


def test_coverage_without_a_claim_map_says_so(tmp_path):
    page = site(tmp_path)["coverage.html"]
    assert "claim map is not available" in page and 'href="citations.html#cit1"' in page


def test_qa_shows_our_issues_and_the_hl7_outcome_when_given(tmp_path):
    issues = [Issue(Severity.ERROR, "structure", "Bad <thing>", "rule-x", "PlanDefinition.action", "definitions/x.json", 3, 4)]
    page = site(tmp_path, issues=issues)["qa.html"]
    assert "Not valid" in page and "Bad &lt;thing&gt;" in page and "definitions/x.json:3:4" in page
    assert "Not available for this build" in page
    hl7 = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "OperationOutcome",
        "extension": [{"url": qa.EXT_FILE, "valueString": "/abs/definitions/PlanDefinition/os1.json"}],
        "issue": [{"severity": "warning", "code": "invariant", "details": {"text": "HL7 says hi"},
                   "expression": ["PlanDefinition"],
                   "extension": [{"url": qa.EXT_LINE, "valueInteger": 1}, {"url": qa.EXT_COL, "valueInteger": 2}]},
                  {"severity": "information", "code": "informational", "details": {"text": "All OK"}}]}}]}
    page = site(tmp_path, hl7=hl7)["qa.html"]
    assert "HL7 says hi" in page and "os1.json:1:2" in page and "All OK" not in page
    assert "Not available for this build" not in page


def test_timing_in_words():
    assert pathway.describe_timing({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}) == "2 times every day"
    assert pathway.describe_timing({"repeat": {"period": 3, "periodUnit": "wk", "count": 4}}) == "every 3 weeks, 4 times"


@pytest.mark.slow
def test_real_package_site_is_reproducible_and_quick():
    """The site of definitions/ itself: same bytes twice, built well within the build's budget."""
    import fhirpkg.publish.site as site_module
    from fhirpkg.publish import build as b

    captured = {}
    real = site_module.generate

    def spy(**kw):
        captured.update(kw)
        return real(**kw)

    site_module.generate = spy
    try:
        result = b.build(ROOT / "definitions", force=True)
    finally:
        site_module.generate = real
    t0 = time.perf_counter()
    again = real(**captured)
    seconds = time.perf_counter() - t0
    assert {f"site/{k}": v for k, v in again.items()} == {k: v for k, v in result.files.items() if k.startswith("site/")}
    assert seconds < 5, f"site generation took {seconds:.2f} s"
