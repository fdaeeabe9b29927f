"""HL7 validator options (--security-checks, --html-in-markdown, --allow-comments,
--assume-valid-rest-references) and the rules added with them.

Expected results are written from the HL7 validator: its message texts (Messages.properties), the
recorded outcomes of the official test cases named in each test (fhir-test-cases, validator-r4,
outcomes/java), and the behaviour its source describes (InstanceValidator.checkPrimitive and
checkReference, HTMLUtilities.containsHtmlTags, MarkDownProcessor.preProcess, CodeSystemValidator,
ValueSetValidator, MeasureValidator, UUIDUtilities/OIDUtilities).
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fhirpkg.cli import main
from fhirpkg.fhir.jsonsource import parse, without_comments
from fhirpkg.issues import Severity
from fhirpkg.validation import Options, Validator
from fhirpkg.validation.text_safety import html_tags_in, markdown_html_at, urn_problem

SCRIPT = "Standard <script>somescript</script>"  # pat-security-good2 / pat-security-bad-string


def of(issues, rule):
    return [i for i in issues if i.rule == rule]


def run(validator, resource):
    return validator.validate_document(parse(json.dumps(resource)))


@pytest.fixture(scope="module")
def secure(defs):
    return Validator(defs, Options(security_checks=True, html_in_markdown="error"))


# --- embedded HTML ------------------------------------------------------------------------------

def test_tags_count_only_when_another_tag_follows():
    assert html_tags_in(SCRIPT)
    assert html_tags_in("<b>bold</b>")
    assert not html_tags_in("a <b>")            # the last '<' of the text is never a tag start
    assert not html_tags_in("x < 3 and y > 2 <")  # "3 and y" does not start with a tag name
    assert not html_tags_in("see <1> and <2>")


def test_markdown_html_starts_where_the_first_tag_is():
    assert markdown_html_at("<resource type>\\<id>") == "<r"   # bad-markdown: the escaped tag is fine
    assert markdown_html_at("a \\<b> c") is None
    assert markdown_html_at("<!-- c -->") == "<!"
    assert markdown_html_at("x < y") is None


def test_string_with_tags_is_a_hint_by_default_and_an_error_with_security_checks(validator, secure):
    pat = {"resourceType": "Patient", "name": [{"text": SCRIPT}]}
    [hint] = of(run(validator, pat), "string-html")
    assert hint.severity is Severity.INFORMATION and hint.expression == "Patient.name[0].text"
    assert hint.message.startswith("The string value contains text that looks like embedded HTML tags. If this")
    [err] = of(run(secure, pat), "string-html")
    assert err.is_error and err.message == ("The string value contains text that looks like embedded HTML tags, "
                                            "which are not allowed for security reasons in this context")


def test_markdown_with_raw_html_is_a_warning_by_default_and_an_error_when_asked(validator, secure, defs):
    com = {"resourceType": "Communication", "status": "completed", "note": [{"text": "<resource type>\\<id>"}]}
    [warn] = of(run(validator, com), "markdown-html")
    assert warn.severity is Severity.WARNING and warn.expression == "Communication.note[0].text"
    assert "starting at '<r'" in warn.message
    assert of(run(secure, com), "markdown-html")[0].is_error
    ignore = Validator(defs, Options(html_in_markdown="ignore"))
    assert not of(run(ignore, com), "markdown-html")
    assert not of(run(validator, com), "string-html"), "markdown is not checked as a string"


# --- URNs in URI values, references with whitespace --------------------------------------------

def test_urn_uuid_and_oid_values():
    assert urn_problem("urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "uri") is None
    assert urn_problem("urn:uuid:c757873d-ec9a-4326-a141-556f43239520asdf", "uri")[0] == \
        "UUIDs must be valid and lowercase (c757873d-ec9a-4326-a141-556f43239520asdf)"   # url-value-qr
    assert urn_problem("urn:uuid:C757873D-EC9A-4326-A141-556F43239520", "uri") is not None
    assert urn_problem("urn:uuid:c757873d-ec9a-4326-a141-556f43239520|1.0", "canonical") is None
    assert urn_problem("urn:oid:2.16.840.1.113883.6.1", "uri") is None
    assert urn_problem("urn:oid:1.2.3", "uri") == ("OIDs must be valid (1.2.3)", "TYPE_SPECIFIC_CHECKS_DT_OID_VALID")
    assert urn_problem("urn:oid:1.3.6", "uri") is None                       # 1.3.x roots are short
    assert urn_problem("urn:oid:3.1.2.3.4", "uri") is not None


def test_reference_with_whitespace_is_not_a_valid_reference(validator):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "ht sdtps://example.org/Chicken/example"}}   # reference-invalid-url-qr
    [err] = of(run(validator, obs), "reference-format")
    assert err.message == "The reference 'ht sdtps://example.org/Chicken/example' is not a valid reference"


def test_assumed_rest_reference_of_a_disallowed_type_is_an_error(validator, defs):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Encounter/1"}}
    [note] = of(run(validator, obs), "reference-target-type")
    assert note.severity is Severity.INFORMATION  # the HL7 validator 6.10.4 says nothing here (offline run)
    assume = Validator(defs, Options(assume_valid_rest_references=True))
    [err] = of(run(assume, obs), "reference-target-type")
    assert err.is_error and err.message.startswith("The type 'Encounter' implied by the reference URL Encounter/1 "
                                                   "is not a valid Target for this element (must be one of [")


def test_required_binding_with_only_a_data_absent_reason_has_no_code(validator):
    obs = {"resourceType": "Observation", "code": {"text": "x"}, "_status": {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}}
    [err] = of(run(validator, obs), "required-code-missing")                     # allergy (R4 suite)
    assert err.is_error and err.message == "No code provided, and a code is required from the value set"


# --- JSON comments ------------------------------------------------------------------------------

def test_comments_are_blanked_in_place():
    text = '// lead\n{"a": "http://x/*y*/", /* c */ "b": "\\"//"}\n'
    out = without_comments(text)
    assert len(out) == len(text) and out.count("\n") == text.count("\n")
    assert json.loads(out) == {"a": "http://x/*y*/", "b": '"//'}


def test_cli_reads_comments_only_when_allowed(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{\n  "resourceType": "Patient",\n  // a comment\n  "id": "a"\n}\n')   # json-comments-2
    refused = CliRunner().invoke(main, ["validate", "--format", "json", str(f)])
    assert refused.exit_code == 1 and "comments are not allowed in JSON" in refused.output
    allowed = CliRunner().invoke(main, ["validate", "--allow-comments", "--format", "json", str(f)])
    assert allowed.exit_code == 0, allowed.output


# --- CodeSystem property declarations and values (cs-bad-props) ---------------------------------

def test_code_system_property_declarations_and_values(validator):
    cp = "http://hl7.org/fhir/concept-properties"
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "status": "draft", "content": "complete",
          "property": [{"code": "notSelectable", "uri": f"{cp}#notSelectable", "type": "dateTime"},
                       {"code": "notSelectable", "type": "boolean"},
                       {"code": "inactive", "uri": f"{cp}#deprecationDate", "type": "code"},
                       {"code": "mine", "uri": "http://hl7.org/fhir/my-property", "type": "string"}],
          "concept": [{"code": "a", "property": [{"code": "notSelectable", "valueBoolean": False},
                                                 {"code": "nothing", "valueString": "x"}]}]}
    found = {(i.expression, i.severity.code, i.message) for i in run(validator, cs)
             if i.rule in ("codesystem-property-declaration", "codesystem-property-value")}
    assert ("CodeSystem.property[0]", "error", f"Wrong type 'dateTime': The URI '{cp}#notSelectable' identifies a "
            "property that has the type 'boolean'") in found
    assert ("CodeSystem.property[1]", "error", "A property is already defined with the code 'notSelectable'") in found
    assert ("CodeSystem.property[2]", "error", f"The URI '{cp}#deprecationDate' is normally assigned the code "
            "'deprecationDate'. Using the code 'inactive' will usually create confusion in ValueSet filters etc") \
        in found
    assert ("CodeSystem.property[3]", "error", "Unknown CodeSystem Property 'http://hl7.org/fhir/my-property'. If you "
            "are creating your own property, do not create it in the HL7 namespace") in found
    assert ("CodeSystem.concept[0].property[0]", "error", "The property 'notSelectable' has the invalid type "
            "'boolean', when it is defined to have the type 'dateTime'") in found
    assert ("CodeSystem.concept[0].property[1]", "warning", "The property 'nothing' has no definition in "
            "CodeSystem.property. Many terminology tools won't know what to do with it") in found


# --- ValueSet filters (vs-bad-props, vs-filter-property-bad2, vs-params-2/3/4) -----------------

TOOTH = "http://terminology.hl7.org/CodeSystem/ex-tooth"


def value_set(*filters, system=TOOTH, **extra) -> dict:
    return {"resourceType": "ValueSet", "url": "http://example.org/vs", "status": "draft",
            "compose": {"include": [{"system": system, "filter": list(filters)}]}, **extra}


def test_filter_value_must_fit_the_property_type(validator):
    issues = of(run(validator, value_set({"property": "notSelectable", "op": "=", "value": "1"},
                                         {"property": "non-selectable", "op": "=", "value": "true"})),
                "valueset-filter")
    assert [(i.expression, i.severity.code) for i in issues] == [
        ("ValueSet.compose.include[0].filter[0]", "error"), ("ValueSet.compose.include[0].filter[1]", "warning")]
    assert issues[0].message == "The value for a filter based on property 'notSelectable' must be either 'true' or " \
                                "'false', not '1'"
    assert issues[1].message.startswith(f"The property 'non-selectable' is not known for the system '{TOOTH}'")


def test_concept_filter_names_a_code_of_the_system_and_an_allowed_op(validator):
    issues = of(run(validator, value_set({"property": "concept", "op": "is-a", "value": "no-such-tooth"},
                                         {"property": "concept", "op": "regex", "value": "1.*"})), "valueset-filter")
    assert [i.expression for i in issues] == ["ValueSet.compose.include[0].filter[0]",
                                              "ValueSet.compose.include[0].filter[1]"]
    assert "must be a valid code from the system" in issues[0].message
    assert issues[1].message.startswith("The operation 'regex' is not allowed for property 'concept'")


def test_filter_value_expression_on_a_parameter(validator):
    param = {"url": "http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter",
             "extension": [{"url": "name", "valueCode": "p-inactive"}]}

    def expr(language, text):
        return {"property": "inactive", "op": "=", "_value": {"extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/cqf-expression",
             "valueExpression": {"language": language, "expression": text}}]}}

    def messages(f):
        vs = value_set(f, system="http://snomed.info/sct", extension=[param])
        return [i.message for i in of(run(validator, vs), "valueset-filter")]

    assert messages(expr("text/fhirpath", "%p-inactive")) == []
    assert messages(expr("text/fhirpath", "%p-inactive3")) == [
        "The filter parameter expression '%p-inactive3' refers to the unknown parameter 'p-inactive3'"]
    assert messages(expr("text/fhirpath", "$ and %p-inactive"))[0].startswith(
        "The value of the expression '$ and %p-inactive' is not a valid FHIRPath: ")
    assert messages(expr("text/cql", "%p-inactive")) == [
        "A ValueSet expression language must be 'text/fhirpath' not 'text/cql'"]


# --- CapabilityStatement and MeasureReport -------------------------------------------------------

def test_capability_statement_search_param_type_must_match_its_definition(validator):
    cs = {"resourceType": "CapabilityStatement", "status": "draft", "date": "2026-01-01", "kind": "instance",
          "fhirVersion": "5.0.0", "format": ["json"],
          "rest": [{"mode": "server", "resource": [{"type": "AllergyIntolerance", "searchParam": [
              {"name": "clinical-status", "type": "date",
               "definition": "http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status"}]}]}]}
    [err] = of(run(validator, cs), "capability-search-param")          # capstmt (R4 suite)
    assert err.message.startswith("Type mismatch - SearchParameter "
                                  "'http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status|")
    assert err.message.endswith("type is token, but type here is date")


def test_measure_report_score_and_stratifiers_follow_the_measure(validator):
    measure = {"resourceType": "Measure", "id": "m", "status": "draft",
               "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                                       "code": "cohort"}]},
               "group": [{"id": "g", "stratifier": [{"id": "s1", "criteria": {"language": "text/cql",
                                                                             "expression": "S"}}]}]}
    mr = {"resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": "#m",
          "contained": [measure], "period": {"start": "2026-01-01"},
          "group": [{"measureScore": {"value": 1}}]}
    found = [(i.expression, i.message) for i in of(run(validator, mr), "measure-report")]
    assert ("MeasureReport.group[0].measureScore", "No measureScore when the scoring of the message is 'cohort'") \
        in found                                                          # mr-covid-mr1
    assert ("MeasureReport.group[0]", "The MeasureReport does not include a stratifier for the stratifier with "
            "linkId '' and code '' (id = 's1')") in found                 # measure-report-ihe, R5 wording


# --- a derived profile's fixed values (ext-derived) ---------------------------------------------

def test_derived_extension_cannot_refix_the_url_its_base_fixes(defs):
    from fhirpkg import api
    base_url = "http://example.org/StructureDefinition/ext-base"
    derived_url = "http://example.org/StructureDefinition/ext-derived"

    def ext(url, base):
        return {"resourceType": "StructureDefinition", "url": url, "name": "Ext", "status": "draft",
                "kind": "complex-type", "abstract": False, "type": "Extension", "baseDefinition": base,
                "derivation": "constraint", "context": [{"type": "element", "expression": "Patient"}],
                "differential": {"element": [{"id": "Extension", "path": "Extension"},
                                             {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                                             {"id": "Extension.value[x]", "path": "Extension.value[x]",
                                              "type": [{"code": "string"}]}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [ext(base_url, "http://hl7.org/fhir/StructureDefinition/Extension")])
    v = Validator(d)
    [err] = of(run(v, ext(derived_url, base_url)), "derived-value")
    assert err.expression == "StructureDefinition.differential.element[1].fixedUri"
    assert err.message.startswith(f"Value is '{derived_url}' but is fixed to '{base_url}' in the base profile, "
                                  "because the value must match the fixed value define in")
    assert not of(run(v, ext(base_url, "http://hl7.org/fhir/StructureDefinition/Extension")), "derived-value")


# --- ImplementationGuide.global (patient-ig-bad) ------------------------------------------------

NAMED_PATIENT = "http://example.org/StructureDefinition/named-patient"


def write_ig(folder):
    """An --ig folder: a Patient profile requiring a name, and a guide that makes it global."""
    folder.mkdir()
    (folder / "sd.json").write_text(json.dumps({
        "resourceType": "StructureDefinition", "url": NAMED_PATIENT, "name": "NamedPatient", "status": "draft",
        "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}))
    (folder / "ig.json").write_text(json.dumps({
        "resourceType": "ImplementationGuide", "url": "http://example.org/ImplementationGuide/ig", "name": "Ig",
        "status": "draft", "packageId": "example.ig", "fhirVersion": ["5.0.0"],
        "global": [{"type": "Patient", "profile": NAMED_PATIENT}]}))
    return folder


def test_global_profiles_of_an_ig_apply_to_every_resource_of_their_type(tmp_path):
    profile, ig_dir = NAMED_PATIENT, write_ig(tmp_path / "ig")
    pat = tmp_path / "p.json"
    pat.write_text(json.dumps({"resourceType": "Patient", "id": "p", "gender": "male"}))
    plain = CliRunner().invoke(main, ["validate", "-j", "1", "--format", "json", str(pat)])
    assert plain.exit_code == 0, plain.output
    held = CliRunner().invoke(main, ["validate", "-j", "1", "--format", "json", "--ig", str(ig_dir), str(pat)])
    assert held.exit_code == 1
    assert f"Patient.name: minimum required = 1, but only found 0 (from {profile})" in held.output


def test_global_profiles_reach_bundle_entries(defs):
    from fhirpkg import api
    profile = NAMED_PATIENT
    sd = {"resourceType": "StructureDefinition", "url": profile, "name": "NamedPatient", "status": "draft",
          "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
          "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    v = Validator(d, Options(global_profiles=(("Patient", profile),)))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
         "resource": {"resourceType": "Patient", "gender": "male"}}]}
    found = [(i.expression, i.message) for i in of(run(v, bundle), "cardinality-min")]
    assert found == [("Bundle.entry[0].resource", f"Patient.name: minimum required = 1, but only found 0 (from "
                                                  f"{profile})")]
    assert not of(run(Validator(d), bundle), "cardinality-min")


def test_python_api_applies_ig_global_profiles_too(tmp_path):
    from fhirpkg import api
    ig_dir = write_ig(tmp_path / "ig")
    pat = tmp_path / "p.json"
    pat.write_text(json.dumps({"resourceType": "Patient", "id": "p", "gender": "male"}))
    assert [i.rule for i in api.validate(str(pat), igs=[str(ig_dir)]) if i.is_error] == ["cardinality-min"]


def test_observation_best_practice_recommendations(validator):
    """ObservationValidator (HL7 validator): subject, performer and effective[x] are recommended;
    bpCheck reports them as warnings by default, at the Observation, in the HL7 wording."""
    bare = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    found = of(run(validator, bare), "observation-best-practice")
    assert [i.message for i in found] == [
        "Best Practice Recommendation: In general, all observations should have a subject",
        "Best Practice Recommendation: In general, all observations should have a performer",
        "Best Practice Recommendation: In general, all observations should have an effective[x] ()"]
    assert all(i.severity is Severity.WARNING and i.expression == "Observation" for i in found)
    full = {**bare, "subject": {"display": "a patient"}, "performer": [{"display": "a lab"}],
            "_effectiveDateTime": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                  "valueCode": "unknown"}]}}
    assert of(run(validator, full), "observation-best-practice") == []
    timed = {**bare, "subject": {"display": "a patient"}, "performer": [{"display": "a lab"}],
             "effectiveInstant": "2020-01-01T00:00:00Z"}
    assert of(run(validator, timed), "observation-best-practice") == []
    sampled = {**timed, "effectiveInstant": None, "effectivePeriod": {"start": "2020-01-01"}, "performer": []}
    del sampled["effectiveInstant"]
    [performer] = of(run(validator, sampled), "observation-best-practice")
    assert performer.message.endswith("should have a performer")


def test_code_whitespace_in_the_hl7_wording(validator):
    """InstanceValidator: TYPE_SPECIFIC_CHECKS_DT_CODE_WS, "The code '{0}' is not valid (whitespace rules)"."""
    obs = {"resourceType": "Observation", "status": "final", "code": {"coding": [{"code": "a  b"}]}}
    [err] = of(run(validator, obs), "format")
    assert err.is_error and err.expression == "Observation.code.coding[0].code"
    assert err.message == "The code 'a  b' is not valid (whitespace rules)"


def test_wrong_display_also_fails_the_binding(validator):
    """The HL7 validator 6.10.4 (offline) on a CodeableConcept whose one coding has a wrong display:
    "Wrong Display Name" at the display and "None of the codings provided are in the value set" at
    the CodeableConcept, an error for a required binding and a warning for an extensible one."""
    cond = {"resourceType": "Condition", "code": {"text": "x"}, "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active", "display": "Wrong words"}]}}
    issues = run(validator, cond)
    [display] = of(issues, "code-display")
    assert display.is_error and display.expression == "Condition.clinicalStatus.coding[0].display"
    [binding] = of(issues, "binding-required")
    assert binding.is_error and binding.expression == "Condition.clinicalStatus"
    assert binding.message.startswith("None of the codings provided are in the value set 'Condition Clinical Status")
    lib = {"resourceType": "Library", "status": "draft",
           "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                                "code": "logic-library", "display": "Wrong words"}]}}
    [ext] = of(run(validator, lib), "binding-extensible")
    assert ext.severity is Severity.WARNING and ext.expression == "Library.type"
    right = {**lib, "type": {"coding": [{**lib["type"]["coding"][0], "display": "Logic Library"}]}}
    assert of(run(validator, right), "binding-extensible") == [] and of(run(validator, right), "code-display") == []


def test_empty_string_is_also_an_element_without_value(validator):
    """'' is no value: the HL7 validator 6.10.4 reports ele-1 and "value cannot be empty" at the
    element (run offline on a PlanDefinition with "title": ""); an extension on it is a child, so
    ele-1 holds then."""
    pd = {"resourceType": "PlanDefinition", "status": "draft", "title": ""}
    issues = run(validator, pd)
    assert sorted((i.rule, i.expression) for i in issues if i.is_error) == [
        ("ele-1", "PlanDefinition.title"), ("string-empty", "PlanDefinition.title")]
    extended = {**pd, "_title": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                "valueCode": "unknown"}]}}
    assert sorted(i.rule for i in run(validator, extended) if i.is_error) == ["string-empty"]


def test_identifier_systems_as_the_hl7_validator_checks_them(validator):
    """InstanceValidator.checkIdentifier: a system must start with http:, https:, urn: or ldap: (the
    HL7 validator 6.10.4 reported the relative one below as an error, offline); urn:ietf:rfc:3986
    takes a full URI; https://tools.ietf.org/html/rfc4122 is not the system for a UUID."""
    def issues(*identifiers):
        pat = {"resourceType": "Patient", "identifier": list(identifiers)}
        return [(i.severity.code, i.expression, i.message) for i in run(validator, pat) if i.rule == "identifier-system"]
    assert issues({"system": "local-identifiers", "value": "1"}) == [
        ("error", "Patient.identifier[0]", "Identifier.system must be an absolute reference, not a local reference")]
    assert issues({"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "1"}, {"system": "ldap:x", "value": "2"},
                  {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:4e6c1bd8-8d4b-4c16-9ea3-4d7c9e8a3f7e"}) == []
    assert issues({"system": "urn:ietf:rfc:3986", "value": "12345"}) == [
        ("error", "Patient.identifier[0]", "if identifier.system is 'urn:ietf:rfc:3986', then the identifier.value "
                                           "must be a full URI (e.g. start with a scheme), not '12345'")]
    # InstanceValidator.isAbsolute: the protocol must be a token (no '+', '.', '-'); file: needs a path
    assert [v for v in ("svn+ssh://h/r", "file:x", "file:/x", "a_b:c", "ab") if issues(
        {"system": "urn:ietf:rfc:3986", "value": v})] == ["svn+ssh://h/r", "file:x", "ab"]
    uuid = "4e6c1bd8-8d4b-4c16-9ea3-4d7c9e8a3f7e"
    rfc4122 = "https://tools.ietf.org/html/rfc4122"
    assert [s for s, _, _ in issues({"system": rfc4122, "value": uuid}, {"system": rfc4122, "value": "urn:uuid:" + uuid},
                                    {"system": rfc4122, "value": "not-a-uuid"})] == ["warning", "warning", "error"]


def test_canonical_version_with_a_hash_is_a_warning(validator):
    """VALIDATION_VAL_VERSION_NOHASH, a warning at the resource (the HL7 validator 6.10.4, offline)."""
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "version": "1.0#2", "status": "draft",
          "content": "not-present"}
    [w] = of(run(validator, cs), "version-hash")
    assert w.severity is Severity.WARNING and w.expression == "CodeSystem"
    assert w.message.startswith("Version '1.0#2' contains a '#', which is problematic")
    assert of(run(validator, {**cs, "version": "1.0.2"}), "version-hash") == []


def test_an_orphan_contained_resource_without_id_is_named_null(validator):
    """CONTAINED_ORPHAN_DOM3 names the contained resource by its id; the HL7 validator 6.10.4 (offline,
    on this breakage case) writes 'null' for one without an id, not Python's 'None'."""
    pd = {"resourceType": "PlanDefinition", "status": "draft",
          "contained": [{"resourceType": "Group", "type": "person", "membership": "definitional"}]}
    [orphan] = of(run(validator, pd), "dom-3")
    assert orphan.expression == "PlanDefinition.contained[0]"
    assert orphan.message.startswith("The contained resource 'null' is not referenced to from elsewhere")
