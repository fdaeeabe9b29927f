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
The family: ``systems`` (names), ``compiled`` (compiled forms, results), ``grammars``,
``building`` (resources to compiled forms, the compact store), ``expansion`` (value sets), this
module (``Terminology``, the questions) and ``layer`` (the validation layer).
Only the standard library and orjson are used.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from fhirpkg.validation.terminology.systems import (
    ANSWER_MEMO_SIZE,
    BCP13,
    DISPLAY_LANGUAGES,
    INVALID,
    KNOWN_SID_SYSTEMS,
    LOINC,
    MIMETYPES_VS,
    NOT_CHECKED,
    RXNORM,
    SERVER_SIDE,
    SNOMED,
    UCUM,
    UNKNOWN_VALUE_SET,
    VALID,
)
from fhirpkg.validation.terminology.compiled import CodeResult, CodeSystemDef, Expansion, ValueSetDef
from fhirpkg.validation.terminology.grammars import (
    COLOR_RGB_SYNTAX,
    GRAMMAR_SYSTEMS,
    ISO3166_2_SYNTAX,
    ISO3166_SYNTAX,
    ISO4217_SYNTAX,
    IsoData,
    M49_REGIONS,
    M49_SYNTAX,
    UCUM_BASE_ATOMS,
    check_bcp47,
    check_mime_type,
    check_ucum,
    iana_time_zones,
    iso_from_json,
    iso_to_json,
    load_iso_codes,
    ucum_atoms_from,
)
from fhirpkg.validation.terminology.building import (
    Store,
    compile_code_system,
    compile_value_set,
    compress,
    decompress,
    filter_properties,
    split_canonical,
)
from fhirpkg.validation.terminology.expansion import ValueSetExpansion

#: Bump when the pickled form changes: caches holding another format must be rebuilt.
FORMAT_VERSION = "1"


class StaleIndexError(ValueError):
    """A pickled Terminology from another version of this module."""


# --- the engine ---------------------------------------------------------------------------

class Terminology(ValueSetExpansion):
    """Code systems and value sets of the loaded packages, checked offline.

    Build it with ``from_packages`` (or ``from_resources``); it pickles small and
    loads fast.  ``validate_code`` / ``validate_in_system`` / ``member_of`` are the
    questions; ``expand`` gives what is known of a value set.
    """

    def __init__(self, code_systems: Iterable[CodeSystemDef] = (), value_sets: Iterable[ValueSetDef] = (),
                 iso: IsoData | None = None, ucum_atoms: frozenset[str] = UCUM_BASE_ATOMS,
                 sources: tuple[str, ...] = (), time_zones: frozenset[str] = frozenset()):
        self.code_systems = Store("cs")
        self.time_zones = time_zones
        self.value_sets = Store("vs")
        self._iso_blob = compress(orjson.dumps(iso_to_json(iso))) if iso is not None else None
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
            self._iso = iso_from_json(orjson.loads(decompress(self._iso_blob)))
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
        keep = filter_properties(v for v, _ in vss)
        code_systems = [c for c in (compile_code_system(r, p, keep) for r, p in css) if c is not None]
        value_sets = [v for v in (compile_value_set(r, p) for r, p in vss) if v is not None]
        iso = load_iso_codes(iso_codes)
        atoms = set(UCUM_BASE_ATOMS)
        for v in value_sets:
            if v.url == "http://hl7.org/fhir/ValueSet/ucum-common":
                for inc in v.includes:
                    if inc.system == UCUM and inc.concepts:
                        atoms |= ucum_atoms_from(inc.concepts)
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
        if cs.content == "supplement" or cs.supplements:  # as the HL7 validator: either makes it a supplement
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
            rx = compile(regex)
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
            if COLOR_RGB_SYNTAX.match(code):
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
            "iso-4217": ((self.iso.currencies if self.iso else None), ISO4217_SYNTAX, "ISO 4217 currency"),
            "iso-3166": ((self.iso.countries if self.iso else None), ISO3166_SYNTAX, "ISO 3166-1 country"),
            "iso-3166-2": ((self.iso.subdivisions if self.iso else None), ISO3166_2_SYNTAX,
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
        if not M49_SYNTAX.match(code):
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


def compile(pattern: str) -> re.Pattern | None:
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
