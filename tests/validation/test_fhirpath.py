"""The FHIRPath engine: fhirpathpy's parser and functions under our evaluator."""
from __future__ import annotations

from decimal import Decimal

import fhirpathpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirpkg.validation import fhirpath as fp
from fhirpkg.validation.fhirpath import parsing
from fhirpkg.validation.fhirpath import (
    EvaluationTimeout,
    FhirPathEngine,
    FhirPathError,
    FhirPathSyntaxError,
    NotEvaluable,
    date_boundary,
    decimal_boundary,
    time_boundary,
    ucum_dimension,
)
from fhirpkg.validation.xhtml import html_checks

ELD_11_AS_PUBLISHED = (
    "binding.empty() or type.code.empty() or type.code.contains(\":\") or type.select((code = 'code') or "
    "(code = 'Coding') or (code='CodeableConcept') or (code = 'Quantity') or (code = 'string') or (code = 'uri') "
    "or (code = 'Duration')).exists()")

PATIENT = {
    "resourceType": "Patient",
    "id": "p",
    "birthDate": "2000-01-01",
    "_birthDate": {"extension": [{"url": "http://x", "valueString": "y"}]},
    "name": [{"family": "F", "given": ["a", "b"], "_given": [None, {"extension": [{"url": "u", "valueCode": "c"}]}]}],
    "contained": [{"resourceType": "Practitioner", "id": "pr"}],
    "generalPractitioner": [{"reference": "#pr"}, {"reference": "Organization/1"}],
}


@pytest.fixture(scope="module")
def engine() -> FhirPathEngine:
    return FhirPathEngine(html_checks=html_checks)


def ev(engine, expression, value=PATIENT, type_path=None, resource=None, **kw):
    type_path = type_path or (value.get("resourceType") if isinstance(value, dict) else "string")
    resource = resource if resource is not None else (value if isinstance(value, dict) else {})
    return engine.evaluate(expression, value, type_path=type_path, resource=resource, **kw)


# --------------------------------------------------------------------------- fhirpathpy internals


def test_fhirpathpy_is_the_version_we_patch_around():
    assert fhirpathpy.__version__ == fp.FHIRPATHPY_VERSION
    fp.check_fhirpathpy()  # raises ImportError naming what changed


def test_fhirpathpy_ast_shape_is_what_the_compiler_reads():
    ast = fp.parse("Patient.name.where(use = 'x').given[0]")
    assert ast["type"] == "IndexerExpression"
    invocation = ast["children"][0]
    assert invocation["type"] == "InvocationExpression"
    assert invocation["children"][1] == {"type": "MemberInvocation", "terminalNodeText": [],
                                         "children": [{"type": "Identifier", "text": "given",
                                                       "terminalNodeText": ["given"]}]}
    where = invocation["children"][0]["children"][1]["children"][0]
    assert where["type"] == "Functn" and where["children"][0]["text"] == "where"
    assert where["children"][1]["type"] == "ParamList"


def test_invocation_table_entries_we_reuse_take_ctx_and_lists():
    registry = fhirpathpy.engine.invocations.invocation_registry
    assert registry["isDistinct"]["fn"](None, [1, 2, 2]) == [False]
    assert registry["="]["fn"](None, ["a"], ["a"]) == [True]
    assert registry["and"]["arity"][2] == [["Boolean"], ["Boolean"]]


# --------------------------------------------------------------------------- parsing


def test_published_eld_11_is_a_syntax_error(engine):
    with pytest.raises(FhirPathSyntaxError, match="syntax error"):
        engine.compile(ELD_11_AS_PUBLISHED)


@pytest.mark.parametrize("expression", ["a.b(", "a..b", "a b", "(a", "a = ", "where(", "1 +"])
def test_parser_errors_are_not_swallowed(engine, expression):
    with pytest.raises(FhirPathSyntaxError):
        engine.compile(expression)


def test_unknown_functions_and_wrong_arity_fail_at_compile_time(engine):
    with pytest.raises(FhirPathError, match="unsupported function foo"):
        engine.compile("foo()")
    with pytest.raises(FhirPathError, match="where"):
        engine.compile("where(a, b)")
    with pytest.raises(FhirPathError, match="takes no parameters"):
        engine.compile("hasValue(1)")


def test_compile_is_cached_and_reports_functions(engine):
    first = engine.compile("name.where(given.exists()).exists()")
    assert engine.compile("name.where(given.exists()).exists()") is first
    assert first.functions == {"where", "exists"}


def test_every_core_function_is_available(engine):
    for name in ("hasValue", "getValue", "memberOf", "htmlChecks", "lowBoundary", "highBoundary", "comparable",
                 "conformsTo", "resolve", "children", "descendants", "trace", "ofType", "repeat", "isDistinct"):
        assert name in engine.registry


# --------------------------------------------------------------------------- the bugs we fix


def test_top_level_this_is_bound(engine):
    assert ev(engine, "$this.id") == ["p"]
    snapshot = {"element": [{"path": "X", "mustSupport": True}]}
    sdf_26 = "$this.where(element[0].mustSupport='true').exists().not()"
    assert ev(engine, sdf_26, snapshot, type_path="StructureDefinition.snapshot", resource={}) == [True]


def test_primitive_and_shadow_are_one_item(engine):
    assert ev(engine, "birthDate.count()") == [1]
    assert ev(engine, "name.given.count()") == [2]
    assert ev(engine, "name.given") == ["a", "b"]
    assert ev(engine, "birthDate.extension.url") == ["http://x"]
    assert ev(engine, "name.given.extension.url") == ["u"]
    assert ev(engine, "name.given[1].extension.exists() and name.given[0].extension.empty()") == [True]


ACTIVITY_TIMING = {"_event": [{"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/cqf-expression",
                                               "valueExpression": {"language": "text/cql", "expression": "Now()"}}]}]}


def test_children_see_shadow_only_primitive_arrays(engine):
    # ActivityDefinition.timingTiming in 7 R5 examples: fhirpathpy's children() returned nothing -> ele-1 failed
    assert ev(engine, "children().count()", ACTIVITY_TIMING, type_path="Timing", resource={}) == [1]
    ele_1 = "hasValue() or (children().count() > id.count())"
    assert ev(engine, ele_1, ACTIVITY_TIMING, type_path="Timing", resource={}) == [True]
    assert ev(engine, "descendants().ofType(Extension).count()", ACTIVITY_TIMING, type_path="Timing",
              resource={}) == [1]


def test_extension_only_primitive(engine):
    shadow = {"extension": [{"url": "http://x", "valueCode": "masked"}]}
    assert engine.evaluate("hasValue()", None, type_path="string", resource={}, shadow=shadow) == [False]
    assert engine.evaluate("extension.count()", None, type_path="string", resource={}, shadow=shadow) == [1]
    assert engine.evaluate("children().count() > id.count()", None, type_path="string", resource={},
                           shadow=shadow) == [True]


def test_trace_is_silent_unless_asked(engine, capsys):
    assert ev(engine, "name.given.trace('g').count()") == [2]
    assert ev(engine, "contained.trace('unmatched', id).count()") == [1]
    assert capsys.readouterr().out == ""
    seen = []
    tracer = FhirPathEngine(trace=lambda name, values: seen.append((name, values)))
    assert tracer.evaluate("contained.trace('c', id).count()", PATIENT, type_path="Patient",
                           resource=PATIENT) == [1]
    assert seen == [("c", ["pr"])]


def test_where_runs_its_criteria_once_per_item():
    seen = []
    tracer = FhirPathEngine(trace=lambda name, values: seen.append(values))
    tracer.evaluate("name.given.where(trace('x') = 'a')", PATIENT, type_path="Patient", resource=PATIENT)
    assert len(seen) == 2  # fhirpathpy evaluates where() criteria twice


def test_this_is_restored_after_a_lambda(engine):
    assert ev(engine, "name.where(given.exists()).exists() and $this.id = 'p'") == [True]


def test_and_or_implies_short_circuit(engine):
    # resolve() without a resolver would raise; it must not be reached
    assert ev(engine, "false and generalPractitioner.resolve().exists()") == [False]
    assert ev(engine, "true or generalPractitioner.resolve().exists()") == [True]
    assert ev(engine, "photo.exists() implies generalPractitioner.resolve().exists()") == [True]
    with pytest.raises(NotEvaluable):
        ev(engine, "name.exists() implies generalPractitioner.resolve().exists()")


def test_string_functions_are_lenient_about_collections_like_the_validator(engine):
    sd_element = {"path": "X.value[x]", "type": [{"code": "string"}, {"code": "Quantity"}]}
    assert ev(engine, "type.code.contains(':')", sd_element, type_path="ElementDefinition", resource={}) == []
    assert ev(engine, "type.code.startsWith('str')", sd_element, type_path="ElementDefinition",
              resource={}) == [True]
    assert ev(engine, "type.code.matches('^s')", sd_element, type_path="ElementDefinition", resource={}) == [False]
    assert ev(engine, "path.substring(0, path.length() - 3)", sd_element, type_path="ElementDefinition",
              resource={}) == ["X.value"]


def test_evaluation_errors_are_fhirpath_errors(engine):
    with pytest.raises(FhirPathError, match="engine error"):
        ev(engine, "'a' < 1")
    with pytest.raises(FhirPathError, match="undefined environment variable"):
        ev(engine, "%nope")


def test_time_budget():
    slow = FhirPathEngine(time_budget=0.0)
    with pytest.raises(EvaluationTimeout):
        slow.evaluate("descendants().count()", PATIENT, type_path="Patient", resource=PATIENT)
    with pytest.raises(EvaluationTimeout):
        slow.evaluate("name.where(true).count()", PATIENT, type_path="Patient", resource=PATIENT)


# --------------------------------------------------------------------------- environment, types, navigation


def test_environment_variables(engine):
    assert ev(engine, "%ucum") == ["http://unitsofmeasure.org"]
    assert ev(engine, "%sct | %loinc") == ["http://snomed.info/sct", "http://loinc.org"]
    assert ev(engine, "%`vs-administrative-gender`") == ["http://hl7.org/fhir/ValueSet/administrative-gender"]
    assert ev(engine, "%`ext-patient-birthTime`") == ["http://hl7.org/fhir/StructureDefinition/patient-birthTime"]
    assert ev(engine, "%resource.id | %rootResource.id") == ["p"]
    assert ev(engine, "%context.id") == ["p"]
    assert ev(engine, "%x", variables={"x": "y"}) == ["y"]
    container = {"resourceType": "Bundle", "id": "b"}
    assert engine.evaluate("%rootResource.id", PATIENT["contained"][0], type_path="Practitioner",
                           resource=PATIENT["contained"][0], root_resource=container) == ["b"]


def test_type_filter_choice_types_and_is(engine):
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 1, "unit": "mg"},
           "component": [{"valueString": "x"}, {"valueCodeableConcept": {"text": "t"}}]}
    assert ev(engine, "Observation.value.value", obs) == [1]
    assert ev(engine, "value is Quantity", obs) == [True]
    assert ev(engine, "component.value.ofType(string)", obs) == ["x"]
    assert ev(engine, "component.value.ofType(CodeableConcept).text", obs) == ["t"]
    assert ev(engine, "Patient.id", obs) == []


def test_content_reference_paths(engine):
    q = {"resourceType": "Questionnaire", "item": [{"linkId": "1", "item": [{"linkId": "1.1", "type": "string"}]}]}
    assert ev(engine, "item.item.linkId", q) == ["1.1"]
    assert ev(engine, "descendants().linkId.isDistinct()", q) == [True]
    assert engine.evaluate("linkId", q["item"][0]["item"][0], type_path="Questionnaire.item.item",
                           resource=q) == ["1.1"]


# --------------------------------------------------------------------------- added functions


def test_has_value_and_get_value(engine):
    assert ev(engine, "birthDate.hasValue()") == [True]
    assert ev(engine, "name.given.hasValue()") == [False]  # more than one item
    assert ev(engine, "name.given[0].hasValue()") == [True]
    assert ev(engine, "birthDate.getValue()") == ["2000-01-01"]
    assert ev(engine, "name.getValue()") == []
    # the HL7 validator's hasValue(): a complex element has a (string) value
    assert ev(engine, "name.first().hasValue()") == [True]
    assert engine.evaluate("hasValue()", "", type_path="string", resource={}) == [False]


@pytest.mark.parametrize("expression, expected", [
    ("1.587.lowBoundary()", Decimal("1.58650000")),
    ("1.587.highBoundary()", Decimal("1.58750000")),
    ("1.587.lowBoundary(6)", Decimal("1.586500")),
    ("1.587.lowBoundary(2)", Decimal("1.58")),
    ("1.587.highBoundary(2)", Decimal("1.59")),
    ("(-1.587).lowBoundary()", Decimal("-1.58750000")),
    ("(-1.587).highBoundary()", Decimal("-1.58650000")),
    ("1.lowBoundary()", Decimal("0.50000000")),
    ("1.highBoundary(0)", Decimal("2")),
    ("0.lowBoundary(1)", Decimal("-0.5")),
])
def test_decimal_boundaries(engine, expression, expected):
    assert ev(engine, expression) == [expected]


def test_date_and_time_boundaries(engine):
    [low] = ev(engine, "@2014.lowBoundary(6)")
    assert low.asStr == "2014-01"
    [high] = ev(engine, "@2014-02.highBoundary(8)")
    assert high.asStr == "2014-02-28"
    assert date_boundary("2016-02", 8, high=True) == "2016-02-29"
    assert date_boundary("2014-01-01T08", 17, high=False) is None  # not a valid dateTime string
    assert date_boundary("2014-01-01T08:05", 17, high=False) == "2014-01-01T08:05:00.000+14:00"
    assert date_boundary("2014-01-01T08:05Z", 17, high=True) == "2014-01-01T08:05:59.999Z"
    assert date_boundary("2014", 17, high=True) == "2014-12-31T23:59:59.999-12:00"
    assert time_boundary("10:30", 9, high=False) == "10:30:00.000"
    assert time_boundary("T10:30", 6, high=True) == "10:30:59"
    assert ev(engine, "birthDate.lowBoundary() <= birthDate.highBoundary()") == [True]


def test_quantity_boundaries_keep_the_unit(engine):
    quantity = {"value": 1.50, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    [low] = engine.evaluate("lowBoundary()", quantity, type_path="Quantity", resource={})
    assert low == {"value": Decimal("1.45000000"), "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    assert engine.evaluate("highBoundary(2).value", quantity, type_path="Quantity", resource={}) == [Decimal("1.55")]
    assert engine.evaluate("lowBoundary()", {"unit": "mg"}, type_path="Quantity", resource={}) == []


PER_1 = "start.hasValue().not() or end.hasValue().not() or (start.lowBoundary() <= end.highBoundary())"


@pytest.mark.parametrize("period, ok", [
    ({"start": "2020-01-01", "end": "2020-12-31"}, True),
    ({"start": "2020-01-01", "end": "2020-01-01"}, True),
    ({"start": "2020-06", "end": "2020-06-15T10:00:00Z"}, True),
    ({"start": "2021", "end": "2020-12-31"}, True),  # no timezones: 2021-01-01+14:00 is before 2020-12-31-12:00
    ({"start": "2022", "end": "2020-12-31"}, False),
    ({"start": "2020-01-02T10:00:00+01:00", "end": "2020-01-02T08:00:00Z"}, False),
    ({"start": "2020-01-02T10:00:00+01:00", "end": "2020-01-02T09:30:00Z"}, True),
    ({"start": "2020-01-01"}, True),
    ({"_start": {"extension": [{"url": "x", "valueCode": "unknown"}]}, "end": "2020-01-01"}, True),
])
def test_per_1(engine, period, ok):
    assert engine.evaluate(PER_1, period, type_path="Period", resource={}) == [ok]


RNG_2 = ("low.value.empty() or high.value.empty() or low.lowBoundary().comparable(high.highBoundary()).not() or "
         "(low.lowBoundary() <= high.highBoundary())")


@pytest.mark.parametrize("low, high, ok", [
    ({"value": 1, "system": "http://unitsofmeasure.org", "code": "mg"},
     {"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"}, True),
    ({"value": 3, "system": "http://unitsofmeasure.org", "code": "mg"},
     {"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"}, True),  # 3 may be 2.5, 2 may be 2.5
    ({"value": 3.5, "system": "http://unitsofmeasure.org", "code": "mg"},
     {"value": 2.1, "system": "http://unitsofmeasure.org", "code": "mg"}, False),
    ({"value": 500, "system": "http://unitsofmeasure.org", "code": "mg"},
     {"value": 1, "system": "http://unitsofmeasure.org", "code": "g"}, True),
    ({"value": 2.0, "system": "http://unitsofmeasure.org", "code": "g"},
     {"value": 1500, "system": "http://unitsofmeasure.org", "code": "mg"}, False),
    ({"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"},
     {"value": 1, "system": "http://unitsofmeasure.org", "code": "mL"}, True),  # not comparable: passes
    ({"value": 2, "unit": "tablets"}, {"value": 1, "unit": "tablets"}, True),  # no code: not comparable
    ({"value": 2}, {"value": 1}, True),
])
def test_rng_2(engine, low, high, ok):
    assert engine.evaluate(RNG_2, {"low": low, "high": high}, type_path="Range", resource={}) == [ok]


def test_comparable_and_ucum(engine):
    assert ucum_dimension("mg/dL")[1] == ucum_dimension("g/L")[1]
    assert ucum_dimension("mg/dL")[0] / ucum_dimension("g/L")[0] == Decimal("0.01")
    assert ucum_dimension("10*3/uL")[1] == ucum_dimension("/mm3")[1]
    assert ucum_dimension("10*3/uL")[0] == 1000 * ucum_dimension("/mm3")[0]  # 1 uL = 1 mm3
    assert ucum_dimension("{beats}/min")[1] == ucum_dimension("/s")[1]
    assert ucum_dimension("[foo]") is None
    q = {"low": {"value": 1, "system": "http://unitsofmeasure.org", "code": "[foo]"},
         "high": {"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"}}
    with pytest.raises(NotEvaluable, match="UCUM"):
        engine.evaluate("low.comparable(high)", q, type_path="Range", resource={})


def test_member_of_needs_an_answer():
    vs = "http://hl7.org/fhir/ValueSet/resource-types"
    expression = f"structureType.memberOf('{vs}')"
    instance = {"structureType": {"system": "http://hl7.org/fhir/fhir-types", "code": "Patient"}}
    with pytest.raises(NotEvaluable, match="terminology"):
        FhirPathEngine().evaluate(expression, instance, type_path="ExampleScenario.instance", resource={})
    asked = []
    unsure = FhirPathEngine(member_of=lambda value, url: asked.append((value, url)))
    with pytest.raises(NotEvaluable, match="offline"):
        unsure.evaluate(expression, instance, type_path="ExampleScenario.instance", resource={})
    assert asked == [(instance["structureType"], vs)]
    sure = FhirPathEngine(member_of=lambda value, url: (value.get("code") if isinstance(value, dict) else value)
                          == "Patient")
    assert sure.evaluate(expression, instance, type_path="ExampleScenario.instance", resource={}) == [True]
    assert sure.evaluate("code.memberOf('x')", {"code": "final"}, type_path="Observation", resource={}) == [False]


def test_conforms_to():
    url = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
    with pytest.raises(NotEvaluable):
        FhirPathEngine().evaluate(f"conformsTo('{url}')", PATIENT, type_path="Patient", resource=PATIENT)
    engine = FhirPathEngine(conforms_to=lambda resource, profile: resource["id"] == "p" and profile == url)
    assert engine.evaluate(f"conformsTo('{url}')", PATIENT, type_path="Patient", resource=PATIENT) == [True]
    with pytest.raises(NotEvaluable):
        FhirPathEngine(conforms_to=lambda r, p: None).evaluate(
            f"conformsTo('{url}')", PATIENT, type_path="Patient", resource=PATIENT)


def test_resolve(engine):
    # '#id' is resolved locally, no callback needed
    assert ev(engine, "generalPractitioner.first().resolve() is Practitioner") == [True]
    assert ev(engine, "generalPractitioner.first().resolve().id") == ["pr"]
    with pytest.raises(NotEvaluable, match="resolver"):
        ev(engine, "generalPractitioner.resolve()")
    seen = []
    organization = {"resourceType": "Organization", "id": "1"}
    resolving = FhirPathEngine(resolve=lambda ref, ctx: (seen.append((ref, ctx)), organization)[1])
    frame = object()
    assert resolving.evaluate("generalPractitioner.resolve().ofType(Organization).id", PATIENT, type_path="Patient",
                              resource=PATIENT, context=frame) == ["1"]
    assert seen == [("Organization/1", frame)]
    missing = FhirPathEngine(resolve=lambda ref, ctx: None)
    ctm_1 = "onBehalfOf.exists() implies (member.resolve() is Practitioner)"
    participant = {"member": {"reference": "Practitioner/x"}, "onBehalfOf": {"reference": "Organization/2"}}
    assert missing.evaluate(ctm_1, participant, type_path="CareTeam.participant", resource={}) == []


def test_html_checks_needs_a_checker():
    div = {"div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>'}
    with pytest.raises(NotEvaluable):
        FhirPathEngine().evaluate("`div`.htmlChecks()", div, type_path="Narrative", resource={})
    engine = FhirPathEngine(html_checks=html_checks)
    assert engine.evaluate("`div`.htmlChecks()", div, type_path="Narrative", resource={}) == [True]
    bad = {"div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div>'}
    assert engine.evaluate("`div`.htmlChecks()", bad, type_path="Narrative", resource={}) == [False]
    empty = {"div": '<div xmlns="http://www.w3.org/1999/xhtml"> </div>'}
    assert engine.evaluate("`div`.htmlChecks2()", empty, type_path="Narrative", resource={}) == [False]


# --------------------------------------------------------------------------- properties


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**6))
def test_boundaries_bracket_the_value(value):
    text = str(value)
    low = decimal_boundary(text, 8, high=False)
    high = decimal_boundary(text, 8, high=True)
    assert low <= value <= high
    if not value.is_zero():
        unit = Decimal(1).scaleb(value.as_tuple().exponent)
        assert high - low == unit


@given(st.dates(), st.integers(min_value=0, max_value=2))
def test_date_boundaries_bracket_the_date(day, cut):
    text = day.isoformat()[: (4, 7, 10)[cut]]
    low = date_boundary(text, 17, high=False)
    high = date_boundary(text, 17, high=True)
    assert low.startswith(text) and high.startswith(text) or cut < 2
    assert low[:10] <= day.isoformat() <= high[:10]


def test_parse_trees_are_kept_between_runs(tmp_path, monkeypatch):
    path = tmp_path / "asts.json"
    monkeypatch.setenv(fp.AST_CACHE_ENV, str(path))
    monkeypatch.setattr(parsing, "_ASTS", {})
    monkeypatch.setattr(parsing, "_AST_STATE", {"loaded": False, "dirty": False})
    expression = "name.given.where($this = 'kept').exists()"
    tree = fp.parse_cached(expression)
    fp.save_ast_cache()
    saved = __import__("json").loads(path.read_text())
    assert saved["fhirpathpy"] == fp.FHIRPATHPY_VERSION and saved["asts"][expression] == tree
    # a new process: trees come from the file, not from ANTLR
    monkeypatch.setattr(parsing, "_ASTS", {})
    monkeypatch.setattr(parsing, "_AST_STATE", {"loaded": False, "dirty": False})
    monkeypatch.setattr(parsing, "parse", lambda text: pytest.fail("parsed again"))
    assert fp.parse_cached(expression) == tree
    # a damaged file is ignored
    path.write_text("{not json")
    monkeypatch.setattr(parsing, "_ASTS", {})
    monkeypatch.setattr(parsing, "_AST_STATE", {"loaded": False, "dirty": False})
    monkeypatch.undo()
    assert fp.parse_cached("1 + 1") is not None


def test_compiled_forms_are_shared_between_engines():
    a, b = FhirPathEngine(), FhirPathEngine()
    assert a.compile("id.exists()") is b.compile("id.exists()")


@pytest.mark.parametrize("expression, wrong", [
    ("id & meta.versionId", "Decimal '1.5'"),       # & takes strings (FHIRPath 6.6.3)
    ("meta.versionId.substring(0, id)", "String 'p'"),  # substring's start is an Integer
])
def test_an_operand_of_the_wrong_type_is_an_evaluation_error(engine, expression, wrong):
    """A JSON number where the model says string (already a structure error) must not crash the engine:
    it is one FhirPathError naming the expected and the found type (bdl-7 on such a Bundle, found by
    tests/reliability/test_properties.py)."""
    patient = {"resourceType": "Patient", "id": "p", "meta": {"versionId": Decimal("1.5")}}
    with pytest.raises(FhirPathError, match=f"expected an? (String|Integer), got {wrong}"):
        ev(engine, expression, patient)


@pytest.mark.parametrize("expression, result", [
    ("1 in (1 | 2 | 3)", [True]),
    ("(1 | 2) in (1 | 2 | 3)", [True]),     # several items on the left: each must be in the right
    ("(1 | 5) in (1 | 2 | 3)", [False]),
    ("{} in (1 | 2)", []),
    ("1 in {}", [False]),
    ("(1 | 2 | 3) contains (1 | 3)", [True]),
    ("(1 | 2 | 3) contains (1 | 4)", [False]),
])
def test_membership_takes_collections_as_the_hl7_engine_does(engine, expression, result):
    """The HL7 FHIRPathEngine's opIn/opContains test every item; core invariants need it (pld-3)."""
    assert ev(engine, expression) == result


def test_pld_3_is_evaluated_for_an_action_with_several_goals(engine):
    expression = "%context.repeat(action).where((goalId in %context.goal.id).not()).exists().not()"
    plan = {"resourceType": "PlanDefinition", "goal": [{"id": "g1"}, {"id": "g2"}],
            "action": [{"goalId": ["g1", "g2"]}]}
    assert ev(engine, expression, plan) == [True]
    plan["action"][0]["goalId"].append("g3")
    assert ev(engine, expression, plan) == [False]


# FHIRPath 2.0, Comparison: "If one value is specified to a different level of precision than the
# other, the result is empty ({ }) to indicate that the result of the comparison is unknown";
# date-times with time zones are compared as instants.  The HL7 validator fails R4's per-1
# (start <= end) on a Period from "2023-06-21" to "2023-06-21T06:20:00Z" (the suite's
# encounter-period case) because the comparison is empty.
@pytest.mark.parametrize("start,end,op,result", [
    ("2023-06-21", "2023-06-21T06:20:00Z", "<=", []),
    ("2023-06-21", "2023-06-21T06:20:00Z", ">", []),
    ("2023-06-22", "2023-06-21T06:20:00Z", "<=", [False]),
    ("2023-06-20", "2023-06-21T06:20:00Z", "<", [True]),
    ("2023-06-21T10:00:00+02:00", "2023-06-21T09:00:00Z", "<=", [True]),   # 08:00Z <= 09:00Z
    ("2023-06-21T10:00:00+02:00", "2023-06-21T07:00:00Z", "<=", [False]),  # as strings: true
    ("2023", "2024-01", "<", [True]),
    ("2023-05", "2023", ">=", []),
])
def test_dates_of_elements_compare_by_precision_and_time_zone(engine, start, end, op, result):
    period = {"start": start, "end": end}
    assert ev(engine, f"start {op} end", period, type_path="Period", resource={}) == result


def test_r4_per_1_fails_on_a_period_of_unknown_order():
    r4 = FhirPathEngine(model="r4")
    per_1 = "start.hasValue().not() or end.hasValue().not() or (start <= end)"
    assert r4.evaluate(per_1, {"start": "2023-06-21", "end": "2023-06-21T06:20:00Z"},
                       type_path="Period", resource={}) == []
    assert r4.evaluate(per_1, {"start": "2023-06-21", "end": "2023-06-22T06:20:00Z"},
                       type_path="Period", resource={}) == [True]


def test_type_info_has_name_and_namespace():
    """FHIRPath type(): a TypeInfo with name and namespace, which expressions navigate (the
    official case contained-invariant: %context.type().name = 'Reference' on generalPractitioner)."""
    r4 = FhirPathEngine(model="r4")
    patient = {"resourceType": "Patient", "generalPractitioner": [{"reference": "#p1"}],
               "contained": [{"resourceType": "Practitioner", "id": "p1"}]}
    gp = patient["generalPractitioner"][0]
    cont_3 = ("%context.type().name = 'Reference' and %resource.type().name = 'Patient' "
              "and %rootResource.type().name = 'Patient'")
    assert r4.evaluate(cont_3, gp, type_path="Reference", resource=patient, root_resource=patient) == [True]
    assert r4.evaluate("1.type().namespace", patient, type_path="Patient", resource=patient) == ["System"]
    assert r4.evaluate("type().name", patient["contained"][0], type_path="Practitioner",
                       resource=patient) == ["Practitioner"]


def test_models_read_on_first_use_are_fhirpathpys():
    """The engine reads fhirpathpy's model files itself, one FHIR version at a time: the same data."""
    from fhirpathpy.models import models
    from fhirpkg.validation.fhirpath.model import FP_MODELS
    assert sorted(FP_MODELS) == sorted(models) and "r5" in FP_MODELS and "r6" not in FP_MODELS
    assert all(FP_MODELS[name] == models[name] for name in models)


@pytest.mark.parametrize("value", [[False, False], [3, 4]])
def test_comparing_a_collection_of_two_is_an_evaluation_error_not_a_crash(engine, value):
    """FHIRPath: the comparison operators take one item a side (a JSON array in a single-valued element
    gives two); fhirpathpy's own check mistook two items for a primitive and its shadow, a TypeError."""
    from fhirpkg.validation.fhirpath.common import FhirPathError
    with pytest.raises(FhirPathError, match="needs a single item on each side; found 2 and 1"):
        ev(engine, "period >= 0", {"period": value}, type_path="Timing.repeat")


SD_LIKE = {"resourceType": "StructureDefinition", "id": "Patient-like",
           "snapshot": {"element": [{"path": "Patient"}] + [{"path": f"Patient.e{i}"} for i in range(40)]}}


@pytest.mark.parametrize("expression,expected", [
    # sdf-8's tail: the same %resource prefix for every element
    ("snapshot.element.tail().all(path.startsWith(%resource.snapshot.element.first().path&'.'))", [True]),
    ("snapshot.element.all(path.startsWith(%resource.snapshot.element.first().path&'.'))", [False]),
    # startsWith's parameter is evaluated on $this (each element): not one value for all
    ("snapshot.element.all(%resource.id.startsWith(path))", [False]),
    ("snapshot.element.where(%resource.id.startsWith(path)).count()", [1]),
    # the inner where's $this is its own
    ("snapshot.element.all(%resource.snapshot.element.where($this.path = 'Patient').exists())", [True]),
    ("snapshot.element.select(%resource.snapshot.element.count() - 40).distinct()", [1]),
])
def test_subexpressions_independent_of_the_focus_give_what_they_give_per_item(expression, expected):
    """Inside where/select/all a subexpression that starts from %resource (or a literal) is
    evaluated once per evaluation; those that read $this, directly or through a parameter, per item.
    Expected values worked out by hand from the FHIRPath spec on SD_LIKE."""
    engine = FhirPathEngine()
    assert ev(engine, expression, SD_LIKE) == expected


def test_a_focus_independent_subexpression_is_evaluated_once(monkeypatch):
    """sdf-8 walked every element once per element; now the %resource part runs once."""
    from fhirpkg.validation.fhirpath import compiler
    calls = []
    real = compiler.member
    monkeypatch.setattr(compiler, "member", lambda model, items, name: calls.append(name) or real(model, items, name))
    engine = FhirPathEngine()
    expression = "snapshot.element.tail().all(path.startsWith(%resource.snapshot.element.first().path&'.'))"
    assert ev(engine, expression, SD_LIKE) == [True]
    # snapshot, element, then per element: path; the %resource part once (snapshot, element, path)
    assert len(calls) == 2 + 40 + 3


def test_a_backbone_element_is_known_though_the_model_lists_only_its_children():
    """fhirpathpy's model has ElementDefinition.slicing.rules but not ElementDefinition.slicing:
    an absent backbone is empty (its object's other keys are not searched for a choice), a present
    one is typed by its path, and outside the model valueX is still found."""
    from fhirpkg.validation.fhirpath.model import JsonNode, R5_TYPE_MODEL, member
    element = JsonNode({"path": "a", "slicingRules": {"rules": "open"}}, "ElementDefinition")
    assert member(R5_TYPE_MODEL, [element], "slicing") == []
    found = member(R5_TYPE_MODEL, [JsonNode({"slicing": {"rules": "open"}}, "ElementDefinition")], "slicing")
    assert [(n.path, n.data) for n in found] == [("ElementDefinition.slicing", {"rules": "open"})]
    logical = JsonNode({"valueString": "x"}, "SomeLogicalModel")
    assert [n.data for n in member(R5_TYPE_MODEL, [logical], "value")] == ["x"]


def test_union_keeps_what_fhirpathpys_union_keeps():
    """``|`` skips fhirpathpy's serialising duplicate test for pairwise unequal items; the items
    and their order are fhirpathpy's on duplicates, equal copies, int/decimal, str/NaN stand-ins
    and more items than it compares itself."""
    from decimal import Decimal
    from fhirpathpy.engine.invocations import invocation_registry as fp
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpkg.fhir.jsonsource import BadConstant
    from fhirpkg.validation.fhirpath.functions import UNION_PAIRS, op_union
    snapshot = {"element": [{"path": "A"}, {"path": "A.b"}]}
    cases = [
        ([snapshot], [{"element": [{"path": "A"}]}]), ([snapshot], [snapshot]), ([snapshot], [dict(snapshot)]),
        ([1], [Decimal("1")]), ([Decimal("1.0")], [Decimal("1.00")]), (["NaN"], [BadConstant("NaN")]),
        (["1"], [1]), ([True], [1]), ([{"a": Decimal("1.5")}], [{"a": Decimal("1.50")}]),
        ([{"a": 1}], [{"a": 2}, {"a": 1}]), ([f"x{i}" for i in range(UNION_PAIRS)], ["y", "x0"]),
        ([], ["a"]), (["a"], []), ([], []),
    ]
    for left, right in cases:
        nodes = [ResourceNode.create_node(v, "string") for v in left], [ResourceNode.create_node(v, "string") for v in right]
        expected = fp["|"]["fn"](None, *nodes)
        got = op_union(None, *nodes)
        assert [(type(x), x.data, x.path) for x in got] == [(type(x), x.data, x.path) for x in expected], (left, right)


def test_is_distinct_gives_what_fhirpathpys_gives():
    """isDistinct() on strings (all nodes or all plain) without serialising them: fhirpathpy's
    answers on strings, mixed nodes and plain strings, numbers and odd strings."""
    from decimal import Decimal
    from fhirpathpy.engine.invocations import invocation_registry as fp
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpkg.fhir.jsonsource import BadConstant
    from fhirpkg.validation.fhirpath.functions import fn_is_distinct
    node = ResourceNode.create_node
    cases = [
        [node("a", "id"), node("b", "id")], [node("a", "id"), node("a", "id")], ["a", "b"], ["a", "a"],
        [node("a", "id"), "a"], ["a", node("a", "id")], [node("NaN", "id"), node(BadConstant("NaN"), "id")],
        [1, Decimal("1")], [node("1", "id"), node(1, "integer")], [], [node("a", "id")], ["é", "e\u0301"],
    ]
    for coll in cases:
        assert fn_is_distinct(None, coll) == fp["isDistinct"]["fn"](None, coll), coll
