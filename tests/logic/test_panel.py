"""The synthetic test-patient panel (tests/patients/) against the package's logic.

Expected results in ``tests/patients/expected.json`` are written by hand from docs/logic.md (data
contract, where each condition is used) and the source article, never by running ``fhirpkg apply``.
Per patient the file also holds a hand-written ``conditions`` map (definition name -> true/false)
so that coverage can be computed: every condition expression of every PlanDefinition must be true
for some patient and false for another.

(a) every Bundle is valid R5 (0 errors) and marked synthetic; (b) coverage, and the hand-written
file agrees with itself and with the PlanDefinitions' action structure; (c) ``fhirpkg.api.apply``
gives exactly the expected actions and ActivityDefinitions for every patient and plan, and each
condition it evaluated has the value the hand-written map gives.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = ROOT / "tests" / "patients"
PLANS = ROOT / "definitions" / "PlanDefinition"
EXPECTED = json.loads((PATIENTS / "expected.json").read_text(encoding="utf-8"))
NAMES = sorted(EXPECTED)
HTEST = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST")
CQL_ID = "text/cql-identifier"


def plan_definitions() -> dict[str, dict]:
    return {pd["id"]: pd for pd in (json.loads(p.read_text(encoding="utf-8")) for p in sorted(PLANS.glob("*.json")))}


PDS = plan_definitions()
#: the PlanDefinitions the panel applies on their own: the pathway and every rec-/inv-/info- one
APPLIED = sorted(i for i in PDS if i == "nepc-pathway" or i.split("-", 1)[0] in ("rec", "inv", "info"))


def walk(actions, parents=()):
    """(action, the conditions of the action and of its ancestors) for a plan's own action tree."""
    for a in actions or []:
        conds = parents + tuple(c["expression"]["expression"] for c in a.get("condition", [])
                                if c.get("kind") == "applicability")
        yield a, conds
        yield from walk(a.get("action"), conds)


def condition_expressions() -> set[str]:
    out = set()
    for pd in PDS.values():
        for a, _ in walk(pd.get("action")):
            for c in a.get("condition", []):
                assert c["expression"]["language"] == CQL_ID, f"{pd['id']}#{a.get('id')}: {c['expression']}"
                out.add(c["expression"]["expression"])
    return out


def bundle(name: str) -> dict:
    return json.loads((PATIENTS / name).read_text(encoding="utf-8"))


def tagged(resource: dict) -> bool:
    return any((t.get("system"), t.get("code")) == HTEST for t in resource.get("meta", {}).get("tag", []))


# ------------------------------------------------------------------------------ (a) the Bundles

def test_every_bundle_file_is_in_expected_json():
    files = sorted(p.name for p in PATIENTS.glob("*.json") if p.name != "expected.json")
    assert files == NAMES


def test_htest_is_a_code_of_the_hl7_terminology_package():
    from fhirpkg.fhir.packages import cache_dir

    found = sorted(cache_dir().glob("hl7.terminology.r5#*/package/CodeSystem-v3-ActReason.json"))
    if not found:
        pytest.skip(f"hl7.terminology.r5 is not installed in {cache_dir()}")
    cs = json.loads(found[-1].read_text(encoding="utf-8"))

    def codes(concepts):
        for c in concepts or []:
            yield c["code"], c.get("display")
            yield from codes(c.get("concept"))

    assert cs["url"] == HTEST[0]
    assert dict(codes(cs["concept"]))[HTEST[1]] == "test health data"


@pytest.mark.parametrize("name", NAMES)
def test_bundle_is_synthetic_and_holds_one_patient(name):
    b = bundle(name)
    assert (b["resourceType"], b["type"]) == ("Bundle", "collection")
    assert tagged(b), "Bundle.meta.tag has no HTEST (test health data) tag"
    resources = [e["resource"] for e in b["entry"]]
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 1
    p = patients[0]
    assert f"Patient/{p['id']}" == EXPECTED[name]["subject"]
    assert tagged(p) and "SYNTHETIC" in p["text"]["div"] and p["name"][0]["family"] == "SYNTHETIC"
    untagged = [f"{r['resourceType']}/{r['id']}" for r in resources if not tagged(r)]
    assert not untagged, f"resources without the HTEST tag: {untagged}"
    strangers = [f"{r['resourceType']}/{r['id']}" for r in resources
                 if "subject" in r and r["subject"] != {"reference": EXPECTED[name]["subject"]}]
    assert not strangers, f"records of another subject: {strangers}"


@pytest.mark.parametrize("name", NAMES)
def test_bundle_validates_with_no_errors(defs, name):
    from fhirpkg import api

    issues = api.validate(str(PATIENTS / name), defs=defs)
    errors = [f"{i.line}:{i.column} {i.message} ({i.expression})" for i in issues if i.is_error]
    assert not errors, "\n".join(errors)


# --------------------------------------------------------- (b) coverage and hand-written consistency

def test_expected_json_lists_every_applied_plan_for_every_patient():
    assert APPLIED, "no PlanDefinition found"
    for name in NAMES:
        assert sorted(EXPECTED[name]["plans"]) == APPLIED, name
        assert EXPECTED[name]["why"].strip(), name


def test_every_condition_is_true_and_false_across_the_panel():
    used = condition_expressions()
    assert used, "no condition in definitions/PlanDefinition"
    missing = {n: sorted(used - set(EXPECTED[n]["conditions"])) for n in NAMES}
    assert not any(missing.values()), f"conditions map lacks: {missing}"
    values = {expr: {EXPECTED[n]["conditions"][expr] for n in NAMES} for expr in used}
    one_sided = {expr: v for expr, v in values.items() if v != {True, False}}
    assert not one_sided, f"conditions never both true and false: {one_sided}"


def test_conditions_maps_follow_the_definitions_in_docs_logic():
    """The composite definitions of docs/logic.md, checked on the hand-written maps."""
    for n in NAMES:
        c = EXPECTED[n]["conditions"]
        dx, tissue = c["Has Confirmed NEPC Diagnosis"], c["Completed Prostate Biopsy"] or c["Neuroendocrine Pathology Report"]
        assert c["Biopsy Confirmed Neuroendocrine Carcinoma Of Prostate"] == (dx and tissue), n
        assert c["Biopsy Confirmation Not Found"] == (dx and not tissue), n
        assert c["No Prior Platinum Chemotherapy"] == (not c["Prior Platinum Chemotherapy"]), n
        assert not c["Disease Progression After Platinum"] or c["Prior Platinum Chemotherapy"], n
        assert c["Tumour Genomic Testing Not Found"] == (dx and not c["Tumour Genomic Testing Available"]), n
        assert c["PARP Trial Consideration Applies"] == (
            dx and (c["Homologous Recombination Repair Gene Alteration"] or not c["Tumour Genomic Testing Available"])), n
        assert not c["Bone Metastases"] or dx, n


def own_part(plan_id: str, conditions: dict) -> tuple[list[str], list[str], list[str]]:
    """A plan's own included actions and activities under a conditions map, and the plans it nests."""
    actions, activities, nested = [], [], []
    for a, conds in walk(PDS[plan_id].get("action")):
        if not all(conditions[c] for c in conds):
            continue
        actions.append(f"{plan_id}#{a['id']}")
        target = (a.get("definitionCanonical") or "").split("|")[0].rsplit("/", 2)
        if len(target) == 3 and target[1] == "ActivityDefinition":
            activities.append(target[2])
        elif len(target) == 3 and target[1] == "PlanDefinition":
            nested.append(target[2])
    return actions, activities, nested


def combined(plan_id: str, name: str) -> tuple[list[str], list[str]]:
    """A plan's result put together from its own part and the expected results of what it nests
    (the hand-written rec-/inv-/info- entries; regimens and order sets have no condition)."""
    actions, activities, nested = own_part(plan_id, EXPECTED[name]["conditions"])
    for sub in nested:
        if sub in EXPECTED[name]["plans"]:
            want = EXPECTED[name]["plans"][sub]
            actions, activities = actions + want["actions"], activities + want["activities"]
        else:
            a, b = combined(sub, name)
            actions, activities = actions + a, activities + b
    return sorted(actions), sorted(activities)


@pytest.mark.parametrize("name", NAMES)
def test_expected_results_agree_with_the_conditions_map_and_action_structure(name):
    """Catches a slip in the hand-written file: each plan's expected actions must be what its
    conditions (from the hand-written map) and its nesting give, and the pathway must be the sum
    of the hand-written nested results."""
    diffs = []
    for plan, want in sorted(EXPECTED[name]["plans"].items()):
        got = dict(zip(("actions", "activities"), combined(plan, name)))
        for key in ("actions", "activities"):
            if got[key] != want[key]:
                diffs.append(f"{plan} {key}: map/structure gives {got[key]}, expected.json says {want[key]}")
    assert not diffs, "\n".join(diffs)


# ------------------------------------------------------------------------- (c) fhirpkg apply

def counted_diff(got: list, want: list) -> str:
    g, w = Counter(got), Counter(want)
    return f"missing {sorted((w - g).elements())}, extra {sorted((g - w).elements())}"


@pytest.mark.parametrize("name", NAMES)
def test_apply_gives_the_expected_result(name):
    from fhirpkg.api import apply

    entry = EXPECTED[name]
    diffs = []
    for plan, want in sorted(entry["plans"].items()):
        result = apply(plan, str(PATIENTS / name), entry["subject"])
        for key in ("actions", "activities"):
            got = list(getattr(result, key))
            if got != want[key]:
                diffs.append(f"{plan} {key}: {counted_diff(got, want[key])}")
        for pd_id, action_id, expression, value in result.conditions:
            if entry["conditions"].get(expression) is not value:
                diffs.append(f"{plan}: {pd_id}#{action_id} condition '{expression}' evaluated {value!r}, "
                             f"hand-written {entry['conditions'].get(expression)!r}")
    assert not diffs, f"{name}: {entry['why']}\n" + "\n".join(diffs)
