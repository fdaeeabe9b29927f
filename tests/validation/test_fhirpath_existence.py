"""Existence tests (fhirpath/existence.py) give what the compiled FHIRPath gives.

Invariants that only ask whether elements are present run without an evaluation context.
Expected results: the FHIRPath spec's meaning for a few cases written by hand, and otherwise
the compiled form, which is the reference (it has its own tests against the spec and the HL7
validator's outcomes), on odd JSON as well as ordinary; and, for the whole validator, the
issues on a sample of the R5 examples with the fast form switched off.
"""
from __future__ import annotations

import pytest

from fhirpkg.fhir import packages as pk
from fhirpkg.fhir.inputs import Source, read_source
from fhirpkg.validation import Validator, invariants
from fhirpkg.validation.fhirpath import FhirPathEngine, FhirPathError
from fhirpkg.validation.invariants import passes

COD_1 = "code.exists().not() implies display.exists().not()"
REF_2 = "reference.exists() or identifier.exists() or display.exists() or extension.exists()"
DOM_4 = "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()"
OBS_6 = "dataAbsentReason.empty() or value.empty()"

SHAPES = [
    ("Coding", COD_1), ("Reference", REF_2), ("Observation", DOM_4), ("Observation", OBS_6),
    ("Narrative", "text.`div`.exists()"), ("Identifier", "value.exists()"),
    ("Timing.repeat", "(period.empty() or periodUnit.exists()) and (countMax.empty() or count.exists())"),
    ("Coding", "code.exists() implies (system.exists() and display.exists().not().not())"),
    ("Patient", "name.given.exists() or name.family.empty()"),
]

VALUES = [
    {}, {"code": "a"}, {"display": "b"}, {"code": "a", "display": "b"}, {"_code": {"extension": [{"url": "x"}]}},
    {"_display": {"id": "1"}}, {"code": None, "display": None}, {"code": [None], "display": []},
    {"code": ["a", "b"]}, {"reference": "Patient/1"}, {"identifier": {"value": "x"}}, {"extension": []},
    {"contained": [{"resourceType": "Patient", "meta": {"versionId": "1"}}]},
    {"contained": [{"resourceType": "Patient", "meta": {}}, None, "odd"]},
    {"contained": {"resourceType": "Patient", "meta": {"lastUpdated": "2020"}}},
    {"valueQuantity": {"value": 1}}, {"valueString": "x", "dataAbsentReason": {"text": "t"}},
    {"_valueString": {"extension": [{"url": "x"}]}}, {"dataAbsentReason": {}},
    {"text": {"div": "<div/>"}}, {"text": {"_div": {"id": "x"}}}, {"text": "not an object"},
    {"value": "v"}, {"_value": {"extension": []}}, {"period": 1, "periodUnit": "d"}, {"period": 1}, {"countMax": 2},
    {"name": [{"given": ["A"]}, {"family": "B"}]}, {"name": [{"_given": [None, {"id": "g"}]}]}, {"name": "x"},
    "a string", 7, True, [], [{"code": "a"}], None,
]


@pytest.fixture(scope="module")
def engine():
    return FhirPathEngine()


def compiled(engine, expression, value, type_path, shadow=None):
    try:
        return passes(engine.evaluate(engine.compile(expression), value, type_path=type_path, resource=value,
                                      shadow=shadow))
    except FhirPathError as e:
        return ("error", str(e))


def fast(engine, expression, value, type_path, shadow=None):
    try:
        return engine.existence(expression)(value, type_path, shadow)
    except FhirPathError as e:
        return ("error", str(e))


def test_cod1_as_the_spec_reads_it(engine):
    """cod-1: a display needs a code (a code's extension is not a code value, but it is a code)."""
    test = engine.existence(COD_1)
    assert test({"display": "b"}, "Coding") is False
    assert test({"code": "a", "display": "b"}, "Coding") is True
    assert test({}, "Coding") is True
    assert test({"_code": {"extension": [{"url": "x"}]}, "display": "b"}, "Coding") is True


@pytest.mark.parametrize("type_path,expression", SHAPES)
def test_existence_tests_agree_with_the_compiled_form(engine, type_path, expression):
    assert engine.existence(expression) is not None
    for value in VALUES:
        for shadow in (None, {"extension": [{"url": "x"}]}):
            assert fast(engine, expression, value, type_path, shadow) == \
                compiled(engine, expression, value, type_path, shadow), (value, shadow)


@pytest.mark.parametrize("expression", [
    "code.exists(system)", "exists()", "$this.code.exists()", "Coding.code.exists()", "code.exists() xor true",
    "code = 'a'", "active", "code.first().exists()", "name[0].exists()", "code.exists() and %resource.exists()",
    "code.empty().not() implies display", "code.exists(",
])
def test_other_shapes_are_left_to_the_compiled_form(engine, expression):
    assert engine.existence(expression) is None


EARLY = [
    ("ElementDefinition", "fixed.empty() or (type.count() <= 1)"),
    ("ElementDefinition", "(isModifier.exists() and isModifier) implies isModifierReason.exists()"),
    ("ElementDefinition", "orderMeaning.empty() implies slicing.where(rules='openAtEnd' or ordered).exists().not()"),
    ("Timing.repeat", "duration.exists() implies duration >= 0"),
    ("Coding", "code.exists().not() and (code = 'a')"),
    # equality with a string literal, isDistinct(): decided on text values only
    ("ElementDefinition", "type.select(code).isDistinct()"),
    ("ElementDefinition", "mapping.select(identity).isDistinct()"),
    ("ElementDefinition", "type.code.isDistinct()"),
    ("ElementDefinition.type", "(code='Reference' or code = 'canonical' or code = 'CodeableReference') or targetProfile.empty()"),
    ("ElementDefinition", "min.empty() or max.empty() or (max = '*') or iif(max != '*', min <= max.toInteger())"),
    ("ElementDefinition.constraint", "(severity = 'error') implies suppress.empty()"),
    ("Coding", "code != 'a'"),
    ("Coding", "code = 'a\\'b'"),
    # a boolean element itself; string functions with a literal on one text
    ("ElementDefinition", "(isModifier.exists() and isModifier) implies isModifierReason.exists()"),
    ("Coding", "code.matches('^[a-z]+$') or display.exists()"),
    ("Coding", "code.startsWith('a') and code.endsWith('b').not() and code.contains('c').not()"),
    # exists()/empty() of where/select whose parameter is decided on every item
    ("ElementDefinition", "binding.empty() or type.code.empty() or type.code.contains(':') or "
     "type.select((code = 'code') or (code = 'Coding') or (code='CodeableConcept') or (code = 'Quantity') or "
     "(code = 'string') or (code = 'uri') or (code = 'Duration')).exists()"),
    ("ElementDefinition", "type.where(code = 'a').exists()"),
    ("ElementDefinition", "type.select(code = 'a').empty()"),
    ("ElementDefinition", 'path.matches(\'^[A-Za-z][A-Za-z0-9]{0,63}(\\\\.[a-z][A-Za-z0-9]{0,63}(\\\\[x])?)*$\')'),
]
EARLY_VALUES = VALUES + [
    {"fixed": "x"}, {"fixedString": "x", "type": [{"code": "string"}, {"code": "uri"}]},
    {"isModifier": True}, {"isModifier": False, "isModifierReason": "r"}, {"isModifier": "odd"},
    {"slicing": {"rules": "openAtEnd"}}, {"slicing": {"ordered": True}}, {"orderMeaning": "m", "slicing": {}},
    {"duration": -1}, {"duration": 2}, {"duration": [1, 2]},
    {"type": [{"code": "string"}, {"code": "string"}]}, {"type": [{"code": "a"}, {"code": "b"}]},
    {"type": [{"code": "a"}, {"_code": {"id": "x"}}]}, {"type": [{"code": "a"}, {"code": 1}]},
    {"type": {"code": ["a", "a"]}}, {"type": [{"code": "a"}, {"code": "A"}]},
    {"code": "Reference", "targetProfile": ["x"]}, {"code": "string", "targetProfile": ["x"]},
    {"code": "string"}, {"code": ["Reference"], "targetProfile": ["x"]}, {"code": 5, "targetProfile": ["x"]},
    {"_code": {"id": "x"}, "targetProfile": ["x"]}, {"code": "a\\b"},
    {"min": 0, "max": "*"}, {"min": 1, "max": "0"}, {"min": 1, "max": 5}, {"min": 2, "max": "1"},
    {"severity": "error", "suppress": True}, {"severity": "error"}, {"severity": "warning", "suppress": True},
    {"severity": ["error", "error"], "suppress": True},
    {"mapping": [{"identity": "a"}, {"identity": "a"}]}, {"mapping": [{"identity": "a"}, {"identity": "b"}]},
    {"mapping": [{"identity": "a"}, {}]}, {"mapping": [{"identity": "a"}, {"identity": ["a"]}]},
    {"mapping": [{"identity": "a"}, {"_identity": {"id": "x"}}]},
    {"code": "a'b"}, {"code": "abc"}, {"code": "ab"}, {"code": "a1"}, {"code": ""}, {"code": "a\nb"},
    {"isModifier": True, "isModifierReason": "r"}, {"isModifier": [True]}, {"_isModifier": {"id": "x"}},
    {"path": "Patient.name"}, {"path": "Patient.Name"}, {"path": "Patient.value[x]"}, {"path": 5},
    {"path": ["Patient"]},
    {"type": [{"code": "x"}]}, {"type": [{"code": "b"}, {"code": "a"}]}, {"type": []},
    {"binding": {"strength": "required"}, "type": [{"code": "code"}]}, {"binding": {}, "type": [{"code": "x:y"}]},
    {"binding": {}, "type": [{"code": "Reference"}, {"code": "string"}]}, {"binding": {}, "type": [{"_code": {}}]},
    {"slicing": {"rules": "open", "ordered": False}}, {"slicing": {"rules": "openAtEnd"}},
    {"slicing": [{"rules": "open", "ordered": True}, {"rules": "closed", "ordered": False}]},
]


@pytest.mark.parametrize("type_path,expression", [
    ("Patient", "birthDate = '2020'"), ("Observation", "valueInteger = '1'"), ("Patient", "birthDate.startsWith('2')"),
    ("Coding", "code.matches('(')"),
    ("ElementDefinition", "type.select(code.length()).isDistinct()"),
])
def test_equality_and_distinctness_leave_other_types_to_the_compiled_form(engine, type_path, expression):
    """Dates, numbers and escaped literals compare by rules of their own: never decided early."""
    decide = engine.early_decision(expression)
    values = [{"birthDate": "2020"}, {"valueInteger": 1}, {"code": "a'b"}, {"type": [{"code": "ab"}, {"code": "cd"}]}]
    assert decide is None or all(decide(v, type_path) is None for v in values)


@pytest.mark.parametrize("type_path,expression", EARLY)
def test_early_decisions_agree_with_the_compiled_form_where_they_decide(engine, type_path, expression):
    """When the presence tests at the start settle the value they give the compiled result; when
    they do not they say so (None) and the compiled form runs."""
    decide = engine.early_decision(expression)
    assert decide is not None and engine.existence(expression) is None
    decided = 0
    for value in EARLY_VALUES:
        try:
            early = decide(value, type_path)
        except FhirPathError as e:
            early = ("error", str(e))
        if early is not None:
            decided += 1
            assert early == compiled(engine, expression, value, type_path), value
    assert 0 < decided < len(EARLY_VALUES)


@pytest.mark.parametrize("expression", [
    "(code.length() = 1) or display.exists()", "code.exists() xor display.exists()", "display.length()", "code.exists()",
])
def test_no_early_decision_without_presence_tests_first(engine, expression):
    """Left to right as the compiled form: a left side it cannot decide might raise an error, so
    nothing is decided; a complete presence test is existence()'s, not an early decision."""
    assert engine.early_decision(expression) is None


@pytest.mark.slow
def test_the_validator_reports_the_same_on_r5_examples_with_or_without_them(defs, monkeypatch):
    """... and dom-6's native form (a contained resource passes, the root needs text.div)."""
    folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
    files = pk.resource_files(folder)[::8]  # 353 of the 2,822, every kind of resource

    def issues():
        validator = Validator(defs)
        return [(i.severity, i.rule, i.expression, i.message) for path in files
                for d in read_source(Source(str(path), path)) for i in validator.validate_document(d)]

    with_tests = issues()
    monkeypatch.setattr(FhirPathEngine, "existence", lambda self, expression: None)
    monkeypatch.setattr(FhirPathEngine, "early_decision", lambda self, expression: None)
    monkeypatch.setattr(invariants, "NATIVE_FIXED", {})  # dom-6's native form uses an existence test
    monkeypatch.setattr(invariants, "EARLY_FIXED", {})
    assert issues() == with_tests


def test_dom6_native_form_flags_the_root_only(defs, monkeypatch):
    """dom-6 (best practice, a warning): a resource without narrative is flagged; a contained one
    is not (the HL7 validator's fixed expression starts with ``%rootResource != $this``); a Bundle
    entry's resource is its own root."""
    patient = {"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Practitioner", "id": "d"}],
               "generalPractitioner": [{"reference": "#d"}]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e1", "resource": {
            "resourceType": "Patient", "text": {"status": "generated",
                                                "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">A</div>"}}}]}

    def dom6(resource):
        return [i.expression for i in Validator(defs).validate_resource(resource) if i.rule == "dom-6"]

    found = (dom6(patient), dom6(bundle))
    assert found == (["Patient"], ["Bundle.entry[0].resource"])
    monkeypatch.setattr(invariants, "NATIVE_FIXED", {})
    assert (dom6(patient), dom6(bundle)) == found


def test_a_choice_of_many_types_is_found_by_the_objects_keys(engine):
    """member() on a choice of more types than the object has keys scans the object's keys; it
    must still take the first present in the model's key order (as the key-by-key loop does),
    count a ``_x``-only primitive, and skip nulls."""
    from fhirpkg.validation.fhirpath.model import JsonNode, member
    model = engine.model
    order = [k for k, _ in model.member_keys("ElementDefinition", "fixed")]
    assert len(order) > 8 and order.index("fixedBoolean") < order.index("fixedString")

    def fixed(data):
        return [(n.data, n._data, n.path) for n in member(model, [JsonNode(data, "ElementDefinition")], "fixed")]

    assert fixed({"fixedString": "a", "fixedBoolean": True}) == [(True, None, "boolean")]
    assert fixed({"fixedString": "a", "_fixedBoolean": {"id": "x"}}) == [(None, {"id": "x"}, "boolean")]
    assert fixed({"fixedString": None, "fixedUri": "u"}) == [("u", None, "uri")]
    assert fixed({"fixedString": None}) == []
    many = {f"k{i}": i for i in range(len(order) + 1)} | {"fixedString": "a", "fixedBoolean": True}
    assert fixed(many) == [(True, None, "boolean")]  # more keys than choices: the key-by-key loop


ELD_VALUES = [
    {}, {"min": 0, "max": "*"}, {"min": 1, "max": "0"}, {"min": 1, "max": "1"}, {"min": 2, "max": "1"},
    {"min": 0, "max": "05"}, {"min": 0, "max": "+5"}, {"min": 3, "max": "-1"}, {"min": 0, "max": "5\n"},
    {"min": 0, "max": "x"}, {"min": 0, "max": ""}, {"min": 0, "max": "\u0665"}, {"min": "1", "max": "1"},
    {"min": True, "max": "1"}, {"min": [1], "max": "1"}, {"min": 1}, {"max": "1"}, {"min": None, "max": "2"},
    {"_min": {"id": "x"}, "max": "1"}, {"min": 1, "_max": {"id": "x"}}, {"min": 1, "max": 2}, {"min": 1, "max": ["3"]},
    "a string", 7, True, [], None,
]
ELD3_VALUES = ["*", "0", "12", "-1", "+1", "x", "", "\u0665", "1\n", 5, True, ["1"], None, {"a": 1}]


@pytest.mark.parametrize("expression,type_path,values", [
    (invariants.ELD_2, "ElementDefinition", ELD_VALUES),
    (invariants.ELD_3, "string", ELD3_VALUES),
])
def test_eld2_and_eld3_early_forms_agree_with_the_compiled_form(engine, expression, type_path, values):
    """eld-2 and eld-3 decided in Python for plain values (integer min, max of digits or '*');
    the rest (signs, odd types, extensions) is left to the compiled form."""
    decide = invariants.EARLY_FIXED[expression]
    decided = 0
    for value in values:
        early = decide(value, type_path, None)
        if early is not None:
            decided += 1
            assert early == compiled(engine, expression, value, type_path), value
    assert 0 < decided < len(values)
    assert decide({"min": 2, "max": "1"} if type_path != "string" else "*", type_path, None) is (type_path == "string")
