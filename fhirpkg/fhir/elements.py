"""One ElementDefinition (JSON) compiled into an ``ElementDef``: types, cardinality, bindings,
constraints, fixed and pattern values. Shared by the snapshot compiler (definitions) and the
differential-on-base compiler (snapshot), so neither imports the other's internals."""
from __future__ import annotations

from fhirpkg.fhir.model import AdditionalBinding, Binding, Constraint, Discriminator, ElementDef, Slicing, TypeRef

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
FHIRPATH_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}

def max_cardinality(text) -> int | None:
    if text is None or text == "*":
        return None
    return int(text)


def choice_value(element: dict, prefix: str):
    """Find ``fixedXxx``/``patternXxx`` and return (suffix, value)."""
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return key[len(prefix):], value
    return None


def _type_code(t: dict) -> str:
    """The FHIR type of a snapshot type entry.

    Element ids and primitive values are typed ``System.String`` with a
    ``structuredefinition-fhir-type`` extension; ids of elements are plain
    strings whatever that extension says (resource ids are checked separately),
    while ``Extension.url`` is a uri.
    """
    code = t.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXT:
                fhir_type = ext.get("valueUrl") or ext.get("valueUri")
                if fhir_type == "uri" or code != "http://hl7.org/fhirpath/System.String":
                    return fhir_type or FHIRPATH_TYPES.get(code, code)
        return FHIRPATH_TYPES.get(code, code)
    return code


def compile_element(e: dict, source: str) -> ElementDef:
    path = e["path"]
    types = tuple(
        TypeRef(_type_code(t), tuple(t.get("profile", ())), tuple(t.get("targetProfile", ())))
        for t in e.get("type", ()))
    binding = compile_binding(e["binding"]) if "binding" in e else None
    constraints = tuple(compile_constraint(c) for c in e.get("constraint", ()))
    slicing = None
    if "slicing" in e:
        s = e["slicing"]
        slicing = Slicing(tuple(Discriminator(d.get("type", "value"), d.get("path", "$this"))
                                for d in s.get("discriminator", ())),
                          bool(s.get("ordered", False)), s.get("rules", "open"))
    base = e.get("base") or {}
    return ElementDef(
        id=e.get("id") or path,
        path=path,
        name=path.rsplit(".", 1)[-1],
        min=int(e.get("min", 0) or 0),
        max=max_cardinality(e.get("max", "*")),
        types=types,
        content_reference=e.get("contentReference"),
        binding=binding,
        constraints=constraints,
        fixed=choice_value(e, "fixed"),
        pattern=choice_value(e, "pattern"),
        slice_name=e.get("sliceName"),
        slicing=slicing,
        is_modifier=bool(e.get("isModifier", False)),
        max_length=e.get("maxLength"),
        min_value=choice_value(e, "minValue"),
        max_value=choice_value(e, "maxValue"),
        base_path=base.get("path", path),
        base_max=max_cardinality(base.get("max", e.get("max", "*"))),
    )


BEST_PRACTICE_EXT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


def compile_constraint(c: dict) -> Constraint:
    best = any(x.get("url") == BEST_PRACTICE_EXT and x.get("valueBoolean") is True for x in c.get("extension", ()))
    return Constraint(c.get("key", "?"), c.get("severity", "error"), c.get("human", ""), c.get("expression"),
                      c.get("source", ""), best)


VERSION_USE_EXT = "http://hl7.org/fhir/StructureDefinition/version-specific-use"


def _applies_to(ctx: dict, fhir_version: str = "5.0.0") -> bool:
    """False for a context limited by version-specific-use (startFhirVersion/endFhirVersion) to
    other versions than ``fhir_version`` (compared by major.minor)."""
    target = tuple(int(x) for x in fhir_version.split(".")[:2])
    for ext in ctx.get("extension", ()):
        if ext.get("url") != VERSION_USE_EXT:
            continue
        for sub in ext.get("extension", ()):
            v = sub.get("valueCode") or sub.get("valueString") or ""
            try:
                major_minor = tuple(int(x) for x in v.split(".")[:2])
            except ValueError:
                continue
            if sub.get("url") == "startFhirVersion" and major_minor > target:
                return False
            if sub.get("url") == "endFhirVersion" and major_minor < target:
                return False
    return True


def version_range(sd: dict) -> tuple[str | None, str | None]:
    """The (startFhirVersion, endFhirVersion) a definition's own version-specific-use extension
    limits it to (an extension definition used in other FHIR versions than these is an error)."""
    start = end = None
    for ext in sd.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == VERSION_USE_EXT:
            for sub in ext.get("extension") or ():
                v = sub.get("valueCode") or sub.get("valueString") if isinstance(sub, dict) else None
                if isinstance(v, str) and sub.get("url") == "startFhirVersion":
                    start = v
                elif isinstance(v, str) and sub.get("url") == "endFhirVersion":
                    end = v
    return start, end


def compile_contexts(contexts, fhir_version: str = "5.0.0") -> tuple:
    """An extension's contexts that apply to this FHIR version: (type, expression) pairs."""
    return tuple((c.get("type", ""), c.get("expression", "")) for c in contexts if _applies_to(c, fhir_version))


def compile_binding(b: dict) -> Binding:
    additional = []
    for a in b.get("additional") or ():
        if not isinstance(a, dict) or not isinstance(a.get("valueSet"), str):
            continue
        usage = []
        for u in a.get("usage") or ():
            code = u.get("code") or {} if isinstance(u, dict) else {}
            value = next((v for k, v in u.items() if k.startswith("value")), None) if isinstance(u, dict) else None
            usage.append((code.get("system"), code.get("code"), value))
        additional.append(AdditionalBinding(a.get("purpose", ""), a["valueSet"], tuple(usage), bool(a.get("any"))))
    return Binding(b.get("strength", "example"), b.get("valueSet"), b.get("description"), tuple(additional))


def build_json_index(children: dict[str, ElementDef]) -> dict:
    """JSON property names for a set of children: ``valueQuantity`` -> (value[x], Quantity)."""
    index = {}
    for name, child in children.items():
        if name.endswith("[x]"):
            prefix = name[:-3]
            for t in child.types:
                index[prefix + t.code[0].upper() + t.code[1:]] = (child, t.code)
            # type slices such as value[x]:valueQuantity name the JSON property directly
            for s in child.slices:
                if s.slice_name and s.slice_name.startswith(prefix) and s.slice_name not in index:
                    suffix = s.slice_name[len(prefix):]
                    index.setdefault(s.slice_name, (child, suffix[0].lower() + suffix[1:] if suffix else None))
        else:
            codes = {t.code for t in child.types}  # R4-style profiles repeat Reference once per target
            index[name] = (child, next(iter(codes)) if len(codes) == 1 else None)
    return index
