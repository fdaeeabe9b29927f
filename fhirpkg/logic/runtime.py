"""What the ELM evaluator (:mod:`fhirpkg.logic.elm`) runs on: patient data, value sets, the FHIR-to-CQL
conversions (FHIRHelpers 4.0.1, natively) and CQL's comparison rules (``None`` is null)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from fhirpkg.errors import UnsupportedElm
from fhirpkg.logic import cqltypes as t
from fhirpkg.logic.cqltypes import Code, Concept, DateTime, Interval, Quantity

FHIR = "{http://hl7.org/fhir}"
SYSTEM = "{urn:hl7-org:elm-types:r1}"
Fn = Callable[["Context"], object]

#: Where each FHIR 4.0.1 resource type points at its patient (retrieves are for the subject only).
PATIENT_PATHS = {"Patient": None, "Condition": "subject", "Procedure": "subject", "DiagnosticReport": "subject",
                 "Observation": "subject", "MedicationRequest": "subject", "MedicationAdministration": "subject",
                 "MedicationStatement": "subject", "Encounter": "subject", "AllergyIntolerance": "patient",
                 "ServiceRequest": "subject", "Specimen": "subject", "Immunization": "patient"}
#: Types outside the patient compartment that a retrieve may still need (the translator joins
#: ``medicationReference`` to Medication resources).
SHARED_TYPES = frozenset({"Medication"})
#: The FHIR 4.0.1 model info's primary code paths, for a Retrieve that names no codeProperty.
PRIMARY_CODE = {"Condition": "code", "Procedure": "code", "DiagnosticReport": "code", "Observation": "code",
                "MedicationRequest": "medication", "MedicationAdministration": "medication",
                "MedicationStatement": "medication", "ServiceRequest": "code", "Encounter": "type"}
_FHIR_TYPES = frozenset(
    "Quantity CodeableConcept String Boolean Integer Range Ratio SampledData Time DateTime Period Attachment "
    "Reference Date Age Duration Timing Canonical Uri Url Code Decimal Instant Coding Identifier Markdown Id Oid "
    "PositiveInt UnsignedInt Uuid Base64Binary Money Annotation ContactPoint HumanName Address Signature "
    "Count Distance Expression Meta Dosage ContactDetail UsageContext RelatedArtifact TriggerDefinition "
    "DataRequirement ParameterDefinition".split())


@dataclass(frozen=True)
class Choice:
    """A value of a FHIR choice element (``effective[x]``), with the type its JSON name gave."""

    type: str  # "dateTime", "Period"
    value: object


@dataclass
class ValueSets:
    """Value set membership from the package's ValueSet resources (compose.include concepts)."""

    by_url: dict[str, dict]
    _codes: dict[str, frozenset] = field(default_factory=dict)

    def codes(self, url: str) -> frozenset:
        url = url.split("|", 1)[0]
        if url not in self._codes:
            self._codes[url] = frozenset()  # a cycle stops here
            self._codes[url] = self._expand(url)
        return self._codes[url]

    def _expand(self, url: str) -> frozenset:
        vs = self.by_url.get(url)
        if vs is None:
            raise UnsupportedElm(f"value set {url} is not in the package")
        out = set()
        for c in (vs.get("expansion") or {}).get("contains") or []:
            out.add((c.get("system"), c.get("code")))
        compose = vs.get("compose") or {}
        if compose.get("exclude"):
            raise UnsupportedElm(f"value set {url}: compose.exclude is not supported")
        for inc in compose.get("include") or []:
            if inc.get("filter"):
                raise UnsupportedElm(f"value set {url}: compose.include.filter is not supported (list the concepts)")
            if inc.get("system") and not inc.get("concept") and not inc.get("valueSet"):
                raise UnsupportedElm(f"value set {url}: a whole code system ({inc['system']}) is not supported")
            members = {(inc.get("system"), c.get("code")) for c in inc.get("concept") or []}
            for ref in inc.get("valueSet") or []:
                nested = self.codes(ref)
                members = nested if not inc.get("concept") else members & nested
            out |= members
        return frozenset(out)

    def contains(self, url: str, value) -> bool | None:
        if value is None:
            return False
        codes = self.codes(url)
        if isinstance(value, Choice):
            value = value.value
        if isinstance(value, dict):
            value = to_concept(value) if "coding" in value or "text" in value else to_code(value)
        if isinstance(value, Concept):
            return any((c.system, c.code) in codes for c in value.codes)
        if isinstance(value, Code):
            return (value.system, value.code) in codes
        if isinstance(value, str):
            return any(code == value for _, code in codes)
        return False


@dataclass
class Data:
    """One patient's records, indexed by resource type (FHIR 4.0.1 shapes)."""

    patient: dict
    by_type: dict[str, list[dict]]

    @classmethod
    def of(cls, bundle: dict, patient_id: str) -> "Data":
        refs = {f"Patient/{patient_id}"}
        patient = None
        entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
        for e in entries:
            r = e["resource"]
            if r.get("resourceType") == "Patient" and r.get("id") == patient_id:
                patient = r
                if isinstance(e.get("fullUrl"), str):
                    refs.add(e["fullUrl"])
        by_type: dict[str, list[dict]] = {}
        for e in entries:
            r = e["resource"]
            rt = r.get("resourceType")
            if rt == "Patient":
                if r is patient:
                    by_type.setdefault(rt, []).append(r)
                continue
            if rt in SHARED_TYPES:  # not in the patient compartment: read by reference (medicationReference)
                by_type.setdefault(rt, []).append(r)
                continue
            path = PATIENT_PATHS.get(rt, "subject")
            ref = (r.get(path) or {}).get("reference") if isinstance(r.get(path), dict) else None
            if isinstance(ref, str) and (ref in refs or ref.endswith("/" + f"Patient/{patient_id}")):
                by_type.setdefault(rt, []).append(r)
        return cls(patient, by_type)


class Context:
    """What one evaluation sees: the patient's data, value sets, parameters, and results so far."""

    __slots__ = ("data", "valuesets", "parameters", "memo", "scope", "now")

    def __init__(self, data: Data, valuesets: ValueSets, parameters: dict | None = None):
        self.data = data
        self.valuesets = valuesets
        self.parameters = parameters or {}
        self.memo: dict = {}
        self.scope: dict = {}
        self.now = None


# ------------------------------------------------------------------------------ conversions
def unwrap(v):
    return v.value if isinstance(v, Choice) else v


def to_code(c) -> Code | None:
    c = unwrap(c)
    if isinstance(c, Code):
        return c
    if not isinstance(c, dict):
        return None
    return Code(c.get("code"), c.get("system"), c.get("version"), c.get("display"))


def to_concept(cc) -> Concept | None:
    cc = unwrap(cc)
    if isinstance(cc, Concept) or cc is None:
        return cc
    if isinstance(cc, Code):
        return Concept((cc,), cc.display)
    if not isinstance(cc, dict):
        return None
    return Concept(tuple(to_code(c) for c in cc.get("coding") or [] if isinstance(c, dict)), cc.get("text"))


def to_datetime(v) -> DateTime | None:
    v = unwrap(v)
    if isinstance(v, DateTime):
        return v
    return t.parse_datetime(v)


def to_date(v) -> DateTime | None:
    v = unwrap(v)
    if isinstance(v, DateTime):
        return DateTime(v.parts[:3], True)
    return t.parse_datetime(v, date_only=True)


def to_interval(p) -> Interval | None:
    p = unwrap(p)
    if isinstance(p, Interval) or p is None:
        return p
    if not isinstance(p, dict):
        return None
    if "start" in p or "end" in p:  # Period
        if p.get("start") is None and p.get("end") is None:
            return None
        return Interval(to_datetime(p.get("start")), to_datetime(p.get("end")))
    if "low" in p or "high" in p:  # Range
        return Interval(to_quantity(p.get("low")), to_quantity(p.get("high")))
    return None


def to_quantity(q) -> Quantity | None:
    q = unwrap(q)
    if isinstance(q, Quantity):
        return q
    if not isinstance(q, dict) or q.get("value") is None:
        return None
    return Quantity(q["value"], q.get("code") or q.get("unit"))


def to_string(v):
    v = unwrap(v)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_value(v):
    """FHIRHelpers.ToValue: a choice value as the CQL type its FHIR type maps to."""
    if not isinstance(v, Choice):
        return v
    convert = {"dateTime": to_datetime, "instant": to_datetime, "date": to_date, "CodeableConcept": to_concept,
               "Coding": to_code, "Quantity": to_quantity, "Age": to_quantity, "Duration": to_quantity,
               "Period": to_interval, "Range": to_interval}.get(v.type)
    return convert(v.value) if convert else v.value


#: FHIRHelpers 4.0.1 functions, natively: each maps a FHIR value to its CQL system type.
FHIR_HELPERS: dict[str, Callable] = {
    "ToConcept": to_concept, "ToCode": to_code, "ToString": to_string, "ToDateTime": to_datetime,
    "ToDate": to_date, "ToInterval": to_interval, "ToQuantity": to_quantity,
    "ToBoolean": lambda v: unwrap(v) if isinstance(unwrap(v), bool) else None,
    "ToInteger": lambda v: unwrap(v) if isinstance(unwrap(v), int) and not isinstance(unwrap(v), bool) else None,
    "ToDecimal": lambda v: unwrap(v) if isinstance(unwrap(v), (int, float)) or type(unwrap(v)).__name__.endswith(
        "Decimal") else None,
    "ToTime": lambda v: unwrap(v), "ToValue": to_value,
}


# ------------------------------------------------------------------------------ comparisons
def equal(a, b):
    """CQL Equal: null if either side is null."""
    a, b = unwrap(a), unwrap(b)
    if a is None or b is None:
        return None
    if isinstance(a, DateTime) and isinstance(b, DateTime):
        c = t.compare_datetime(a, b)
        return None if c is None else c == 0
    if isinstance(a, Code) and isinstance(b, Code):
        return a.code == b.code and a.system == b.system and a.version == b.version
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        results = [equal(x, y) for x, y in zip(a, b)]
        return False if False in results else (None if None in results else True)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def equivalent(a, b) -> bool:
    """CQL Equivalent (~): never null; codes by system and code; strings ignoring case and spacing."""
    a, b = unwrap(a), unwrap(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (Code, Concept)) or isinstance(b, (Code, Concept)):
        ca = a.codes if isinstance(a, Concept) else (a,)
        cb = b.codes if isinstance(b, Concept) else (b,)
        return any(isinstance(x, Code) and isinstance(y, Code) and x.code == y.code and x.system == y.system
                   for x in ca for y in cb)
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
    if isinstance(a, DateTime) and isinstance(b, DateTime):
        return t.compare_datetime(a, b) == 0
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b))
    return a == b


def compare(a, b, precision: str | None = None) -> int | None:
    a, b = unwrap(a), unwrap(b)
    if a is None or b is None:
        return None
    if isinstance(a, DateTime) and isinstance(b, DateTime):
        return t.compare_datetime(a, b, precision)
    if isinstance(a, Quantity) and isinstance(b, Quantity):
        if a.unit != b.unit:
            return None
        a, b = a.value, b.value
    try:
        return -1 if a < b else (1 if a > b else 0)
    except TypeError:
        return None


def _key(v):
    """A key for distinct/union: resources by identity, other values by value."""
    if isinstance(v, dict):
        return ("res", id(v)) if "resourceType" in v else ("dict", repr(sorted(v.items(), key=lambda kv: kv[0])))
    if isinstance(v, list):
        return ("list", tuple(_key(x) for x in v))
    try:
        hash(v)
        return ("v", v)
    except TypeError:
        return ("r", repr(v))


def distinct(items: list) -> list:
    seen, out = set(), []
    for x in items:
        k = _key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def flatten_property(value, path: str):
    """FHIR path step: a property of an object, or of each object in a list (flattened)."""
    if isinstance(value, list):
        out = []
        for v in value:
            r = flatten_property(v, path)
            if isinstance(r, list):
                out.extend(r)
            elif r is not None:
                out.append(r)
        return out
    value = unwrap(value)
    if isinstance(value, dict):
        if path in value:
            return value[path]
        for k, v in value.items():
            if k.startswith(path) and k[len(path):] in _FHIR_TYPES:
                suffix = k[len(path):]
                return Choice(suffix[0].lower() + suffix[1:] if suffix in _PRIMITIVES else suffix, v)
        return None
    if path == "value" and value is not None and not isinstance(value, (Code, Concept, Interval, Quantity)):
        return value  # a FHIR primitive is its value
    if isinstance(value, Interval):
        return {"low": value.low, "high": value.high, "lowClosed": value.low_closed,
                "highClosed": value.high_closed}.get(path)
    if isinstance(value, (Code, Concept, Quantity)):
        return getattr(value, path, None)
    return None


_PRIMITIVES = frozenset("String Boolean Integer Time DateTime Date Canonical Uri Url Code Decimal Instant Markdown "
                        "Id Oid PositiveInt UnsignedInt Uuid Base64Binary".split())


def type_name(qname: str | None) -> str:
    return (qname or "").rsplit("}", 1)[-1]


def is_type(value, qname: str) -> bool:
    name = type_name(qname)
    if isinstance(value, Choice):
        return value.type.lower() == name.lower()
    if isinstance(value, dict):
        return value.get("resourceType") == name if "resourceType" in value else True
    simple = {"String": str, "Boolean": bool, "Integer": int, "DateTime": DateTime, "Date": DateTime,
              "Code": Code, "Concept": Concept, "Quantity": Quantity}.get(name)
    return simple is None or isinstance(value, simple)
