"""Offline terminology: code systems, value set expansion and code grammars.

``Terminology`` is built once from the CodeSystems and ValueSets of the loaded
packages (core, hl7.terminology, extensions) plus a project's own resources, and
pickled with the definitions index, so a cold run does not re-read THO's 4,000
files.  It answers three questions without a terminology server:

* is this code defined in its code system (``validate_in_system``)?
* is this code in this value set (``validate_code``, ``member_of``)?
* for code systems that are grammars rather than lists (BCP-47 language tags,
  BCP-13 MIME types, UCUM units, ISO 4217 / 3166 when the ``iso-codes`` data is
  installed), is the code well-formed (and known, where the data allows)?

Every answer is valid, invalid, not-checked (with the reason: SNOMED CT is not
available offline, a filter we do not evaluate, ...) or unknown-value-set.  An
answer is never a guess: when the packages cannot decide, the result says so.

Expansions are computed lazily and memoized per process; the memo is not pickled.
Only the standard library and orjson are used.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import orjson

# --- well-known code systems ---------------------------------------------------------

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
BCP47 = "urn:ietf:bcp:47"
BCP13 = "urn:ietf:bcp:13"
ISO4217 = "urn:iso:std:iso:4217"
ISO3166 = "urn:iso:std:iso:3166"
ISO3166_2 = "urn:iso:std:iso:3166:-2"
URI_SYSTEM = "urn:ietf:rfc:3986"
M49 = "http://unstats.un.org/unsd/methods/m49/m49.htm"
COLOR_RGB = "http://hl7.org/fhir/color-rgb"
IANA_TZ = "https://www.iana.org/time-zones"
MIMETYPES_VS = "http://hl7.org/fhir/ValueSet/mimetypes"

#: Code systems only a terminology server knows (the HL7 validator's server-side list,
#: ValueSetUtilities.isServerSide and ValueSetValidator.SERVER_SIDE_LIST), with their names.
SERVER_SIDE = {
    SNOMED: "SNOMED CT",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://hl7.org/fhir/ndfrt": "NDF-RT",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://fdasis.nlm.nih.gov": "FDA UNII",
    M49: "UN M.49",
    "http://varnomen.hgvs.org": "HGVS",
    "https://www.usps.com/": "USPS",
    "http://www.whocc.no/atc": "ATC",
    "http://www.genenames.org": "HGNC",
    "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl": "NCI Thesaurus",
    "http://ncimeta.nci.nih.gov": "NCI Metathesaurus",
    "http://dicom.nema.org/resources/ontology/DCM": "DICOM",
    "urn:iso:std:iso:11073:10101": "ISO/IEEE 11073-10101",
    ISO4217: "ISO 4217",
    ISO3166: "ISO 3166",
    ISO3166_2: "ISO 3166-2",
    BCP47: "BCP-47",
    BCP13: "BCP-13",
    UCUM: "UCUM",
}

#: Systems for which the HL7 validator, run without a terminology server, warns
#: "Unable to validate code ... running without terminology services"
#: (InstanceValidator.NO_TX_SYSTEM_EXEMPT).
NO_TX_EXEMPT = frozenset({LOINC, UCUM, "http://hl7.org/fhir/sid/icd-9-cm", SNOMED, RXNORM})

#: hl7.org/fhir/sid code systems the HL7 validator accepts without a definition (SIDUtilities).
KNOWN_SID_SYSTEMS = frozenset({
    "http://hl7.org/fhir/sid/ndc", "http://hl7.org/fhir/sid/icpc-2", "http://hl7.org/fhir/sid/icpc-1",
    "http://hl7.org/fhir/sid/icpc-1-nl", "http://hl7.org/fhir/sid/icd-9", "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/cvx", "http://hl7.org/fhir/sid/srt", "http://hl7.org/fhir/sid/icd-10-vn",
    "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-am", "http://hl7.org/fhir/sid/icd-9-cm",
    "http://hl7.org/fhir/sid/icf-nl", "http://hl7.org/fhir/sid/ca-hc-npn", "http://hl7.org/fhir/sid/ca-hc-din",
    "http://hl7.org/fhir/sid/dsm5", "http://hl7.org/fhir/sid/ex-icd-10-procedures",
})

#: The language(s) displays are checked in, as the HL7 validator words it.
DISPLAY_LANGUAGES = "en-US"

#: Where Debian/Ubuntu/Fedora/Homebrew install the iso-codes data (ISO 639, 3166, 4217, 15924).
ISO_CODES_DIRS = ("/usr/share/iso-codes/json", "/usr/local/share/iso-codes/json",
                  "/opt/homebrew/share/iso-codes/json")

#: Bump when the pickled form changes: caches holding another format must be rebuilt.
FORMAT_VERSION = "1"

VALID, INVALID, NOT_CHECKED, UNKNOWN_VALUE_SET = "valid", "invalid", "not-checked", "unknown-value-set"
#: Answers kept per process before the memo starts again (a few MB at most).
ANSWER_MEMO_SIZE = 100_000


class StaleIndexError(ValueError):
    """A pickled Terminology from another version of this module."""


# --- results --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CodeResult:
    """The answer about one code.

    ``status`` is valid / invalid / not-checked / unknown-value-set; ``message``
    says why (in the HL7 validator's words where there are some); ``reason`` is a
    stable key for what could not be decided (``server-side``, ``unknown-system``,
    ``filter``, ``fragment``, ``version``, ``no-data``, ``value-set-unknown``, ...);
    ``via`` says how the answer was reached (``code-system``, ``expansion``,
    ``grammar:bcp-47``, ...); ``findings`` are secondary remarks on a code that
    exists: (kind, message) with kind ``display`` / ``display-ws`` / ``inactive`` /
    ``deprecated`` / ``case``.
    """

    status: str
    message: str = ""
    reason: str = ""
    via: str = ""
    system: str | None = None
    display: str | None = None
    findings: tuple[tuple[str, str], ...] = ()

    @property
    def valid(self) -> bool:
        return self.status == VALID

    @property
    def invalid(self) -> bool:
        return self.status == INVALID

    @property
    def checked(self) -> bool:
        return self.status in (VALID, INVALID)


# --- compiled code systems and value sets -----------------------------------------------

@dataclass(slots=True, eq=False)
class CodeSystemDef:
    """A CodeSystem reduced to what validation needs.

    ``concepts`` maps every code to its display (None when it has none);
    ``children`` is the hierarchy (nesting, ``parent``/``subsumedBy`` properties);
    ``properties`` keeps only properties that value set filters use.
    """

    url: str
    version: str | None
    name: str | None
    title: str | None
    content: str  # complete | fragment | example | not-present | supplement
    case_sensitive: bool | None
    language: str | None
    package: str
    concepts: dict[str, str | None] = field(default_factory=dict)
    designations: dict[str, tuple[tuple[str, str | None], ...]] = field(default_factory=dict)
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inactive: frozenset[str] = frozenset()
    status: dict[str, str] = field(default_factory=dict)  # code -> retired / deprecated / inactive ...
    abstract: frozenset[str] = frozenset()
    properties: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    supplements: str | None = None

    @property
    def label(self) -> str:
        return self.title or self.name or self.url

    @property
    def versioned_url(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url

    @property
    def enumerable(self) -> bool:
        return self.content == "complete"


@dataclass(frozen=True, slots=True)
class Filter:
    property: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class ConceptSet:
    """One compose.include or compose.exclude."""

    system: str | None
    version: str | None
    concepts: tuple[str, ...] | None  # listed codes, or None
    filters: tuple[Filter, ...] = ()
    value_sets: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class ValueSetDef:
    url: str
    version: str | None
    name: str | None
    title: str | None
    status: str | None
    package: str
    includes: tuple[ConceptSet, ...] = ()
    excludes: tuple[ConceptSet, ...] = ()
    inactive: bool | None = None  # compose.inactive
    has_compose: bool = False
    #: A packaged expansion: system -> codes; None when absent. ``expansion_complete``
    #: is False when the expansion says it is partial (offset, total > contains).
    expansion: dict[str, frozenset[str]] | None = None
    expansion_complete: bool = False

    @property
    def label(self) -> str:
        return self.title or self.name or self.url

    @property
    def versioned_url(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url

    def describe(self) -> str:
        """'Title' (url|version), as the HL7 validator names a value set in messages."""
        return f"'{self.label}' ({self.versioned_url})"


@dataclass(slots=True)
class OpenPart:
    """A part of a value set that cannot be listed: membership needs a grammar or a server."""

    system: str
    reason: str  # the sentence for a not-checked result
    key: str  # server-side | unknown-system | filter | fragment | example | not-present | grammar
    grammar: str | None = None  # a grammar that decides membership (bcp-47, bcp-13, ucum, iso-4217, ...)
    regex: str | None = None  # an extra code regex filter that applies with the grammar


@dataclass(slots=True)
class Expansion:
    """What is known of a value set's content.

    ``codes``: system -> codes, listed; ``open``: parts that cannot be listed;
    ``excluded``: system -> codes listed as excluded (applies over ``open``);
    ``open_excludes``: systems with an exclusion we cannot list (a positive
    answer for those becomes not-checked); ``unknown``: why *any* code might be
    in the value set (an unresolved import), else None; ``inactive_removed``:
    codes dropped because compose.inactive is false; ``version_fallbacks``: an
    include pinned to a code system version the packages do not have was
    evaluated with the version they have (THO 7.0.1's v2 value sets pin 2.0.0 of
    code systems it ships as 3.0.0).
    """

    codes: dict[str, frozenset[str]] = field(default_factory=dict)
    open: list[OpenPart] = field(default_factory=list)
    excluded: dict[str, frozenset[str]] = field(default_factory=dict)
    open_excludes: dict[str, str] = field(default_factory=dict)
    unknown: str | None = None
    inactive_removed: dict[str, frozenset[str]] = field(default_factory=dict)
    #: system -> (version the value set asks for, version used instead)
    version_fallbacks: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def enumerable(self) -> bool:
        """Every member is listed: no open part, no unresolved import."""
        return not self.open and self.unknown is None and not self.open_excludes

    @property
    def systems(self) -> set[str]:
        return set(self.codes) | {p.system for p in self.open}

    def size(self) -> int:
        return sum(len(c) for c in self.codes.values())

    def not_enumerable_reason(self) -> str | None:
        if self.unknown:
            return self.unknown
        blocking = [p for p in self.open if p.key != "grammar"]
        if blocking or self.open:
            return (blocking or self.open)[0].reason
        if self.open_excludes:
            return next(iter(self.open_excludes.values()))
        return None


# --- grammar data: ISO codes ------------------------------------------------------------

#: Language codes withdrawn from ISO 639-1 that the IANA registry keeps (deprecated).
DEPRECATED_LANGUAGES = frozenset({"in", "iw", "ji", "jw", "mo"})
#: UN M.49 area codes registered as BCP-47 region subtags (RFC 5646 section 2.2.4).
M49_REGIONS = frozenset({
    "001", "002", "003", "005", "009", "011", "013", "014", "015", "017", "018", "019", "021", "029", "030",
    "034", "035", "039", "053", "054", "057", "061", "142", "143", "145", "150", "151", "154", "155", "202",
    "419"})
#: Tags RFC 5646 grandfathers (its ABNF lists them; they match no other production).
GRANDFATHERED = frozenset(t.lower() for t in (
    "en-GB-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux", "i-mingo",
    "i-navajo", "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE",
    "art-lojban", "cel-gaulish", "no-bok", "no-nyn", "zh-guoyu", "zh-hakka", "zh-min", "zh-min-nan",
    "zh-xiang"))


@dataclass(slots=True)
class IsoData:
    """Code lists read from the ``iso-codes`` package (never shipped with fhirpkg)."""

    source: str
    languages: frozenset[str] = frozenset()  # BCP-47 language subtags (lowercase)
    three_letter_with_two: dict[str, str] = field(default_factory=dict)  # "eng" -> "en"
    scripts: frozenset[str] = frozenset()  # lowercase
    regions: frozenset[str] = frozenset()  # uppercase alpha-2, plus M.49 digits
    currencies: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()  # alpha-2, alpha-3, numeric
    subdivisions: frozenset[str] = frozenset()
    country_names: dict[str, str] = field(default_factory=dict)
    currency_names: dict[str, str] = field(default_factory=dict)


def _iso_json(folder: Path, name: str) -> list[dict]:
    data = orjson.loads((folder / f"iso_{name}.json").read_bytes())
    return data.get(name, []) if isinstance(data, dict) else []


def load_iso_codes(folder: str | Path | None = "auto") -> IsoData | None:
    """Read ISO 639/15924/3166/4217 from an ``iso-codes`` JSON folder; None when absent.

    "auto" looks in the usual install places.  The data is the OS's, so a
    machine without it falls back to syntax-only checks (and says so).
    """
    if folder is None:
        return None
    candidates = ISO_CODES_DIRS if folder == "auto" else (str(folder),)
    for cand in candidates:
        path = Path(cand)
        if (path / "iso_639-3.json").is_file() and (path / "iso_3166-1.json").is_file():
            try:
                return _read_iso_codes(path)
            except (OSError, ValueError, orjson.JSONDecodeError):
                return None
    return None


def _read_iso_codes(path: Path) -> IsoData:
    two: set[str] = set()
    three: set[str] = set()
    three_with_two: dict[str, str] = {}
    for name in ("639-2", "639-3"):
        for rec in _iso_json(path, name):
            a2, a3 = rec.get("alpha_2"), rec.get("alpha_3")
            if a2:
                two.add(a2.lower())
                if a3:
                    three_with_two[a3.lower()] = a2.lower()
                if rec.get("bibliographic"):
                    three_with_two[rec["bibliographic"].lower()] = a2.lower()
            elif a3:
                three.add(a3.lower())
    if (path / "iso_639-5.json").is_file():
        three.update(r["alpha_3"].lower() for r in _iso_json(path, "639-5") if r.get("alpha_3"))
    private = {f"q{a}{b}" for a in "abcdefghijklmnopqrst" for b in "abcdefghijklmnopqrstuvwxyz"}
    private.update(f"qt{b}" for b in "abcdefghijklmnopqrstuvwxyz")
    languages = two | DEPRECATED_LANGUAGES | (three - set(three_with_two)) | private
    scripts: set[str] = set()
    if (path / "iso_15924.json").is_file():
        scripts = {r["alpha_4"].lower() for r in _iso_json(path, "15924") if r.get("alpha_4")}
    scripts.update(f"qa{c}" for c in "abcdefghijklmnopqrstuvwxyz")
    scripts.update(f"qb{c}" for c in "abcdefghijklmnopqrstuvwx")
    countries: set[str] = set()
    regions: set[str] = set()
    names: dict[str, str] = {}
    for rec in _iso_json(path, "3166-1"):
        for key in ("alpha_2", "alpha_3", "numeric"):
            if rec.get(key):
                countries.add(rec[key])
                names[rec[key]] = rec.get("name", "")
        if rec.get("alpha_2"):
            regions.add(rec["alpha_2"].upper())
    if (path / "iso_3166-3.json").is_file():  # withdrawn codes stay in the IANA registry, deprecated
        regions.update(r["alpha_2"].upper() for r in _iso_json(path, "3166-3") if r.get("alpha_2"))
    regions.update(M49_REGIONS)
    regions.update({"AA", "ZZ"} | {f"Q{c}" for c in "MNOPQRSTUVWXYZ"} | {f"X{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
    subdivisions: frozenset[str] = frozenset()
    if (path / "iso_3166-2.json").is_file():
        subdivisions = frozenset(r["code"] for r in _iso_json(path, "3166-2") if r.get("code"))
    currencies: dict[str, str] = {}
    if (path / "iso_4217.json").is_file():
        currencies = {r["alpha_3"]: r.get("name", "") for r in _iso_json(path, "4217") if r.get("alpha_3")}
    return IsoData(
        source=str(path), languages=frozenset(languages), three_letter_with_two=three_with_two,
        scripts=frozenset(scripts), regions=frozenset(regions), currencies=frozenset(currencies),
        countries=frozenset(countries), subdivisions=subdivisions, country_names=names,
        currency_names=currencies)


def _iso_to_json(iso: IsoData) -> dict:
    return {"source": iso.source, "languages": sorted(iso.languages), "three": iso.three_letter_with_two,
            "scripts": sorted(iso.scripts), "regions": sorted(iso.regions), "currencies": sorted(iso.currencies),
            "countries": sorted(iso.countries), "subdivisions": sorted(iso.subdivisions),
            "country_names": iso.country_names, "currency_names": iso.currency_names}


def _iso_from_json(d: dict) -> IsoData:
    return IsoData(d["source"], frozenset(d["languages"]), d["three"], frozenset(d["scripts"]),
                   frozenset(d["regions"]), frozenset(d["currencies"]), frozenset(d["countries"]),
                   frozenset(d["subdivisions"]), d["country_names"], d["currency_names"])


# --- grammars ----------------------------------------------------------------------------

def _alpha(s: str) -> bool:
    return s.isascii() and s.isalpha()


def _alnum(s: str) -> bool:
    return s.isascii() and s.isalnum()


def _digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def check_bcp47(tag: str, iso: IsoData | None = None) -> tuple[bool, str]:
    """Is ``tag`` a BCP-47 language tag (RFC 5646)?  Returns (ok, why-not).

    The syntax is RFC 5646's ABNF (language, extlang, script, region, variants,
    extensions, private use, grandfathered tags; no repeated variant or
    singleton).  With ISO data the language, extlang, script and region subtags
    must also be registered codes (ISO 639 / 15924 / 3166-1 / UN M.49); variants
    and extensions are checked for syntax only.
    """
    if not isinstance(tag, str) or not tag:
        return False, "a language tag cannot be empty"
    if tag.lower() in GRANDFATHERED:
        return True, ""
    parts = tag.split("-")
    if any(p == "" for p in parts):
        return False, "it has an empty subtag"
    if any(not _alnum(p) or len(p) > 8 for p in parts):
        bad = next(p for p in parts if not _alnum(p) or len(p) > 8)
        return False, f"the subtag '{bad}' is not 1-8 letters or digits"
    low = [p.lower() for p in parts]
    i = 0
    if low[0] == "x":
        return (len(parts) > 1, "" if len(parts) > 1 else "a private-use tag needs at least one subtag after 'x'")
    lang = low[0]
    if not _alpha(lang) or len(lang) < 2:
        return False, f"the language subtag '{parts[0]}' must be 2 to 8 letters"
    i = 1
    extlangs: list[str] = []
    if len(lang) <= 3:
        while i < len(low) and len(extlangs) < 3 and len(low[i]) == 3 and _alpha(low[i]):
            extlangs.append(low[i])
            i += 1
    script = region = None
    if i < len(low) and len(low[i]) == 4 and _alpha(low[i]):
        script = low[i]
        i += 1
    if i < len(low) and ((len(low[i]) == 2 and _alpha(low[i])) or (len(low[i]) == 3 and _digits(low[i]))):
        region = low[i].upper()
        i += 1
    variants: list[str] = []
    while i < len(low) and ((5 <= len(low[i]) <= 8) or (len(low[i]) == 4 and low[i][0].isdigit())):
        if low[i] in variants:
            return False, f"the variant '{parts[i]}' is repeated"
        variants.append(low[i])
        i += 1
    singletons: set[str] = set()
    while i < len(low) and len(low[i]) == 1 and low[i] != "x":
        s = low[i]
        if s in singletons:
            return False, f"the extension singleton '{parts[i]}' is repeated"
        singletons.add(s)
        i += 1
        n = 0
        while i < len(low) and 2 <= len(low[i]) <= 8:
            i += 1
            n += 1
        if n == 0:
            return False, f"the extension '{s}' has no subtags"
    if i < len(low) and low[i] == "x":
        if i + 1 >= len(low):
            return False, "a private-use section needs at least one subtag after 'x'"
        i = len(low)
    if i < len(low):
        return False, f"the subtag '{parts[i]}' is not valid at this position"
    if iso is None:
        return True, ""
    if len(lang) == 4:
        return False, f"the language subtag '{parts[0]}' is reserved (4 letters)"
    if lang not in iso.languages:
        if lang in iso.three_letter_with_two:
            return False, (f"the language subtag '{parts[0]}' is not registered: use the two-letter code "
                           f"'{iso.three_letter_with_two[lang]}'")
        return False, f"the language subtag '{parts[0]}' is not a known ISO 639 language code"
    for ext in extlangs:
        if ext not in iso.languages:
            return False, f"the extended language subtag '{ext}' is not a known ISO 639-3 code"
    if script and script not in iso.scripts:
        return False, f"the script subtag '{script.title()}' is not a known ISO 15924 code"
    if region and region not in iso.regions:
        return False, f"the region subtag '{region}' is not a known ISO 3166-1 or UN M.49 code"
    return True, ""


#: IANA's registered top-level media types (RFC 6838 and later registrations).
MIME_TOP_LEVEL = frozenset({"application", "audio", "example", "font", "haptics", "image", "message",
                            "model", "multipart", "text", "video"})
_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&\-^_.+]{0,126}"
_MIME_PARAM = r"\s*;\s*[A-Za-z0-9!#$&\-^_.+]+\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^;\"]*[^\s;\"])"
_MIME_RE = re.compile(rf"^({_MIME_NAME})/({_MIME_NAME})((?:{_MIME_PARAM})*)\s*$")


def check_mime_type(value: str) -> tuple[bool, str]:
    """Is ``value`` a BCP-13 media type: ``type/subtype`` with optional ``; name=value`` parameters?

    The top-level type must be an IANA-registered one or an RFC 2045 ``x-`` type;
    subtypes are checked for RFC 6838 syntax only (the subtype registry is not
    available offline).  Parameter values are accepted loosely (unquoted spaces
    occur in real content, e.g. ``application/dicom; variant=DICOM STOW-RS``).
    """
    m = _MIME_RE.match(value or "")
    if not m:
        return False, "it is not of the form type/subtype[; parameter=value]"
    top = m.group(1).lower()
    if top not in MIME_TOP_LEVEL and not top.startswith("x-"):
        return False, f"'{m.group(1)}' is not a registered top-level media type"
    return True, ""


#: UCUM prefixes (UCUM section 2.1, table 1), longest first.
UCUM_PREFIXES = ("da", "Ki", "Mi", "Gi", "Ti", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m",
                 "u", "n", "p", "f", "a", "z", "y")
#: UCUM atoms known without the UCUM essence file: base units, SI and common derived
#: units, and the customary units FHIR content uses.  Atoms seen in the core
#: ``ucum-common`` value set are added at build time.
UCUM_BASE_ATOMS = frozenset("""
m s g rad K C cd mol sr Hz N Pa J W A V F Ohm S Wb Cel T H lm lx Bq Gy Sv gon deg ' '' l L ar min h d
a_t a_j a_g a wk mo_s mo_j mo_g mo t bar u eV AU pc [c] [h] [k] [eps_0] [mu_0] [e] [m_e] [m_p] [G] [g]
[ly] gf Ky Gal dyn erg P Bi St Mx G Oe Gb sb Lmb ph Ci R RAD REM cal [iU] [IU] eq osm g% kat U b
% [ppth] [ppm] [ppb] [pptr] 10* 10^ [pi] mho B B[SPL] B[V] B[mV] B[uV] B[10.nV] B[W] B[kW] Np
bit bit_s By Bd st Ao [in_i] [ft_i] [yd_i] [mi_i] [fth_i] [nmi_i] [kn_i] [sin_i] [sft_i] [syd_i]
[cin_i] [cft_i] [cyd_i] [bf_i] [cr_i] [mil_i] [cml_i] [hd_i] [lb_av] [oz_av] [dr_av] [scwt_av]
[lcwt_av] [ston_av] [lton_av] [stone_av] [gr] [pwt_tr] [oz_tr] [lb_tr] [sc_ap] [dr_ap] [oz_ap]
[lb_ap] [oz_m] [gal_us] [qt_us] [pt_us] [foz_us] [fdr_us] [min_us] [tbs_us] [tsp_us] [cup_us]
[foz_m] [cup_m] [tsp_m] [tbs_m] [gal_br] [pt_br] [qt_br] [foz_br] [bbl_us] [degF] [degR] [degRe]
[psi] [drp] m[Hg] m[H2O] [in_i'Hg] [in_i'H2O] [pH] [HPF] [LPF] [arb'U] [CFU] [PFU] [FFU] [BAU]
[AU] [USP'U] [GPL'U] [MPL'U] [APL'U] [beth'U] [anti'Xa'U] [todd'U] [dye'U] [smgy'U] [bdsk'U]
[ka'U] [knk'U] [mclg'U] [tb'U] [hp'_X] [hp'_C] [hp'_M] [hp'_Q] [kp_X] [kp_C] [kp_M] [kp_Q]
[EID'U] [ELU] [D'ag'U] [Amb'a'1'U] [PNU] [Lf] [CCID_50] [TCID_50] [EU] [srf'U] [mesh_i]
[Ch] [S] [wood'U] [MET] [diop] [p'diop] %[slope] [hnsf'U] [car_m] [car_Au] [smoot] [m/s2/Hz^(1/2)]
[HP] [Btu] [Btu_IT] [Btu_th] [Btu_39] [Btu_59] [Btu_60] [Btu_m] cal_IT cal_th cal_m cal_[15] cal_[20]
[Cal] [den] [lne] [pnt] [pca] [pnt_pr] [pca_pr] [pied] [pouce] [ligne] [didot] [cicero] [iso'U]
[rch_us] [rd_us] [ch_us] [lk_us] [fur_us] [mi_us] [acr_us] [srd_us] [smi_us] [sct] [twp] [mil_us]
[in_us] [ft_us] [yd_us] [nmi_br] [kn_br] [acr_br] [in_br] [ft_br] [rd_br] [ch_br] [lk_br] [fth_br]
[pc_br] [yd_br] [mi_br] [bu_us] [gal_wi] [pk_us] [crd_us] [bu_br] [pk_br] [gil_br] [gil_us] [fth_us]
[pk_us] [fdr_br] [min_br] [dqt_us] [dpt_us] [mu_0] atm [atm] att [mclg'U] circ sph [HD] [gal_us]
""".split())

#: Printable ASCII except '{' and '}' (UCUM 2.1.5); spaces are accepted, as real content has them.
_UCUM_ANNOTATION = re.compile(r"\{[ -z|~]*\}")


def ucum_atoms_of(code: str) -> list[str] | None:
    """The simple-unit symbols of a UCUM expression, or None when its syntax is wrong."""
    out: list[str] = []
    return out if _ucum_term(code, 0, out, 0) == len(code) else None


def _ucum_term(s: str, i: int, out: list[str], depth: int) -> int:
    """Parse ``term`` (UCUM 2.1: components joined by '.' and '/'); returns the end index or -1."""
    if depth > 20:
        return -1
    if i < len(s) and s[i] == "/":
        i += 1
    while True:
        i = _ucum_component(s, i, out, depth)
        if i < 0:
            return -1
        if i < len(s) and s[i] in "./":
            i += 1
            continue
        return i


def _ucum_component(s: str, i: int, out: list[str], depth: int) -> int:
    """Parse one ``component``: ``(term)``, an annotation, a factor, or a simple unit
    with an optional exponent and annotation; returns the end index or -1."""
    if i >= len(s):
        return -1
    if s[i] == "(":
        j = _ucum_term(s, i + 1, out, depth + 1)
        if j < 0 or j >= len(s) or s[j] != ")":
            return -1
        return _ucum_annotation(s, j + 1)
    if s[i] == "{":
        return _ucum_annotation(s, i)
    if s.startswith(("10*", "10^"), i):
        j = i + 3
    elif s[i].isdigit():
        j = i
        while j < len(s) and s[j].isdigit():
            j += 1
        return _ucum_annotation(s, j)  # a factor
    else:
        j = i
        while j < len(s):
            c = s[j]
            if c == "[":
                k = s.find("]", j)
                if k < 0:
                    return -1
                j = k + 1
            elif c in "./(){}+-" or c.isdigit() or c.isspace():
                break
            else:
                j += 1
        if j == i:
            return -1
    out.append(s[i:j])
    if j < len(s) and (s[j] in "+-" or s[j].isdigit()):
        k = j + 1 if s[j] in "+-" else j
        e = k
        while e < len(s) and s[e].isdigit():
            e += 1
        if e == k:
            return -1
        j = e
    return _ucum_annotation(s, j)


def _ucum_annotation(s: str, i: int) -> int:
    if i < len(s) and s[i] == "{":
        m = _UCUM_ANNOTATION.match(s, i)
        if not m:
            return -1
        return m.end()
    return i


def ucum_atom_known(symbol: str, atoms: frozenset[str]) -> bool:
    """A simple unit is an atom, or a prefix followed by an atom."""
    if symbol in atoms:
        return True
    for p in UCUM_PREFIXES:
        if symbol.startswith(p) and symbol[len(p):] in atoms:
            return True
    return False


def check_ucum(code: str, atoms: frozenset[str] = UCUM_BASE_ATOMS) -> tuple[bool | None, str]:
    """(True, "") a well-formed UCUM unit of known atoms; (False, why) a syntax error;
    (None, why) well-formed but with an atom not in the offline table."""
    if not isinstance(code, str) or not code or any(c.isspace() for c in re.sub(r"\{[^{}]*\}", "", code)):
        return False, "a UCUM unit cannot be empty or contain spaces"
    symbols = ucum_atoms_of(code)
    if symbols is None:
        return False, "it is not a valid UCUM expression"
    unknown = [s for s in symbols if not ucum_atom_known(s, atoms)]
    if unknown:
        return None, f"the unit atom '{unknown[0]}' is not in the offline UCUM table"
    return True, ""


def _ucum_atoms_from(codes: Iterable[str]) -> set[str]:
    """Atoms used by known-good UCUM codes (the ucum-common value set)."""
    found: set[str] = set()
    for code in codes:
        for sym in ucum_atoms_of(code) or ():
            if not ucum_atom_known(sym, UCUM_BASE_ATOMS):
                found.add(sym)
    return found


_ISO3166_SYNTAX = re.compile(r"^(?:[A-Z]{2}|[A-Z]{3}|[0-9]{3})$")
_ISO3166_2_SYNTAX = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_ISO4217_SYNTAX = re.compile(r"^[A-Z]{3}$")
_M49_SYNTAX = re.compile(r"^[0-9]{3}$")

#: Code systems checked by a grammar or a list that is not a CodeSystem resource.
GRAMMAR_SYSTEMS = {BCP47: "bcp-47", BCP13: "bcp-13", UCUM: "ucum", ISO4217: "iso-4217", ISO3166: "iso-3166",
                   ISO3166_2: "iso-3166-2", URI_SYSTEM: "uri", COLOR_RGB: "color-rgb", IANA_TZ: "iana-tz",
                   M49: "m49"}
#: UN M.49 filters understood offline: class = region (the area codes) or country (ISO 3166 numeric).
M49_CLASSES = {"region": "m49-region", "country": "m49-country"}
_COLOR_RGB = re.compile(r"^#[0-9a-fA-F]{6}$")


def iana_time_zones() -> frozenset[str]:
    """The IANA time zone names of this machine's tz database (Python's zoneinfo)."""
    try:
        import zoneinfo
        return frozenset(zoneinfo.available_timezones())
    except Exception:  # no tz database: time zones stay unchecked
        return frozenset()


# --- version matching ---------------------------------------------------------------------

def _version_key(v: str | None) -> tuple:
    parts = []
    for p in re.split(r"[.\-+]", v or ""):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


def versions_match(wanted: str | None, have: str | None) -> bool:
    """'5.0' matches '5.0.0' (the HL7 validator's partial version match); None matches any."""
    if not wanted:
        return True
    if not have:
        return False
    return have == wanted or have.startswith(wanted + ".") or have.startswith(wanted + "-")


def split_canonical(url: str) -> tuple[str, str | None]:
    if "|" in url:
        u, _, v = url.partition("|")
        return u, v or None
    return url, None


# --- building ---------------------------------------------------------------------------

_STATUS_INACTIVE = frozenset({"inactive", "retired"})
_HIERARCHY_PROPS = ("parent", "subsumedBy")
_ALWAYS_PROPS = frozenset({"status", "inactive", "notSelectable", "not-selectable", "deprecated", "abstract"})


def _prop_value(p: dict) -> str | None:
    for key, val in p.items():
        if key.startswith("value"):
            if isinstance(val, dict):  # valueCoding
                return val.get("code")
            if isinstance(val, bool):
                return "true" if val else "false"
            return str(val)
    return None


def compile_code_system(cs: dict, package: str = "", keep_props: frozenset[str] | set[str] | None = frozenset()
                        ) -> CodeSystemDef | None:
    """Reduce a CodeSystem resource; None when it has no url.

    ``keep_props``: the properties value set filters use (others are dropped to keep
    the index small); None keeps every property.
    """
    url = cs.get("url")
    if not isinstance(url, str) or not url:
        return None
    concepts: dict[str, str | None] = {}
    designations: dict[str, tuple] = {}
    children: dict[str, list[str]] = {}
    inactive: set[str] = set()
    status: dict[str, str] = {}
    abstract: set[str] = set()
    props: dict[str, dict[str, list[str]]] = {}
    keep = None if keep_props is None else set(keep_props) | _ALWAYS_PROPS
    stack: list[tuple[dict, str | None]] = [(c, None) for c in reversed(cs.get("concept") or []) if isinstance(c, dict)]
    while stack:
        c, parent = stack.pop()
        code = c.get("code")
        if not isinstance(code, str):
            continue
        disp = c.get("display")
        if code not in concepts or concepts[code] is None:
            concepts[code] = disp if isinstance(disp, str) else None
        if parent is not None:
            children.setdefault(parent, []).append(code)
        desig = tuple((d["value"], d.get("language")) for d in c.get("designation") or ()
                      if isinstance(d, dict) and isinstance(d.get("value"), str))
        if desig:
            designations[code] = desig
        for p in c.get("property") or ():
            if not isinstance(p, dict):
                continue
            pcode, val = p.get("code"), _prop_value(p)
            if pcode is None or val is None:
                continue
            if pcode in _HIERARCHY_PROPS:
                children.setdefault(val, []).append(code)
            if pcode == "status" and val != "active":
                status[code] = val
                if val in _STATUS_INACTIVE:
                    inactive.add(code)
            elif pcode == "inactive" and val == "true":
                inactive.add(code)
                status.setdefault(code, "inactive")
            elif pcode in ("notSelectable", "not-selectable", "abstract") and val == "true":
                abstract.add(code)
            elif pcode == "deprecated" and val == "true":
                status.setdefault(code, "deprecated")
            if keep is None or pcode in keep:
                props.setdefault(pcode, {}).setdefault(code, []).append(val)
        for ext in c.get("extension") or ():
            if (isinstance(ext, dict) and ext.get("url", "").endswith("structuredefinition-standards-status")
                    and ext.get("valueCode") == "withdrawn"):
                inactive.add(code)
                status.setdefault(code, "withdrawn")
        for child in reversed(c.get("concept") or []):
            if isinstance(child, dict):
                stack.append((child, code))
    cs_sens = cs.get("caseSensitive")
    return CodeSystemDef(
        url=url, version=cs.get("version"), name=cs.get("name"), title=cs.get("title"),
        content=cs.get("content") or "complete", case_sensitive=cs_sens if isinstance(cs_sens, bool) else None,
        language=cs.get("language"), package=package, concepts=concepts, designations=designations,
        children={k: tuple(dict.fromkeys(v)) for k, v in children.items()}, inactive=frozenset(inactive),
        status=status, abstract=frozenset(abstract),
        properties={k: {c: tuple(v) for c, v in m.items()} for k, m in props.items()},
        supplements=cs.get("supplements"))


def _concept_set(inc: dict) -> ConceptSet:
    concepts = None
    if inc.get("concept"):
        concepts = tuple(c["code"] for c in inc["concept"] if isinstance(c, dict) and isinstance(c.get("code"), str))
    filters = tuple(Filter(str(f.get("property", "")), str(f.get("op", "")), str(f.get("value", "")))
                    for f in inc.get("filter") or () if isinstance(f, dict))
    vss = tuple(v for v in inc.get("valueSet") or () if isinstance(v, str))
    return ConceptSet(inc.get("system"), inc.get("version"), concepts, filters, vss)


def _flatten_contains(items, out: dict[str, set[str]]) -> int:
    n = 0
    for c in items or ():
        if not isinstance(c, dict):
            continue
        if c.get("system") and c.get("code"):
            out.setdefault(c["system"], set()).add(c["code"])
            n += 1
        n += _flatten_contains(c.get("contains"), out)
    return n


def compile_value_set(vs: dict, package: str = "") -> ValueSetDef | None:
    url = vs.get("url")
    if not isinstance(url, str) or not url:
        return None
    compose = vs.get("compose") if isinstance(vs.get("compose"), dict) else None
    expansion = None
    complete = False
    exp = vs.get("expansion")
    if isinstance(exp, dict):
        found: dict[str, set[str]] = {}
        n = _flatten_contains(exp.get("contains"), found)
        expansion = {s: frozenset(c) for s, c in found.items()}
        total = exp.get("total")
        complete = (not exp.get("offset")) and (total is None or total == n)
        for p in exp.get("parameter") or ():
            if isinstance(p, dict) and p.get("name") in ("limitedExpansion", "count"):
                complete = False
    inactive = compose.get("inactive") if compose else None
    return ValueSetDef(
        url=url, version=vs.get("version"), name=vs.get("name"), title=vs.get("title"), status=vs.get("status"),
        package=package,
        includes=tuple(_concept_set(i) for i in (compose or {}).get("include") or () if isinstance(i, dict)),
        excludes=tuple(_concept_set(i) for i in (compose or {}).get("exclude") or () if isinstance(i, dict)),
        inactive=inactive if isinstance(inactive, bool) else None, has_compose=compose is not None,
        expansion=expansion, expansion_complete=complete)


def _filter_properties(value_sets: Iterable[dict]) -> set[str]:
    props: set[str] = set()
    for vs in value_sets:
        for part in ("include", "exclude"):
            for inc in (vs.get("compose") or {}).get(part) or ():
                for f in inc.get("filter") or () if isinstance(inc, dict) else ():
                    if isinstance(f, dict) and isinstance(f.get("property"), str):
                        props.add(f["property"])
    return props


# --- compact storage: one compressed blob per resource, decoded on first use ------------

def _encode_cs(cs: CodeSystemDef) -> bytes:
    codes = list(cs.concepts)
    return orjson.dumps([
        cs.url, cs.version, cs.name, cs.title, cs.content, cs.case_sensitive, cs.language, cs.package,
        codes, [cs.concepts[c] for c in codes], cs.designations, cs.children, sorted(cs.inactive), cs.status,
        sorted(cs.abstract), cs.properties, cs.supplements])


def _decode_cs(raw: bytes) -> CodeSystemDef:
    (url, version, name, title, content, case_sensitive, language, package, codes, displays, desig, children,
     inactive, status, abstract, props, supplements) = orjson.loads(raw)
    return CodeSystemDef(
        url, version, name, title, content, case_sensitive, language, package, dict(zip(codes, displays)),
        {c: tuple(tuple(d) for d in ds) for c, ds in desig.items()}, {c: tuple(k) for c, k in children.items()},
        frozenset(inactive), status, frozenset(abstract),
        {p: {c: tuple(v) for c, v in m.items()} for p, m in props.items()}, supplements)


def _encode_set(cs: ConceptSet) -> list:
    return [cs.system, cs.version, list(cs.concepts) if cs.concepts is not None else None,
            [[f.property, f.op, f.value] for f in cs.filters], list(cs.value_sets)]


def _decode_set(data: list) -> ConceptSet:
    system, version, concepts, filters, vss = data
    return ConceptSet(system, version, tuple(concepts) if concepts is not None else None,
                      tuple(Filter(*f) for f in filters), tuple(vss))


def _encode_vs(vs: ValueSetDef) -> bytes:
    return orjson.dumps([
        vs.url, vs.version, vs.name, vs.title, vs.status, vs.package, [_encode_set(i) for i in vs.includes],
        [_encode_set(e) for e in vs.excludes], vs.inactive, vs.has_compose,
        {s: sorted(c) for s, c in vs.expansion.items()} if vs.expansion is not None else None,
        vs.expansion_complete])


def _decode_vs(raw: bytes) -> ValueSetDef:
    (url, version, name, title, status, package, includes, excludes, inactive, has_compose, expansion,
     complete) = orjson.loads(raw)
    return ValueSetDef(
        url, version, name, title, status, package, tuple(_decode_set(i) for i in includes),
        tuple(_decode_set(e) for e in excludes), inactive, has_compose,
        {s: frozenset(c) for s, c in expansion.items()} if expansion is not None else None, complete)


class _Store:
    """Canonical resources by url (and version), kept as compressed blobs.

    A validation run touches a handful of value sets, so decoding all 3,000 on
    load would be wasted: only the index (url -> blob numbers, preferred first)
    and the blobs are pickled, and each entry is decoded once, on first use.
    """

    def __init__(self, kind: str):
        self.kind = kind  # "cs" | "vs"
        self.index: dict[str, int | tuple[int, ...]] = {}
        self.blobs: list[bytes] = []
        self.versions: list[str | None] = []
        self._decoded: dict[int, object] = {}

    def __getstate__(self):
        return (self.kind, self.index, self.blobs, self.versions)

    def __setstate__(self, state):
        self.kind, self.index, self.blobs, self.versions = state
        self._decoded = {}

    def _numbers(self, url: str) -> tuple[int, ...]:
        got = self.index.get(url)
        return () if got is None else (got,) if isinstance(got, int) else got

    def add(self, item, replace: bool = False) -> None:
        """Add one resource; the highest version is preferred for a bare url (first wins ties,
        unless ``replace``: a project's own resource overrides a package's)."""
        n = len(self.blobs)
        self.blobs.append(_compress(_encode_cs(item) if self.kind == "cs" else _encode_vs(item)))
        self.versions.append(item.version)
        self._decoded[n] = item
        have = self._numbers(item.url)
        if replace:
            have = tuple(i for i in have if self.versions[i] != item.version)
            nums = (n,) + have
        elif have and _version_key(item.version) > _version_key(self.versions[have[0]]):
            nums = (n,) + have
        else:
            nums = have + (n,)
        self.index[item.url] = nums[0] if len(nums) == 1 else nums

    def copy(self) -> "_Store":
        """A store sharing the blobs and decoded entries so far; additions stay in the copy."""
        other = _Store(self.kind)
        other.index, other.blobs, other.versions = dict(self.index), list(self.blobs), list(self.versions)
        other._decoded = dict(self._decoded)
        return other

    def __contains__(self, url: str) -> bool:
        return url in self.index

    def __len__(self) -> int:
        return len(self.blobs)

    def get(self, url: str, version: str | None = None):
        """The preferred resource for url; with a version, that version (exact, then partial)."""
        nums = self._numbers(url)
        if not nums:
            return None
        if version is None:
            return self._item(nums[0])
        for n in nums:
            if self.versions[n] == version:
                return self._item(n)
        for n in nums:
            if versions_match(version, self.versions[n]):
                return self._item(n)
        return None

    def _item(self, n: int):
        item = self._decoded.get(n)
        if item is None:
            raw = _decompress(self.blobs[n])
            item = _decode_cs(raw) if self.kind == "cs" else _decode_vs(raw)
            self._decoded[n] = item
        return item

    def all(self) -> Iterator:
        """Every preferred resource, one per url (decodes them all)."""
        for nums in self.index.values():
            yield self._item(nums if isinstance(nums, int) else nums[0])


#: A preset dictionary for the blobs: the strings every definition repeats.
_ZDICT = (b'"http://terminology.hl7.org/CodeSystem/v3-","http://terminology.hl7.org/CodeSystem/v2-",'
          b'"http://terminology.hl7.org/ValueSet/v3-","http://terminology.hl7.org/ValueSet/v2-",'
          b'"hl7.terminology.r5#7.0.1","hl7.fhir.r5.core#5.0.0","http://hl7.org/fhir/ValueSet/",'
          b'"http://terminology.hl7.org/CodeSystem/","http://terminology.hl7.org/ValueSet/","http://hl7.org/fhir/",'
          b'[["concept","is-a","active",true,false,null,"5.0.0",[]')


def _compress(raw: bytes) -> bytes:
    z = zlib.compressobj(6, zdict=_ZDICT)
    return z.compress(raw) + z.flush()


def _decompress(blob: bytes) -> bytes:
    z = zlib.decompressobj(zdict=_ZDICT)
    return z.decompress(blob) + z.flush()


# --- the engine ---------------------------------------------------------------------------

class Terminology:
    """Code systems and value sets of the loaded packages, checked offline.

    Build it with ``from_packages`` (or ``from_resources``); it pickles small and
    loads fast.  ``validate_code`` / ``validate_in_system`` / ``member_of`` are the
    questions; ``expand`` gives what is known of a value set.
    """

    def __init__(self, code_systems: Iterable[CodeSystemDef] = (), value_sets: Iterable[ValueSetDef] = (),
                 iso: IsoData | None = None, ucum_atoms: frozenset[str] = UCUM_BASE_ATOMS,
                 sources: tuple[str, ...] = (), time_zones: frozenset[str] = frozenset()):
        self.code_systems = _Store("cs")
        self.time_zones = time_zones
        self.value_sets = _Store("vs")
        self._iso_blob = _compress(orjson.dumps(_iso_to_json(iso))) if iso is not None else None
        self._iso = iso
        self.ucum_atoms = ucum_atoms
        self.sources = sources
        for cs in code_systems:
            self.code_systems.add(cs)
        for vs in value_sets:
            self.value_sets.add(vs)
        self._reset_memos()

    @property
    def iso(self) -> IsoData | None:
        """The ISO code lists, decoded on first use (they are 8,000 language codes)."""
        if self._iso is None and self._iso_blob is not None:
            self._iso = _iso_from_json(orjson.loads(_decompress(self._iso_blob)))
        return self._iso

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_resources(cls, resources: Iterable[tuple[dict, str]], iso_codes: str | Path | None = "auto",
                       sources: tuple[str, ...] = ()) -> "Terminology":
        """Build from (resource, package id) pairs; CodeSystem and ValueSet resources are used,
        Bundles of them are opened, everything else is ignored."""
        css: list[tuple[dict, str]] = []
        vss: list[tuple[dict, str]] = []
        for res, pkg in resources:
            for r in _unbundle(res):
                rt = r.get("resourceType")
                if rt == "CodeSystem":
                    css.append((r, pkg))
                elif rt == "ValueSet":
                    vss.append((r, pkg))
        keep = _filter_properties(v for v, _ in vss)
        code_systems = [c for c in (compile_code_system(r, p, keep) for r, p in css) if c is not None]
        value_sets = [v for v in (compile_value_set(r, p) for r, p in vss) if v is not None]
        iso = load_iso_codes(iso_codes)
        atoms = set(UCUM_BASE_ATOMS)
        for v in value_sets:
            if v.url == "http://hl7.org/fhir/ValueSet/ucum-common":
                for inc in v.includes:
                    if inc.system == UCUM and inc.concepts:
                        atoms |= _ucum_atoms_from(inc.concepts)
        srcs = tuple(sources) + ((f"iso-codes:{iso.source}",) if iso else ())
        return cls(code_systems, value_sets, iso, frozenset(atoms), srcs, iana_time_zones())

    @classmethod
    def from_packages(cls, packages, extra: Iterable[dict] = (), iso_codes: str | Path | None = "auto"
                      ) -> "Terminology":
        """Build from installed packages (``fhirpkg.fhir.packages.Package``) and extra resources.

        The extra resources (the project's own CodeSystems and ValueSets) come first,
        so they win over a package resource with the same url and version.
        """
        def gen() -> Iterator[tuple[dict, str]]:
            for res in extra:
                yield res, "(project)"
            for pkg in packages:
                for entry in pkg.index:
                    if entry.get("resourceType") in ("CodeSystem", "ValueSet"):
                        try:
                            yield orjson.loads((pkg.folder / entry["filename"]).read_bytes()), str(pkg.ref)
                        except (OSError, orjson.JSONDecodeError):
                            continue
        return cls.from_resources(gen(), iso_codes, tuple(str(p.ref) for p in packages))

    def add_resource(self, res: dict, package: str = "(project)") -> None:
        """Add one CodeSystem or ValueSet after building (clears memoized expansions)."""
        for r in _unbundle(res):
            if r.get("resourceType") == "CodeSystem":
                cs = compile_code_system(r, package, None)
                if cs:
                    self.code_systems.add(cs, replace=True)
            elif r.get("resourceType") == "ValueSet":
                vs = compile_value_set(r, package)
                if vs:
                    self.value_sets.add(vs, replace=True)
        self._reset_memos()

    add = add_resource  # the name fhirpkg.api uses for conformance and project resources

    def derive(self) -> "Terminology":
        """A copy sharing this one's definitions, to which resources can be added (one
        conformance case's supporting value sets) without touching this one."""
        other = Terminology.__new__(Terminology)
        other.code_systems = self.code_systems.copy()
        other.value_sets = self.value_sets.copy()
        other._iso_blob, other._iso = self._iso_blob, self._iso
        other.ucum_atoms, other.sources, other.time_zones = self.ucum_atoms, self.sources, self.time_zones
        other._reset_memos()
        return other

    # -- pickling: the memo stays behind ----------------------------------------------------
    def __getstate__(self):
        return {"format": FORMAT_VERSION, "code_systems": self.code_systems, "value_sets": self.value_sets,
                "_iso_blob": self._iso_blob, "ucum_atoms": self.ucum_atoms, "sources": self.sources,
                "time_zones": self.time_zones}

    def __setstate__(self, state):
        if state.get("format") != FORMAT_VERSION:
            raise StaleIndexError(f"terminology index format {state.get('format')!r}, expected {FORMAT_VERSION}: "
                                  "rebuild the definitions cache")
        state = dict(state)
        del state["format"]
        self.__dict__.update(state)
        self._iso = None
        self._reset_memos()

    def _reset_memos(self) -> None:
        """Per-process memos: expansions, answers, lookups (never pickled)."""
        self._memo: dict[str, Expansion] = {}
        self._folded: dict[str, dict[str, str]] = {}
        self._lower_sets: dict[int, tuple] = {}
        self._answers: dict[tuple, CodeResult] = {}
        self._vs_lookup: dict[str, ValueSetDef | None] = {}
        self._cs_lookup: dict[tuple, CodeSystemDef | None] = {}
        self._expanding: set[str] = set()

    # -- lookups --------------------------------------------------------------------------
    def code_system(self, url: str | None, version: str | None = None) -> CodeSystemDef | None:
        """A code system by canonical (``url|version`` or a separate version; partial versions match)."""
        if not url:
            return None
        key = (url, version)
        try:
            return self._cs_lookup[key]
        except KeyError:
            base, v = split_canonical(url)
            cs = self._cs_lookup[key] = self.code_systems.get(base, version or v)
            return cs

    def value_set(self, url: str | None) -> ValueSetDef | None:
        """A value set by canonical; ``url|version`` must match the version (partial versions too)."""
        if not url:
            return None
        try:
            return self._vs_lookup[url]
        except KeyError:
            base, version = split_canonical(url)
            vs = self._vs_lookup[url] = self.value_sets.get(base, version)
            return vs

    def knows_system(self, system: str) -> bool:
        return system in self.code_systems or system in GRAMMAR_SYSTEMS

    # -- expansion ------------------------------------------------------------------------
    def expand(self, url: str) -> Expansion | None:
        """What is known of a value set's members; None when the value set is unknown."""
        vs = self.value_set(url)
        if vs is None:
            return None
        key = vs.versioned_url
        exp = self._memo.get(key)
        if exp is None:
            if key in self._expanding:  # an import cycle
                return Expansion(unknown=f"the value set {vs.url} imports itself")
            self._expanding.add(key)
            try:
                exp = self._expand(vs)
            finally:
                self._expanding.discard(key)
            self._memo[key] = exp
        return exp

    def _expand(self, vs: ValueSetDef) -> Expansion:
        if not vs.has_compose or not vs.includes:
            if vs.expansion is not None:
                return self._from_packaged(vs)
            return Expansion(unknown=f"the value set {vs.versioned_url} has neither a compose nor an expansion")
        exp = Expansion()
        codes: dict[str, set[str]] = {}
        for inc in vs.includes:
            self._include(inc, vs, exp, codes)
        excluded: dict[str, set[str]] = {}
        for exc in vs.excludes:
            part = Expansion()
            part_codes: dict[str, set[str]] = {}
            self._include(exc, vs, part, part_codes)
            for system, cs in part_codes.items():
                excluded.setdefault(system, set()).update(cs)
            for op in part.open:
                exp.open_excludes[op.system] = f"an exclude in {vs.versioned_url} cannot be listed: {op.reason}"
            if part.unknown:
                exp.open_excludes[exc.system or "*"] = part.unknown
        if vs.inactive is False:
            for system in list(codes):
                cs = self.code_system(system)
                if cs is not None and cs.inactive:
                    dropped = codes[system] & cs.inactive
                    if dropped:
                        exp.inactive_removed[system] = frozenset(dropped)
                        codes[system] -= dropped
        for system, cs in excluded.items():
            if system in codes:
                codes[system] -= cs
        exp.codes = {s: frozenset(c) for s, c in codes.items()}
        exp.excluded = {s: frozenset(c) for s, c in excluded.items()}
        if not exp.enumerable and vs.expansion is not None and vs.expansion_complete:
            return self._from_packaged(vs)
        return exp

    def _from_packaged(self, vs: ValueSetDef) -> Expansion:
        exp = Expansion(codes=dict(vs.expansion or {}))
        if not vs.expansion_complete:
            exp.unknown = f"the packaged expansion of {vs.versioned_url} is partial"
        return exp

    def _include(self, inc: ConceptSet, vs: ValueSetDef, exp: Expansion, codes: dict[str, set[str]]) -> None:
        """Add one include to ``codes`` (listed) or ``exp.open`` / ``exp.unknown``."""
        imported: list[Expansion] = []
        for ref in inc.value_sets:
            sub = self.expand(ref)
            if sub is None:
                exp.unknown = exp.unknown or f"the value set {ref} imported by {vs.versioned_url} is not available"
                return
            imported.append(sub)
        if inc.system is None:
            if not imported:
                return
            merged = imported[0]
            for other in imported[1:]:
                merged = _intersect(merged, other)
            _merge_into(exp, codes, merged)
            return
        system = inc.system
        part = self._system_part(system, inc, vs)
        for sub in imported:
            part = _intersect(part, sub)
        _merge_into(exp, codes, part)

    def _system_part(self, system: str, inc: ConceptSet, vs: ValueSetDef) -> Expansion:
        """The codes of one include over one system (no imports)."""
        cs = self.code_system(system, inc.version)
        fallback = {}
        if cs is None and inc.version:
            cs = self.code_system(system)
            if cs is not None:
                fallback = {system: (inc.version, cs.version)}
        if cs is not None and (cs.content == "supplement"
                               or (cs.content == "not-present" and system in GRAMMAR_SYSTEMS)):
            cs = None
        if inc.concepts is not None and not inc.filters:
            listed = set(inc.concepts)
            if cs is not None and cs.content == "complete":
                listed = self._known_codes(cs, listed)
            return Expansion(codes={system: frozenset(listed)}, version_fallbacks=fallback)
        if cs is None or cs.content != "complete":
            grammar = GRAMMAR_SYSTEMS.get(system)
            if grammar and grammar != "uri":
                regex = None
                for f in inc.filters:
                    if f.property in ("code", "concept") and f.op == "regex" and regex is None:
                        regex = f.value
                    elif grammar == "m49" and f.property == "class" and f.op == "=" and f.value in M49_CLASSES:
                        grammar = M49_CLASSES[f.value]
                    else:
                        return Expansion(open=[OpenPart(
                            system, f"the filter {f.property} {f.op} {f.value!r} on {system} is not supported offline",
                            "filter")])
                key = "grammar" if self._grammar_has_data(grammar) else "no-data"
                why = (f"{system} codes are checked by their grammar" if key == "grammar"
                       else f"the codes of {system} are not available offline")
                return Expansion(open=[OpenPart(system, why, key, grammar, regex)])
            why_key, why = self._why_not_listable(system, inc.version, cs)
            return Expansion(open=[OpenPart(system, why, why_key)])
        selected: set[str] | None = set(cs.concepts) if not inc.filters else None
        for f in inc.filters:
            got = self._filter(cs, f)
            if got is None:
                return Expansion(open=[OpenPart(
                    system, f"the filter {f.property} {f.op} {f.value!r} on {system} is not supported offline",
                    "filter")])
            selected = got if selected is None else selected & got
        if inc.concepts is not None:
            selected = (selected or set()) & set(inc.concepts)
        return Expansion(codes={system: frozenset(selected or ())}, version_fallbacks=fallback)

    def _known_codes(self, cs: CodeSystemDef, codes: set[str]) -> set[str]:
        if cs.case_sensitive is False:
            fold = self._fold(cs)
            return {fold.get(c.lower(), c) for c in codes if c.lower() in fold}
        return {c for c in codes if c in cs.concepts}

    def _why_not_listable(self, system: str, version: str | None, cs: CodeSystemDef | None) -> tuple[str, str]:
        """(reason key, sentence) for an include whose codes cannot be listed."""
        if cs is not None:
            if cs.content == "fragment":
                return "fragment", f"the code system {cs.versioned_url} is only a fragment"
            if cs.content == "example":
                return "example", f"the code system {cs.versioned_url} only has example content"
            if cs.content == "not-present":
                return "not-present", f"the code system {cs.versioned_url} does not include its codes"
            return cs.content, f"the code system {cs.versioned_url} has content '{cs.content}'"
        if system in GRAMMAR_SYSTEMS:
            if self._grammar_has_data(GRAMMAR_SYSTEMS[system]):
                return "grammar", f"{system} codes are checked by their grammar"
            return "no-data", f"the codes of {system} are not available offline"
        if system in SERVER_SIDE:
            return "server-side", f"{SERVER_SIDE[system]} is not available offline"
        return "unknown-system", f"the code system {system} is not in the loaded packages"

    def _grammar_has_data(self, grammar: str) -> bool:
        if grammar in ("iso-4217", "iso-3166", "iso-3166-2", "m49", "m49-country"):
            return self._iso_blob is not None
        if grammar == "iana-tz":
            return bool(self.time_zones)
        return True

    # -- filters ----------------------------------------------------------------------------
    def _descendants(self, cs: CodeSystemDef, code: str) -> set[str]:
        out: set[str] = set()
        todo = [code]
        while todo:
            c = todo.pop()
            for child in cs.children.get(c, ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def _ancestors(self, cs: CodeSystemDef, code: str) -> set[str]:
        parents: dict[str, set[str]] = {}
        for p, kids in cs.children.items():
            for k in kids:
                parents.setdefault(k, set()).add(p)
        out: set[str] = set()
        todo = [code]
        while todo:
            c = todo.pop()
            for p in parents.get(c, ()):
                if p not in out:
                    out.add(p)
                    todo.append(p)
        return out

    def _filter(self, cs: CodeSystemDef, f: Filter) -> set[str] | None:
        """The codes a filter selects, or None when the filter is not supported offline."""
        prop, op, value = f.property, f.op, f.value
        everything = set(cs.concepts)
        values = [v.strip() for v in value.split(",")] if op in ("in", "not-in") else [value]
        if prop in ("concept", "code"):
            if op == "is-a":
                return ({value} | self._descendants(cs, value)) if value in cs.concepts else set()
            if op == "descendent-of":
                return self._descendants(cs, value)
            if op == "is-not-a":
                return everything - ({value} | self._descendants(cs, value))
            if op == "generalizes":
                return ({value} | self._ancestors(cs, value)) if value in cs.concepts else set()
            if op == "child-of":
                return set(cs.children.get(value, ()))
            if op == "descendent-leaf":
                return {c for c in self._descendants(cs, value) if not cs.children.get(c)}
            if op == "=":
                return {value} & everything
            if op == "in":
                return set(values) & everything
            if op == "not-in":
                return everything - set(values)
            if op == "regex":
                rx = _compile(value)
                return None if rx is None else {c for c in everything if rx.fullmatch(c)}
            return None
        if prop in ("parent", "child") and op in ("=", "in"):
            out: set[str] = set()
            for v in values:
                if prop == "parent":
                    out.update(cs.children.get(v, ()))
                else:
                    out.update(p for p, kids in cs.children.items() if v in kids)
            return out
        if prop in ("inactive",) and op == "=":
            return set(cs.inactive) if value == "true" else everything - cs.inactive
        if prop in ("notSelectable", "not-selectable", "abstract") and op in ("=", "not-in", "in"):
            if op == "=":
                return set(cs.abstract) if value == "true" else everything - cs.abstract
            wanted = {v == "true" for v in values}
            sel = {c for c in everything if (c in cs.abstract) in wanted}
            return sel if op == "in" else everything - sel
        table = cs.properties.get(prop)
        if prop == "status" and table is None:
            table = {c: (s,) for c, s in cs.status.items()}
        if table is None:
            if op == "exists":
                return set() if value == "true" else everything
            if cs.properties or prop in _ALWAYS_PROPS:
                return set() if op in ("=", "in", "regex") else None
            return None
        if op == "=":
            if prop == "status" and value == "active":
                return everything - set(table)
            return {c for c, vals in table.items() if value in vals}
        if op == "in":
            return {c for c, vals in table.items() if set(vals) & set(values)}
        if op == "not-in":
            return everything - {c for c, vals in table.items() if set(vals) & set(values)}
        if op == "exists":
            have = set(table)
            return have if value == "true" else everything - have
        if op == "regex":
            rx = _compile(value)
            return None if rx is None else {c for c, vals in table.items() if any(rx.fullmatch(v) for v in vals)}
        return None

    def _fold(self, cs: CodeSystemDef) -> dict[str, str]:
        key = cs.versioned_url
        fold = self._folded.get(key)
        if fold is None:
            fold = {}
            for c in cs.concepts:
                fold.setdefault(c.lower(), c)
            self._folded[key] = fold
        return fold

    # -- codes in a code system ---------------------------------------------------------------
    def validate_in_system(self, system: str | None, code: str | None, display: str | None = None,
                           version: str | None = None, check_system_uri: bool = True) -> CodeResult:
        """Is ``code`` defined in ``system``?  Display, inactive status and case are findings.

        ``check_system_uri``: report a wrong system URI (an unknown hl7.org/fhir system,
        an HTML page, a value set URL) as invalid, as the HL7 validator does for a lone
        Coding; inside a CodeableConcept it only says the code system is not found.
        Answers are memoized: content repeats the same few codes.
        """
        key = ("s", system, code, display, version, check_system_uri)
        res = self._answers.get(key)
        if res is None:
            res = self._validate_in_system(system, code, display, version, check_system_uri)
            self._remember(key, res)
        return res

    def _remember(self, key: tuple, res: CodeResult) -> None:
        if len(self._answers) >= ANSWER_MEMO_SIZE:
            self._answers.clear()
        self._vs_lookup.clear()
        self._cs_lookup.clear()
        self._answers[key] = res

    def _validate_in_system(self, system: str | None, code: str | None, display: str | None,
                            version: str | None, check_system_uri: bool) -> CodeResult:
        """validate_in_system, not memoized."""
        if not code:
            return CodeResult(INVALID, "No code provided", "no-code")
        if not system:
            return CodeResult(NOT_CHECKED, "Coding has no system. A code with no system has no defined meaning, "
                              "and it cannot be validated. A system should be provided", "no-system")
        problem = system_problem(system, self) if check_system_uri else (
            None if ":" in system else "Coding.system must be an absolute reference, not a local reference")
        if problem:
            return CodeResult(INVALID, problem, "bad-system", system=system)
        cs = self.code_system(system, version)
        if cs is None and version and self.code_system(system) is not None:
            known = self.code_system(system)
            return CodeResult(NOT_CHECKED, f"A definition for CodeSystem '{system}' version '{version}' could not be "
                              f"found, so the code cannot be validated. Valid versions: {known.version}",
                              "version", system=system)
        if cs is None or (cs.content == "not-present" and system in GRAMMAR_SYSTEMS):
            return self._grammar_or_unknown(system, code)
        if cs.content == "supplement":
            return CodeResult(INVALID, f"CodeSystem {cs.versioned_url} is a supplement, so can't be used as a value "
                              "in Coding.system", "supplement", system=system)
        if cs.content == "not-present":
            return CodeResult(NOT_CHECKED, f"The definition for the Code System with URI '{system}' from "
                              f"'{cs.package}' doesn't provide any codes so the code cannot be validated",
                              "not-present", system=system)
        found = self._lookup(cs, code)
        if found is None:
            if cs.content == "complete":
                return CodeResult(INVALID, self.unknown_code_message(cs, code), "unknown-code", "code-system",
                                  system)
            if cs.content == "fragment":
                return CodeResult(NOT_CHECKED, f"Unknown Code '{code}' in the CodeSystem '{cs.url}' version "
                                  f"'{cs.version}' - note that the code system is labeled as a fragment, so the code "
                                  "may be valid in some other fragment", "fragment", system=system)
            return CodeResult(NOT_CHECKED, f"Resolved system {system}, but the definition only has example content, "
                              "so the code has not been validated", cs.content, system=system)
        findings = list(self._findings(cs, found, code, display))
        return CodeResult(VALID, "", "", "code-system", system, cs.concepts.get(found), tuple(findings))

    def unknown_code_message(self, cs: CodeSystemDef, code: str) -> str:
        if cs.version:
            return f"Unknown code '{code}' in the CodeSystem '{cs.url}' version '{cs.version}'"
        return f"Unknown code '{code}' in the CodeSystem '{cs.url}'"

    def _lookup(self, cs: CodeSystemDef, code: str) -> str | None:
        if code in cs.concepts:
            return code
        if cs.case_sensitive is not True:
            return self._fold(cs).get(code.lower())
        return None

    def _findings(self, cs: CodeSystemDef, found: str, code: str, display: str | None) -> Iterator[tuple[str, str]]:
        if found != code:
            yield ("case", f"The code '{code}' differs from the correct code '{found}' by case. Although the code "
                           f"system '{cs.versioned_url}' is case insensitive, implementers are strongly encouraged "
                           "to use the correct case anyway")
        st = cs.status.get(found)
        if found in cs.inactive:
            yield ("inactive", f"The concept '{found}' has a status of {st or 'inactive'} and its use should be "
                               "reviewed")
        elif st == "deprecated":
            yield ("deprecated", f"The concept '{found}' is deprecated and its use should be reviewed")
        if display is not None:
            msg = self.display_problem(cs, found, display)
            if msg:
                yield msg

    def display_problem(self, cs: CodeSystemDef, code: str, display: str) -> tuple[str, str] | None:
        """('display' | 'display-ws', message) when ``display`` is not a display of the code.

        Accepted, as the HL7 validator does: the code system's display and the
        designations in English or without a language, compared case-insensitively.
        Code systems in another language are not checked.
        """
        if cs.language and not cs.language.lower().startswith("en"):
            return None
        main = cs.concepts.get(code)
        choices: list[str] = []
        if main:
            choices.append(f"'{main}'" + (f" ({cs.language})" if cs.language else ""))
            if display.lower() == main.lower():
                return None
        for value, lang in cs.designations.get(code, ()):
            if lang is None or lang.lower().startswith("en"):
                if display.lower() == value.lower():
                    return None
                choices.append(f"'{value}'" + (f" ({lang})" if lang else ""))
        if not choices:
            return None
        ws = any(_norm_ws(display).lower() == _norm_ws(c.split("' (")[0].strip("'")).lower() for c in choices)
        shown = choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
        if ws:
            head = f"Wrong whitespace in Display Name '{display}' for {cs.url}#{code}."
            kind = "display-ws"
        else:
            head = f"Wrong Display Name '{display}' for {cs.url}#{code}."
            kind = "display"
        if len(choices) == 1:
            return kind, f"{head} Valid display is {shown} (for the language(s) '{DISPLAY_LANGUAGES}')"
        return kind, (f"{head} Valid display is one of {len(choices)} choices: {shown} "
                      f"(for the language(s) '{DISPLAY_LANGUAGES}')")

    def _grammar_or_unknown(self, system: str, code: str, regex: str | None = None) -> CodeResult:
        grammar = GRAMMAR_SYSTEMS.get(system)
        if grammar:
            return self.check_grammar(grammar, system, code, regex)
        if system in SERVER_SIDE:
            return CodeResult(NOT_CHECKED, f"{SERVER_SIDE[system]} is not available offline, so the code "
                              f"'{code}' cannot be validated", "server-side", system=system)
        return CodeResult(NOT_CHECKED, f"A definition for CodeSystem '{system}' could not be found, so the code "
                          "cannot be validated", "unknown-system", system=system)

    def check_grammar(self, grammar: str, system: str, code: str, regex: str | None = None) -> CodeResult:
        """Check a code of a grammar-based code system (BCP-47, BCP-13, UCUM, ISO 4217/3166)."""
        via = f"grammar:{grammar}"
        if regex is not None:
            rx = _compile(regex)
            if rx is not None and not rx.fullmatch(code):
                return CodeResult(INVALID, f"The code '{code}' does not match the pattern {regex}", "grammar", via,
                                  system)
        if grammar == "bcp-47":
            ok, why = check_bcp47(code, self.iso)
            if ok:
                return CodeResult(VALID, "", "", via if self.iso else via + " (syntax only)", system)
            return CodeResult(INVALID, f"'{code}' is not a valid language tag: {why}", "grammar", via, system)
        if grammar == "bcp-13":
            ok, why = check_mime_type(code)
            if ok:
                return CodeResult(VALID, "", "", via, system)
            return CodeResult(INVALID, f"'{code}' is not a valid media type: {why}", "grammar", via, system)
        if grammar == "ucum":
            ok3, why = check_ucum(code, self.ucum_atoms)
            if ok3 is True:
                return CodeResult(VALID, "", "", via, system)
            if ok3 is None:
                return CodeResult(NOT_CHECKED, f"The UCUM unit '{code}' could not be fully checked offline: {why}",
                                  "no-data", via, system)
            return CodeResult(INVALID, f"'{code}' is not a valid UCUM unit: {why}", "grammar", via, system)
        if grammar == "color-rgb":
            if _COLOR_RGB.match(code):
                return CodeResult(VALID, "", "", via, system)
            return CodeResult(INVALID, f"'{code}' is not a valid RGB colour code (#RRGGBB)", "grammar", via, system)
        if grammar == "iana-tz":
            if not self.time_zones:
                return CodeResult(NOT_CHECKED, "The IANA time zone database is not available on this machine, so "
                                  f"'{code}' cannot be validated", "no-data", via, system)
            if code in self.time_zones:
                return CodeResult(VALID, "", "", via, system)
            return CodeResult(INVALID, f"Unknown code '{code}' in the CodeSystem '{system}' (IANA time zones)",
                              "unknown-code", via, system)
        if grammar.startswith("m49"):
            return self._check_m49(grammar, system, code, via)
        if grammar == "uri":
            ok = bool(re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S*$", code))
            return CodeResult(VALID if ok else INVALID, "" if ok else f"'{code}' is not an absolute URI", "",
                              via, system)
        table, syntax, label = {
            "iso-4217": ((self.iso.currencies if self.iso else None), _ISO4217_SYNTAX, "ISO 4217 currency"),
            "iso-3166": ((self.iso.countries if self.iso else None), _ISO3166_SYNTAX, "ISO 3166-1 country"),
            "iso-3166-2": ((self.iso.subdivisions if self.iso else None), _ISO3166_2_SYNTAX,
                           "ISO 3166-2 subdivision"),
        }[grammar]
        if not syntax.match(code):
            return CodeResult(INVALID, f"'{code}' is not a valid {label} code", "grammar", via, system)
        if table is None:
            return CodeResult(NOT_CHECKED, f"{label} codes are not available offline (install the iso-codes data), "
                              f"so '{code}' was checked for syntax only", "no-data", via, system)
        if code in table:
            return CodeResult(VALID, "", "", via, system)
        return CodeResult(INVALID, f"Unknown code '{code}' in the CodeSystem '{system}' ({label} codes)",
                          "unknown-code", via, system)

    def _check_m49(self, grammar: str, system: str, code: str, via: str) -> CodeResult:
        """UN M.49: the area codes (RFC 5646's region list) and, with ISO data, the country codes."""
        if not _M49_SYNTAX.match(code):
            return CodeResult(INVALID, f"'{code}' is not a UN M.49 code (three digits)", "grammar", via, system)
        if grammar != "m49-country" and code in M49_REGIONS:
            return CodeResult(VALID, "", "", via, system)
        if grammar == "m49-region":
            return CodeResult(INVALID, f"'{code}' is not a UN M.49 region code", "unknown-code", via, system)
        numeric = self.iso.countries if self.iso is not None else None
        if numeric is None:
            return CodeResult(NOT_CHECKED, f"UN M.49 country codes are not available offline (install the iso-codes "
                              f"data), so '{code}' was checked for syntax only", "no-data", via, system)
        if code in numeric:
            return CodeResult(VALID, "", "", via, system)
        return CodeResult(INVALID, f"Unknown code '{code}' in the CodeSystem '{system}' (UN M.49)", "unknown-code",
                          via, system)

    # -- codes in a value set ------------------------------------------------------------------
    def validate_code(self, value_set: str, system: str | None, code: str | None, display: str | None = None,
                      version: str | None = None) -> CodeResult:
        """Is (system, code) in the value set?  With no system (a ``code`` element), the value
        set's systems are tried, as the HL7 validator infers the system.  Memoized."""
        key = ("v", value_set, system, code, display, version)
        res = self._answers.get(key)
        if res is None:
            res = self._validate_code(value_set, system, code, display, version)
            self._remember(key, res)
        return res

    def _validate_code(self, value_set: str, system: str | None, code: str | None, display: str | None,
                       version: str | None) -> CodeResult:
        vs = self.value_set(value_set)
        if vs is None:
            return CodeResult(UNKNOWN_VALUE_SET, f"ValueSet '{value_set}' not found", "value-set-unknown")
        if not code:
            return CodeResult(INVALID, "No code provided", "no-code")
        if vs.url == MIMETYPES_VS and code in ("xml", "json", "ttl") and system in (None, BCP13):
            # R5's format codes: the HL7 validator accepts them as application/fhir+<code>
            return CodeResult(VALID, "", "", "special", BCP13, f"application/fhir+{code}")
        exp = self.expand(value_set)
        if system is None:
            return self._validate_bare_code(vs, exp, code, display)
        status, reason_key, reason = self._member(exp, vs, system, code)
        if status is True:
            base = self._system_check(system, code, display, version)
            if base.invalid and base.reason in ("unknown-code", "bad-system", "supplement"):
                return base
            via = "expansion" if not reason_key else reason_key
            return CodeResult(VALID, "", "", via, system, base.display, base.findings)
        if status is None:
            return CodeResult(NOT_CHECKED, reason, reason_key, system=system)
        base = self._system_check(system, code, display, version)
        msg = reason or (f"The provided code '{system}#{code}' was not found in the value set "
                         f"'{vs.versioned_url}'")
        if base.invalid and base.reason in ("unknown-code", "bad-system", "grammar", "supplement"):
            msg = base.message
        return CodeResult(INVALID, msg, reason_key or "not-in-value-set", "expansion", system, base.display,
                          base.findings)

    def _system_check(self, system: str, code: str, display: str | None, version: str | None) -> CodeResult:
        if system in self.code_systems or (version and self.code_system(system, version)):
            return self.validate_in_system(system, code, display, version)
        if system in GRAMMAR_SYSTEMS:
            return self.check_grammar(GRAMMAR_SYSTEMS[system], system, code)
        return CodeResult(NOT_CHECKED, "", "unknown-system", system=system)

    def _member(self, exp: Expansion, vs: ValueSetDef, system: str, code: str) -> tuple[bool | None, str, str]:
        """(True/False/None, reason key, message) for one (system, code)."""
        excluded = exp.excluded.get(system)
        if excluded and code in excluded:
            return False, "not-in-value-set", ""
        listed = exp.codes.get(system)
        if listed is not None:
            if code in listed or (self._case_insensitive(system) and code.lower() in self._lowered(listed)):
                if system in exp.open_excludes:
                    return None, "filter", exp.open_excludes[system]
                return True, "", ""
        removed = exp.inactive_removed.get(system)
        if removed and code in removed:
            return False, "inactive", (f"The concept '{code}' is valid but is not active, and the value set "
                                       f"{vs.versioned_url} excludes inactive codes")
        unknown_reason = None
        for part in exp.open:
            if part.system != system:
                continue
            if part.grammar:
                res = self.check_grammar(part.grammar, system, code, part.regex)
                if res.valid:
                    if system in exp.open_excludes:
                        return None, "filter", exp.open_excludes[system]
                    return True, f"grammar:{part.grammar}", ""
                if res.invalid:
                    continue
                unknown_reason = unknown_reason or (res.reason, res.message)
                continue
            unknown_reason = unknown_reason or (part.key, part.reason)
        if unknown_reason:
            key, why = unknown_reason
            return None, key, (f"Could not check whether '{system}#{code}' is in the value set "
                               f"{vs.versioned_url}: {why}")
        if exp.unknown:
            return None, "value-set-unknown", (f"Could not check whether '{system}#{code}' is in the value set "
                                               f"{vs.versioned_url}: {exp.unknown}")
        grammar_fail = None
        for part in exp.open:
            if part.system == system and part.grammar:
                res = self.check_grammar(part.grammar, system, code, part.regex)
                grammar_fail = res.message
                break
        if grammar_fail:
            return False, "grammar", grammar_fail
        return False, "", ""

    def _lowered(self, codes: frozenset[str]) -> frozenset[str]:
        key = id(codes)
        got = self._lower_sets.get(key)
        if got is None or got[0] is not codes:
            got = (codes, frozenset(c.lower() for c in codes))
            self._lower_sets[key] = got
        return got[1]

    def _case_insensitive(self, system: str) -> bool:
        cs = self.code_systems.get(system) if system in self.code_systems else None
        return cs is not None and cs.case_sensitive is False

    def _validate_bare_code(self, vs: ValueSetDef, exp: Expansion, code: str, display: str | None) -> CodeResult:
        """A ``code`` value: find the system among the value set's systems."""
        systems = [s for s, codes in exp.codes.items() if code in codes]
        if not systems:
            systems = [s for s in exp.codes if self._case_insensitive(s)
                       and code.lower() in self._lowered(exp.codes[s])]
        if systems:
            return self.validate_code(vs.versioned_url, systems[0], code, display)
        candidates = [p.system for p in exp.open]
        for system in dict.fromkeys(candidates):
            res = self.validate_code(vs.versioned_url, system, code, display)
            if res.status != INVALID:
                return res
        if candidates:
            res = self.validate_code(vs.versioned_url, candidates[0], code, display)
            return res
        if exp.unknown:
            return CodeResult(NOT_CHECKED, f"Could not check whether '{code}' is in the value set "
                              f"{vs.versioned_url}: {exp.unknown}", "value-set-unknown")
        removed = [s for s, c in exp.inactive_removed.items() if code in c]
        if removed:
            return CodeResult(INVALID, f"The concept '{code}' is valid but is not active, and the value set "
                              f"{vs.versioned_url} excludes inactive codes", "inactive", system=removed[0])
        only = list(exp.codes)
        detail = ""
        if len(only) == 1:
            cs = self.code_system(only[0])
            if cs is not None and cs.content == "complete" and self._lookup(cs, code) is None:
                detail = self.unknown_code_message(cs, code)
            system = only[0]
        else:
            system = None
        return CodeResult(INVALID, detail or f"The provided code '{code}' was not found in the value set "
                          f"'{vs.versioned_url}'", "not-in-value-set", "expansion", system)

    # -- FHIRPath memberOf() ----------------------------------------------------------------
    def member_of(self, value, value_set_url: str) -> bool | None:
        """FHIRPath ``memberOf()``: value is a code string, a Coding dict or a CodeableConcept
        dict; None means it cannot be told offline (or the value set is unknown)."""
        if isinstance(value, str):
            return _tri(self.validate_code(value_set_url, None, value))
        if isinstance(value, dict):
            if "coding" in value or "text" in value and "code" not in value:
                answers = [self.member_of(c, value_set_url) for c in (value.get("coding") if isinstance(value.get("coding"), list) else ())
                           if isinstance(c, dict)]
                if any(a is True for a in answers):
                    return True
                if any(a is None for a in answers):
                    return None
                return False
            code = value.get("code")
            if not isinstance(code, str):
                return False
            return _tri(self.validate_code(value_set_url, value.get("system"), code))
        return None

    # -- census ------------------------------------------------------------------------------
    def enumerability(self, url: str) -> tuple[str, str]:
        """('enumerable' | 'grammar' | 'not-enumerable' | 'unknown', reason) for a value set."""
        exp = self.expand(url)
        if exp is None:
            return "unknown", f"ValueSet '{url}' not found"
        if exp.enumerable:
            return "enumerable", ""
        if exp.unknown is None and not exp.open_excludes and all(
                p.key == "grammar" and self._grammar_has_data(p.grammar) for p in exp.open):
            return "grammar", ", ".join(sorted({p.grammar for p in exp.open}))
        return "not-enumerable", exp.not_enumerable_reason() or ""


def _tri(res: CodeResult) -> bool | None:
    if res.status == VALID:
        return True
    if res.status == INVALID:
        return False
    return None


def _intersect(a: Expansion, b: Expansion) -> Expansion:
    """Members of both (imports inside one include intersect)."""
    out = Expansion(unknown=a.unknown or b.unknown, version_fallbacks={**a.version_fallbacks, **b.version_fallbacks})
    for system in set(a.codes) & set(b.codes):
        out.codes[system] = a.codes[system] & b.codes[system]
    b_open = {p.system: p for p in b.open}
    a_open = {p.system: p for p in a.open}
    for system, codes in a.codes.items():
        if system in b_open:  # listed on one side, open on the other: cannot tell
            out.open.append(b_open[system])
    for system, codes in b.codes.items():
        if system in a_open:
            out.open.append(a_open[system])
    for system in set(a_open) & set(b_open):
        out.open.append(a_open[system])
    return out


def _merge_into(exp: Expansion, codes: dict[str, set[str]], part: Expansion) -> None:
    for system, cs in part.codes.items():
        codes.setdefault(system, set()).update(cs)
    exp.open.extend(part.open)
    if part.unknown and not exp.unknown:
        exp.unknown = part.unknown
    for system, why in part.open_excludes.items():
        exp.open_excludes.setdefault(system, why)
    for system, removed in part.inactive_removed.items():
        exp.inactive_removed[system] = exp.inactive_removed.get(system, frozenset()) | removed
    exp.version_fallbacks.update(part.version_fallbacks)


def _unbundle(res) -> Iterator[dict]:
    if not isinstance(res, dict):
        return
    if res.get("resourceType") == "Bundle":
        for e in res.get("entry") or ():
            if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                yield from _unbundle(e["resource"])
    else:
        yield res


_RX_CACHE: dict[str, re.Pattern | None] = {}


def _compile(pattern: str) -> re.Pattern | None:
    if pattern not in _RX_CACHE:
        try:
            _RX_CACHE[pattern] = re.compile(pattern)
        except re.error:
            _RX_CACHE[pattern] = None
    return _RX_CACHE[pattern]


def _norm_ws(s: str) -> str:
    return " ".join(s.split())


def system_problem(system: str, term: Terminology | None = None) -> str | None:
    """An error in a Coding.system URI itself, in the HL7 validator's words; None if fine.

    Relative URIs, links to HTML pages or build.fhir.org, unknown hl7.org/fhir
    systems, sub-paths of SNOMED CT / LOINC / UCUM / RxNorm, https variants of
    known systems and value set URLs used as systems.
    """
    if ":" not in system:
        return "Coding.system must be an absolute reference, not a local reference"
    known = term is not None and system in term.code_systems
    if known:
        return None
    if system.startswith(("http://build.fhir.org", "https://build.fhir.org")):
        return (f"The code system reference {system} is wrong - the code system reference cannot be a reference "
                "to build.fhir.org")
    if system.startswith(("http://hl7.org/fhir", "https://hl7.org/fhir", "http://www.hl7.org/fhir",
                          "https://www.hl7.org/fhir")):
        if system in KNOWN_SID_SYSTEMS or system.startswith("http://hl7.org/fhir/test"):
            return None
        if system.endswith(".html"):
            return (f"The code system reference {system} is wrong - the code system reference cannot be to an "
                    "HTML page")
        if term is not None and term.value_set(system) is not None:
            return f"Invalid System URI: {system} - cannot use a value set URI as a system"
        return f"Unknown Code System '{system}'"
    for base in (SNOMED, LOINC, UCUM, RXNORM):
        if system != base and system.startswith(base):
            return f"Invalid System URI: {system}"
    if term is not None:
        if term.value_set(system) is not None:
            return f"Invalid System URI: {system} - cannot use a value set URI as a system"
        if system.startswith("https:") and ("http:" + system[6:] in term.code_systems
                                           or "http:" + system[6:] in SERVER_SIDE):
            return f"The system URL '{system}' wrongly starts with https: not http:"
    return None
