"""Structure: an instance walked against StructureDefinition snapshots.

The walker matches every JSON property to its ElementDefinition (choice
``[x]`` elements by type suffix, primitives with their ``_name`` shadows),
checks cardinality, JSON shape, types and primitive formats, resolves
extensions to their definitions, dispatches contained and Bundle resources to
their own type, and handles slicing, fixed and pattern values for profiles.
It yields Issues and hands every typed element to ``on_node`` so the other
layers (terminology, invariants, references) see the same typed tree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from fhirpkg.fhir.definitions import RELEASE_NAMES, Definitions
from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import BadConstant, lexeme
from fhirpkg.fhir.model import ElementDef, Node, ResourceFrame, TypeDef
from fhirpkg.validation.extension_use import Logical, context_ok, unknown_extension_allowed, unresolved_url
from fhirpkg.validation.json_values import (WHITESPACE, brief, clip, date_edge, decimal_out_of_range, escaped,
                                            json_contains, json_equal, json_kind, quantity_text, valid_calendar)
from fhirpkg.validation.slicing import SliceMatcher, assign_slices
from fhirpkg.validation.text_safety import URI_LIKE_TYPES, describes_narrative, embedded_html, urn_problem

NodeSink = Callable[[Node], None]

#: Cross-version extensions (FHIR versions.html#extensions): an element of another FHIR version,
#: e.g. http://hl7.org/fhir/5.0/StructureDefinition/extension-DeviceRequest.doNotPerform.
CROSS_VERSION_EXTENSION = re.compile(r"^http://hl7\.org/fhir/(1\.0|3\.0|4\.0|4\.3|5\.0|6\.0)/StructureDefinition/"
                                     r"extension-[A-Z][A-Za-z]*(\.[a-z][A-Za-z0-9]*(\[x\])?)*$")

NUMBER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "decimal"})
INT_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
RESOURCE_TYPE_CODES = frozenset({"Resource", "DomainResource"})
#: Constraints the walker checks itself (every element has them; FHIRPath would be slow).
NATIVE_CONSTRAINTS = frozenset({"ele-1", "ext-1"})
#: Types the later layers look at even without a binding or an invariant.
NODE_TYPES = frozenset({"Reference", "canonical", "Coding", "CodeableConcept", "CodeableReference", "xhtml",
                        "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity",
                        "Attachment", "Identifier"})
EXTENSION_NAMES = ("extension", "modifierExtension")
BUILD_EXTENSION_PREFIX = "http://hl7.org/fhir/build/StructureDefinition/"
#: Extensions the HL7 validator defines internally (SpecialExtensions.KNOWN_EXTENSIONS).
RENDERING_XHTML = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"
SPECIAL_KNOWN_EXTENSIONS = frozenset({
    "http://hl7.org/fhir/StructureDefinition/elementdefinition-type-must-support",
    "http://hl7.org/fhir/StructureDefinition/instance-name",
    "http://hl7.org/fhir/StructureDefinition/instance-description",
    "http://hl7.org/fhir/StructureDefinition/codesystem-properties-mode",
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-rdf-type",
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-conformance-derivedFrom",
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fmm-support",
})
MAX_STRING = 1024 * 1024
_ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_REGEX_CACHE: dict[str, re.Pattern] = {}
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
#: Types whose spec regex accepts any non-empty text (checked as such, without the regex).
ANY_TEXT_TYPES = frozenset({"string", "markdown"})
_TIMEZONE = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
_ABSENT = object()  # a property not in the object (one dict lookup instead of get and 'in')


def _regex(pattern: str) -> re.Pattern:
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        try:
            rx = re.compile(pattern)
        except re.error:
            rx = re.compile(r"[\s\S]*")
        _REGEX_CACHE[pattern] = rx
    return rx


def _suffix(code: str) -> str:
    return code[:1].upper() + code[1:]


@dataclass
class WalkMemo:
    """What a walk works out about definitions (type lookups, which elements later layers want,
    required children), kept by a Validator for all its resources. Entries keyed by an element's
    id() hold the element too, so that the id cannot be reused by another while the entry lives."""
    types: dict = field(default_factory=dict)
    wants: dict = field(default_factory=dict)
    required: dict = field(default_factory=dict)


class StructureWalker:
    """Walks resources against compiled definitions; one walker per validation run."""

    def __init__(self, defs: Definitions, on_node: NodeSink | None = None,
                 allowed_extension_domains: tuple[str, ...] = (), allow_example_urls: bool = False,
                 security_checks: bool = False, html_in_markdown: str = "warning",
                 global_profiles: tuple[tuple[str, str], ...] = (), memo: WalkMemo | None = None):
        self.defs = defs
        self.on_node = on_node or (lambda node: None)
        self.allowed_extension_domains = allowed_extension_domains
        self.allow_example_urls = allow_example_urls
        self.security_checks = security_checks
        self.html_in_markdown = html_in_markdown
        self.global_profiles = global_profiles
        memo = memo or WalkMemo()
        self._types: dict[str, TypeDef | None] = memo.types
        self._want_cache: dict[tuple, tuple] = memo.wants
        self._required_cache: dict[int, tuple] = memo.required
        self.issues: list[Issue] = []
        self.slices = SliceMatcher(defs, self.conforms)

    def _type(self, code: str | None) -> TypeDef | None:
        """Base definition of a type code, memoised for the walk."""
        if not code:
            return None
        try:
            return self._types[code]
        except KeyError:
            td = self._types[code] = self.defs.base_type(code)
            return td

    def _wants(self, edef: ElementDef, tcode: str | None) -> bool:
        """Does any later layer need to see this element? (Most elements carry only ele-1.)"""
        key = (id(edef), tcode)
        hit = self._want_cache.get(key)
        if hit is None:
            hit = self._want_cache[key] = (edef, (
                (edef.binding is not None and edef.binding.strength != "example")
                or any(c.key not in NATIVE_CONSTRAINTS for c in edef.constraints)
                or tcode in NODE_TYPES))
        return hit[1]

    # --- reporting ----------------------------------------------------------------
    def _issue(self, severity: Severity, code: str, message: str, rule: str, expr: str, loc: tuple) -> None:
        self.issues.append(Issue(severity, code, message, rule, expr, location=loc))

    def error(self, code, message, rule, expr, loc):
        self._issue(Severity.ERROR, code, message, rule, expr, loc)

    def warning(self, code, message, rule, expr, loc):
        self._issue(Severity.WARNING, code, message, rule, expr, loc)

    def info(self, code, message, rule, expr, loc):
        self._issue(Severity.INFORMATION, code, message, rule, expr, loc)

    # --- resources ------------------------------------------------------------------
    def resource(self, frame: ResourceFrame, profile: TypeDef | None = None) -> None:
        """Validate a resource against its base type (and a profile, when given)."""
        rt = frame.json.get("resourceType")
        expr, loc = frame.expression, frame.location
        if rt is None:
            self.error("structure", "The JSON object has no 'resourceType', so it is not a FHIR resource",
                       "resource-type-missing", expr, loc)
            return
        if not isinstance(rt, str) or not self.defs.is_resource_type(rt):
            self.error("structure", f"Unknown resource type '{rt}' (not a FHIR {RELEASE_NAMES.get(self.defs.fhir_version, self.defs.fhir_version)} resource type)",
                       "resource-type-unknown", expr, loc + ("resourceType",))
            return
        td = profile or self.defs.base_type(rt)
        if td is None:
            self.error("structure", f"No definition for resource type '{rt}'", "resource-type-unknown", expr, loc)
            return
        if profile is not None and profile.type != rt:
            self.error("structure", f"The profile {profile.url} is for {profile.type}, not {rt}",
                       "profile-type", expr, loc)
            return
        frame.type = rt
        self._check_resource_id(frame)
        root = td.root
        self.on_node(Node(frame.json, None, rt, root, expr, loc, frame))
        self._object(frame.json, root, td, rt, expr, loc, frame, is_resource=True, logical=Logical.fixed({rt, "@resource"}))

    def _check_resource_id(self, frame: ResourceFrame) -> None:
        rid = frame.json.get("id")
        expr, loc = frame.expression, frame.location
        if isinstance(rid, str):
            if len(rid) > 64:
                self.error("invalid", f"Invalid Resource id: Too long ({len(rid)} chars)", "resource-id",
                           expr + ".id", loc + ("id",))
            elif not re.fullmatch(r"[A-Za-z0-9\-.]+", rid):
                self.error("invalid", f"Invalid Resource id: Invalid Characters ('{rid}')", "resource-id",
                           expr + ".id", loc + ("id",))
        elif rid is None and frame.parent is not None and _is_contained(frame):
            self.error("invalid", "Resource requires an id, but none is present (contained resource)", "resource-id",
                       expr, loc)

    # --- objects --------------------------------------------------------------------
    def _children(self, edef: ElementDef, type_code: str | None, td: TypeDef) -> tuple[ElementDef, TypeDef] | None:
        """The element whose children describe this object, and the definition it lives in."""
        if edef.children:
            return edef, td
        if edef.content_reference:
            ref = edef.content_reference
            target = td.by_id.get(ref.split("#", 1)[1]) if "#" in ref else None
            if target is None and "#" in ref and not ref.startswith("#"):
                other = self.defs.get(ref.split("#", 1)[0])
                if other is not None:
                    target = other.by_id.get(ref.split("#", 1)[1])
                    td = other
            if target is not None:
                return target, td
            return None
        if type_code is None:
            return None
        type_def = None
        for t in edef.types:
            if t.code == type_code and t.profiles:
                type_def = self.defs.get(t.profiles[0])
                break
        if type_def is None:
            type_def = self.defs.base_type(type_code)
        if type_def is None:
            return None
        return type_def.root, type_def

    def _object(self, obj: dict, edef: ElementDef, td: TypeDef, type_code: str | None, expr: str, loc: tuple,
                frame: ResourceFrame, is_resource: bool = False, logical: "Logical | None" = None) -> None:
        """Validate the properties of a JSON object against the children of ``edef``.

        ``logical`` holds the object's logical paths (as the HL7 validator's NodeStack
        keeps them): its path from the resource root and its type, used to decide
        where an extension may be used.
        """
        found = self._children(edef, type_code, td)
        if found is None:
            if obj:
                self.error("structure", f"No definition found for the children of {edef.path} (type {type_code})",
                           "definition-missing", expr, loc)
            return
        parent, ptd = found
        index = parent.json_index
        # group the JSON properties by element (value and shadow together)
        groups: dict[str, list] = {}
        for key in obj:
            if is_resource and key == "resourceType":
                continue
            name = key[1:] if key.startswith("_") else key
            hit = index.get(name)
            if hit is None:  # at the object, as the HL7 validator reports it; the position is the key's
                self.error("structure", f"Unrecognized property '{key}'", "unknown-element", expr or key, loc + (key,))
                continue
            child, tcode = hit
            g = groups.get(child.name)
            if g is None:
                g = groups[child.name] = [child, []]
            g[1].append((name, key, tcode))
        if not obj and not is_resource:
            return  # empty objects are reported by the JSON rules
        if not is_resource and len(obj) == 1 and "id" in obj:
            self._ele1(expr, loc)
        host = logical or Logical.fixed(())
        for cname, g in groups.items():
            self._element_group(obj, g[0], g[1], ptd, expr, loc, frame, host)
        # required children that are absent (only those with a minimum, or with required slices)
        for child in self._required(parent):
            if child.name in groups:
                continue
            if child.min > 0:
                self.error("structure", f"{child.path}: minimum required = {child.min}, but only found 0"
                           + self._from(ptd),
                           "cardinality-min", expr, loc)
            else:
                self._check_slice_minimums(child, [], ptd, expr, loc)

    def _required(self, parent: ElementDef) -> tuple:
        """Children that must be present (min > 0, or a slice with min > 0), memoised."""
        key = id(parent)
        hit = self._required_cache.get(key)
        if hit is None:
            hit = self._required_cache[key] = (parent, tuple(
                c for c in parent.children.values()
                if c.min > 0 or (c.slicing is not None and any(s.min > 0 for s in c.slices))))
        return hit[1]

    def _from(self, td: TypeDef) -> str:
        return f" (from {td.url}{'|' + td.version if td.version else ''})" if td.is_profile or td.kind == "complex-type" and td.derivation == "constraint" else ""

    def _ele1(self, expr, loc):
        self.error("invariant", "Constraint failed: ele-1: 'All FHIR elements must have a @value or children' "
                   "(defined in http://hl7.org/fhir/StructureDefinition/Element)",
                   "ele-1", expr, loc)

    def _element_group(self, obj: dict, child: ElementDef, props: list, td: TypeDef, expr: str, loc: tuple,
                       frame: ResourceFrame, host: "Logical") -> None:
        # a choice element present under more than one type name
        names = {p[0] for p in props} if len(props) > 1 else ()
        if len(names) > 1:
            self.error("structure", f"Only one of {', '.join(sorted(names))} may be present ({child.path} is a choice of one type)",
                       "choice-multiple",
                       f"{expr}.{sorted(names)[0]}", loc + (sorted(names)[0],))
            props = [p for p in props if p[0] == sorted(names)[0]]
        name = props[0][0]
        tcode = props[0][2]
        value = obj.get(name, _ABSENT)
        has_value = value is not _ABSENT
        if not has_value:
            value = None
        shadow = obj.get("_" + name, _ABSENT)
        has_shadow = shadow is not _ABSENT
        if not has_shadow:
            shadow = None
        if tcode is None and child.types:
            codes = {t.code for t in child.types}
            if len(codes) == 1:
                tcode = next(iter(codes))
            elif isinstance(value, dict) and value.get("resourceType") in codes:
                tcode = value["resourceType"]  # a resource element profiled to several resource types
        elif tcode is None and child.content_reference:
            tcode = "BackboneElement"  # the referenced element's children apply
        type_def = self._type(tcode)
        is_primitive = type_def is not None and type_def.kind == "primitive-type"
        if has_shadow and not is_primitive:
            self.error("structure", f"'_{name}' is only allowed for primitive types, and {child.path} is {tcode}",
                       "shadow-not-primitive",
                       f"{expr}.{name}", loc + ("_" + name,))
            has_shadow, shadow = False, None
        item_expr = f"{expr}.{name}" if expr else name
        if child.max == 0:
            self.error("structure", f"{child.path}: max allowed = 0, but found 1" + self._from(td),
                       "cardinality-max", item_expr, loc + (name,))
            return
        is_choice = child.is_choice
        if child.is_array:
            values = value if has_value else None
            shadows = shadow if has_shadow else None
            if has_value and not isinstance(value, list):
                self.error("structure", f"The property {name} must be a JSON Array, not {json_kind(value)} (at {child.path})",
                           "json-array-expected",
                           item_expr, loc + (name,))
                values = [value]
            if has_shadow and not isinstance(shadow, list):
                self.error("structure", f"The property _{name} must be a JSON Array, not {json_kind(shadow)} (at {child.path})",
                           "json-array-expected",
                           item_expr, loc + ("_" + name,))
                shadows = [shadow]
            n = max(len(values) if values is not None else 0, len(shadows) if shadows is not None else 0)
            if values is not None and shadows is not None and len(values) != len(shadows):
                self.error("structure", f"The arrays '{name}' and '_{name}' must have the same length "
                           f"({len(values)} and {len(shadows)}); use null to fill positions",
                           "shadow-length", item_expr, loc + (name,))
            items = []
            for i in range(n):
                v = values[i] if values is not None and i < len(values) else None
                s = shadows[i] if shadows is not None and i < len(shadows) else None
                if v is None and s is None:
                    if (values is not None and i < len(values)) or (shadows is not None and i < len(shadows)):
                        continue  # null items are reported by the JSON rules
                items.append((i, v, s))
        else:
            if has_value and isinstance(value, list):
                self.error("structure", f"The property {name} must be a JSON Object or primitive, not an Array "
                           f"(at {child.path}, which allows only one)",
                           "json-array-unexpected", item_expr, loc + (name,))
                value = value[0] if value else None
            if has_shadow and isinstance(shadow, list):
                self.error("structure", f"The property _{name} must be a JSON Object, not an Array (at {child.path})",
                           "json-array-unexpected",
                           item_expr, loc + ("_" + name,))
                shadow = shadow[0] if shadow else None
            items = [] if value is None and shadow is None else [(None, value, shadow)]
        count = len(items)
        if count < child.min:
            self.error("structure", f"{child.path}: minimum required = {child.min}, but only found {count}" + self._from(td),
                       "cardinality-min",
                       expr, loc)
        if child.max is not None and count > child.max:
            self.error("structure", f"{child.path}: max allowed = {child.max}, but found {count}" + self._from(td),
                       "cardinality-max",
                       item_expr, loc + (name,))
        if not child.slices:
            matched = ((it, child) for it in items)
        elif child.slicing is not None and count and not is_choice:
            matched = assign_slices(self.slices, self, child, items, name, tcode, td, expr, loc)
        else:
            matched = [(it, child) for it in items]
            if child.slicing is not None:
                self._check_slice_minimums(child, [], td, expr, loc)
            if is_choice:
                # a type slice (value[x]:valueQuantity) constrains the chosen type
                for sl in child.slices:
                    if sl.slice_name == name:
                        matched = [(it, sl) for it, _ in matched]
                        break
        for (i, v, s), edef in matched:
            if i is None:
                iexpr, iloc = item_expr, loc + (name,)
                sloc = loc + ("_" + name,) if s is not None else None
            else:
                iexpr, iloc = f"{item_expr}[{i}]", loc + (name, i)
                sloc = loc + ("_" + name, i) if s is not None else None
            self._item(v, s, edef, tcode, type_def, td, iexpr, iloc, sloc, frame, host, name)

    # --- one value ------------------------------------------------------------------
    def _item(self, value, shadow, edef: ElementDef, tcode: str | None, type_def: TypeDef | None, td: TypeDef,
              expr: str, loc: tuple, sloc: tuple | None, frame: ResourceFrame, host: "Logical", name: str) -> None:
        """One value and its shadow; ``sloc``, the shadow's location, is None when there is no shadow."""
        if tcode is None:
            self.error("structure", f"Cannot determine the type of {edef.path}", "type-unknown", expr, loc)
            return
        kind = type_def.kind if type_def is not None else None
        if kind == "resource" or tcode in RESOURCE_TYPE_CODES:
            self._nested_resource(value, edef, expr, loc, frame)
            return
        if kind == "primitive-type" or tcode == "xhtml" or tcode.startswith("http://hl7.org/fhirpath/"):
            self._primitive(value, shadow, edef, tcode, type_def, td, expr, loc, sloc, frame, host)
            return
        if not isinstance(value, dict):
            if value is not None:
                self.error("structure", f"The property {name} must be a JSON Object, not {json_kind(value)} (at {edef.path})",
                           "json-object-expected",
                           expr, loc)
            return
        if edef.fixed is not None or edef.pattern is not None:
            self._fixed_pattern(value, edef, tcode, td, expr, loc)
        if edef.min_value is not None or edef.max_value is not None:  # minValueQuantity / maxValueQuantity
            self._min_max(value, edef, expr, loc)
        if tcode == "Extension" or name in EXTENSION_NAMES:
            self._extension(value, edef, td, expr, loc, frame, host, is_modifier=(name == "modifierExtension"))
            return
        if self._wants(edef, tcode):
            self.on_node(Node(value, None, tcode, edef, expr, loc, frame))
        if type_def is not None and not edef.children and self._wants(type_def.root, None):
            # the datatype's own invariants (per-1, qty-3, ...) apply to this element
            self.on_node(Node(value, None, tcode, type_def.root, expr, loc, frame))
        self._object(value, edef, td, tcode, expr, loc, frame, logical=Logical(host, edef, tcode, expr))

    def _nested_resource(self, value, edef: ElementDef, expr: str, loc: tuple, frame: ResourceFrame) -> None:
        if not isinstance(value, dict):
            self.error("structure", f"{edef.path} must be a JSON Object holding a resource, not {json_kind(value)}",
                       "json-object-expected", expr, loc)
            return
        full_url = None
        if edef.path == "Bundle.entry.resource" and len(loc) >= 2:
            entry = frame.json
            for k in loc[len(frame.location):-1]:
                entry = entry[k]
            if isinstance(entry, dict) and isinstance(entry.get("fullUrl"), str):
                full_url = entry["fullUrl"]
        child = ResourceFrame(value, value.get("resourceType") if isinstance(value.get("resourceType"), str) else "",
                              expr, loc, parent=frame, full_url=full_url)
        self.resource(child)
        self._profiles_of(child)

    def _profiles_of(self, frame: ResourceFrame) -> None:
        """Validate a nested resource against the profiles it claims in meta.profile, and the global
        profiles of its type (ImplementationGuide.global, as the HL7 validator applies them)."""
        meta = frame.json.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) and isinstance(meta.get("profile"), list) else []
        for i, url in enumerate(claimed):
            if not isinstance(url, str):
                continue
            prof = self.defs.get(url)
            if prof is None:
                self.warning("structure", f"Profile reference '{url}' has not been checked because it could not be found",
                             "profile-unknown",
                             f"{frame.expression}.meta.profile[{i}]", frame.location + ("meta", "profile", i))
            elif prof.is_profile:
                self.resource(frame, prof)
        for rtype, url in self.global_profiles:
            prof = self.defs.get(url) if rtype == frame.type and url not in claimed else None
            if prof is not None and prof.is_profile:
                self.resource(frame, prof)

    # --- primitives -----------------------------------------------------------------
    def _primitive(self, value, shadow, edef: ElementDef, tcode: str, type_def: TypeDef | None, td: TypeDef,
                   expr: str, loc: tuple, sloc: tuple | None, frame: ResourceFrame, parent: "Logical") -> None:
        """``parent``: the logical paths of the element holding this one (this one's own are made
        only when an extension or embedded HTML needs them: most primitives need neither)."""
        if shadow is not None:
            if not isinstance(shadow, dict):
                self.error("structure", f"The shadow property for {edef.path} must be a JSON Object, not {json_kind(shadow)}",
                           "json-object-expected",
                           expr, sloc)
                shadow = None
            else:
                for key in shadow:
                    if key not in ("id", "extension"):
                        self.error("structure", f"Unrecognized property '{key}' (a primitive's '_' object holds only id and extension)",
                                   "unknown-element", expr, sloc + (key,))
                if value is None and not shadow.get("extension"):
                    self._ele1(expr, sloc)
                elif value is None and edef.binding is not None and edef.binding.strength == "required" \
                        and not any(isinstance(x, dict) and isinstance(x.get("url"), str)
                                    and CROSS_VERSION_EXTENSION.match(x["url"]) for x in shadow.get("extension") or ()):
                    # a data-absent-reason does not stand in for a code the binding requires (HL7 checkPrimitive)
                    self.error("code-invalid", "No code provided, and a code is required from the value set",
                               "required-code-missing", expr, sloc)
                self._shadow_extensions(shadow, edef, tcode, td, expr, sloc, frame, Logical(parent, edef, tcode, expr))
        if value is not None:
            self._primitive_value(value, edef, tcode, type_def, expr, loc)
            if value == "" and tcode != "xhtml" and not (isinstance(shadow, dict) and shadow.get("extension")):
                self._ele1(expr, loc)  # '' is no value: the HL7 validator reports ele-1 besides "cannot be empty"
            if isinstance(value, str) and "<" in value and tcode != "xhtml":
                self._embedded_html(value, edef, tcode, expr, loc, frame, Logical(parent, edef, tcode, expr))
        if self._wants(edef, tcode):
            self.on_node(Node(value, shadow, tcode, edef, expr, loc, frame))

    def _embedded_html(self, value: str, edef: ElementDef, tcode: str, expr: str, loc: tuple,
                       frame: ResourceFrame, host: "Logical") -> None:
        """HTML-like tags in text (text_safety): the issues carry the walker's place."""
        for severity, message, rule in embedded_html(
                value, tcode, self.security_checks, self.html_in_markdown,
                in_rendering_xhtml=lambda: RENDERING_XHTML in (host.parent.paths if host.parent else ()),
                describes_narrative=lambda: describes_narrative(edef.path, frame.json, loc[len(frame.location):])):
            self._issue(severity, "invalid", message, rule, expr, loc)

    def _shadow_extensions(self, shadow: dict, edef, tcode, td, expr, sloc, frame, host) -> None:
        exts = shadow.get("extension")
        if exts is None:
            return
        if not isinstance(exts, list):
            self.error("structure", "The property extension must be a JSON Array", "json-array-expected",
                       expr + ".extension", sloc + ("extension",))
            return
        ext_def = self.defs.base_type("Element").root.children.get("extension") if self.defs.base_type("Element") else None
        for i, ext in enumerate(exts):
            if isinstance(ext, dict):
                self._extension(ext, ext_def or edef, td, f"{expr}.extension[{i}]", sloc + ("extension", i), frame,
                                host, is_modifier=False)

    def _primitive_value(self, value, edef: ElementDef, tcode: str, type_def: TypeDef | None,
                         expr: str, loc: tuple) -> None:
        if isinstance(value, BadConstant):
            return  # reported by the JSON rules
        if isinstance(value, (dict, list)):
            self.error("structure", f"The property {edef.name} must be a JSON {'number' if tcode in NUMBER_TYPES else 'boolean' if tcode == 'boolean' else 'string'}, "
                       f"not {json_kind(value)} (at {edef.path})",
                       "json-primitive-expected", expr, loc)
            return
        if tcode == "boolean":
            if not isinstance(value, bool):
                self.error("structure", f"Error parsing JSON: the primitive value must be a boolean "
                           f"(found {json_kind(value)} {clip(repr(value))})", "json-type", expr, loc)
            return
        if tcode in NUMBER_TYPES:
            if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                self.error("structure", f"Error parsing JSON: the primitive value must be a number "
                           f"(found {json_kind(value)} '{clip(str(value))}')", "json-type", expr, loc)
                return
            text = lexeme(value)
            if tcode in INT_TYPES:
                if not isinstance(value, int):
                    self.error("invalid", f"The value '{clip(text)}' is not a valid integer", "format", expr, loc)
                    return
                lo = 1 if tcode == "positiveInt" else 0 if tcode == "unsignedInt" else -2147483648
                if value < lo or value > 2147483647:
                    self.error("invalid", f"The value '{clip(text)}' is outside the range of {tcode} "
                               f"({lo}..2147483647)", "format", expr, loc)
            else:
                if decimal_out_of_range(text):
                    self.warning("value", f"The value '{clip(text)}' is outside the range of "
                                 "commonly/reasonably supported decimals", "decimal-range", expr, loc)
                if type_def is not None and type_def.regex and not _regex(type_def.regex).fullmatch(text):
                    self.error("invalid", f"Element value '{clip(text)}' does not meet decimal regex "
                               f"'{type_def.regex}'", "format", expr, loc)
            self._min_max(value, edef, expr, loc)
            return
        if not isinstance(value, str):
            self.error("structure", f"Error parsing JSON: the primitive value must be a string "
                       f"(found {json_kind(value)} '{clip(str(lexeme(value) if isinstance(value, (int, Decimal)) else value))}')", "json-type",
                       expr, loc)
            return
        if tcode == "xhtml":
            return  # checked by the narrative layer
        if value == "":
            self.error("invalid", "value cannot be empty", "string-empty", expr, loc)
            return
        if len(value) > MAX_STRING:
            self.error("invalid", f"value is longer than {MAX_STRING} characters", "string-length", expr, loc)
        if edef.max_length is not None and len(value) > edef.max_length:
            self.error("invalid", f"value is longer than permitted maximum length of {edef.max_length}",
                       "string-length", expr, loc)
        if not (value[0].isspace() or value[-1].isspace()):
            pass  # (every character either check trims is a str.isspace() one)
        elif not value.strip():
            self.warning("invalid", f"value should not be all whitespace '{escaped(value)}'"
                         if tcode == "string" else "Primitive types should not only be whitespace", "string-whitespace", expr, loc)
        elif tcode == "string" and value != value.strip(WHITESPACE):
            self.warning("invalid", "value should not start or finish with whitespace "
                         f"'{escaped(value)}'", "string-whitespace", expr, loc)
        if tcode == "base64Binary":
            # the spec's regex backtracks badly on large attachments; this is the same language
            if not _BASE64.fullmatch(value) or len("".join(value.split())) % 4:
                self.error("invalid", "The value is not valid base64 (only A-Z, a-z, 0-9, +, / and = "
                           "padding, in groups of four)", "format", expr, loc)
            return
        if _ILLEGAL_XML_CHARS.search(value):
            chars = sorted({f"{ord(c):x}" for c in _ILLEGAL_XML_CHARS.findall(value)})
            self.warning("invalid", f"This content includes the character{'s' if len(chars) > 1 else ''} [{', '.join(chars)}] "
                         f"(hex value{'s' if len(chars) > 1 else ''}), which are illegal in the XML version of FHIR",
                         "string-illegal-chars",
                         expr, loc)
        if type_def is not None and type_def.regex and tcode not in ANY_TEXT_TYPES \
                and not _regex(type_def.regex).fullmatch(value):
            if tcode == "code":  # the HL7 validator's own check and wording for codes (whitespace is all it can break)
                self.error("invalid", f"The code '{clip(value)}' is not valid (whitespace rules)", "format", expr, loc)
            else:
                self.error("invalid", f"The value '{clip(value)}' is not a valid {tcode} "
                           f"(does not match the regex {type_def.regex})", "format", expr, loc)
            return
        if tcode in URI_LIKE_TYPES and value.startswith("urn:") and (bad := urn_problem(value, tcode)):
            self.error("invalid", bad[0], "format", expr, loc)
        if tcode in ("date", "dateTime", "instant") and not valid_calendar(value):
            self.error("invalid", f"The value '{clip(str(value))}' is not a valid {tcode}: not a calendar date", "format",
                       expr, loc)
        elif tcode in ("dateTime", "instant") and "T" in value and not _TIMEZONE.search(value):
            self.error("invalid", f"The value '{clip(str(value))}' is not a valid {tcode}: a time must have a "
                       "timezone (Z or +hh:mm)", "format", expr, loc)
        elif tcode == "integer64":
            try:
                n = int(value)
            except ValueError:
                self.error("invalid", f"The value '{clip(str(value))}' is not a valid integer64", "format", expr, loc)
            else:
                if not -2**63 <= n < 2**63:
                    self.error("invalid", f"The value '{clip(str(value))}' is outside the range of integer64", "format", expr, loc)
        elif tcode == "canonical" and value.endswith("|"):
            if edef.path == "ImplementationGuide.dependsOn.uri":  # a dependency must name its version
                self.error("business-rule", "The canonical URL cannot end in '|'", "canonical-format", expr, loc)
            else:
                self.warning("business-rule", "The canonical URL ends in '|' with no "
                             "version after it", "canonical-format", expr, loc)
        if edef.min_value is not None or edef.max_value is not None:
            self._min_max(value, edef, expr, loc)

    def _min_max(self, value, edef: ElementDef, expr: str, loc: tuple) -> None:
        for bound, word, bad in ((edef.min_value, "less than the minimum", lambda a, b: a < b),
                                 (edef.max_value, "greater than the maximum", lambda a, b: a > b)):
            if bound is None:
                continue
            limit = bound[1]
            if isinstance(limit, dict) and isinstance(value, str):
                # a Duration bound on a date: min = not before now - duration, max = not after now + duration
                edge = date_edge(limit, -1 if word.startswith("less") else 1)
                if edge is not None and bad(value[:len(edge)], edge[:len(value)]):
                    self.error("invalid", f"The value '{clip(value)}' is {word} value of "
                               f"{quantity_text(limit)} {'before' if word.startswith('less') else 'after'} today "
                               f"({edge[:10]})", "value-range", expr, loc)
                continue
            if isinstance(limit, dict) or isinstance(value, dict):
                # a Quantity bound (minValueQuantity): only against a Quantity in comparable units
                from fhirpkg.validation.fhirpath import ucum_values  # imported here: fhirpathpy is slow to import
                a, b = ucum_values(value, limit) if isinstance(value, dict) and isinstance(limit, dict) else (None, None)
                if a is not None and bad(a, b):
                    # the HL7 validator's words: "specified minimum value (...)" in the same unit,
                    # "specified minValue (...) after UCUM conversion" otherwise
                    below = word.startswith("less")
                    if value.get("code") == limit.get("code"):
                        what = f"the specified {'minimum' if below else 'maximum'} value ({quantity_text(limit)})"
                    else:
                        what = (f"the specified {'minValue' if below else 'maxValue'} ({quantity_text(limit)}) "
                                "after UCUM conversion")
                    self.error("invalid", f"The value in the instance ({quantity_text(value)}) is "
                               f"{'less' if below else 'greater'} than {what}", "value-range", expr, loc)
                continue
            try:
                if bad(value if not isinstance(value, str) else value, limit if not isinstance(value, str) else str(limit)):
                    self.error("invalid", f"The value '{clip(str(value))}' is {word} value of '{limit}'", "value-range", expr, loc)
            except TypeError:
                pass

    # --- extensions -----------------------------------------------------------------
    def _extension(self, ext: dict, edef: ElementDef, td: TypeDef, expr: str, loc: tuple, frame: ResourceFrame,
                   host: "Logical", is_modifier: bool) -> None:
        url = ext.get("url")
        has_value = any(k.startswith("value") for k in ext)
        has_ext = bool(ext.get("extension"))
        if has_value == has_ext and (has_value or "url" in ext):
            self.error("invariant", "Constraint failed: ext-1: 'Must have either extensions or value[x], "
                       "not both' (defined in http://hl7.org/fhir/StructureDefinition/Extension)", "ext-1", expr, loc)
        if not isinstance(url, str) or not url:
            self.error("structure", "Extension.url is required and must be a string", "extension-url", expr, loc)
            self._object(ext, self.defs.base_type("Extension").root, self.defs.base_type("Extension"), "Extension",
                         expr, loc, frame, logical=Logical.fixed({"Extension"}))
            return
        ext_def = None
        if edef.types:
            for t in edef.types:
                if t.code == "Extension" and t.profiles:
                    cand = self.defs.get(t.profiles[0])
                    if cand is not None and cand.url == url.split("|")[0]:
                        ext_def = cand
        if ext_def is None and "://" in url or url.startswith("urn:"):
            ext_def = self.defs.get(url)
        if ext_def is None:
            if "://" not in url and not url.startswith("urn:"):
                # a sub-extension with a relative url: validated by its parent's slices
                base = self.defs.base_type("Extension")
                self.on_node(Node(ext, None, "Extension", edef, expr, loc, frame))
                self._object(ext, edef if edef.children else base.root, td if edef.children else base,
                             "Extension", expr, loc, frame, logical=Logical.fixed({"Extension"}))
                return
            if url in SPECIAL_KNOWN_EXTENSIONS or url.startswith(BUILD_EXTENSION_PREFIX):
                pass  # defined inside the HL7 tools themselves; nothing to check against
            elif CROSS_VERSION_EXTENSION.match(url):
                self.warning("structure", f"The cross-version extension {url} is not checked: the HL7 tools generate its "
                             "definition from the other FHIR version's element",
                             "extension-cross-version", expr + ".url", loc + ("url",))
            elif unknown_extension_allowed(url, self.allow_example_urls, self.allowed_extension_domains):
                self.info("structure", f"Unknown extension {url}", "extension-unknown", expr, loc)
            else:  # at the extension, as the HL7 validator reports it
                self.error("structure", f"The extension {url} could not be found so is not allowed here",
                           "extension-unknown", expr, loc)
                if (unresolved := unresolved_url(url)) is not None:
                    self.error(unresolved.code, unresolved.message, unresolved.rule, expr + ".url", loc + ("url",))
            base = self.defs.base_type("Extension")
            self._object(ext, base.root, base, "Extension", expr, loc, frame, logical=Logical.fixed({"Extension"}))
            return
        if ext_def.type != "Extension":
            self.error("structure", f"The URL {url} refers to a {ext_def.type} definition, not an extension",
                       "extension-definition", expr + ".url",
                       loc + ("url",))
            return
        if ext_def.status == "retired":
            self.info("business-rule", f"The extension {ext_def.url}|{ext_def.version} is deprecated",
                      "extension-deprecated", expr, loc)
        if (ext_def.contexts or ext_def.context_declared) and not context_ok(self.defs, ext_def, host.paths):
            shown = sorted(h for h in host.paths if not h.startswith("@"))
            # at the element that holds the extension, as the HL7 validator reports it (the container's path)
            self.error("structure", f"The extension {url}{' v' + ext_def.version if ext_def.version else ''} is not allowed to be "
                       f"used at this point (this element is [{', '.join(shown)}]; "
                       f"allowed = {', '.join(t[0] + ':' + e for t, e in ext_def.contexts)})",
                       "extension-context", expr.rsplit(".", 1)[0], loc[:-2] if loc and isinstance(loc[-1], int) else loc[:-1])
        modifier = bool(ext_def.root.is_modifier)
        if is_modifier and not modifier:
            self.error("structure", f"The extension {url} is not a modifier extension but is used as modifierExtension",
                       "extension-modifier", expr, loc)
        elif not is_modifier and modifier:
            self.error("structure", f"The extension {url} is a modifier extension and must be in modifierExtension",
                       "extension-modifier", expr, loc)
        self.on_node(Node(ext, None, "Extension", ext_def.root, expr, loc, frame))
        self._object(ext, ext_def.root, ext_def, "Extension", expr, loc, frame,
                     logical=Logical.fixed({"Extension", url}))

    # --- slicing, fixed and pattern values ---------------------------------------------------
    def _fixed_pattern(self, value, edef: ElementDef, tcode: str, td: TypeDef, expr: str, loc: tuple) -> None:
        if edef.fixed is not None:
            want = edef.fixed[1]
            if not json_equal(value, want):
                self.error("value", f"Value is '{brief(value)}' but is fixed to '{brief(want)}' in the "
                           f"profile {td.url}", "fixed", expr, loc)
        if edef.pattern is not None:
            want = edef.pattern[1]
            if not json_contains(value, want):
                self.error("value", f"The value does not match the pattern {brief(want)} required by "
                           f"{edef.path} in the profile {td.url}", "pattern", expr, loc)

    def _check_slice_minimums(self, base: ElementDef, items, td: TypeDef, expr: str, loc: tuple) -> None:
        for sl in base.slices:
            if sl.min > 0:
                self.error("structure", f"{base.path}:{sl.slice_name}: minimum required = {sl.min}, but only found 0 "
                           f"(from {td.url}{'|' + td.version if td.version else ''})",
                           "cardinality-min", expr, loc)

    def conforms(self, resource_or_value: dict, profile: TypeDef) -> bool:
        """Does a value conform to a profile? (A quiet sub-validation, for profile discriminators.)"""
        sub = StructureWalker(self.defs, allowed_extension_domains=self.allowed_extension_domains)
        if profile.kind == "resource":
            frame = ResourceFrame(resource_or_value, resource_or_value.get("resourceType", ""), profile.type, ())
            sub.resource(frame, profile)
        else:
            frame = ResourceFrame({}, "", "", ())
            sub._object(resource_or_value, profile.root, profile, profile.type, profile.type, (), frame,
                        logical=Logical.fixed({profile.type}))
        return not any(i.is_error for i in sub.issues)


# --- helpers ---------------------------------------------------------------------------

def _is_contained(frame: ResourceFrame) -> bool:
    return len(frame.location) >= 2 and frame.location[-2] == "contained"


