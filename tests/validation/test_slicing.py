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
