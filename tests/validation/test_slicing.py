"""Slice matching by discriminators, on the R5 vital-signs profile (observation-vitalsigns):
Observation.category is sliced by value on coding.code and coding.system, with slice VSCat fixing
observation-category#vital-signs."""
from fhirpkg.validation.slicing import SliceMatcher

VITALS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def matcher(defs):
    return SliceMatcher(defs, conforms=lambda value, profile: False)


def test_the_vital_signs_category_matches_its_slice(defs):
    profile = defs.get(VITALS)
    value = {"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}
    assert matcher(defs).matches_slice(value, profile, "VSCat") is True


def test_another_category_or_system_does_not(defs):
    profile = defs.get(VITALS)
    assert matcher(defs).matches_slice({"coding": [{"system": CATEGORY, "code": "laboratory"}]}, profile, "VSCat") is False
    assert matcher(defs).matches_slice({"coding": [{"system": "http://x", "code": "vital-signs"}]}, profile, "VSCat") is False


def test_an_unknown_slice_is_none(defs):
    assert matcher(defs).matches_slice({}, defs.get(VITALS), "NoSuchSlice") is None


# --- discriminators on resources and on paths a slice leaves open -----------------------------
# The official cases type-slicing-multiple, profile-slicing-multiple and type-subtype-slicing1
# (fhir-test-cases, validator-r4): the HL7 validator's recorded outcomes have no error.

def _validator(defs, url, resource_type, differential):
    from fhirpkg import api
    from fhirpkg.validation import Options, Validator
    sd = {"resourceType": "StructureDefinition", "url": url, "name": "SliceTest", "status": "draft",
          "fhirVersion": "5.0.0", "kind": "resource", "abstract": False, "type": resource_type,
          "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{resource_type}", "derivation": "constraint",
          "differential": {"element": differential}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    return Validator(d, Options(profiles=(url,)))


def _errors(validator, resource):
    return [(i.rule, i.expression) for i in validator.validate_resource(resource) if i.is_error]


def test_a_type_discriminator_on_bundle_entries_goes_by_resource_type(defs):
    v = _validator(defs, "http://example.org/StructureDefinition/entry-types", "Bundle", [
        {"id": "Bundle.entry", "path": "Bundle.entry",
         "slicing": {"discriminator": [{"type": "type", "path": "resource"}], "rules": "open"}},
        {"id": "Bundle.entry:patient", "path": "Bundle.entry", "sliceName": "patient", "min": 1, "max": "1"},
        {"id": "Bundle.entry:patient.resource", "path": "Bundle.entry.resource", "type": [{"code": "Patient"}]},
        {"id": "Bundle.entry:carer", "path": "Bundle.entry", "sliceName": "carer", "min": 1, "max": "2"},
        {"id": "Bundle.entry:carer.resource", "path": "Bundle.entry.resource",
         "type": [{"code": "Practitioner"}, {"code": "PractitionerRole"}]}])
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e{i}", "resource": {"resourceType": rt}}
        for i, rt in enumerate(("Patient", "Practitioner", "PractitionerRole"))]}
    assert _errors(v, bundle) == []
    bundle["entry"].append({"fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e9",
                            "resource": {"resourceType": "Patient"}})
    assert _errors(v, bundle) == [("cardinality-max", "Bundle.entry")]


def test_a_slice_that_leaves_a_discriminator_open_matches_any_value_there(defs):
    """profiling.html#discriminator: a value/pattern discriminator goes by the fixed value, pattern
    or required binding; appliesTo's binding is only an example, so Slice3 accepts any appliesTo."""
    meaning = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"

    def slice_(name, code, applies=None):
        out = [{"id": f"Observation.referenceRange:{name}", "path": "Observation.referenceRange",
                "sliceName": name, "min": 1, "max": "1"},
               {"id": f"Observation.referenceRange:{name}.type", "path": "Observation.referenceRange.type",
                "patternCodeableConcept": {"coding": [{"system": meaning, "code": code}]}}]
        if applies:
            out.append({"id": f"Observation.referenceRange:{name}.appliesTo",
                        "path": "Observation.referenceRange.appliesTo", "patternCodeableConcept": {"text": applies}})
        return out

    v = _validator(defs, "http://example.org/StructureDefinition/type-subtype", "Observation", [
        {"id": "Observation.referenceRange", "path": "Observation.referenceRange",
         "slicing": {"discriminator": [{"type": "pattern", "path": "type"}, {"type": "pattern", "path": "appliesTo"}],
                     "rules": "open"}},
        *slice_("Slice1", "normal", "A"), *slice_("Slice3", "treatment")])
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "referenceRange": [
        {"type": {"coding": [{"system": meaning, "code": "normal"}]}, "appliesTo": [{"text": "A"}], "text": "r1"},
        {"type": {"coding": [{"system": meaning, "code": "treatment"}]}, "text": "r3"}]}
    assert _errors(v, obs) == []


# --- an element in two slices, and re-slices (InstanceValidator.matchSlice) ---------------------
# The HL7 validator tries every slice on every element: a second match is an error
# (Validation_VAL_Profile_MatchMultiple, "Element matches more than one slice") unless one slice
# is a re-slice of the other ("altid/npi" refines "altid"), in which case the re-slice wins.

_SSN = "http://hl7.org/fhir/sid/us-ssn"


def _identifier_slices(*slices):
    out = [{"id": "Patient.identifier", "path": "Patient.identifier",
            "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}}]
    for name, system, mx in slices:
        out += [{"id": f"Patient.identifier:{name}", "path": "Patient.identifier", "sliceName": name,
                 "min": 0, "max": mx},
                {"id": f"Patient.identifier:{name}.system", "path": "Patient.identifier.system",
                 "fixedUri": system}]
    return out


def test_an_element_matching_two_sibling_slices_is_an_error(defs):
    url = "http://example.org/StructureDefinition/two-ssn-slices"
    v = _validator(defs, url, "Patient", _identifier_slices(("ssn", _SSN, "*"), ("tax", _SSN, "*")))
    issues = [i for i in v.validate_resource({"resourceType": "Patient", "identifier": [
        {"system": _SSN, "value": "1"}, {"system": "http://other", "value": "2"}]}) if i.is_error]
    assert [(i.rule, i.expression) for i in issues] == [("slice-multiple", "Patient.identifier[0]")]
    assert issues[0].message == f"Profile {url}, Element matches more than one slice - ssn, tax"


def test_a_re_slice_refines_its_slice_and_counts_toward_it(defs):
    url = "http://example.org/StructureDefinition/resliced-identifiers"
    differential = _identifier_slices(("ssn", _SSN, "1"))
    differential[1]["slicing"] = {"discriminator": [{"type": "value", "path": "system"},
                                                    {"type": "value", "path": "use"}], "rules": "open"}
    differential += [
        {"id": "Patient.identifier:ssn/official", "path": "Patient.identifier", "sliceName": "ssn/official",
         "min": 0, "max": "1"},
        {"id": "Patient.identifier:ssn/official.use", "path": "Patient.identifier.use", "fixedCode": "official"}]
    v = _validator(defs, url, "Patient", differential)
    one = {"resourceType": "Patient", "identifier": [{"system": _SSN, "use": "official", "value": "1"}]}
    assert _errors(v, one) == []  # ssn and ssn/official both match: the re-slice wins, no error
    two = {"resourceType": "Patient", "identifier": [{"system": _SSN, "use": "official", "value": "1"},
                                                     {"system": _SSN, "value": "2"}]}
    # the official one is in ssn/official, which counts toward ssn: two in ssn (max 1)
    assert _errors(v, two) == [("cardinality-max", "Patient.identifier")]
    two["identifier"][1]["use"] = "official"  # now two in ssn/official (max 1) as well
    messages = [i.message for i in v.validate_resource(two) if i.is_error]
    assert [m.split(":")[1].split(" ")[0] for m in messages] == ["ssn", "ssn/official"], messages


def test_a_discriminator_path_names_a_choice_without_its_x(defs):
    """FHIRPath's ``value.system`` reaches ``value[x].system`` (the official case
    reslicing-good-extensions: the HL7 validator matches both extensions to their slices)."""
    url = "http://example.org/StructureDefinition/alt-ids"
    alt = "http://hl7.org/fhir/StructureDefinition/auditevent-AlternativeUserID"
    v = _validator(defs, url, "AuditEvent", [
        {"id": "AuditEvent.agent.extension", "path": "AuditEvent.agent.extension",
         "slicing": {"discriminator": [{"type": "value", "path": "url"}, {"type": "pattern", "path": "value.system"}],
                     "rules": "open"}},
        {"id": "AuditEvent.agent.extension:ssn", "path": "AuditEvent.agent.extension", "sliceName": "ssn",
         "min": 1, "max": "1", "type": [{"code": "Extension", "profile": [alt]}]},
        {"id": "AuditEvent.agent.extension:ssn.value[x].system", "path": "AuditEvent.agent.extension.value[x].system",
         "patternUri": _SSN}])
    event = {"resourceType": "AuditEvent", "code": {"text": "login"}, "recorded": "2013-06-20T23:41:23Z",
             "source": {"observer": {"reference": "Patient/Bob"}},
             "agent": [{"who": {"reference": "Patient/Bob"}, "extension": [
                 {"url": alt, "valueIdentifier": {"system": _SSN, "value": "67890"}}]}]}
    assert [i for i in v.validate_resource(event) if i.rule in ("slice-unmatched", "cardinality-min")] == []
    event["agent"][0]["extension"][0]["valueIdentifier"]["system"] = "http://other"
    assert [i.rule for i in v.validate_resource(event) if i.is_error] == ["cardinality-min"]
