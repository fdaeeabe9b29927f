"""Content tests that fail on untruth (issue 13): numbers, phases, population qualifiers, Citation identity,
regimen drugs and hedges are checked against quoted source excerpts in evidence/quantitative-claims.json.

The mutation test applies clinically meaningful changes to a temporary copy of definitions/ and asserts that
truthcheck.check reports each one (kill rate printed; 100 % required).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import truthcheck as tc

pytestmark = pytest.mark.content

ROOT = tc.ROOT
DEFS = ROOT / "definitions"
SHARED = Path(os.environ.get("NEPC_SHARED", ROOT.parent / "shared"))  # ../shared beside the checkout


def test_definitions_have_no_untrue_numbers():
    problems = tc.check(DEFS)
    assert problems == [], "\n".join(problems)


def test_register_records_are_complete():
    reg = tc.load_register()
    assert len(reg["records"]) >= 100
    for rec in reg["records"]:
        for field in ("id", "resource", "element", "statement", "excerpt", "numbers", "population", "date_seen"):
            assert field in rec, (rec.get("id"), field)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rec["date_seen"]), rec["id"]
        ex = reg["excerpts"][rec["excerpt"]]
        assert ex["locator"] and ex["text"], rec["excerpt"]
        if rec["excerpt"] == "source-article":
            assert rec["note"] and "source article only" in rec["note"], rec["id"]
        # a record's citation must be a package Citation
        if rec["citation"] not in (None, "source article"):
            assert (DEFS / "Citation" / f"{rec['citation']}.json").exists(), rec["id"]


def test_source_article_excerpts_are_verbatim():
    """Sentences attributed to the source article must be in it (skipped when ../shared is absent)."""
    seed = SHARED / "seed" / "nepc-treatment-options.txt"
    if not seed.exists():
        pytest.skip("../shared/seed/nepc-treatment-options.txt not present on this machine")
    text = tc.norm(seed.read_text(encoding="utf-8"))
    reg = tc.load_register()
    for sentence in re.split(r"(?<=\.)\s+", reg["excerpts"]["source-article"]["text"]):
        assert tc.norm(sentence).rstrip(".") in text, sentence
    for rid, spec in reg["regimens"].items():
        if rid != "orderset-bone-targeted-agents":
            assert tc.norm(spec["source_sentence"]) in text, rid
    for h in reg["hedges"]:
        if h["source"].startswith("source article:"):
            quoted = h["source"].split(":", 1)[1].strip().strip("'")
            assert tc.norm(quoted) in text, h


def test_carried_evidence_subset_matches_shared():
    """The project carries what its tests need; when ../shared is present the copy must agree with it."""
    shared = SHARED / "evidence" / "evidence.json"
    if not shared.exists():
        pytest.skip("../shared/evidence/evidence.json not present on this machine")
    full = json.loads(shared.read_text(encoding="utf-8"))
    subset = json.loads((ROOT / "evidence" / "shared-evidence-subset.json").read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in full["citations"]}
    for c in subset["citations"]:
        assert by_id.get(c["id"]) == c, c["id"]
    trials = {t.get("nct"): t for t in full["trials"]}
    for t in subset["trials"]:
        assert trials.get(t.get("nct")) == t, t.get("nct")


# ---------------------------------------------------------------------------------------------- mutations
# A mutation changes the text of one file of definitions/ (path relative to definitions/); the checks then run
# in-process on the mutated set, so 30 mutants stay well inside the 30-second budget.

def _sub(rel, old, new, count=1):
    def apply(texts: dict[str, str]):
        assert old in texts[rel], (rel, old)
        texts[rel] = texts[rel].replace(old, new, count)
    return apply


def _json(rel, fn):
    def apply(texts: dict[str, str]):
        r = json.loads(texts[rel])
        fn(r)
        texts[rel] = json.dumps(r, indent=2, ensure_ascii=False)
    return apply


def _swap_drug(r):
    r["action"][0]["action"][1]["definitionCanonical"] = r["action"][0]["action"][1]["definitionCanonical"].replace("ad-etoposide", "ad-irinotecan")


def _etoposide_day(r):
    days = r["action"][0]["action"][1]["extension"][0]["extension"]
    assert days[-1]["valueInteger"] == 3
    days[-1]["valueInteger"] = 8


def _period(r):
    r["action"][0]["timingTiming"]["repeat"]["period"] = 28


MUTATIONS = {
    "dose: etoposide 100 -> 120 mg/m²": _sub("ActivityDefinition/ad-etoposide.json", "100 mg/m²", "120 mg/m²"),
    "dose: carboplatin AUC 5 -> AUC 6": _sub("ActivityDefinition/ad-carboplatin.json", "AUC 5", "AUC 6"),
    "unit: zoledronic acid 4 mg -> 4 mg/kg": _sub("ActivityDefinition/ad-zoledronic-acid.json", "4 mg", "4 mg/kg"),
    "dose: denosumab 120 -> 60 mg": _sub("PlanDefinition/orderset-bone-targeted-agents.json", "120 mg", "60 mg"),
    "schedule: every 21 -> every 28 days (text)": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "every 21 days", "every 28 days"),
    "schedule: structured period 21 -> 28 d": _json("PlanDefinition/regimen-platinum-etoposide.json", _period),
    "schedule: avelumab every 2 -> every 3 weeks": _sub("ResearchStudy/rs-nct03179410.json", "every 2 weeks", "every 3 weeks"),
    "cycle days: etoposide day 3 -> day 8 (structured daysOfCycle)": _json("PlanDefinition/regimen-platinum-etoposide.json", _etoposide_day),
    "cycle days: etoposide days 1-3 -> 1-5 (text)": _sub("ActivityDefinition/ad-etoposide.json", "days 1–3", "days 1–5"),
    "cycles: 4 -> 6 cycles": _sub("ActivityDefinition/ad-carboplatin.json", "4 cycles", "6 cycles"),
    "outcome: PFS 6.6 -> 8.6 months": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "6.6 months", "8.6 months"),
    "outcome: ORR 48.1% -> 58.1%": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "48.1%", "58.1%"),
    "outcome: alisertib rPFS 13.4% -> 31.4%": _sub("ResearchStudy/rs-nct01799278.json", "13.4%", "31.4%"),
    "outcome: PROfound 3.6 -> 2.6 months": _sub("PlanDefinition/inv-parp-inhibitors.json", "3.6 months", "2.6 months"),
    "population: 34 -> 46 patients (wrong cohort)": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "34 patients received", "46 patients received"),
    "population: 14-patient qualifier dropped": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "In a retrospective series of 14 patients", "In a retrospective series"),
    "population: avelumab 15 -> 50 patients": _sub("ResearchStudy/rs-nct03179410.json", "15 patients", "50 patients"),
    "phase: avelumab phase.text 2 -> 3": _sub("ResearchStudy/rs-nct03179410.json", '"text": "Phase 2 (', '"text": "Phase 3 ('),
    "phase: avelumab phase code 2 -> 3": _sub("ResearchStudy/rs-nct03179410.json", '"code": "phase-2"', '"code": "phase-3"'),
    "phase: tarlatamab phase 1b -> phase 2 in text": _sub("PlanDefinition/inv-other-molecular-targets.json", "phase 1b", "phase 2"),
    "NCT digit: NCT03179410 -> NCT03179411 in text": _sub("PlanDefinition/inv-immune-checkpoint-inhibitors.json", "NCT03179410", "NCT03179411"),
    "PMID digit: 35347041 -> 35347042": _sub("Citation/cit-anticancer-2022.json", '"35347041"', '"35347042"'),
    "year: Aggarwal 2018 -> 2017": _sub("Citation/cit-aggarwal-2018.json", '"publicationDateText": "2018"', '"publicationDateText": "2017"'),
    "journal changed": _sub("Citation/cit-alabi.json", '"title": "Pharmacology & Therapeutics"', '"title": "Cancer Treatment Reviews"'),
    "swapped regimen drug: etoposide -> irinotecan": _json("PlanDefinition/regimen-platinum-etoposide.json", _swap_drug),
    "invented dose: cisplatin 75 mg/m²": _sub("ActivityDefinition/ad-cisplatin.json", "Dose per local protocol:", "Cisplatin 75 mg/m² IV on day 1. Dose per local protocol:"),
    "strengthened: 'might benefit' -> 'benefit'": _sub("PlanDefinition/inv-parp-inhibitors.json", "might benefit", "benefit"),
    "strengthened: 'may be used' -> 'is used'": _sub("PlanDefinition/rec-palliative-radiotherapy.json", "Radiation therapy may be used", "Radiation therapy is used"),
    "strengthened: 'typically responds only temporarily' -> 'responds'": _sub("PlanDefinition/rec-first-line-platinum-etoposide.json", "the disease typically responds only temporarily", "the disease responds"),
    "strengthened: 'doctors may recommend' -> 'doctors recommend'": _sub("PlanDefinition/rec-bone-targeted-agents.json", "doctors may recommend bisphosphonates", "doctors recommend bisphosphonates"),
    "selection: second line at-most-one -> exactly-one": _sub("PlanDefinition/regimen-second-line-single-agent.json", '"at-most-one"', '"exactly-one"'),
    "invented HR in text": _sub("PlanDefinition/rec-palliative-radiotherapy.json", "associated with longer survival", "associated with longer survival (hazard ratio 0.45)"),
}


def _kills() -> dict[str, list[str]]:
    reg = tc.load_register()
    base = {str(f.relative_to(DEFS)): f.read_text(encoding="utf-8") for f in sorted(DEFS.glob("*/*.json"))}
    parsed = {rel: json.loads(t) for rel, t in base.items()}
    results = {}
    for name, apply in MUTATIONS.items():
        texts = dict(base)
        apply(texts)
        changed = [rel for rel in texts if texts[rel] != base[rel]]
        assert changed, name
        resources = {}
        for rel in texts:
            r = json.loads(texts[rel]) if rel in changed else parsed[rel]
            resources[f"{r['resourceType']}/{r['id']}"] = r
        results[name] = tc.check(register=reg, resources=resources) + _identifier_problems(texts)
    return results


def _identifier_problems(texts: dict[str, str]) -> list[str]:
    """NCT numbers in the content must be ones registered in evidence/register.json (the identifier test's rule)."""
    known = {e["code"] for e in json.loads((ROOT / "evidence" / "register.json").read_text(encoding="utf-8"))["entries"]
             if str(e.get("code", "")).startswith("NCT")}
    out = []
    for rel, text in texts.items():
        for nct in set(re.findall(r"NCT\d{8}", text)):
            if nct not in known:
                out.append(f"{rel}: unregistered {nct}")
    return out


def test_mutations_are_killed():
    assert len(MUTATIONS) >= 20
    texts = {str(f.relative_to(DEFS)): f.read_text(encoding="utf-8") for f in DEFS.glob("*/*.json")}
    assert tc.check(DEFS) == [] and _identifier_problems(texts) == []
    results = _kills()
    survivors = [n for n, p in results.items() if not p]
    rate = 100 * (len(results) - len(survivors)) / len(results)
    print(f"\nmutation kill rate: {len(results) - len(survivors)}/{len(results)} = {rate:.0f}%")
    assert survivors == [], f"surviving mutants: {survivors}"
