"""Code systems that are grammars rather than lists: BCP-47 language tags, BCP-13 MIME types,
UCUM units, ISO 4217/3166 (from the iso-codes data where installed), RGB colours, IANA time zones."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import orjson

from fhirpkg.validation.terminology.systems import (
    COLOR_RGB,
    BCP13,
    BCP47,
    IANA_TZ,
    ISO3166,
    ISO3166_2,
    ISO4217,
    ISO_CODES_DIRS,
    M49,
    UCUM,
    URI_SYSTEM,
)


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


def iso_to_json(iso: IsoData) -> dict:
    return {"source": iso.source, "languages": sorted(iso.languages), "three": iso.three_letter_with_two,
            "scripts": sorted(iso.scripts), "regions": sorted(iso.regions), "currencies": sorted(iso.currencies),
            "countries": sorted(iso.countries), "subdivisions": sorted(iso.subdivisions),
            "country_names": iso.country_names, "currency_names": iso.currency_names}


def iso_from_json(d: dict) -> IsoData:
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


def ucum_atoms_from(codes: Iterable[str]) -> set[str]:
    """Atoms used by known-good UCUM codes (the ucum-common value set)."""
    found: set[str] = set()
    for code in codes:
        for sym in ucum_atoms_of(code) or ():
            if not ucum_atom_known(sym, UCUM_BASE_ATOMS):
                found.add(sym)
    return found


ISO3166_SYNTAX = re.compile(r"^(?:[A-Z]{2}|[A-Z]{3}|[0-9]{3})$")
ISO3166_2_SYNTAX = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
ISO4217_SYNTAX = re.compile(r"^[A-Z]{3}$")
M49_SYNTAX = re.compile(r"^[0-9]{3}$")

#: Code systems checked by a grammar or a list that is not a CodeSystem resource.
GRAMMAR_SYSTEMS = {BCP47: "bcp-47", BCP13: "bcp-13", UCUM: "ucum", ISO4217: "iso-4217", ISO3166: "iso-3166",
                   ISO3166_2: "iso-3166-2", URI_SYSTEM: "uri", COLOR_RGB: "color-rgb", IANA_TZ: "iana-tz",
                   M49: "m49"}
#: UN M.49 filters understood offline: class = region (the area codes) or country (ISO 3166 numeric).
M49_CLASSES = {"region": "m49-region", "country": "m49-country"}
COLOR_RGB_SYNTAX = re.compile(r"^#[0-9a-fA-F]{6}$")


def iana_time_zones() -> frozenset[str]:
    """The IANA time zone names of this machine's tz database (Python's zoneinfo)."""
    try:
        import zoneinfo
        return frozenset(zoneinfo.available_timezones())
    except Exception:  # no tz database: time zones stay unchecked
        return frozenset()
