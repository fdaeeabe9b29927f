"""The content's logic on a HAPI FHIR JPA R4 server: PlanDefinition/$apply there agrees with ``fhirpkg apply``.

One server (``--fhirpkg.hapi.fhir-version=R4 --fhirpkg.hapi.cr=true``: HAPI 8.8.0 with cqf-fhir-cr-hapi
4.4.0's R4 $apply provider, see ``hapi-server/.../ClinicalReasoningConfig.java``) holds the R4 export
(the transaction Bundle ``fhirpkg build`` writes to ``r4/``, Library/NEPCLogic with CQL and ELM for FHIR
4.0.1 included) and every patient of the test panel (``tests/patients/``, converted to R4 by
``fhirpkg.logic.r4data.to_r4_bundle`` and stored with a transaction of PUTs).  For every patient and
every PlanDefinition ``expected.json`` lists for it, ``GET PlanDefinition/<id>/$apply?subject=Patient/<id>``
answers an R4 CarePlan whose ``activity`` points at a contained RequestGroup.

What is compared, per (patient, PlanDefinition), with ``fhirpkg.api.apply`` on the R5 originals:

* ``actions``: every RequestGroup.action present, as ``<PlanDefinition id>#<action id>``, nested
  PlanDefinitions followed (an action whose definition is a PlanDefinition points at a contained
  RequestGroup, whose actions are read against that PlanDefinition), as a list (repeats count);
* ``activities``: for each included action defined by an ActivityDefinition, that ActivityDefinition's id
  (the action must point at a contained request);
* titles: every included action's title equals the title of the PlanDefinition action it came from.

HAPI reads everything from its own JPA storage (no data passed in the call); with
``--fhirpkg.hapi.cr.settings=server-search`` the engine's retrieves are the server's searches (patient
compartment and codes as search parameters), value sets are expanded from their compose.
"""
from __future__ import annotations

import json
import statistics
import time

import pytest

from . import cqf, hapi, hl7, package_build
from .conftest import require_interop, unavailable

pytestmark = pytest.mark.interop


PANEL = cqf.panel_names()


def _r4_transaction() -> dict:
    return json.loads(next((package_build.built() / "r4").glob("*.transaction.r4.json")).read_text())


def _as_transaction(collection: dict) -> dict:
    """A collection Bundle as a transaction that PUTs every resource at its own id."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {**({"fullUrl": e["fullUrl"]} if "fullUrl" in e else {}), "resource": e["resource"],
         "request": {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"}}
        for e in collection["entry"]]}


class Loaded:
    """The running server with the content and the panel in it."""

    def __init__(self, server: hapi.HapiServer, content: dict):
        self.server = server
        self.plans = {e["resource"]["url"]: e["resource"] for e in content["entry"]
                      if e["resource"]["resourceType"] == "PlanDefinition"}
        self.results: dict[tuple[str, str], dict] = {}
        self.millis: list[float] = []

    def apply(self, patient: cqf.PatientRun, plan_id: str) -> dict:
        """$apply once per (patient, plan) for the whole module; the summary of the CarePlan."""
        key = (patient.name, plan_id)
        if key not in self.results:
            started = time.monotonic()
            r = hapi.request("GET", f"{self.server.base_url}/PlanDefinition/{plan_id}/$apply"
                             f"?subject={patient.subject}", timeout=600)
            self.millis.append((time.monotonic() - started) * 1000)
            if r.status != 200:
                self.results[key] = {"actions": [], "activities": [], "titles": [],
                                     "errors": [f"HTTP {r.status}: {r.text[:1500]}"]}
            else:
                self.results[key] = summary(r.json, self.plans, cqf.plan_canonical(plan_id))
        return self.results[key]


def summary(care_plan: dict, plans: dict[str, dict], plan_url: str) -> dict:
    """The included actions, created requests and problems of an R4 $apply CarePlan (see module doc)."""
    out = {"actions": [], "activities": [], "titles": [], "errors": []}
    contained = {r.get("id", "").lstrip("#"): r for r in care_plan.get("contained") or []}
    for r in contained.values():
        if r.get("resourceType") == "OperationOutcome":
            out["errors"] += [f"OperationOutcome: {i.get('diagnostics')}" for i in r.get("issue") or []]
    refs = [(a.get("reference") or {}).get("reference", "").lstrip("#") for a in care_plan.get("activity") or []]
    groups = [contained[x] for x in refs if contained.get(x, {}).get("resourceType") == "RequestGroup"]
    top = plans.get(plan_url)
    if care_plan.get("resourceType") != "CarePlan" or top is None or len(groups) != 1:
        out["errors"].append(f"no single RequestGroup for {plan_url} in the {care_plan.get('resourceType')}")
        return out
    _walk(groups[0].get("action") or [], top, contained, plans, out)
    for key in ("actions", "activities", "errors"):
        out[key].sort()
    return out


def _walk(acts: list, plan: dict, contained: dict, plans: dict, out: dict) -> None:
    for a in acts:
        if not a:
            continue
        where = f"{plan['id']}#{a.get('id')}"
        out["actions"].append(where)
        source = _find_action(plan.get("action") or [], a.get("id"))
        if source is None:
            out["errors"].append(f"{where}: no such action in the PlanDefinition")
        else:
            out["titles"].append((where, a.get("title"), source.get("title")))
            definition = (source.get("definitionCanonical") or "").split("|")[0]
            target = contained.get(((a.get("resource") or {}).get("reference") or "").lstrip("#"))
            if "/ActivityDefinition/" in definition:
                if target is None:
                    out["errors"].append(f"{where}: no request created")
                else:
                    out["activities"].append(definition.rsplit("/", 1)[-1])
            elif "/PlanDefinition/" in definition:
                if target is None or target.get("resourceType") != "RequestGroup" or definition not in plans:
                    out["errors"].append(f"{where}: no RequestGroup for {definition}")
                else:
                    _walk(target.get("action") or [], plans[definition], contained, plans, out)
        _walk(a.get("action") or [], plan, contained, plans, out)


def _find_action(acts: list, action_id):
    for a in acts:
        if a.get("id") == action_id:
            return a
        if (found := _find_action(a.get("action") or [], action_id)) is not None:
            return found
    return None


@pytest.fixture(scope="module")
def loaded(request):
    """One HAPI R4 server with clinical reasoning, the R4 export and the whole panel loaded."""
    if reasons := hl7.missing_tools():
        unavailable("; ".join(reasons))
    if not PANEL:
        msg = f"no test-patient panel at {cqf.expected_file()}"
        if require_interop():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    try:
        hapi.jar_path()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    from fhirpkg.logic.r4data import to_r4_bundle

    content = _r4_transaction()
    server = hapi.HapiServer(extra_args=["--fhirpkg.hapi.fhir-version=R4", "--fhirpkg.hapi.cr=true",
                                         "--fhirpkg.hapi.cr.settings=server-search"])
    try:
        server.start()
    except RuntimeError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    try:
        r = hapi.request("POST", server.base_url, content, timeout=900)
        assert r.status == 200, f"R4 transaction: HTTP {r.status}: {r.text[:3000]}"
        for patient in cqf.patient_runs():
            data = to_r4_bundle(json.loads(patient.path.read_text(encoding="utf-8")))
            r = hapi.request("POST", server.base_url, _as_transaction(data), timeout=600)
            assert r.status == 200, f"{patient.name}: HTTP {r.status}: {r.text[:3000]}"
        print(f"\nHAPI FHIR {hapi.HAPI_VERSION} R4 + cqf-fhir-cr-hapi {cqf.CQF_FHIR_VERSION} up at "
              f"{server.base_url} after {server.start_seconds:.1f} s; R4 export and {len(PANEL)} patients loaded")
        state = Loaded(server, content)
        yield state
        panel = [v for (_, plan), v in state.results.items() if not plan.endswith("-control")]
        if state.millis:
            print(f"\nHAPI R4 $apply: {len(panel)} panel applies, {sum(len(v['actions']) for v in panel)} included "
                  f"actions, {sum(len(v['activities']) for v in panel)} requests, "
                  f"{sum(not v['actions'] for v in panel)} with no action; {len(state.millis)} calls, median "
                  f"{statistics.median(state.millis):.0f} ms, first {state.millis[0]:.0f} ms, "
                  f"total {sum(state.millis) / 1000:.1f} s")
    finally:
        if request.session.testsfailed:
            print(f"\n--- HAPI R4 (clinical reasoning) log tail ---\n{server.log_tail()}")
        server.stop()


def _diff(got: dict, want: dict) -> list[str]:
    lines = []
    for key in ("actions", "activities"):
        g, w = list(got.get(key) or []), list(want.get(key) or [])
        if sorted(g) != sorted(w):
            missing = [x for x in w if x not in g or w.count(x) > g.count(x)]
            extra = [x for x in g if x not in w or g.count(x) > w.count(x)]
            lines.append(f"  {key}: missing {sorted(set(missing))}, extra {sorted(set(extra))}")
    return lines


def test_the_panel_covers_every_plan_definition_with_logic(loaded):
    """Every PlanDefinition of the R4 export that names a Library is applied for every patient."""
    with_logic = {p["id"] for p in loaded.plans.values() if p.get("library")}
    assert with_logic
    for patient in cqf.patient_runs():
        assert with_logic <= set(patient.expected), f"{patient.name}: not applied: {with_logic - set(patient.expected)}"


def test_the_operation_is_the_clinical_reasoning_one(loaded):
    cs = hapi.request("GET", f"{loaded.server.base_url}/metadata").json
    assert cs["fhirVersion"] == "4.0.1"
    pd = next(r for r in cs["rest"][0]["resource"] if r["type"] == "PlanDefinition")
    assert "apply" in {op["name"] for op in pd.get("operation") or []}, pd.get("operation")


@pytest.mark.parametrize("name", PANEL or ["(no panel)"])
def test_hapi_r4_apply_agrees_with_fhirpkg_apply(loaded, name):
    from fhirpkg.api import apply

    patient = cqf.patient_runs([name])[0]
    diffs = []
    for plan in sorted(patient.expected):
        got = loaded.apply(patient, plan)
        if got["errors"]:
            diffs.append(f"{name} {plan}: HAPI errors: {got['errors'][:5]}")
            continue
        mine = apply(plan, str(patient.path), patient.subject)
        if d := _diff(got, {"actions": mine.actions, "activities": mine.activities}):
            diffs.append(f"{name} {plan} (HAPI R4 $apply vs fhirpkg apply):\n" + "\n".join(d))
        wrong = [t for t in got["titles"] if t[1] != t[2]]
        if wrong:
            diffs.append(f"{name} {plan}: action titles differ from the PlanDefinition's: {wrong[:5]}")
    assert not diffs, "\n".join(diffs)


@pytest.mark.parametrize("name", PANEL or ["(no panel)"])
def test_hapi_r4_apply_gives_the_expected_result(loaded, name):
    """The same results against expected.json, written by hand from the source and docs/logic.md."""
    patient = cqf.patient_runs([name])[0]
    diffs = [f"{name} {plan} (HAPI R4 $apply vs expected.json):\n" + "\n".join(d)
             for plan, want in sorted(patient.expected.items())
             if (d := _diff(loaded.apply(patient, plan), want))]
    assert not diffs, f"{patient.why}\n" + "\n".join(diffs)


def test_a_changed_condition_shows_as_a_difference(loaded):
    """Negative control: a copy of rec-bone-targeted-agents (own id and url) gated on 'Has Confirmed NEPC
    Diagnosis' instead of 'Bone Metastases', PUT on the server: for p01 (confirmed NEPC, no bone
    metastases) the server must then include the bone action that expected.json rightly leaves out."""
    name, plan = "p01-first-line.json", "rec-bone-targeted-agents"
    if name not in PANEL:
        pytest.skip(f"{name} is not in the panel")
    original = loaded.plans[cqf.plan_canonical(plan)]
    changed = json.loads(json.dumps(original))
    changed["id"] = f"{plan}-control"
    changed["url"] = cqf.plan_canonical(changed["id"])
    edits = 0
    for action in changed["action"]:
        for cond in action.get("condition") or ():
            if cond["expression"]["expression"] == "Bone Metastases":
                cond["expression"]["expression"] = "Has Confirmed NEPC Diagnosis"
                edits += 1
    assert edits == 1
    r = hapi.request("PUT", f"{loaded.server.base_url}/PlanDefinition/{changed['id']}", changed)
    assert r.status in (200, 201), r.text[:2000]
    loaded.plans[changed["url"]] = changed
    patient = cqf.patient_runs([name])[0]
    got = loaded.apply(patient, changed["id"])
    assert not got["errors"], got["errors"]
    want = {"actions": [a.replace(f"{plan}#", f"{changed['id']}#") for a in patient.expected[plan]["actions"]],
            "activities": patient.expected[plan]["activities"]}
    diff = _diff(got, want)
    assert diff and "extra ['orderset-bone-targeted-agents#bone-agent'" in diff[0], diff


def test_the_engine_logged_no_error(loaded):
    """Runs after the applies above (file order): the server log holds no ERROR line and no engine warning
    but the one per value set expanded from its compose (as in test_logic_cqf, cqf.BENIGN)."""
    loaded.apply(cqf.patient_runs([PANEL[0]])[0], "nepc-pathway")  # at least one apply, also when run alone
    lines = loaded.server.log_path.read_text(errors="replace").splitlines()
    bad = [line for line in lines if " ERROR " in line
           or (" WARN " in line and ("opencds" in line or ".c.f.c." in line or "o.o.c." in line)
               and "is not expanded. Falling back to compose definition" not in line)]
    assert not bad, "\n".join(bad[:20])
