"""The FHIR type model FHIRPath navigates by, and navigation over FHIR JSON: a primitive and its
``_x`` shadow are one item, choice elements are found by type suffix, children in definition order."""
from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import FP_Quantity, ResourceNode

from fhirpkg.validation.fhirpath.common import Focus


class _Models(Mapping):
    """fhirpathpy's models by FHIR version ("r5", "r4", ...), each read on first use, from the files
    ``fhirpathpy.models`` reads: importing that module reads all four (13 ms of every start)."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))
        self._loaded: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        found = self._loaded.get(name)
        if found is None:
            if name not in self._names:
                raise KeyError(name)
            found = self._loaded[name] = {p.stem: json.loads(p.read_text(encoding="utf-8"))
                                          for p in (self._folder / name).glob("*.json")}
        return found

    def __contains__(self, name) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


#: fhirpathpy's models, as ``fhirpathpy.models.models`` holds them.
FP_MODELS = _Models(Path(fhirpathpy.__file__).parent / "models")

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- the R5 type model


class TypeModel:
    """Child types by element path, from fhirpathpy's R5 model, with inheritance.

    Node paths follow fhirpathpy: a type name ("Quantity", "string", "Patient")
    or, for backbone elements, the element path ("PlanDefinition.action").
    """

    def __init__(self, model: dict):
        self.model = model
        self._path2type: dict = model["path2Type"]
        self._choices: dict = model["choiceTypePaths"]
        self._elsewhere: dict = model["pathsDefinedElsewhere"]
        self._parents: dict = model["type2Parent"]
        self._members: dict = {}
        self._entries: dict = {}
        self._positions: dict = {}
        self._children: dict = {}
        self._lineages: dict = {}
        self._types: dict = {}
        self._sorted_paths: list[str] | None = None

    def lineage(self, path: str | None) -> tuple[str, ...]:
        """The path itself, then where inherited elements are defined."""
        found = self._lineages.get(path)
        if found is None:
            found = self._lineages[path] = self._lineage(path)
        return found

    def _lineage(self, path):
        if not path:
            return ()
        if "." in path:
            return (path, "BackboneElement", "Element")
        chain = [path]
        while (path := self._parents.get(path)) is not None and path not in chain:
            chain.append(path)
        return tuple(chain)

    def is_type(self, name: str | None, ancestor: str) -> bool:
        return name is not None and ancestor in self.lineage(name)

    def type_of(self, path: str | None) -> str | None:
        """The FHIR type of an element path, or the path itself for backbone elements."""
        if not path or "." not in path:
            return path
        found = self._types.get(path)
        if found is None:
            parent, _, key = path.rpartition(".")
            found = self._types[path] = self._child_type_of(self.type_of(parent), key) or path
        return found

    def member_keys(self, parent: str | None, name: str) -> tuple[tuple[str, str | None], ...]:
        """JSON keys (with their type) that FHIRPath ``parent.name`` can read.

        A choice element ``value`` yields one key per allowed type (``valueString``...);
        an unknown path yields ``((name, None),)``.
        """
        key = (parent, name)
        found = self._members.get(key)
        if found is None:
            found = self._member_keys(parent, name)
            self._members[key] = found
        return found

    def member_entries(self, parent: str | None, name: str) -> tuple[tuple[str, str, str | None], ...]:
        """``member_keys`` with each key's shadow (``_key``) beside it, made once, not per lookup."""
        key = (parent, name)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = tuple((k, "_" + k, t) for k, t in self.member_keys(parent, name))
        return found

    def choice_positions(self, parent: str | None, name: str) -> dict[str, int]:
        """Key -> position in ``member_keys(parent, name)``: a choice of many types is found by
        looking at the object's few keys instead of trying each of its fifty or so."""
        key = (parent, name)
        found = self._positions.get(key)
        if found is None:
            found = self._positions[key] = {k: i for i, (k, _) in enumerate(self.member_keys(parent, name))}
        return found

    def _member_keys(self, parent, name):
        for base in self.lineage(parent):
            path = f"{base}.{name}"
            choices = self._choices.get(path)
            if choices:
                return tuple((name + t, self._path2type.get(path + t) or _decap(t)) for t in choices)
            if path in self._path2type:
                return ((name, self._path2type[path]),)
            if path in self._elsewhere:
                return ((name, self._elsewhere[path]),)
            if self._is_backbone(path):  # the model lists only a backbone element's children
                return ((name, f"{parent}.{name}"),)
        return ((name, None),)

    def _is_backbone(self, path: str) -> bool:
        """Whether the model has elements under ``path`` (``ElementDefinition.slicing``): a known
        element then, not a choice to look for among the object's keys."""
        paths = self._sorted_paths
        if paths is None:
            paths = self._sorted_paths = sorted(self._path2type)
        prefix = path + "."
        i = bisect_left(paths, prefix)
        return i < len(paths) and paths[i].startswith(prefix)

    def child_type(self, parent: str | None, key: str) -> str | None:
        """Type of the JSON property ``key`` of a node typed ``parent``."""
        k = (parent, key)
        if k in self._children:
            return self._children[k]
        found = self._child_type_of(parent, key)
        self._children[k] = found
        return found

    def _child_type_of(self, parent, key):
        for base in self.lineage(parent):
            path = f"{base}.{key}"
            if path in self._path2type:
                return self._path2type[path]
            if path in self._elsewhere:
                return self._elsewhere[path]
            if path in self._choices:
                return None
        return None


#: FHIR primitive types: the ones spelled in lower case as a type and capitalised in ``valueX``.
PRIMITIVE_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "integer64", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid", "xhtml",
})


def choice_type(suffix: str) -> str:
    """The type named by a choice suffix: ``String`` → ``string``, ``CodeableConcept`` stays."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVE_TYPES else suffix


_decap = choice_type


QUANTITY_TYPES = frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"})
_SKIP_KEYS = frozenset({"resourceType", "fhir_comments"})


# --------------------------------------------------------------------------- navigation


class JsonNode(ResourceNode):
    """fhirpathpy's ResourceNode with a cheaper constructor (no ``abc.Mapping`` check)."""

    def __init__(self, data, path, shadow=None):  # noqa: D107 (same fields as ResourceNode)
        if type(data) is dict and type(data.get("resourceType")) is str:  # a malformed one is not a type
            path = data["resourceType"]
        self.path = path
        self.data = data
        self._data = shadow
        self.propName = None
        self.index = None


def as_resource_node(data) -> ResourceNode:
    return JsonNode(data, None)


def _append(out: list, value, shadow, type_path: str | None) -> None:
    """Add one JSON property as items: value and ``_x`` shadow paired by index."""
    if isinstance(value, list) or isinstance(shadow, list):
        values = value if isinstance(value, list) else ([] if value is None else [value])
        shadows = shadow if isinstance(shadow, list) else ([] if shadow is None else [shadow])
        for i in range(max(len(values), len(shadows))):
            v = values[i] if i < len(values) else None
            s = shadows[i] if i < len(shadows) else None
            if v is not None or isinstance(s, dict):
                out.append(JsonNode(v, type_path, s if isinstance(s, dict) else None))
    elif value is not None or isinstance(shadow, dict):
        out.append(JsonNode(value, type_path, shadow if isinstance(shadow, dict) else None))


_FEW_KEYS = 8  # above this many keys (and more than the object has), member() looks at the object's keys


def member(model: TypeModel, items: Focus, name: str) -> list:
    """``items.name`` over FHIR JSON: choice types, ``_x`` shadows, primitives' id/extension."""
    out: list = []
    for item in items:
        if not isinstance(item, ResourceNode):
            if isinstance(item, FP_Quantity) and name in ("value", "unit"):
                out.append(item.value if name == "value" else item.unit)
            elif type(item) is dict and item.keys() == {"name", "namespace"} and name in item:
                out.append(item[name])  # fhirpathpy's type() gives {name, namespace}: %context.type().name
            continue
        data = item.data
        if isinstance(data, dict):
            keys = model._entries.get((item.path, name)) or model.member_entries(item.path, name)
            if len(keys) > _FEW_KEYS and len(keys) > len(data):  # a choice of many types, the object's keys fewer
                positions = model.choice_positions(item.path, name)
                first = min((p for k, v in data.items() if v is not None
                             and (p := positions.get(k[1:] if k[:1] == "_" else k)) is not None), default=None)
                if first is not None:
                    key, shadow_key, type_path = keys[first]
                    _append(out, data.get(key), data.get(shadow_key), type_path)
                continue
            for key, shadow_key, type_path in keys:
                value = data.get(key)
                shadow = data.get(shadow_key)
                if value is not None or shadow is not None:
                    if type_path is None:
                        type_path = f"{item.path}.{name}" if item.path else None
                    _append(out, value, shadow, type_path)
                    break
            else:
                if keys[0][2] is None:
                    _append_unknown_choice(out, item, data, name)
        elif item._data is not None and name in ("id", "extension"):
            _append(out, item._data.get(name), None, "System.String" if name == "id" else "Extension")
    return out


def _append_unknown_choice(out: list, item: ResourceNode, data: dict, name: str) -> None:
    """Outside the model (logical models, unknown types) ``value`` still finds ``valueX``."""
    n = len(name)
    for key in data:
        if key.startswith(name) and len(key) > n and key[n].isupper():
            _append(out, data[key], data.get("_" + key), _decap(key[n:]))
            return


def children(model: TypeModel, items: Focus) -> list:
    """``children()``: every property, with ``_x``-only primitives included."""
    out: list = []
    for item in items:
        if not isinstance(item, ResourceNode):
            continue
        data = item.data
        if isinstance(data, dict):
            parent = item.path
            for key, value in data.items():
                if key in _SKIP_KEYS:
                    continue
                if not key:
                    continue  # "" is no FHIR property (the structure check reports it)
                if key[0] == "_":
                    base = key[1:]
                    if base in data:
                        continue  # paired with its value below
                    key, shadow, value = base, value, None
                else:
                    shadow = data.get("_" + key)
                _append(out, value, shadow, model.child_type(parent, key) or (f"{parent}.{key}" if parent else None))
        elif item._data is not None:
            _append(out, item._data.get("id"), None, "System.String")
            _append(out, item._data.get("extension"), None, "Extension")
    return out


def count_children(value: Any, shadow: dict | None) -> tuple[int, int]:
    """(children().count(), id.count()) for one node, without building nodes (native ele-1)."""
    if isinstance(value, dict):
        total = 0
        for key, v in value.items():
            if key in _SKIP_KEYS:
                continue
            if key[0] == "_":
                if key[1:] in value:
                    continue
                total += _items(None, v)
            else:
                total += _items(v, value.get("_" + key))
        return total, 1 if value.get("id") is not None else 0
    if isinstance(shadow, dict):
        ids = 1 if shadow.get("id") is not None else 0
        return ids + _items(shadow.get("extension"), None), ids
    return 0, 0


def _items(value, shadow) -> int:
    if isinstance(value, list) or isinstance(shadow, list):
        values = value if isinstance(value, list) else ([] if value is None else [value])
        shadows = shadow if isinstance(shadow, list) else ([] if shadow is None else [shadow])
        return sum(
            1
            for i in range(max(len(values), len(shadows)))
            if (i < len(values) and values[i] is not None) or (i < len(shadows) and isinstance(shadows[i], dict))
        )
    return 1 if value is not None or isinstance(shadow, dict) else 0


def has_value(value: Any) -> bool:
    """``hasValue()`` of one item, as the HL7 validator computes it.

    A primitive needs an actual value (not just id/extensions; '' has none).  A
    complex element counts as having a value: the validator's ``hasValue`` is
    "has a non-empty string form", which every complex element has.  The FHIRPath
    text says false for non-primitives; following the validator keeps ele-1 and
    ratrng-2 verdicts the same as its.
    """
    if isinstance(value, (dict, list)):
        return True
    return value is not None and value != ""



def listed(node) -> list:
    return [] if node is None else [node]


def unwrap(item):
    return item.data if isinstance(item, ResourceNode) else item


R5_TYPE_MODEL = TypeModel(FP_MODELS["r5"])
TYPE_MODELS: dict[str, TypeModel] = {"r5": R5_TYPE_MODEL}


def type_model(name: str) -> TypeModel:
    """One TypeModel per fhirpathpy model, shared by the engines (its caches fill once)."""
    found = TYPE_MODELS.get(name)
    if found is None:
        found = TYPE_MODELS[name] = TypeModel(FP_MODELS[name])
    return found
