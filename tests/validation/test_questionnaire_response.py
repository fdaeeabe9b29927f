"""A QuestionnaireResponse checked against its Questionnaire (questionnaireresponse.html rules)."""
import pytest

from fhirpkg.validation import questionnaire_response as qm
from fhirpkg.validation.references import Resolver

Q = {"resourceType": "Questionnaire", "url": "http://x.test/Questionnaire/q", "status": "active", "item": [
    {"linkId": "name", "type": "string", "required": True, "maxLength": 5},
    {"linkId": "age", "type": "integer",
     "extension": [{"url": qm.EXT_MIN_VALUE, "valueInteger": 18}]},
    {"linkId": "colour", "type": "choice", "repeats": True, "answerOption": [
        {"valueCoding": {"system": "http://x.test/c", "code": "red"}},
        {"valueCoding": {"system": "http://x.test/c", "code": "none"},
         "extension": [{"url": qm.EXT_EXCLUSIVE, "valueBoolean": True}]}]},
    {"linkId": "note", "type": "display"},
    {"linkId": "grp", "type": "group", "item": [{"linkId": "g1", "type": "boolean"}]},
    {"linkId": "dist", "type": "quantity",
     "extension": [{"url": qm.EXT_MIN_QUANTITY, "valueQuantity": {"value": 1, "system": qm.UCUM, "code": "km"}}]},
]}


def rules(items, status="completed", q=Q):
    resolver = Resolver()
    resolver.add(q)
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": q["url"], "status": status, "item": items}
    return sorted(i.rule for i in qm.check(qr, resolver, "QuestionnaireResponse", ()))


def test_a_conforming_response_has_no_issues():
    assert rules([{"linkId": "name", "answer": [{"valueString": "Ann"}]},
                  {"linkId": "age", "answer": [{"valueInteger": 40}]},
                  {"linkId": "colour", "answer": [{"valueCoding": {"system": "http://x.test/c", "code": "red"}}]},
                  {"linkId": "grp", "item": [{"linkId": "g1", "answer": [{"valueBoolean": True}]}]},
                  {"linkId": "dist", "answer": [{"valueQuantity": {"value": 1500, "system": qm.UCUM, "code": "m"}}]}]) == []


@pytest.mark.parametrize("items, rule", [
    ([{"linkId": "nope"}], "qr-linkid"),
    ([], "qr-required"),  # name is required and the response is completed
    ([{"linkId": "name", "answer": [{"valueInteger": 3}]}], "qr-answer-type"),
    ([{"linkId": "name", "answer": [{"valueString": "a"}, {"valueString": "b"}]}], "qr-repeats"),
    ([{"linkId": "name", "answer": [{"valueString": "toolong"}]}], "qr-length"),
    ([{"linkId": "age", "answer": [{"valueInteger": 12}]}], "qr-range"),
    ([{"linkId": "colour", "answer": [{"valueCoding": {"system": "http://x.test/c", "code": "blue"}}]}], "qr-answer-option"),
    ([{"linkId": "colour", "answer": [{"valueCoding": {"system": "http://x.test/c", "code": "red"}},
                                      {"valueCoding": {"system": "http://x.test/c", "code": "none"}}]}], "qr-exclusive"),
    ([{"linkId": "note", "answer": [{"valueString": "x"}]}], "qr-answer-not-allowed"),
    ([{"linkId": "grp", "item": [{"linkId": "zz"}]}], "qr-linkid"),
    ([{"linkId": "dist", "answer": [{"valueQuantity": {"value": 500, "system": qm.UCUM, "code": "m"}}]}], "qr-range"),
    ([{"linkId": "dist", "answer": [{"valueQuantity": {"value": 5, "unit": "km"}}]}], "qr-range"),  # no formal unit
])
def test_each_rule(items, rule):
    if rule != "qr-required":
        items = [{"linkId": "name", "answer": [{"valueString": "Ann"}]}] + items
    assert rule in rules(items)


def test_required_only_when_completed():
    assert rules([], status="in-progress") == []


def test_a_canonical_to_another_type_is_an_error():
    resolver = Resolver()
    resolver.add({"resourceType": "ValueSet", "url": "http://x.test/vs"})
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": "http://x.test/vs", "status": "completed"}
    assert [i.rule for i in qm.check(qr, resolver, "QuestionnaireResponse", ())] == ["qr-questionnaire-type"]


def test_an_unknown_questionnaire_is_not_checked():
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": "http://x.test/other", "status": "completed",
          "item": [{"linkId": "anything"}]}
    assert list(qm.check(qr, Resolver(), "QuestionnaireResponse", ())) == []
