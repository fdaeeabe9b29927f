"""Prose rules of the spec the HL7 validator applies (fhirpkg/validation/business_rules.py).

Expected messages are the HL7 validator's texts (Messages.properties, see docs/rule-coverage.md).
"""
from __future__ import annotations

import copy

import pytest

EXT_URL = "http://example.org/fhir/StructureDefinition/my-ext"


def extension_sd(**changes) -> dict:
    sd = {
        "resourceType": "StructureDefinition", "id": "my-ext", "url": EXT_URL, "name": "MyExt",
        "status": "draft", "kind": "complex-type", "abstract": False, "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension", "derivation": "constraint",
        "context": [{"type": "element", "expression": "Patient"}],
        "differential": {"element": [
            {"id": "Extension", "path": "Extension", "max": "1"},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": EXT_URL},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "string"}]}]},
    }
    sd.update(changes)
    return sd


def rules_of(issues, *rules):
    return [i for i in issues if i.rule in rules]


def test_extension_definition_with_matching_fixed_url_is_clean(check):
    assert rules_of(check(extension_sd()), "extension-url-fixed", "extension-context-element") == []


def test_extension_url_fixed_to_another_url_is_an_error(check):
    sd = extension_sd()
    sd["differential"]["element"][2]["fixedUri"] = "http://example.org/other"
    found = rules_of(check(sd), "extension-url-fixed")
    assert [(i.severity.code, i.message) for i in found] == [
        ("error", f"The fixed value for the extension URL is http://example.org/other which doesn't match the "
                  f"canonical URL {EXT_URL}")]


def test_extension_url_not_fixed_is_an_error(check):
    sd = extension_sd()
    del sd["differential"]["element"][2]["fixedUri"]
    found = rules_of(check(sd), "extension-url-fixed")
    assert [i.message for i in found] == [f"The value of Extension.url is not fixed to the extension URL {EXT_URL}"]


def test_profile_of_another_extension_is_not_checked_for_the_fixed_url(check):
    sd = extension_sd(baseDefinition="http://hl7.org/fhir/StructureDefinition/data-absent-reason")
    sd["differential"]["element"][2]["fixedUri"] = "http://example.org/other"
    assert rules_of(check(sd), "extension-url-fixed") == []


@pytest.mark.parametrize("expression", [
    "Patient.name.given",  # through HumanName's children
    "Questionnaire.item.item.answerOption",  # through contentReference
    "ElementDefinition.type.targetProfile",
    "Parameters.parameter.value",  # a choice named without [x]
    "http://hl7.org/fhir/StructureDefinition/Patient#Patient.contact.name",
])
def test_element_contexts_that_exist(check, expression):
    sd = extension_sd(context=[{"type": "element", "expression": expression}])
    assert rules_of(check(sd), "extension-context-element") == []


@pytest.mark.parametrize("expression", ["ElementDefinition.targetProfile", "Patient.nonsense", "NoSuchType"])
def test_element_context_naming_no_element_is_an_error(check, expression):
    sd = extension_sd(context=[{"type": "element", "expression": "Patient"},
                               {"type": "element", "expression": expression}])
    found = rules_of(check(sd), "extension-context-element")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("error", "StructureDefinition.context[1]", f"The element {expression} is not valid")]


def test_fhirpath_and_extension_contexts_are_not_element_paths(check):
    sd = extension_sd(context=[{"type": "fhirpath", "expression": "Patient.name.where(use='official')"},
                               {"type": "extension", "expression": "http://example.org/x"}])
    assert rules_of(check(copy.deepcopy(sd)), "extension-context-element") == []


# ---- Attachment content (TYPE_SPECIFIC_CHECKS_DT_ATT_NO_CONTENT, a warning)
def document_reference(attachment: dict) -> dict:
    return {"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": attachment}]}


@pytest.mark.parametrize("attachment", [{"url": "http://example.org/a.pdf"}, {"contentType": "application/pdf"},
                                        {"language": "en"}, {"data": "aGVsbG8="}])
def test_attachment_with_content_or_its_description_is_clean(check, attachment):
    assert rules_of(check(document_reference(attachment)), "attachment-content") == []


def test_attachment_with_only_a_title_is_warned(check):
    found = rules_of(check(document_reference({"title": "Leaflet"})), "attachment-content")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("warning", "DocumentReference.content[0].attachment",
         "Attachments have data and/or url, or else SHOULD have either contentType and/or language")]


# ---- status vs standards status (VALIDATION_VAL_STATUS_INCONSISTENT / _HINT)
STD = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


def library(status: str, std: str | None) -> dict:
    lib = {"resourceType": "Library", "status": status, "type": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]}}
    if std:
        lib["extension"] = [{"url": STD, "valueCode": std}]
    return lib


@pytest.mark.parametrize("status,std,expected", [
    ("draft", "normative", [("warning", "The resource status 'draft' and the standards status 'normative' are not consistent")]),
    ("active", "draft", [("warning", "The resource status 'active' and the standards status 'draft' are not consistent")]),
    ("draft", "trial-use", [("information", "The resource status 'draft' and the standards status 'trial-use' may not "
                                            "be consistent and should be reviewed")]),
    ("active", "trial-use", []),
    ("retired", "deprecated", []),
    ("active", None, []),
])
def test_status_against_standards_status(check, status, std, expected):
    found = rules_of(check(library(status, std)), "status-consistent")
    assert [(i.severity.code, i.message) for i in found] == expected


# ---- CodeSystem metadata and concepts
def code_system(url: str, **changes) -> dict:
    cs = {"resourceType": "CodeSystem", "url": url, "status": "draft", "content": "complete",
          "caseSensitive": True, "concept": [
              {"code": "a", "display": "A", "definition": "The a."},
              {"code": "b", "display": "B", "concept": [{"code": "b1", "definition": "The b1."}]}],
          "hierarchyMeaning": "is-a"}
    cs.update(changes)
    return cs


def test_hl7_code_system_concepts_without_display_or_definition_are_warned_once_each(check):
    found = rules_of(check(code_system("http://hl7.org/fhir/test-cs")), "codesystem-concept-text")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("warning", "CodeSystem.concept[1].concept[0]",
         "HL7 Defined CodeSystems should ensure that every concept has a display"),
        ("warning", "CodeSystem.concept[1]", "HL7 Defined CodeSystems should ensure that every concept has a definition")]


def test_other_code_systems_need_no_display_or_definition(check):
    assert rules_of(check(code_system("http://example.org/cs")), "codesystem-concept-text") == []


def test_hl7_code_system_without_case_sensitive_and_hierarchy_meaning_is_warned(check):
    cs = code_system("http://terminology.hl7.org/CodeSystem/test")
    del cs["caseSensitive"], cs["hierarchyMeaning"]
    found = rules_of(check(cs), "codesystem-metadata")
    assert [(i.severity.code, i.message.split(" element")[0]) for i in found] == [
        ("warning", "HL7 Defined CodeSystems SHOULD have a stated value for the caseSensitive"),
        ("warning", "HL7 Defined CodeSystems SHOULD have a stated value for the hierarchyMeaning")]


def test_other_code_system_without_case_sensitive_gets_information(check):
    cs = code_system("http://example.org/cs", concept=[{"code": "a"}])
    del cs["caseSensitive"], cs["hierarchyMeaning"]  # no nesting: hierarchyMeaning is not asked for
    found = rules_of(check(cs), "codesystem-metadata")
    assert [(i.severity.code, i.message) for i in found] == [
        ("information", "CodeSystems SHOULD have a stated value for the caseSensitive element so that users know "
                        "the status and meaning of the code system clearly")]


def test_complete_code_system_without_concepts_is_warned(check):
    cs = code_system("http://example.org/cs")
    del cs["concept"], cs["hierarchyMeaning"]
    found = rules_of(check(cs), "codesystem-metadata")
    assert [i.message for i in found] == [
        "When a CodeSystem has content = 'complete', it doesn't make sense for there to be no concepts defined"]


# ---- narrative language (Language_XHTML_Lang_*, warnings)
def patient(language: str | None, div_attrs: str, body: str = "<p>Someone</p>") -> dict:
    res = {"resourceType": "Patient", "text": {"status": "generated", "div":
           f'<div xmlns="http://www.w3.org/1999/xhtml"{div_attrs}>{body}</div>'}}
    if language:
        res["language"] = language
    return res


@pytest.mark.parametrize("language,attrs,expected", [
    ("en", ' lang="en" xml:lang="en"', []),
    (None, "", []),
    ("en", "", ["Resource has a language, but the XHTML does not have an lang or an xml:lang tag (needs both - see "
                "https://www.w3.org/TR/i18n-html-tech-lang/#langvalues)"]),
    ("en", ' lang="en"', ["Resource has a language, but the XHTML does not have an xml:lang tag (needs both lang and "
                          "xml:lang - see https://www.w3.org/TR/i18n-html-tech-lang/#langvalues)"]),
    ("en", ' xml:lang="en"', ["Resource has a language, but the XHTML does not have a lang tag (needs both lang and "
                              "xml:lang - see https://www.w3.org/TR/i18n-html-tech-lang/#langvalues)"]),
    ("en-AU", ' lang="fr" xml:lang="fr"', ["Resource has a language (en-AU), and the XHTML has a lang (fr), but they "
                                           "differ"]),
])
def test_narrative_language(check, language, attrs, expected):
    found = rules_of(check(patient(language, attrs)), "narrative-language")
    assert [i.message for i in found] == expected
    assert all(i.severity.code == "warning" and i.expression == "Patient" for i in found)


# ---- contained ids (RESOURCE_DUPLICATE_CONTAINED_ID, an error)
def test_duplicate_contained_ids_are_errors_from_the_second_holder_on(check):
    res = {"resourceType": "Patient", "contained": [
        {"resourceType": "Organization", "id": "o1", "name": "A"},
        {"resourceType": "Organization", "id": "o1", "name": "B"},
        {"resourceType": "Organization", "id": "o2", "name": "C"}],
        "managingOrganization": {"reference": "#o2"},
        "generalPractitioner": [{"reference": "#o1"}]}
    found = rules_of(check(res), "contained-id-duplicate")
    assert [(i.severity.code, i.expression, i.message) for i in found] == [
        ("error", "Patient.contained[1]", "Duplicate ID for contained resource: o1")]


def test_distinct_contained_ids_are_clean(check):
    res = {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o1", "name": "A"}],
           "managingOrganization": {"reference": "#o1"}}
    assert rules_of(check(res), "contained-id-duplicate") == []


# ---- severity of an unknown code system (UNKNOWN_CODESYSTEM): warning where the HL7 validator checks a
# binding (CodeableConcept codings and bound Codings), information on a lone unbound Coding
def test_unknown_code_system_on_a_bound_coding_is_a_warning_and_on_an_unbound_one_information(check):
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "status": "draft", "content": "complete",
          "caseSensitive": True, "meta": {"tag": [{"system": "http://example.org/unknown-tags", "code": "t"}]},
          "concept": [{"code": "a", "display": "A", "designation": [
              {"use": {"system": "http://example.org/unknown-uses", "code": "u"}, "value": "Eh"}]}]}
    found = {i.expression: i.severity.code for i in check(cs) if i.rule == "code-system-unknown"}
    assert found == {"CodeSystem.concept[0].designation[0].use.system": "warning",
                     "CodeSystem.meta.tag[0].system": "information"}


# ---- whitespace in strings (Type_Specific_Checks_DT_String_WS[_ALL], Primitive_WS: warnings)
@pytest.mark.parametrize("value,expected", [
    ("Jones", []),
    ("Jones ", ["value should not start or finish with whitespace 'Jones '"]),
    ("\nJones", ["value should not start or finish with whitespace '\\nJones'"]),
    ("   ", ["value should not be all whitespace '   '"]),
])
def test_string_whitespace(check, value, expected):
    found = [i for i in check({"resourceType": "Patient", "name": [{"family": value}]})
             if i.rule == "string-whitespace"]
    assert [i.message for i in found] == expected
    assert all(i.severity.code == "warning" for i in found)


def test_leading_whitespace_in_markdown_is_not_reported(check):
    res = {"resourceType": "Library", "status": "draft", "description": " Some *markdown*\n",
           "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]}}
    assert [i for i in check(res) if i.rule == "string-whitespace"] == []


# ---- a coding without a system is in no value set (Terminology_TX_NoValid_2_CC for an extensible binding)
def test_codeable_concept_whose_only_coding_has_no_system_is_not_in_the_extensible_value_set(check):
    lib = {"resourceType": "Library", "status": "draft", "type": {"coding": [{"code": "logic-library"}]}}
    found = [i for i in check(lib) if i.expression == "Library.type"]
    assert [(i.severity.code, i.rule) for i in found] == [("warning", "binding-extensible")]
    assert found[0].message.startswith("None of the codings provided are in the value set")
    assert found[0].message.endswith("(codes = null#logic-library)")


# ---- decimal range (Type_Specific_Checks_DT_Decimal_Range, a warning): 18 digits, 4-digit exponent
@pytest.mark.parametrize("number,warned", [
    ("1.5", False), ("123456789012345678", False), ("1000000000000000000", True),
    ("1.000000000000000000E-24", True), ("1.5e10", False), ("1e10000", True)])
def test_decimal_range(check, number, warned):
    text = ('{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, '
            '"valueQuantity": {"value": ' + number + '}}')
    found = [i for i in check(text) if i.rule == "decimal-range"]
    assert [(i.severity.code, i.message) for i in found] == (
        [("warning", f"The value '{number}' is outside the range of commonly/reasonably supported decimals")]
        if warned else [])
