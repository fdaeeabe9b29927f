"""Which page shows which resource, and who points at whom.

Canonicals (``url``, or the CRMI ``artifact-url`` extension for resources that
have no ``url`` element, such as MedicationKnowledge), ``Type/id`` references
and ``|version`` suffixes all resolve to the same entry, so every link on the
site is derived from the resources' own references rather than from ids that
someone typed twice.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

ARTIFACT_EXT = "http://hl7.org/fhir/StructureDefinition/artifact-"
#: Element names whose string values are references worth following (for "referenced by").
REFERENCE_KEYS = frozenset({"reference", "definitionCanonical", "resource", "library", "profile",
                            "partOf", "derivedFrom", "predecessor", "composedOf", "dependsOn"})
#: Resource types gathered on one shared page instead of one page each.
SHARED_PAGES = {"Citation": "citations.html"}

SYSTEM_LABELS = {
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC (WHO)",
    "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl": "NCI Thesaurus",
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://data.mskcc.org/ontologies/oncotree": "OncoTree",
    "http://www.genenames.org/geneId": "HGNC",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-o-3": "ICD-O-3",
    "http://fdasis.nlm.nih.gov": "UNII",
    "https://clinicaltrials.gov": "ClinicalTrials.gov",
    "http://clinicaltrials.gov": "ClinicalTrials.gov",
    "https://doi.org": "DOI",
    "https://pubmed.ncbi.nlm.nih.gov": "PubMed",
    "https://www.ncbi.nlm.nih.gov/pmc/": "PubMed Central",
}
ATC = "http://www.whocc.no/atc"


def system_label(system: str | None) -> str:
    return SYSTEM_LABELS.get(system or "", "")


def extension(resource: dict, url: str):
    """The value of the first extension with this url (any value[x])."""
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def artifact(resource: dict, name: str):
    """A canonical-resource element, or its CRMI ``artifact-<name>`` extension stand-in."""
    value = resource.get(name)
    return value if value not in (None, "", [], {}) else extension(resource, ARTIFACT_EXT + name)


def text_of(cc) -> str:
    """A CodeableConcept (or CodeableReference, or Coding) as one readable string."""
    if not isinstance(cc, dict):
        return "" if cc is None else str(cc)
    if isinstance(cc.get("concept"), dict):  # CodeableReference
        return text_of(cc["concept"])
    if isinstance(cc.get("reference"), dict):  # CodeableReference without a concept
        return str(cc["reference"].get("display") or cc["reference"].get("reference") or "")
    if isinstance(cc.get("reference"), str):  # Reference
        return str(cc.get("display") or cc["reference"])
    if cc.get("text"):
        return str(cc["text"])
    if "code" in cc and "coding" not in cc:
        return str(cc.get("display") or cc.get("code") or "")
    names = [c.get("display") or c.get("code") for c in cc.get("coding") or () if isinstance(c, dict)]
    return "; ".join(str(n) for n in names if n)


def codings(value) -> list[dict]:
    """Every Coding in a CodeableConcept / CodeableReference / list of them."""
    if isinstance(value, list):
        return [c for v in value for c in codings(v)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("concept"), dict):
        return codings(value["concept"])
    return [c for c in value.get("coding") or () if isinstance(c, dict)]


def code_keys(value) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in codings(value) if c.get("code")}


def status_of(resource: dict) -> str:
    """Publication status, wherever the resource type keeps it."""
    s = resource.get("status")
    if isinstance(s, str):
        return s
    if isinstance(s, dict):
        return text_of(s).lower() if not codings(s) else str(codings(s)[0].get("code", ""))
    return str(extension(resource, ARTIFACT_EXT + "status") or "")


def review_tags(resource: dict) -> list[str]:
    """meta.tag displays (here: the content-review status every resource carries)."""
    tags = (resource.get("meta") or {}).get("tag") or ()
    return [str(t.get("display") or t.get("code")) for t in tags if isinstance(t, dict)]


def title_of(resource: dict) -> str:
    for value in (artifact(resource, "title"), resource.get("name") if isinstance(resource.get("name"), str) else None):
        if isinstance(value, str) and value.strip():
            return value
    if resource.get("resourceType") == "Citation":
        for t in (resource.get("citedArtifact") or {}).get("title") or ():
            if isinstance(t, dict) and t.get("text"):
                return t["text"]
    if resource.get("resourceType") == "MedicationKnowledge":
        name = text_of(resource.get("code"))
        if name:
            return name
    return f"{resource.get('resourceType')}/{resource.get('id')}"


@dataclass(frozen=True)
class Entry:
    """One resource and where the site shows it."""

    resource: dict = field(repr=False, compare=False)
    type: str
    id: str
    url: str
    title: str
    page: str  # file name, or file#anchor for resources on a shared page

    @property
    def key(self) -> str:
        return f"{self.type}/{self.id}"

    @property
    def file(self) -> str:
        return self.page.split("#", 1)[0]


@dataclass(frozen=True)
class Backlink:
    source: Entry
    element: str  # top-level element of the source that holds the reference


def page_for(rtype: str, rid: str) -> str:
    if rtype in SHARED_PAGES:
        return f"{SHARED_PAGES[rtype]}#{rid}"
    return f"{rtype}-{rid}.html"


@dataclass
class SiteIndex:
    entries: list[Entry]
    by_key: dict[str, Entry] = field(default_factory=dict)
    by_url: dict[str, Entry] = field(default_factory=dict)
    backlinks: dict[str, list[Backlink]] = field(default_factory=dict)
    #: key -> ((definition, action id, action title), ...) from a clinical protocol down to it
    trails: dict[str, tuple[tuple[Entry, str, str], ...]] = field(default_factory=dict)
    #: ``serialize.dumps``'s cache of resource texts, shared with the build's other outputs
    json_texts: dict | None = field(default=None, repr=False, compare=False)
    #: narratives already checked for the site (``safe.Verdicts``)
    narrative_verdicts: object = field(default=None, repr=False, compare=False)
    _by_type: dict[str, list[Entry]] | None = field(default=None, repr=False, compare=False)
    _by_code: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, resources: list[dict], canonical_base: str = "") -> "SiteIndex":
        entries = []
        for r in resources:
            rtype, rid = str(r.get("resourceType")), str(r.get("id"))
            url = artifact(r, "url")
            entries.append(Entry(r, rtype, rid, url if isinstance(url, str) else "", title_of(r),
                                 page_for(rtype, rid)))
        index = cls(entries)
        for e in entries:
            index.by_key.setdefault(e.key, e)
            if e.url:
                index.by_url.setdefault(e.url, e)
            if canonical_base:
                index.by_url.setdefault(f"{canonical_base}/{e.key}", e)
        index.backlinks = index._backlinks()
        return index

    def resolve(self, ref) -> Entry | None:
        """A canonical (with or without |version), a ``Type/id`` or a full ``.../Type/id`` URL."""
        if not isinstance(ref, str) or not ref:
            return None
        ref = ref.split("|", 1)[0].split("#", 1)[0]
        hit = self.by_url.get(ref) or self.by_key.get(ref)
        if hit is None and "/" in ref:
            parts = ref.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2][:1].isupper():
                hit = self.by_key.get(f"{parts[-2]}/{parts[-1]}")
        return hit

    def of_type(self, rtype: str) -> list[Entry]:
        """Entries of one resource type, in package order (grouped once, not scanned per call)."""
        if self._by_type is None:
            self._by_type = defaultdict(list)
            for e in self.entries:
                self._by_type[e.type].append(e)
        return list(self._by_type.get(rtype, ()))

    def with_codes(self, rtype: str, element: str, codes: set) -> list[Entry]:
        """Entries of ``rtype`` whose ``element`` has a Coding (system, code) in ``codes``, in package order.

        An inverted index built once per (type, element), so matching a medication to the
        activities and studies that name it does not rescan the package for every page.
        """
        key = (rtype, element)
        if key not in self._by_code:
            inverted = self._by_code[key] = defaultdict(list)
            for pos, e in enumerate(self.of_type(rtype)):
                for k in code_keys(e.resource.get(element)):
                    inverted[k].append((pos, e))
        found = {}
        for k in codes:
            for pos, e in self._by_code[key].get(k, ()):
                found[pos] = e
        return [found[pos] for pos in sorted(found)]

    def referrers(self, entry: Entry) -> list[Backlink]:
        return self.backlinks.get(entry.key, [])

    def _backlinks(self) -> dict[str, list[Backlink]]:
        found: dict[str, dict[tuple[str, str], Backlink]] = defaultdict(dict)
        for source in self.entries:
            if source.type == "ImplementationGuide":  # lists every resource: "referenced by" it says nothing
                continue
            for element, value in _reference_values(source.resource):
                target = self.resolve(value)
                if target is not None and target.key != source.key:
                    found[target.key].setdefault((source.key, element), Backlink(source, element))
        return {k: list(v.values()) for k, v in found.items()}


def _reference_values(resource: dict):
    """(top-level element, string) for every reference-like value in a resource."""
    def walk(value, top, key):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, top or k, k)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v, top, key)
        elif isinstance(value, str) and key in REFERENCE_KEYS:
            yield top, value

    for k, v in resource.items():
        if k not in ("meta", "text", "id", "url"):
            yield from walk(v, k, k)
