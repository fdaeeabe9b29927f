"""Which slice an element belongs to: a profile's discriminators evaluated on a JSON value.

The HL7 validator's slice matching (InstanceValidator.sliceMatches): value and pattern
discriminators compare the fixed or pattern values the slice sets at the discriminator's path
(or value-set membership where it only binds one), exists/type/profile discriminators look at
presence, resource type and conformance to a profile.  Conformance to a profile is a quiet
sub-validation, so the matcher is given the walker's ``conforms``.
"""
from __future__ import annotations

from typing import Callable, Protocol

from fhirpkg.fhir.definitions import Definitions
from fhirpkg.fhir.model import ElementDef, TypeDef
from fhirpkg.validation.json_values import json_contains, json_equal, navigate, split_path


class Reporter(Protocol):
    def error(self, code: str, message: str, rule: str, expr: str, loc: tuple) -> None: ...

    def info(self, code: str, message: str, rule: str, expr: str, loc: tuple) -> None: ...


class SliceMatcher:
    def __init__(self, defs: Definitions, conforms: Callable[[dict, TypeDef], bool]):
        self.defs = defs
        self.conforms = conforms

    def matches(self, value, sl: ElementDef, base: ElementDef, tcode, td: TypeDef) -> bool:
        discs = base.slicing.discriminators
        if not discs:
            return False
        for d in discs:
            if not self.discriminator_ok(value, sl, d, tcode, td):
                return False
        return True

    def discriminator_ok(self, value, sl: ElementDef, d, tcode, td: TypeDef) -> bool:
        path = d.path[len("$this."):] if d.path.startswith("$this.") else d.path  # "$this.name" is "name"
        if d.type == "position":
            return False
        targets = navigate(value, path)
        sdef = self.slice_element(sl, path, td)
        if d.type in ("value", "pattern"):
            candidates = self.slice_elements(sl, path, td)
            wants = [(e.pattern is not None and e.fixed is None, (e.fixed or e.pattern)[1])
                     for e in candidates if e.fixed is not None or e.pattern is not None]
            if not wants and path == "url" and sl.types and sl.types[0].profiles:
                wants = [(False, sl.types[0].profiles[0])]
            if not wants:
                # profiling.html#discriminator: "fixed value, pattern, or required ValueSet binding"
                bound = [e for e in candidates if e.binding is not None and e.binding.value_set
                         and e.binding.strength == "required"]
                if bound and self.defs.terminology is not None:
                    return any(self.in_value_set(t, e.binding.value_set) for t in targets for e in bound)
                # the slice fixes nothing at this path, so this discriminator cannot tell it apart
                return sdef is not None
            return any(json_contains(t, w) if is_pattern else json_equal(t, w)
                       for t in targets for is_pattern, w in wants)
        if d.type == "exists":
            present = bool(targets)
            if sdef is None:
                return present
            if sdef.max == 0:
                return not present
            return present if sdef.min >= 1 else True
        if d.type == "type":
            want_types = {t.code for t in (sdef.types if sdef is not None else sl.types)}
            if path == "$this" or path == "resolve()":
                if isinstance(value, dict) and "resourceType" in value:
                    return value["resourceType"] in want_types
                return (tcode in want_types) if tcode else False
            if any(isinstance(t, dict) and "resourceType" in t for t in targets):  # resources: by their type
                return any(isinstance(t, dict) and t.get("resourceType") in want_types for t in targets)
            return len(want_types) == 1 and bool(targets)
        if d.type == "profile":
            profiles = [p for t in (sdef.types if sdef is not None else sl.types) for p in t.profiles]
            for t in targets:
                if isinstance(t, dict):
                    for p in profiles:
                        prof = self.defs.get(p)
                        if prof is not None and self.conforms(t, prof):
                            return True
            return False
        return False

    def slice_elements(self, sl: ElementDef, path: str, td: TypeDef) -> list[ElementDef]:
        """The definitions a discriminator path reaches in a slice, looking into the slices of
        sliced elements on the way (``code.coding.code`` is fixed in a slice of ``coding``)."""
        if path in ("$this", ""):
            return [sl]
        nodes = [sl]
        for part in split_path(path):
            if part.startswith("extension(") or part in ("resolve()",) or part.startswith("ofType("):
                return []
            nxt = []
            for node in nodes:
                child = self.slice_element(node, part, td)
                if child is not None:
                    nxt.append(child)
                    nxt.extend(child.slices)
            nodes = nxt
        return nodes

    def slice_element(self, sl: ElementDef, path: str, td: TypeDef) -> ElementDef | None:
        if path in ("$this", ""):
            return sl
        node = sl
        for part in split_path(path):
            if part.startswith("extension(") or part in ("resolve()",) or part.startswith("ofType("):
                return None
            nxt = node.children.get(part)
            if nxt is None:  # FHIRPath names a choice element without its [x]: value is value[x]
                nxt = node.children.get(part + "[x]")
            if nxt is None and node.types and not node.children:
                # not unrolled in the profile: look in the type's profile, if any
                for t in node.types:
                    for p in t.profiles:
                        prof = self.defs.get(p)
                        if prof is not None:
                            nxt = prof.root.children.get(part)
                            break
                    if nxt is not None:
                        break
            if nxt is None:
                return None
            node = nxt
        return node

    def in_value_set(self, value, vs: str | None) -> bool:
        term = self.defs.terminology
        if term is None or vs is None:
            return False
        try:
            r = term.member_of(value, vs)
        except Exception:
            return False
        return bool(r)

    def matches_slice(self, value, profile: TypeDef, slice_name: str) -> bool | None:
        """Does a value match the named slice of a profile (by its discriminators)? None: no such slice."""
        for sl in profile.by_id.values():
            if sl.slice_name != slice_name or ":" not in sl.id:
                continue
            base = profile.by_id.get(sl.id.rsplit(":", 1)[0])
            if base is None or base.slicing is None:
                continue
            tcode = base.types[0].code if len(base.types) == 1 else None
            return isinstance(value, dict) and self.matches(value, sl, base, tcode, profile)
        return None


def slice_candidates(base: ElementDef) -> list[tuple[ElementDef, ElementDef]]:
    """Every slice of ``base`` with the element whose slicing tells it apart, re-slices
    (``altid/npi``) after the slice they refine, in snapshot order as the HL7 validator tries them."""
    out = []

    def add(slices, slicer):
        for sl in slices:
            out.append((sl, slicer))
            if sl.slices:
                add(sl.slices, sl if sl.slicing is not None else slicer)
    add(base.slices, base)
    return out


def assign_slices(matcher: SliceMatcher, report: Reporter, base: ElementDef, items: list, name: str, tcode,
                  td: TypeDef, expr: str, loc: tuple) -> list:
    """Assign each item (index, value, shadow) to a slice of ``base``, as the HL7 validator's
    assignChildren and checkCardinalities do; report slice cardinality, order, closed slicing and
    items in two slices to ``report``. Returns (item, slice or base) pairs."""
    slicing = base.slicing
    source = f"{td.url}{'|' + td.version if td.version else ''}"
    candidates = slice_candidates(base)
    counts = {id(sl): 0 for sl, _ in candidates}
    out = []
    last_slice_index = -1
    for it in items:
        i, v, s = it
        iexpr = f"{expr}.{name}[{i}]" if i is not None else f"{expr}.{name}"
        iloc = loc + ((name, i) if i is not None else (name,))
        hit = None
        for k, (sl, slicer) in enumerate(candidates):
            if not matcher.matches(v, sl, slicer, tcode, td):
                continue
            if hit is None or sl.slice_name.startswith(hit[1].slice_name + "/"):
                hit = (k, sl)  # the first match, or a re-slice of it (which refines it)
            elif not hit[1].slice_name.startswith(sl.slice_name + "/"):
                report.error("invalid", f"Profile {source}, Element matches more than one slice - "
                             f"{hit[1].slice_name}, {sl.slice_name}", "slice-multiple", iexpr, iloc)
        if hit is None:
            if slicing.rules == "closed":
                report.error("structure", f"This element does not match any known slice defined in the profile "
                             f"{td.url} and slicing is CLOSED", "slice-closed", iexpr, iloc)
            else:
                report.info("informational", f"This element does not match any known slice defined in the profile "
                            f"{td.url}", "slice-unmatched", iexpr, iloc)
            if slicing.rules == "openAtEnd":
                last_slice_index = len(candidates)  # any slice after this is out of order
            out.append((it, base))
            continue
        k, sl = hit
        if slicing.ordered and k < last_slice_index:
            report.error("structure", f"As specified by profile {td.url}, Element '{name}' is out of order "
                         f"(slice {sl.slice_name})", "slice-order", iexpr, iloc)
        last_slice_index = max(last_slice_index, k)
        counts[id(sl)] += 1
        if "/" in sl.slice_name:  # an item in altid/npi is also in altid
            for parent, _ in candidates:
                if sl.slice_name.startswith(parent.slice_name + "/"):
                    counts[id(parent)] += 1
        out.append((it, sl))
    for sl, _ in candidates:
        n = counts[id(sl)]
        if n < sl.min:
            report.error("structure", f"{base.path}:{sl.slice_name}: minimum required = {sl.min}, but only found {n} "
                         f"(from {source})", "cardinality-min", expr, loc)
        if sl.max is not None and n > sl.max:
            report.error("structure", f"{base.path}:{sl.slice_name}: max allowed = {sl.max}, but found {n} "
                         f"(from {source})", "cardinality-max", f"{expr}.{name}", loc + (name,))
    return out
