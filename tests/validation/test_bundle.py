"""Bundle entry fullUrls and search result Bundles (fhirpkg/validation/bundle.py).

Expected texts: the HL7 validator's recorded outcomes of the official test cases bundle-id-3,
bundle-id-4 and mni-patientOverview-bundle-example1 (fhir-test-cases, validator-r4,
outcomes/java), its output on the R5 example Bundle-lri-example (6.10.4, run here), and its
Messages.properties for the other warnings and hints (BUNDLE_SEARCH_*, BUNDLE_ENTRY_URL_*).
"""
from __future__ import annotations

import pytest

from fhirpkg.validation.bundle import search_types

IMMUNIZATION = {"resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "x"},
                "patient": {"reference": "Patient/p"}, "occurrenceDateTime": "2021-01-01"}


def search_bundle(self_url, *entries):
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
              "entry": [dict(e, fullUrl=f"http://example.org/fhir/x/{i}") for i, e in enumerate(entries)]}
    if self_url is not None:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    return bundle


def found(check, bundle):
    return [(i.severity.code, i.expression, i.message) for i in check(bundle) if i.rule == "bundle-search"]


@pytest.mark.parametrize("url,types", [
    ("base/Patient?name=test", ["Patient"]),
    ("http://example.org/fhir/Observation", ["Observation"]),
    ("base?name=test&_type=Observation,DocumentReference", ["Observation", "DocumentReference"]),
    ("base?name=test", []),
    (None, []),
])
def test_the_types_a_search_asked_for(url, types):
    assert search_types(url, {"Patient", "Observation", "DocumentReference"}) == types


def test_bundle_id_3_a_match_without_id_of_another_type(check):
    bundle = search_bundle("base/Patient?name=test", {"resource": IMMUNIZATION, "search": {"mode": "match"}})
    assert found(check, bundle) == [
        ("error", "Bundle.entry[0].resource", "Search results must have ids"),
        ("error", "Bundle.entry[0].resource",
         "This is not a matching resource type for the specified search (Immunization expecting [Patient])")]


def test_bundle_id_4_outcome_and_match_entries_of_the_wrong_types(check):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "code-invalid"}]}
    bundle = search_bundle("base?name=test&_type=Observation,DocumentReference",
                           {"resource": IMMUNIZATION, "search": {"mode": "outcome"}},
                           {"resource": outcome, "search": {"mode": "match"}})
    assert found(check, bundle) == [
        ("error", "Bundle.entry[0].resource", "This is not an OperationOutcome (Immunization)"),
        ("error", "Bundle.entry[1].resource", "Search results must have ids"),
        ("error", "Bundle.entry[1].resource", "This is not a matching resource type for the specified search "
                                              "(OperationOutcome expecting [Observation, DocumentReference])")]


def test_matches_and_includes_with_ids_are_clean(check):
    patient = {"resourceType": "Patient", "id": "p"}
    bundle = search_bundle("base/Immunization?patient=p", {"resource": dict(IMMUNIZATION, id="i"),
                                                           "search": {"mode": "match"}},
                           {"resource": patient, "search": {"mode": "include"}})
    assert found(check, bundle) == []


def test_no_self_link_and_an_entry_without_a_mode_are_warned(check):
    bundle = search_bundle(None, {"resource": dict(IMMUNIZATION, id="i"), "search": {"mode": "match"}},
                           {"resource": {"resourceType": "Patient", "id": "p"}})
    assert found(check, bundle) == [
        ("warning", "Bundle", "SearchSet Bundles should have a self link that specifies what the search was"),
        ("warning", "Bundle.entry[1]", "SearchSet bundles should have search modes on the entries")]


def test_without_any_mode_ids_and_types_are_warnings(check):
    bundle = search_bundle("base/Immunization", {"resource": IMMUNIZATION},
                           {"resource": {"resourceType": "Patient", "id": "p"}})
    assert found(check, bundle) == [
        ("warning", "Bundle.entry[0].resource", "Search results must have ids"),
        ("warning", "Bundle.entry[1]", "This is not a matching resource type for the specified search "
                                       "(is a search mode needed?) (Patient expecting [Immunization])"),
        ("warning", "Bundle", "SearchSet bundles should have search modes on the entries")]


def test_other_bundle_types_are_not_search_results(check):
    bundle = dict(search_bundle("base/Patient", {"resource": IMMUNIZATION, "search": {"mode": "match"}}),
                  type="collection")
    bundle["entry"][0].pop("search")
    assert found(check, bundle) == []


# --- entry fullUrls ---------------------------------------------------------------------------

def entry_url_issues(check, bundle_type, *entries):
    bundle = {"resourceType": "Bundle", "type": bundle_type, "entry": list(entries)}
    if bundle_type == "transaction":
        for e in bundle["entry"]:
            e["request"] = {"method": "POST", "url": e["resource"]["resourceType"]}
    return [(i.severity.code, i.expression, i.message) for i in check(bundle) if i.rule == "bundle-entry-url"]


def test_a_relative_full_url_is_an_error(check):
    assert entry_url_issues(check, "collection", {"fullUrl": "Patient/1", "resource": {"resourceType": "Patient",
                                                                                       "id": "1"}}) == [
        ("error", "Bundle.entry[0]", "The fullUrl must be an absolute URL (not 'Patient/1')")]


def test_a_restful_full_url_must_end_with_the_type_and_id(check):
    entry = {"fullUrl": "http://test.fhir.org/r5/Observation/lri-gramstain1",
             "resource": {"resourceType": "Observation", "id": "gramstain1", "status": "final", "code": {"text": "x"}}}
    assert entry_url_issues(check, "collection", entry) == [
        ("error", "Bundle.entry[0]", "The fullUrl 'http://test.fhir.org/r5/Observation/lri-gramstain1' looks like "
                                     "a RESTful server URL, so it must end with the correct type and id "
                                     "(/Observation/gramstain1)")]


def test_a_restful_full_url_needs_a_resource_id(check):
    entry = {"fullUrl": "http://example.org/fhir/Patient/1", "resource": {"resourceType": "Patient"}}
    assert entry_url_issues(check, "collection", entry) == [
        ("error", "Bundle.entry[0]", "The fullUrl 'http://example.org/fhir/Patient/1' looks like a RESTful server "
                                     "URL, but the resource has no id")]


@pytest.mark.parametrize("full_url", ["http://example.org/fhir/Patient/1", "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
                                      "https://example.org/some/document", "urn:oid:1.2.3"])
def test_absolute_full_urls_that_match_their_resource_are_clean(check, full_url):
    entry = {"fullUrl": full_url, "resource": {"resourceType": "Patient", "id": "1"}}
    assert entry_url_issues(check, "collection", entry) == []


def test_every_entry_needs_a_full_url_except_in_transactions_and_batches(check):
    patient = {"resourceType": "Patient", "id": "1"}
    assert entry_url_issues(check, "collection", {"resource": dict(patient)}) == [
        ("error", "Bundle.entry[0]", "Except for transactions and batches, each entry in a Bundle must have a "
                                     "fullUrl which is the identity of the resource in the entry")]
    assert entry_url_issues(check, "transaction", {"resource": dict(patient)}) == []


def test_smart_health_card_resource_uris_are_absolute(check):
    """The official case shc (validator-r4): fullUrls "resource:0" and references to them; the HL7
    validator's recorded outcome for it is empty (a lower-case scheme makes an absolute URI)."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "resource:0", "resource": {"resourceType": "Patient", "name": [{"family": "A"}]}},
        {"fullUrl": "resource:1", "resource": {"resourceType": "Immunization", "status": "completed",
                                               "vaccineCode": {"text": "x"}, "occurrenceDateTime": "2021-01-01",
                                               "patient": {"reference": "resource:0"}}}]}
    assert [i for i in check(bundle) if i.is_error] == []


@pytest.mark.parametrize("reference", ["Resource:0", "not a ref", "resource: 0"])
def test_what_is_not_an_absolute_uri_is_still_a_malformed_relative_reference(check, reference):
    patient = {"resourceType": "Patient", "managingOrganization": {"reference": reference}}
    assert [i.rule for i in check(patient) if i.is_error] == ["reference-format"]
