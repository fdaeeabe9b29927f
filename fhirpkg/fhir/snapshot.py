"""Profiles given only as a differential, compiled onto their base.

Profiles and extensions written by hand (or by tools that skip snapshots) carry
only a differential; validation needs the full picture.  Rather than generate
snapshot JSON, the differential is applied directly to a copy of the base
definition's compiled tree: elements are found by id (slices and choice
renames included), datatype children are unrolled on demand, and each
differential element's constraints (cardinality, types, fixed and pattern
values, bindings, invariants, slicing) replace or add to the base's.
"""
from __future__ import annotations

import copy
import pickle
import re

from fhirpkg.fhir.elements import (build_json_index, choice_value, compile_binding, compile_constraint, compile_contexts,
                                   compile_element, max_cardinality, version_range)
from fhirpkg.fhir.model import Discriminator, ElementDef, Slicing, TypeDef


class SnapshotError(Exception):
    """The differential cannot be applied (unknown base, or a path that does not exist)."""


def _clone(td: TypeDef) -> TypeDef:
    return pickle.loads(pickle.dumps(td, protocol=pickle.HIGHEST_PROTOCOL))


def _segments(element: dict, open_slices: dict[str, str | None] | None = None) -> list[tuple[str, str | None]]:
    """('name', slice) pairs of an element id: Patient.identifier:SSN.system.

    An element without an id belongs to the slices last opened on its ancestors' paths
    (``open_slices``: path -> slice name, updated here): a differential lists a slice and
    then the slice's children by path alone."""
    eid = element.get("id")
    if not eid:
        parts = element["path"].split(".")
        ctx = open_slices if open_slices is not None else {}
        segs = [(p, ctx.get(".".join(parts[:i + 1]))) for i, p in enumerate(parts[:-1])] + [(parts[-1], None)]
        if element.get("sliceName"):
            segs[-1] = (segs[-1][0], element["sliceName"])
        ctx[element["path"]] = element.get("sliceName")
        for key in [k for k in ctx if k.startswith(element["path"] + ".")]:
            del ctx[key]  # a new slice (or the slicing entry again) closes the slices below it
        return segs
    out = []
    for part in re.split(r"\.(?![^\[]*\])", eid):
        name, _, slice_name = part.partition(":")
        out.append((name, slice_name or None))
    return out


def compile_profile(sd: dict, defs) -> TypeDef:
    """A TypeDef for a constraint StructureDefinition that has only a differential."""
    base_url = sd.get("baseDefinition")
    base = defs.get(base_url) if base_url else None
    if base is None:
        raise SnapshotError(f"base definition {base_url} of {sd.get('url')} is not available")
    td = _clone(base)
    td.url, td.version, td.name = sd.get("url", ""), sd.get("version"), sd.get("name", "")
    td.derivation = sd.get("derivation", "constraint")
    td.base_definition = base_url
    td.status = sd.get("status")
    td.abstract = bool(sd.get("abstract", False))
    if sd.get("context"):
        td.contexts = compile_contexts(sd["context"], defs.fhir_version)
        td.context_declared = True
    td.fhir_versions = version_range(sd)
    applier = _Applier(defs, td, base)
    open_slices: dict[str, str | None] = {}
    for element in (sd.get("differential") or {}).get("element") or ():
        applier.apply(element, sd.get("url", ""), open_slices)
    _reindex(td.root)
    td.by_id = {}
    _index_ids(td.root, td.by_id)
    return td


class _Applier:
    def __init__(self, defs, td: TypeDef, base: TypeDef | None = None):
        self.defs = defs
        self.td = td
        #: contentReference targets are unrolled from the base, not from this profile's element:
        #: a constraint on Parameters.parameter.part (min 3) does not apply to part.part.
        self.base = base or td

    def apply(self, element: dict, source: str, open_slices: dict | None = None) -> None:
        segs = _segments(element, open_slices)
        node = self.td.root
        if segs[0][0] != node.path.split(".")[0] and segs[0][0] != self.td.type:
            raise SnapshotError(f"differential element {element.get('id')} does not start at {self.td.type}")
        if segs[0][1]:
            raise SnapshotError(f"the root element cannot be sliced ({element.get('id')})")
        for name, slice_name in segs[1:]:
            node = self._child(node, name)
            if slice_name:
                node = self._slice(node, slice_name, name)
        self._constrain(node, element, source)

    def _unroll(self, edef: ElementDef) -> None:
        """Give an element its children, copied from its type (or contentReference)."""
        if edef.children:
            return
        if edef.content_reference:
            target = self.base.by_id.get(edef.content_reference.split("#", 1)[-1])
            if target is not None:
                edef.children = copy.deepcopy(target.children)
            return
        if len(edef.types) != 1:
            return
        t = edef.types[0]
        src = self.defs.get(t.profiles[0]) if t.profiles else None
        src = src or self.defs.base_type(t.code)
        if src is None or src.kind == "primitive-type" and t.code != "Extension":
            if src is not None and src.kind == "primitive-type":
                edef.children = copy.deepcopy(src.root.children)
                _reprefix(edef.children, src.root.path, edef.path)
            return
        edef.children = copy.deepcopy(src.root.children)
        _reprefix(edef.children, src.root.path, edef.path)

    def _child(self, parent: ElementDef, name: str) -> ElementDef:
        self._unroll(parent)
        if name in parent.children:
            return parent.children[name]
        # a choice element renamed to one of its types: valueQuantity -> value[x]
        for cname, child in parent.children.items():
            if cname.endswith("[x]") and name.startswith(cname[:-3]):
                suffix = name[len(cname) - 3:]
                for t in child.types:
                    if t.code[:1].upper() + t.code[1:] == suffix:
                        child.types = (t,)
                        return child
        raise SnapshotError(f"{parent.path}.{name} does not exist in the base definition")

    def _slice(self, base: ElementDef, slice_name: str, name: str) -> ElementDef:
        for s in base.slices:
            if s.slice_name == slice_name:
                return s
        if "/" in slice_name:  # a re-slice of an existing slice
            parent_name, _, sub = slice_name.rpartition("/")
            parent = self._slice(base, parent_name, name)
            for s in parent.slices:
                if s.slice_name == slice_name:
                    return s
            new = _copy_for_slice(parent, slice_name)
            parent.slices.append(new)
            return new
        new = _copy_for_slice(base, slice_name)
        if base.name.endswith("[x]"):
            # a type slice (value[x]:valueQuantity) restricts the type
            suffix = slice_name[len(base.name) - 3:]
            kept = tuple(t for t in base.types if t.code[:1].upper() + t.code[1:] == suffix)
            new.types = kept or new.types
        base.slices.append(new)
        return new

    def _constrain(self, edef: ElementDef, e: dict, source: str) -> None:
        if "min" in e:
            edef.min = int(e["min"])
        if "max" in e:
            edef.max = max_cardinality(e["max"])
        if "type" in e:
            compiled = compile_element({"path": edef.path, "type": e["type"]}, source)
            edef.types = compiled.types
            if edef.children and not edef.content_reference:
                if len(edef.types) == 1 and edef.types[0].profiles:
                    edef.children = {}  # children now come from the profile
        fixed = choice_value(e, "fixed")
        if fixed is not None:
            edef.fixed = fixed
        pattern = choice_value(e, "pattern")
        if pattern is not None:
            edef.pattern = pattern
        if "binding" in e:
            edef.binding = compile_binding(e["binding"])
        if "constraint" in e:
            have = {c.key for c in edef.constraints}
            extra = tuple(compile_constraint(dict(c, source=c.get("source", source)))
                          for c in e["constraint"] if c.get("key") not in have)
            edef.constraints = edef.constraints + extra
        if "slicing" in e:
            s = e["slicing"]
            edef.slicing = Slicing(tuple(Discriminator(d.get("type", "value"), d.get("path", "$this"))
                                         for d in s.get("discriminator", ())),
                                   bool(s.get("ordered", False)), s.get("rules", "open"))
        if "maxLength" in e:
            edef.max_length = e["maxLength"]
        mv = choice_value(e, "minValue")
        if mv is not None:
            edef.min_value = mv
        mv = choice_value(e, "maxValue")
        if mv is not None:
            edef.max_value = mv
        if "contentReference" in e:
            edef.content_reference = e["contentReference"]
        if "isModifier" in e:
            edef.is_modifier = bool(e["isModifier"])


def _copy_for_slice(base: ElementDef, slice_name: str) -> ElementDef:
    new = copy.deepcopy(base)
    new.slices = []
    new.slicing = None
    new.slice_name = slice_name
    new.min = 0
    new.id = f"{base.id}:{slice_name}"
    return new


def _reprefix(children: dict, old: str, new: str) -> None:
    stack = list(children.values())
    while stack:
        e = stack.pop()
        if e.path.startswith(old + ".") or e.path == old:
            e.path = new + e.path[len(old):]
        if e.id.startswith(old + ".") or e.id == old:
            e.id = new + e.id[len(old):]
        stack.extend(e.children.values())
        stack.extend(e.slices)


def _reindex(edef: ElementDef) -> None:
    stack = [edef]
    while stack:
        e = stack.pop()
        if e.children:
            e.json_index = build_json_index(e.children)
        stack.extend(e.children.values())
        stack.extend(e.slices)


def _index_ids(edef: ElementDef, out: dict) -> None:
    stack = [edef]
    while stack:
        e = stack.pop()
        out.setdefault(e.id, e)
        stack.extend(e.children.values())
        stack.extend(e.slices)
