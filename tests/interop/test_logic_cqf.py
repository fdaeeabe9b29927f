"""The content's logic on the reference $apply engine, cqf-fhir-cr, against the hand-written panel.

For every patient of ``tests/patients/expected.json`` and every PlanDefinition listed for it, the
engine's included actions ("<PlanDefinition id>#<action id>", nested PlanDefinitions followed) and the
ActivityDefinitions it instantiated must equal the expected ones (written by hand from the source
article and docs/logic.md) and the ones ``fhirpkg.api.apply`` gives.  The engine evaluates R4: the
package is converted by ``fhirpkg.publish.convert.to_r4`` (what ``fhirpkg build`` writes to build/r4/) and the
patients' R5 records by ``fhirpkg.logic.r4data.to_r4_bundle``.

All patients run in one JVM; each (patient, PlanDefinition) on a fresh repository with fresh engine
caches, twice (forward, then reverse order), and the two passes must agree.

The engine translates the Libraries' CQL itself (cqf-fhir-cr 4.4.0 does not load the translator's ELM
JSON: see docs/logic.md, "Agreement with the reference engine"), while ``fhirpkg apply`` runs the shipped
ELM; agreement therefore checks the CQL and its ELM as well as both evaluators.
"""
from __future__ import annotations

import json

import pytest

from . import cqf, hl7
from .conftest import require_interop, unavailable

pytestmark = pytest.mark.interop


PANEL = cqf.panel_names()
ARTIFACT = cqf.REPO / "tests" / "artifacts" / "cqf-apply-panel.json"  # the engine's output, for reading


def _runs(patients, plans=None) -> list[dict]:
    from fhirpkg.logic.r4data import to_r4_bundle

    return [{"name": p.name, "subject": p.subject,
             "data": to_r4_bundle(json.loads(p.path.read_text(encoding="utf-8"))),
             "plans": [cqf.plan_canonical(pid) for pid in (plans or sorted(p.expected))]}
            for p in patients]


def _engine(**kw) -> dict:
    if reasons := hl7.missing_tools():
        unavailable("; ".join(reasons))
    if not PANEL:
        msg = f"no test-patient panel at {cqf.expected_file()}"
        if require_interop():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    try:
        cqf.jar_path()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    content, _ = cqf.r4_content()
    doc = cqf.run(content, _runs(cqf.patient_runs(), kw.pop("plans", None)), **kw)
    results = doc["results"]
    print(f"\ncqf-fhir-cr {doc['engine']['version']}: {len(results)} (patient, PlanDefinition) applies x "
          f"{doc['timing']['measuredPasses']} passes in {doc['wallSeconds']:.1f} s (JVM included); "
          f"{sum(len(r['actions']) for r in results)} included actions, "
          f"{sum(len(r['activities']) for r in results)} requests; full output in {ARTIFACT}")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return doc


@pytest.fixture(scope="module")
def engine() -> dict:
    """Every patient x every plan of expected.json, two passes (forward, reverse) in one JVM."""
    return _engine(repeat=2)


def _diff(got: dict, want: dict) -> list[str]:
    lines = []
    for key in ("actions", "activities"):
        g, w = list(got.get(key) or []), list(want.get(key) or [])
        if sorted(g) != sorted(w):
            missing = [x for x in w if x not in g or w.count(x) > g.count(x)]
            extra = [x for x in g if x not in w or g.count(x) > w.count(x)]
            lines.append(f"  {key}: missing {sorted(set(missing))}, extra {sorted(set(extra))}")
    return lines


def _result(doc: dict, name: str, plan: str) -> dict:
    return cqf.summary(doc)[(name, plan)]


def test_runs_are_independent(engine):
    assert engine["consistent"], "\n".join(engine["inconsistencies"])
    assert all(len(r["millis"]) == 2 for r in engine["results"])


def test_engine_reports_no_errors(engine):
    problems = [f"{r['name']} {r['plan']}: {e}" for r in engine["results"] for e in cqf.errors(r)]
    assert not problems, "\n".join(problems[:40])


@pytest.mark.parametrize("name", PANEL or ["(no panel)"])
def test_engine_gives_the_expected_result(engine, name):
    patient = cqf.patient_runs([name])[0]
    diffs = []
    for plan, want in sorted(patient.expected.items()):
        got = _result(engine, name, plan)
        if d := _diff(got, want):
            diffs.append(f"{name} {plan} (cqf-fhir-cr vs expected.json):\n" + "\n".join(d))
    assert not diffs, f"{patient.why}\n" + "\n".join(diffs)


@pytest.mark.parametrize("name", PANEL or ["(no panel)"])
def test_engine_agrees_with_fhirpkg_apply(engine, name):
    from fhirpkg.api import apply

    patient = cqf.patient_runs([name])[0]
    diffs = []
    for plan in sorted(patient.expected):
        mine = apply(plan, str(patient.path), patient.subject)
        ours = {"actions": mine.actions, "activities": mine.activities}
        got = _result(engine, name, plan)
        if d := _diff(got, ours):
            diffs.append(f"{name} {plan} (cqf-fhir-cr vs fhirpkg apply):\n" + "\n".join(d))
    assert not diffs, "\n".join(diffs)


def test_a_changed_condition_shows_as_a_difference():
    """Negative control: the same machinery (engine, summary, comparison) reports a difference when the
    content is changed. rec-bone-targeted-agents is gated on 'Has Confirmed NEPC Diagnosis' instead of
    'Bone Metastases': p01 (confirmed NEPC, no bone metastases) must then get the bone actions that
    expected.json rightly leaves out."""
    name, plan = "p01-first-line.json", "rec-bone-targeted-agents"
    if name not in PANEL:
        pytest.skip(f"{name} is not in the panel")
    if reasons := hl7.missing_tools():
        unavailable("; ".join(reasons))
    content, _ = cqf.r4_content()
    changed = 0
    for entry in content["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "PlanDefinition" and res["id"] == plan:
            for action in res["action"]:
                for cond in action.get("condition") or ():
                    if cond["expression"]["expression"] == "Bone Metastases":
                        cond["expression"]["expression"] = "Has Confirmed NEPC Diagnosis"
                        changed += 1
    assert changed == 1
    patient = cqf.patient_runs([name])[0]
    doc = cqf.run(content, _runs([patient], [plan]))
    got = _result(doc, name, plan)
    assert not got["errors"]
    diff = _diff(got, patient.expected[plan])
    assert diff and "extra ['orderset-bone-targeted-agents#bone-agent'" in diff[0], diff
