"""Compiled definitions and the typed instance tree the validation layers share.

A StructureDefinition snapshot is compiled once into a tree of ``ElementDef``
(children by name, slices, bindings, constraints) and cached with the package
index; validating an instance walks that tree and yields ``Node``s, which every
layer (structure, terminology, invariants, references, profiles) reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Constraint:
    key: str
    severity: str  # "error" | "warning"
    human: str
    expression: str | None
    source: str  # canonical of the StructureDefinition that defines it ("" when the snapshot says none)
    best_practice: bool = False  # elementdefinition-bestpractice: reported as a recommendation


@dataclass(slots=True)
class AdditionalBinding:
    """ElementDefinition.binding.additional (R5): another value set with a purpose and,
    optionally, usage contexts that say when it applies."""

    purpose: str  # maximum | minimum | required | extensible | candidate | current | preferred | ui | ...
    value_set: str
    usage: tuple = ()  # (code system, code, value) of each UsageContext; value is the JSON value
    any: bool = False


@dataclass(slots=True)
class Binding:
    strength: str  # required | extensible | preferred | example
    value_set: str | None  # canonical, possibly "url|version"
    description: str | None = None
    additional: tuple[AdditionalBinding, ...] = ()


@dataclass(slots=True)
class TypeRef:
    code: str  # "string", "CodeableConcept", "Reference", "Resource", ...
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()


@dataclass(slots=True)
class Discriminator:
    type: str  # value | pattern | type | profile | exists | position
    path: str  # FHIRPath, relative to the sliced element ("$this", "code", "url", ...)


@dataclass(slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    ordered: bool
    rules: str  # closed | open | openAtEnd


@dataclass(slots=True, eq=False)
class ElementDef:
    """One snapshot ElementDefinition with its children attached."""

    id: str
    path: str  # "PlanDefinition.action.title"
    name: str  # last path segment: "title", "value[x]"
    min: int
    max: int | None  # None means "*"
    types: tuple[TypeRef, ...] = ()
    content_reference: str | None = None  # "#Questionnaire.item"
    binding: Binding | None = None
    constraints: tuple[Constraint, ...] = ()
    fixed: Any = None  # (type suffix, JSON value) or None
    pattern: Any = None  # (type suffix, JSON value) or None
    slice_name: str | None = None
    slicing: Slicing | None = None
    slices: list["ElementDef"] = field(default_factory=list)
    children: dict[str, "ElementDef"] = field(default_factory=dict)
    is_modifier: bool = False
    max_length: int | None = None
    min_value: Any = None  # (type suffix, value)
    max_value: Any = None
    base_path: str = ""
    base_max: int | None = None  # the base definition's max: arrays in JSON follow it
    #: JSON property name -> (child ElementDef, type code or None); built for elements
    #: with children, so matching ``valueQuantity`` to ``value[x]`` is one dict lookup.
    json_index: dict = field(default_factory=dict)

    @property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    @property
    def is_array(self) -> bool:
        """JSON represents the element as an array when its base max is above 1."""
        return self.base_max is None or self.base_max > 1

    @property
    def type_codes(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.types)


@dataclass(slots=True, eq=False)
class TypeDef:
    """A compiled StructureDefinition: a type, a profile, an extension or a logical model."""

    url: str
    version: str | None
    name: str
    type: str  # the type it constrains ("Patient", "Extension", "string")
    kind: str  # primitive-type | complex-type | resource | logical
    abstract: bool
    derivation: str | None  # specialization | constraint | None (base types)
    base_definition: str | None
    root: ElementDef
    #: For primitive types: the spec's regex for the value (``regex`` extension), if any.
    regex: str | None = None
    #: Extension definitions: where the extension may be used.
    contexts: tuple[tuple[str, str], ...] = ()  # (type, expression), those that apply to R5
    context_declared: bool = False  # the definition states contexts (even if none apply to R5)
    #: (startFhirVersion, endFhirVersion) of the definition's own version-specific-use extension
    fhir_versions: tuple = (None, None)
    status: str | None = None
    package: str = ""  # "id#version" of the package that defines it
    #: Element id -> ElementDef, for resolving ``contentReference`` ("#Questionnaire.item").
    by_id: dict = field(default_factory=dict)

    @property
    def is_profile(self) -> bool:
        return self.derivation == "constraint"


@dataclass(slots=True, eq=False)
class ResourceFrame:
    """A resource being validated: top level, contained, or a Bundle entry."""

    json: dict
    type: str
    expression: str  # FHIRPath of the resource root, e.g. "Bundle.entry[2].resource"
    location: tuple  # JSON location of the resource root
    parent: "ResourceFrame | None" = None  # container resource or Bundle
    full_url: str | None = None  # Bundle.entry.fullUrl for entries

    @property
    def root(self) -> "ResourceFrame":
        """The outermost resource (%rootResource's container chain ends here)."""
        frame = self
        while frame.parent is not None:
            frame = frame.parent
        return frame


@dataclass(slots=True, eq=False)
class Node:
    """One element of an instance, typed against its ElementDefinition.

    ``value`` is the JSON value (dict for complex types; str/int/bool/Decimal for
    primitives, or None when only the ``_name`` shadow is present); ``shadow`` is
    the primitive's ``_name`` object (id and extensions), if any.
    """

    value: Any
    shadow: dict | None
    type: str
    definition: ElementDef
    expression: str  # FHIRPath, e.g. "PlanDefinition.action[0].title"
    location: tuple  # JSON location, e.g. ("action", 0, "title")
    frame: ResourceFrame
