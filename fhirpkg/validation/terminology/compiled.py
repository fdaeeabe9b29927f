"""Compiled code systems and value sets (what is pickled with the definitions) and the result of
checking one code."""
from __future__ import annotations

from dataclasses import dataclass, field

from fhirpkg.validation.terminology.systems import INVALID, VALID


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

class CanonicalNames:
    """What code systems and value sets are called in messages (their fields are the dataclass's)."""

    __slots__ = ()

    @property
    def label(self) -> str:
        return self.title or self.name or self.url

    @property
    def versioned_url(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url


@dataclass(slots=True, eq=False)
class CodeSystemDef(CanonicalNames):
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
class ValueSetDef(CanonicalNames):
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
