"""Citation text from a FHIR Citation resource, written once for every output that shows one.

The R4 export puts it where a Citation cannot go (``relatedArtifact.citation``/``url``), and the site's
citation list and coverage page label and link citations with it.  R5 and R4B shapes of a Citation are
both read (publicationDateText or periodicRelease), since the text is also made from converted content.
"""
from __future__ import annotations

import re
from typing import Callable

DOI, PUBMED, PMC = "https://doi.org", "https://pubmed.ncbi.nlm.nih.gov", "https://www.ncbi.nlm.nih.gov/pmc/"
#: Identifier systems the content uses for cited works: label and link pattern.
IDENTIFIER_LINKS = {
    DOI: ("DOI", "https://doi.org/{}"),
    PUBMED: ("PubMed", "https://pubmed.ncbi.nlm.nih.gov/{}/"),
    PMC: ("PMC", "https://www.ncbi.nlm.nih.gov/pmc/articles/{}/"),
}
_ID_VALUE = re.compile(r"^[A-Za-z0-9./:;()_\-]+$")


def format_citation(citation: dict) -> str | None:
    """Citation text from a Citation resource: authors, title, journal, year;volume(issue):pages, DOI, PMID.

    Follows the Vancouver style the content's summaries use (six authors, then "et al.").
    """
    art = citation.get("citedArtifact") or {}
    authors = _authors(art)
    title = _cited_title(art) or citation.get("title")
    form = publication_form(citation)
    journal = (form.get("publishedIn") or {}).get("title")
    release = form.get("periodicRelease") or {}
    year = _publication_date(form)
    volume = form.get("volume") or release.get("volume")
    issue = form.get("issue") or release.get("issue")
    pages = form.get("pageString") or "-".join(x for x in (form.get("firstPage"), form.get("lastPage")) if x)
    doi, pmid = _cited_ids(art)
    if not (authors or journal or doi or pmid):
        summaries = citation.get("summary") or []
        if summaries and summaries[0].get("text"):
            return summaries[0]["text"]
    parts = []
    if authors:
        parts.append(_sentence(authors))
    if title:
        parts.append(_sentence(title))
    source = ""
    if journal:
        source = journal.rstrip(".") + "."
    if year or volume or pages:
        detail = str(year or "")
        if volume:
            detail += f";{volume}" + (f"({issue})" if issue else "")
        if pages:
            detail += f":{pages}"
        source = (source + " " if source else "") + detail.lstrip(";") + "."
    if source:
        parts.append(source)
    if doi:
        parts.append(f"doi:{doi}.")
    if pmid:
        parts.append(f"PMID: {pmid}.")
    return " ".join(parts) or citation.get("title")


def citation_url(citation: dict) -> str | None:
    """Where to read the cited work: the DOI-based web location, else https://doi.org/<doi>, else the first."""
    art = citation.get("citedArtifact") or {}
    locations = [w for w in art.get("webLocation") or [] if isinstance(w, dict) and w.get("url")]
    for w in locations:
        codes = {c.get("code") for cc in w.get("classifier") or [] for c in cc.get("coding") or []}
        codes |= {c.get("code") for c in (w.get("type") or {}).get("coding") or []}
        if "doi-based" in codes:
            return w["url"]
    doi, pmid = _cited_ids(art)
    if doi:
        return _link(DOI, doi)
    if locations:
        return locations[0]["url"]
    if pmid:
        return _link(PUBMED, pmid)
    return None


def short_citation(citation: dict) -> str:
    """'Beltran H 2011': the first author and the year, else the journal and the year ('' if neither)."""
    authors = _authors(citation.get("citedArtifact") or {})
    form = publication_form(citation)
    year = str(_publication_date(form) or "")[:4]
    first = authors.split(",")[0].strip() if authors else (form.get("publishedIn") or {}).get("title", "")
    return " ".join(x for x in (first, year) if x)


def identifier_links(citation: dict, other_label: Callable[[str], str] = lambda system: "Identifier"
                     ) -> list[tuple[str, str, str]]:
    """(label, value, url) for each identifier of the cited artifact: DOI, PubMed and PMC are labelled and
    linked (when the value looks like an identifier); other systems are labelled by ``other_label``."""
    out = []
    for i in (citation.get("citedArtifact") or {}).get("identifier") or ():
        if not isinstance(i, dict):
            continue
        system, value = i.get("system", ""), str(i.get("value", ""))
        label = IDENTIFIER_LINKS[system][0] if system in IDENTIFIER_LINKS else other_label(system)
        out.append((label, value, _link(system, value) if _ID_VALUE.match(value) else ""))
    return out


def publication_form(citation: dict) -> dict:
    """The first publication form of the cited artifact ({} when there is none)."""
    forms = (citation.get("citedArtifact") or {}).get("publicationForm") or ()
    return next((p for p in forms if isinstance(p, dict)), {})


def _publication_date(form: dict) -> str | None:
    """R5 publicationDateText, else the R4B periodicRelease date, else the year of articleDate."""
    release = form.get("periodicRelease") or {}
    return form.get("publicationDateText") or ((release.get("dateOfPublication") or {}).get("text")) or \
        ((release.get("dateOfPublication") or {}).get("year")) or (str(form.get("articleDate") or "")[:4] or None)


def _link(system: str, value: str) -> str:
    pattern = IDENTIFIER_LINKS.get(system, (None, ""))[1]
    return pattern.format(value) if pattern else ""


def _authors(art: dict) -> str | None:
    c = art.get("contributorship") or {}
    for s in c.get("summary") or []:
        codes = {x.get("code") for x in (s.get("type") or {}).get("coding") or []}
        if "author-string" in codes or not codes:
            names = [n.strip() for n in s.get("value", "").split(",") if n.strip()]
            if len(names) > 6:
                return ", ".join(names[:6]) + ", et al"
            return s.get("value")
    names = [(e.get("contributor") or {}).get("display") or (e.get("name") or {}).get("text")
             for e in c.get("entry") or []]
    names = [n for n in names if n]
    if names:
        return ", ".join(names[:6]) + (", et al" if len(names) > 6 else "")
    return None


def _cited_title(art: dict) -> str | None:
    titles = art.get("title") or []
    for t in titles:
        codes = {c.get("code") for cc in t.get("type") or [] for c in cc.get("coding") or []}
        if "primary" in codes:
            return t.get("text")
    return titles[0].get("text") if titles else None


def _cited_ids(art: dict) -> tuple[str | None, str | None]:
    doi = pmid = None
    for i in art.get("identifier") or []:
        system, value = str(i.get("system", "")), i.get("value")
        if "doi" in system and not doi:
            doi = value
        elif "pubmed" in system and not pmid:
            pmid = value
    return doi, pmid


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."
