"""Citation text (fhirpkg.publish.citation): the one formatter the R4 export and the site share."""
from __future__ import annotations

from fhirpkg.publish.citation import citation_url, format_citation, identifier_links, short_citation

SUMMARY_TYPE = "http://hl7.org/fhir/contributor-summary-type"
# Beltran H et al., Nat Med 2016;22(3):298-305 (PMID 26855148, doi 10.1038/nm.4045), as the content cites it
CITATION = {
    "resourceType": "Citation", "id": "cit1", "title": "Citation: Beltran 2016",
    "summary": [{"text": "Summary text."}],
    "citedArtifact": {
        "identifier": [{"system": "https://pubmed.ncbi.nlm.nih.gov", "value": "26855148"},
                       {"system": "https://doi.org", "value": "10.1038/nm.4045"},
                       {"system": "urn:oid:1.2.3", "value": "local id"}],
        "title": [{"type": [{"coding": [{"system": "http://hl7.org/fhir/title-type", "code": "primary"}]}],
                   "text": "Divergent clonal evolution of castration-resistant neuroendocrine prostate cancer"}],
        "publicationForm": [{"publishedIn": {"title": "Nat Med"}, "volume": "22", "issue": "3",
                             "publicationDateText": "2016", "pageString": "298-305"}],
        "webLocation": [{"classifier": [{"coding": [{"system": "http://hl7.org/fhir/artifact-url-classifier",
                                                     "code": "abstract"}]}],
                         "url": "https://pubmed.ncbi.nlm.nih.gov/26855148/"}],
        "contributorship": {"summary": [{
            "type": {"coding": [{"system": SUMMARY_TYPE, "code": "author-string"}]},
            "value": "Beltran H, Prandi D, Mosquera JM, Benelli M, Puca L, Cyrta J, Marotz C"}]},
    },
}


def test_vancouver_text_six_authors_then_et_al():
    assert format_citation(CITATION) == (
        "Beltran H, Prandi D, Mosquera JM, Benelli M, Puca L, Cyrta J, et al. Divergent clonal evolution of "
        "castration-resistant neuroendocrine prostate cancer. Nat Med. 2016;22(3):298-305. "
        "doi:10.1038/nm.4045. PMID: 26855148.")


def test_text_of_an_r4b_shaped_citation_reads_periodic_release():
    r4b = {"citedArtifact": {"publicationForm": [{
        "publishedIn": {"title": "Nat Med"}, "pageString": "298-305",
        "periodicRelease": {"volume": "22", "issue": "3", "dateOfPublication": {"year": "2016"}}}]}}
    assert format_citation(r4b) == "Nat Med. 2016;22(3):298-305."


def test_without_structured_data_the_summary_is_the_text():
    bare = {"resourceType": "Citation", "title": "T", "summary": [{"text": "As the summary says."}]}
    assert format_citation(bare) == "As the summary says."
    assert citation_url(bare) is None


def test_url_prefers_a_doi_based_web_location_then_the_doi_then_pubmed():
    # no doi-based web location here: the DOI link comes before the first (abstract) web location
    assert citation_url(CITATION) == "https://doi.org/10.1038/nm.4045"
    doi_based = {"citedArtifact": {"webLocation": [
        {"url": "https://example.org/a"},
        {"classifier": [{"coding": [{"code": "doi-based"}]}], "url": "https://doi.org/10.1/x"}],
        "identifier": [{"system": "https://doi.org", "value": "10.2/y"}]}}
    assert citation_url(doi_based) == "https://doi.org/10.1/x"
    pubmed_only = {"citedArtifact": {"identifier": [{"system": "https://pubmed.ncbi.nlm.nih.gov", "value": "1"}]}}
    assert citation_url(pubmed_only) == "https://pubmed.ncbi.nlm.nih.gov/1/"


def test_short_label_first_author_and_year_else_journal():
    assert short_citation(CITATION) == "Beltran H 2016"
    no_authors = {"citedArtifact": {"publicationForm": [{"publishedIn": {"title": "Cancer"},
                                                         "publicationDateText": "2021 Mar"}]}}
    assert short_citation(no_authors) == "Cancer 2021"
    assert short_citation({"resourceType": "Citation"}) == ""


def test_identifier_links_label_and_link_known_systems_only():
    assert identifier_links(CITATION) == [
        ("PubMed", "26855148", "https://pubmed.ncbi.nlm.nih.gov/26855148/"),
        ("DOI", "10.1038/nm.4045", "https://doi.org/10.1038/nm.4045"),
        ("Identifier", "local id", ""),
    ]
    odd = {"citedArtifact": {"identifier": [{"system": "https://doi.org", "value": "10.1/<script>"}]}}
    assert identifier_links(odd, lambda system: "x") == [("DOI", "10.1/<script>", "")]
