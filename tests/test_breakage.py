"""Single-breakage tests: one valid resource, one thing broken, one issue found where it is.

Each case starts from a resource that validates with no errors, breaks exactly one
thing, and asserts the rule that catches it, its severity, its FHIRPath expression
and the line it is reported on (the line holding ``marker`` in the broken text).
"""
from __future__ import annotations

import copy
import json

import pytest

from fhirpkg.issues import Severity

BASE_PLAN = {
    "resourceType": "PlanDefinition",
    "id": "example-regimen",
    "text": {"status": "generated",
             "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>An example regimen.</p></div>"},
    "contained": [{"resourceType": "Group", "id": "cohort", "type": "person", "membership": "definitional"}],
    "url": "https://fhirpkg.test/fhir/PlanDefinition/example-regimen",
    "version": "0.1.0",
    "name": "ExampleRegimen",
    "title": "Example regimen",
    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
                         "code": "order-set"}]},
    "status": "draft",
    "experimental": True,
    "subjectReference": {"reference": "#cohort"},
    "date": "2026-11-27",
    "description": "A regimen used only by the tests.",
    "effectivePeriod": {"start": "2026-01-01", "end": "2026-12-31"},
    "action": [{
        "id": "cycle",
        "title": "21-day cycle",
        "timingTiming": {"repeat": {"count": 4, "duration": 21, "durationUnit": "d"}},
        "selectionBehavior": "all",
        "action": [
            {"id": "drug-a", "title": "Drug A", "definitionCanonical":
                "https://fhirpkg.test/fhir/ActivityDefinition/drug-a"},
            {"id": "drug-b", "title": "Drug B",
             "relatedAction": [{"targetId": "drug-a", "relationship": "concurrent-with-start"}]},
        ],
    }],
}

BASE_PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>A patient.</p></div>"},
    "name": [{"family": "Test", "given": ["Ann", "Bea"]}],
    "gender": "female",
    "birthDate": "1970-03-01",
}


def dumps(resource) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False)


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    pos = -1
    for _ in range(occurrence):
        pos = text.index(marker, pos + 1)
    return text.count("\n", 0, pos) + 1


def mutate(base, fn):
    r = copy.deepcopy(base)
    fn(r)
    return r


def test_base_resources_are_valid(check):
    for base in (BASE_PLAN, BASE_PATIENT):
        issues = check(dumps(base))
        assert not [i for i in issues if i.is_error], [str(i) for i in issues if i.is_error]


def _set(path, value):
    def fn(r):
        target = r
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
    return fn


def _del(path):
    def fn(r):
        target = r
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]
    return fn


def _both(f, g):
    def fn(r):
        f(r)
        g(r)
    return fn


# (name, base, mutation, rule, severity, expression, marker [, occurrence [, line offset]])
# An array item is reported where the item starts, one line above its first property.
CASES = [
    ("missing required element", BASE_PLAN, _del(["status"]), "cardinality-min", "error",
     "PlanDefinition", "{"),
    ("wrong primitive type", BASE_PLAN, _set(["experimental"], "yes"), "json-type", "error",
     "PlanDefinition.experimental", '"experimental"'),
    ("number given as string", BASE_PLAN, _set(["action", 0, "timingTiming", "repeat", "count"], "4"), "json-type",
     "error", "PlanDefinition.action[0].timingTiming.repeat.count", '"count"'),
    ("bad required code", BASE_PLAN, _set(["status"], "bogus"), "binding-required", "error",
     "PlanDefinition.status", '"status": "bogus"'),
    ("bad required code in a backbone", BASE_PLAN, _set(["action", 0, "selectionBehavior"], "some"),
     "binding-required", "error", "PlanDefinition.action[0].selectionBehavior", '"selectionBehavior"'),
    ("unknown element", BASE_PLAN, _set(["colour"], "red"), "unknown-element", "error",
     "PlanDefinition", '"colour"'),  # the HL7 validator's path: the object, not the property
    ("unknown choice type", BASE_PLAN, _set(["subjectString"], "x"), "unknown-element", "error",
     "PlanDefinition", '"subjectString"'),
    ("two types of one choice", BASE_PLAN, _set(["action", 0, "timingDuration"], {"value": 21, "unit": "d"}),
     "choice-multiple", "error", "PlanDefinition.action[0].timingDuration", '"timingDuration"'),
    ("empty array", BASE_PLAN, _set(["contact"], []), "json-empty-array", "error",
     "PlanDefinition.contact", '"contact"'),
    ("empty object", BASE_PLAN, _set(["effectivePeriod"], {}), "json-empty-object", "error",
     "PlanDefinition.effectivePeriod", '"effectivePeriod"'),
    ("null value", BASE_PLAN, _set(["title"], None), "json-null", "error", "PlanDefinition.title", '"title"'),
    ("empty string", BASE_PLAN, _set(["title"], ""), "string-empty", "error", "PlanDefinition.title", '"title"'),
    ("whitespace-only string", BASE_PLAN, _set(["title"], "   "), "string-whitespace", "warning",
     "PlanDefinition.title", '"title"'),
    ("array for a single element", BASE_PLAN, _set(["title"], ["a", "b"]), "json-array-unexpected", "error",
     "PlanDefinition.title", '"title"'),
    ("object for a repeating element", BASE_PLAN, _set(["jurisdiction"], {"text": "World"}), "json-array-expected",
     "error", "PlanDefinition.jurisdiction", '"jurisdiction"'),
    ("bad date format", BASE_PLAN, _set(["date"], "2026-13-01"), "format", "error", "PlanDefinition.date",
     '"date"'),
    ("impossible calendar date", BASE_PLAN, _set(["date"], "2023-02-30"), "format", "error",
     "PlanDefinition.date", '"date"'),
    ("dateTime without timezone", BASE_PLAN, _set(["date"], "2026-11-27T10:00:00"), "format", "error",
     "PlanDefinition.date", '"date"'),
    ("code with leading space", BASE_PLAN, _set(["action", 0, "selectionBehavior"], " all"), "format", "error",
     "PlanDefinition.action[0].selectionBehavior", '"selectionBehavior"'),
    ("uri with a space", BASE_PLAN, _set(["url"], "https://fhirpkg.test/fhir/Plan Definition/x"), "format",
     "error", "PlanDefinition.url", '"url"'),
    ("canonical ending in |", BASE_PLAN,
     _set(["action", 0, "action", 0, "definitionCanonical"], "https://fhirpkg.test/fhir/ActivityDefinition/a|"),
     "canonical-format", "warning", "PlanDefinition.action[0].action[0].definitionCanonical",
     '"definitionCanonical"'),
    ("positiveInt out of range", BASE_PLAN, _set(["action", 0, "timingTiming", "repeat", "count"], 0), "format",
     "error", "PlanDefinition.action[0].timingTiming.repeat.count", '"count"'),
    ("integer beyond 32 bits", BASE_PLAN, _set(["action", 0, "timingTiming", "repeat", "count"], 2147483648),
     "format", "error", "PlanDefinition.action[0].timingTiming.repeat.count", '"count"'),
    ("decimal beyond the FHIR regex", BASE_PLAN,
     _set(["action", 0, "timingTiming", "repeat", "duration"], 10**19), "format", "error",
     "PlanDefinition.action[0].timingTiming.repeat.duration", '"duration"'),
    ("invalid resource id", BASE_PLAN, _set(["id"], "bad id"), "resource-id", "error", "PlanDefinition.id",
     '"id"'),
    ("resource id too long", BASE_PLAN, _set(["id"], "x" * 65), "resource-id", "error", "PlanDefinition.id",
     '"id"'),
    ("contained resource without id", BASE_PLAN, _both(_del(["contained", 0, "id"]), _del(["subjectReference"])),
     "resource-id", "error",
     "PlanDefinition.contained[0]", '"resourceType": "Group"', 1, -1),
    ("unresolvable contained reference", BASE_PLAN,
     _set(["action", 0, "subjectReference"], {"reference": "#nobody"}), "reference-contained", "error",
     "PlanDefinition.action[0].subjectReference", '"#nobody"'),  # HL7: at the Reference
    ("malformed relative reference", BASE_PATIENT, _set(["managingOrganization"], {"reference": "not a ref"}),
     "reference-format", "error", "Patient.managingOrganization", '"reference"'),
    ("unknown extension", BASE_PLAN,
     _set(["extension"], [{"url": "http://hl7.org/fhir/StructureDefinition/no-such-extension", "valueString": "x"}]),
     "extension-unknown", "error", "PlanDefinition.extension[0]", '"url": "http://hl7.org/fhir/Structure', 1, -1),
    ("extension used out of context", BASE_PLAN,  # reported at the element holding it, as by the HL7 validator
     _set(["effectivePeriod", "extension"], [{"url": "http://hl7.org/fhir/StructureDefinition/cqf-strengthOfRecommendation",
                                              "valueCodeableConcept": {"text": "strong"}}]),
     "extension-context", "error", "PlanDefinition.effectivePeriod", '"effectivePeriod"'),
    ("extension with value and sub-extensions (ext-1)", BASE_PLAN,
     _set(["action", 0, "extension"], [{"url": "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle",
                                         "valueString": "x", "extension": [{"url": "day", "valueInteger": 1}]}]),
     "ext-1", "error", "PlanDefinition.action[0].extension[0]", '"url": "http://hl7.org/fhir/Structure', 1, -1),
    ("extension value of the wrong type", BASE_PLAN,
     _set(["action", 0, "extension"], [{"url": "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle",
                                         "extension": [{"url": "day", "valueString": "one"}]}]),
     "unknown-element", "error", "PlanDefinition.action[0].extension[0].extension[0]",
     '"valueString"'),
    ("shadow for a non-primitive", BASE_PLAN, _set(["_effectivePeriod"], {"id": "x"}), "shadow-not-primitive",
     "error", "PlanDefinition.effectivePeriod", '"_effectivePeriod"'),
    ("shadow array of another length", BASE_PATIENT,
     _set(["name", 0, "_given"], [{"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/humanname-fathers-family",
                                                  "valueString": "x"}]}]),
     "shadow-length", "error", "Patient.name[0].given", '"given"'),
    ("unknown resource type", BASE_PATIENT, _set(["resourceType"], "Patient2"), "resource-type-unknown", "error",
     "Patient2", '"resourceType"'),
    ("missing resourceType", BASE_PATIENT, _del(["resourceType"]), "resource-type-missing", "error", "", "{"),
    ("element with only an id (ele-1)", BASE_PATIENT, _set(["name", 0], {"id": "n1"}), "ele-1", "error",
     "Patient.name[0]", '"id": "n1"', 1, -1),
    ("invariant violation (per-1)", BASE_PLAN, _set(["effectivePeriod"], {"start": "2026-12-31", "end": "2026-01-01"}),
     "per-1", "error", "PlanDefinition.effectivePeriod", '"effectivePeriod"'),
    ("unsafe narrative: script", BASE_PLAN,
     _set(["text", "div"], "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p><script>alert(1)</script></div>"),
     "txt-1", "error", "PlanDefinition.text.div", '"div"'),
    ("unsafe narrative: event handler", BASE_PLAN,
     _set(["text", "div"], "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"x()\">x</p></div>"),
     "txt-1", "error", "PlanDefinition.text.div", '"div"'),
    ("narrative without the XHTML namespace", BASE_PLAN, _set(["text", "div"], "<div><p>x</p></div>"),
     "xhtml-namespace", "error", "PlanDefinition.text.div", '"div"'),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_single_breakage(case, check):
    name, base, fn, rule, severity, expression, marker = case[:7]
    occurrence = case[7] if len(case) > 7 else 1
    offset = case[8] if len(case) > 8 else 0
    broken = mutate(base, fn)
    text = dumps(broken)
    issues = check(text)
    hits = [i for i in issues if i.rule == rule]
    assert hits, f"{name}: no [{rule}] issue; got {[(i.rule, i.expression, i.message) for i in issues]}"
    hit = hits[0]
    assert hit.severity == Severity.parse(severity), (name, hit)
    assert hit.expression == expression, (name, hit.expression)
    want_line = line_of(text, marker, occurrence) + offset
    assert hit.line == want_line, (name, hit.line, want_line)
    # nothing else broke: every error is about the broken element (or the resource itself)
    others = [i for i in issues if i.is_error and not (i.expression.startswith(expression) or
                                                          expression.startswith(i.expression))]
    assert not others, [(i.rule, i.expression, i.message) for i in others]


JSON_CASES = [
    ("invalid JSON syntax", '{\n  "resourceType": "Patient",\n  "id": "p1"\n  "gender": "female"\n}',
     "json-syntax", "fatal", 4),
    ("trailing comma", '{\n  "resourceType": "Patient",\n  "id": "p1",\n}', "json-syntax", "fatal", 4),
    ("duplicate key", '{\n  "resourceType": "Patient",\n  "id": "p1",\n  "gender": "male",\n  "gender": "female"\n}',
     "json-duplicate-key", "error", 5),
    ("NaN", '{\n  "resourceType": "Observation",\n  "status": "final",\n  "code": {"text": "x"},\n  "valueQuantity": {"value": NaN}\n}',
     "json-number", "error", 5),
    ("nested array", '{\n  "resourceType": "Patient",\n  "name": [[{"family": "x"}]]\n}', "json-nested-array",
     "error", 3),
    ("top-level array", '[{"resourceType": "Patient"}]', "json-not-resource", "fatal", None),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_breakage(case, check):
    name, text, rule, severity, line = case
    issues = check(text)
    hits = [i for i in issues if i.rule == rule]
    assert hits, f"{name}: no [{rule}]; got {[(i.rule, i.message) for i in issues]}"
    assert hits[0].severity == Severity.parse(severity)
    if line is not None:
        assert hits[0].line == line


def test_bom_is_only_a_warning(check, tmp_path):
    issues = check("\ufeff" + dumps(BASE_PATIENT))
    assert [i.rule for i in issues if i.severity >= Severity.WARNING] == ["json-bom"]


def test_bundle_entry_of_unknown_type_is_an_issue_not_a_crash(check):
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:1e3c5b6e-7a4f-4d2c-9f0e-111111111111",
                         "resource": {"resourceType": "Nope", "id": "x"}}]}
    text = dumps(bundle)
    issues = check(text)
    hit = [i for i in issues if i.rule == "resource-type-unknown"]
    assert hit and hit[0].expression == "Bundle.entry[0].resource" and hit[0].line == line_of(text, '"resourceType": "Nope"')


def test_transaction_entry_without_request(check):
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"fullUrl": "urn:uuid:1e3c5b6e-7a4f-4d2c-9f0e-111111111111",
                         "resource": dict(BASE_PATIENT)}]}
    issues = check(dumps(bundle))
    assert any(i.rule.startswith("bdl-3") and i.is_error for i in issues), [(i.rule, i.message) for i in issues]


def test_urn_reference_missing_from_bundle(check):
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:1e3c5b6e-7a4f-4d2c-9f0e-111111111111",
                         "resource": dict(BASE_PATIENT, managingOrganization={
                             "reference": "urn:uuid:1e3c5b6e-7a4f-4d2c-9f0e-222222222222"})}]}
    text = dumps(bundle)
    hit = [i for i in check(text) if i.rule == "reference-bundle"]
    assert hit and hit[0].severity == Severity.WARNING and hit[0].line == line_of(text, '"reference"')


def write_cases(folder) -> list:
    """Every breakage case as a file (for comparing verdicts with the HL7 validator)."""
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, case in enumerate(CASES):
        path = folder / f"breakage-{n:02d}.json"
        path.write_text(dumps(mutate(case[1], case[2])), encoding="utf-8")
        paths.append(path)
    for n, case in enumerate(JSON_CASES):
        path = folder / f"breakage-json-{n:02d}.json"
        path.write_text(case[1], encoding="utf-8")
        paths.append(path)
    for n, base in enumerate((BASE_PLAN, BASE_PATIENT)):
        path = folder / f"breakage-base-{n}.json"
        path.write_text(dumps(base), encoding="utf-8")
        paths.append(path)
    return paths
