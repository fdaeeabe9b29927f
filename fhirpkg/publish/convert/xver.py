"""R5 content R4 has no element for, carried where HL7's cross-version scheme puts it.

The scheme is the "Extensions for Using Data Elements from FHIR R5 in FHIR R4" guide
(hl7.fhir.uv.xver-r5.r4, 0.1.0; not on the npm registry): an R5 element ``A.b.c`` that R4 lacks
becomes the extension ``http://hl7.org/fhir/5.0/StructureDefinition/extension-A.b.c`` on the nearest R4
element that exists (its context), with the R5 value as ``value[x]``; a backbone element becomes a
complex extension whose parts are named by the child elements (``title``, ``text``, ...); a
CodeableReference (no R4 type) becomes parts ``concept`` and ``reference`` plus the ``_datatype``
marker.  An R5 resource type R4 lacks (Citation, ClinicalUseDefinition) becomes a Basic resource
with the guide's profile ``http://hl7.org/fhir/5.0/StructureDefinition/profile-<Type>``: its
elements as such extensions, modifier elements (Citation.status) as modifier extensions, and
``identifier`` in Basic.identifier.  Its backbone elements are listed as losses instead: the HL7
validator generates the definitions of these URLs itself, and defines no parts for backbone elements
of types that R4B has, so every part would be an error there.

Only the R4 export uses this (the R4B export lists the same elements as losses).  Every carried
element is recorded (:class:`~fhirpkg.publish.convert.context.Carried`) for the fidelity report.
"""
from __future__ import annotations

from dataclasses import dataclass

from fhirpkg.publish.convert.context import BASIC_TYPES, XVER, Context, ext_value, url_as_identifier
from fhirpkg.publish.convert.elements import ELEMENTS
from fhirpkg.publish.convert.walker import convert_meta, datatype, extensions

DATATYPE_MARKER = "http://hl7.org/fhir/StructureDefinition/_datatype"
#: Basic.code: the R5 resource type, from the R5 FHIRTypes code system (Basic.code's binding is an example).
FHIR_TYPES = "http://hl7.org/fhir/fhir-types"
CORE_CODE_SYSTEMS = "http://hl7.org/fhir/"
R5_VERSION = "5.0.0"

# R5 element lists of the types exported as Basic and of the backbone elements carried as complex
# extensions, generated from hl7.fhir.r5.core#5.0.0 snapshots (tests/publish/test_convert.py checks them
# against the package), in the format of elements.R4B_ELEMENTS; "!" marks a modifier element.
R5_ELEMENTS = {
    'Citation': 'url:uri identifier:Identifier* version:string versionAlgorithm[x]:string|Coding name:string title:string !status:code experimental:boolean date:dateTime publisher:string contact:ContactDetail* description:markdown useContext:UsageContext* jurisdiction:CodeableConcept* purpose:markdown copyright:markdown copyrightLabel:string approvalDate:date lastReviewDate:date effectivePeriod:Period author:ContactDetail* editor:ContactDetail* reviewer:ContactDetail* endorser:ContactDetail* summary:@Citation.summary* classification:@Citation.classification* note:Annotation* currentState:CodeableConcept* statusDate:@Citation.statusDate* relatedArtifact:RelatedArtifact* citedArtifact:@Citation.citedArtifact',
    'Citation.summary': 'style:CodeableConcept text:markdown',
    'Citation.classification': 'type:CodeableConcept classifier:CodeableConcept*',
    'Citation.statusDate': 'activity:CodeableConcept actual:boolean period:Period',
    'Citation.citedArtifact': 'identifier:Identifier* relatedIdentifier:Identifier* dateAccessed:dateTime version:@Citation.citedArtifact.version currentState:CodeableConcept* statusDate:@Citation.citedArtifact.statusDate* title:@Citation.citedArtifact.title* abstract:@Citation.citedArtifact.abstract* part:@Citation.citedArtifact.part relatesTo:@Citation.citedArtifact.relatesTo* publicationForm:@Citation.citedArtifact.publicationForm* webLocation:@Citation.citedArtifact.webLocation* classification:@Citation.citedArtifact.classification* contributorship:@Citation.citedArtifact.contributorship note:Annotation*',
    'Citation.citedArtifact.version': 'value:string baseCitation:Reference',
    'Citation.citedArtifact.statusDate': 'activity:CodeableConcept actual:boolean period:Period',
    'Citation.citedArtifact.title': 'type:CodeableConcept* language:CodeableConcept text:markdown',
    'Citation.citedArtifact.abstract': 'type:CodeableConcept language:CodeableConcept text:markdown copyright:markdown',
    'Citation.citedArtifact.part': 'type:CodeableConcept value:string baseCitation:Reference',
    'Citation.citedArtifact.relatesTo': 'type:code classifier:CodeableConcept* label:string display:string citation:markdown document:Attachment resource:canonical resourceReference:Reference',
    'Citation.citedArtifact.publicationForm': 'publishedIn:@Citation.citedArtifact.publicationForm.publishedIn citedMedium:CodeableConcept volume:string issue:string articleDate:dateTime publicationDateText:string publicationDateSeason:string lastRevisionDate:dateTime language:CodeableConcept* accessionNumber:string pageString:string firstPage:string lastPage:string pageCount:string copyright:markdown',
    'Citation.citedArtifact.publicationForm.publishedIn': 'type:CodeableConcept identifier:Identifier* title:string publisher:Reference publisherLocation:string',
    'Citation.citedArtifact.webLocation': 'classifier:CodeableConcept* url:uri',
    'Citation.citedArtifact.classification': 'type:CodeableConcept classifier:CodeableConcept* artifactAssessment:Reference*',
    'Citation.citedArtifact.contributorship': 'complete:boolean entry:@Citation.citedArtifact.contributorship.entry* summary:@Citation.citedArtifact.contributorship.summary*',
    'Citation.citedArtifact.contributorship.entry': 'contributor:Reference forenameInitials:string affiliation:Reference* contributionType:CodeableConcept* role:CodeableConcept contributionInstance:@Citation.citedArtifact.contributorship.entry.contributionInstance* correspondingContact:boolean rankingOrder:positiveInt',
    'Citation.citedArtifact.contributorship.entry.contributionInstance': 'type:CodeableConcept time:dateTime',
    'Citation.citedArtifact.contributorship.summary': 'type:CodeableConcept style:CodeableConcept source:CodeableConcept value:markdown',
    'ClinicalUseDefinition': 'identifier:Identifier* type:code category:CodeableConcept* subject:Reference* status:CodeableConcept contraindication:@ClinicalUseDefinition.contraindication indication:@ClinicalUseDefinition.indication interaction:@ClinicalUseDefinition.interaction population:Reference* library:canonical* undesirableEffect:@ClinicalUseDefinition.undesirableEffect warning:@ClinicalUseDefinition.warning',
    'ClinicalUseDefinition.contraindication': 'diseaseSymptomProcedure:CodeableReference diseaseStatus:CodeableReference comorbidity:CodeableReference* indication:Reference* applicability:Expression otherTherapy:@ClinicalUseDefinition.contraindication.otherTherapy*',
    'ClinicalUseDefinition.contraindication.otherTherapy': 'relationshipType:CodeableConcept treatment:CodeableReference',
    'ClinicalUseDefinition.indication': 'diseaseSymptomProcedure:CodeableReference diseaseStatus:CodeableReference comorbidity:CodeableReference* intendedEffect:CodeableReference duration[x]:Range|string undesirableEffect:Reference* applicability:Expression otherTherapy:@ClinicalUseDefinition.contraindication.otherTherapy*',
    'ClinicalUseDefinition.interaction': 'interactant:@ClinicalUseDefinition.interaction.interactant* type:CodeableConcept effect:CodeableReference incidence:CodeableConcept management:CodeableConcept*',
    'ClinicalUseDefinition.interaction.interactant': 'item[x]:Reference|CodeableConcept',
    'ClinicalUseDefinition.undesirableEffect': 'symptomConditionEffect:CodeableReference classification:CodeableConcept frequencyOfOccurrence:CodeableConcept',
    'ClinicalUseDefinition.warning': 'description:markdown code:CodeableConcept',
    'PlanDefinition.action.input': 'title:string requirement:DataRequirement relatedData:id',
    'PlanDefinition.action.output': 'title:string requirement:DataRequirement relatedData:string',
    'ResearchStudy.label': 'type:CodeableConcept value:string',
    'ResearchStudy.progressStatus': 'state:CodeableConcept actual:boolean period:Period',
}


@dataclass(frozen=True)
class _Element:
    name: str  # "versionAlgorithm[x]"
    types: tuple[str, ...]
    many: bool
    modifier: bool


def _parse(spec: dict[str, str]) -> dict[str, dict[str, _Element]]:
    table = {}
    for path, text in spec.items():
        children = {}
        for token in text.split():
            name, _, types = token.partition(":")
            modifier = name.startswith("!")
            name = name.lstrip("!")
            children[name] = _Element(name, tuple(types.rstrip("*").split("|")), types.endswith("*"), modifier)
        table[path] = children
    return table


_R5 = _parse(R5_ELEMENTS)


def url(r5_path: str) -> str:
    """The cross-version extension URL of an R5 element (choice elements without ``[x]``)."""
    return f"{XVER}extension-{r5_path.removesuffix('[x]')}"


def add(holder: dict, r5_path: str, value, typ: str, cx: Context, key: str = "extension") -> None:
    """Put an R5 element R4 lacks on ``holder`` (the R4 element of its context) as a cross-version
    extension: one extension per repetition, recorded as carried."""
    items = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    added = [e for e in (_extension(url(r5_path), v, typ, r5_path, cx) for v in items) if e is not None]
    if added:
        holder[key] = list(holder.get(key) or []) + added
        cx.carry(r5_path, url(r5_path))


def _extension(ext_url: str, value, typ: str, path: str, cx: Context) -> dict | None:
    body = _value(value, typ, path, cx)
    return {"url": ext_url, **body} if body else None


def _value(value, typ: str, path: str, cx: Context) -> dict | None:
    """The value part of an extension: ``value<Type>``, or the parts of a complex extension."""
    if typ.startswith("@"):
        return _backbone(value, typ[1:], path, cx)
    if typ == "CodeableReference":
        parts = [{"url": DATATYPE_MARKER, "valueString": "CodeableReference"}]
        for name, t in (("concept", "CodeableConcept"), ("reference", "Reference")):
            if isinstance(value, dict) and name in value:
                ext = _extension(name, value[name], t, f"{path}.{name}", cx)
                if ext:
                    parts.append(ext)
        return {"extension": parts} if len(parts) > 1 else None
    if typ == "Reference" and isinstance(value, dict):
        value = _basic_reference(value, cx)
    if typ[:1].isupper():
        if typ in ELEMENTS[cx.target]:
            value = datatype(value, typ, path, cx)
        if value is None:
            return None
        value = _r5_code_systems(value)
    return {"value" + typ[0].upper() + typ[1:]: value}


def _r5_code_systems(value):
    """Codings of FHIR core code systems in carried R5 content name version 5.0.0 (after the system moves
    every export makes): R4 publishes some of them under the same URL with other codes
    (research-study-status has no 'recruiting' in 4.0.1)."""
    if isinstance(value, list):
        return [_r5_code_systems(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _r5_code_systems(v) for k, v in value.items()}
    system = out.get("system")
    if isinstance(system, str) and system.startswith(CORE_CODE_SYSTEMS) and "code" in out and "version" not in out:
        keys = list(out)
        at = keys.index("system") + 1
        out = {**{k: out[k] for k in keys[:at]}, "version": R5_VERSION, **{k: out[k] for k in keys[at:]}}
    return out


def _backbone(value, table_key: str, path: str, cx: Context) -> dict | None:
    if not isinstance(value, dict):
        return None
    children = _R5[table_key]
    parts = []
    for key, v in value.items():
        if key in ("id", "extension", "modifierExtension") or key.startswith("_"):
            if key.startswith("_"):
                cx.lose(f"{path}.{key[1:]}", "extensions on a primitive inside a cross-version extension have "
                        "no place in R4")
            elif key != "id":
                parts += extensions(v, frozenset({"Extension", "Element"}), path, cx)
            continue
        hit = _element(children, key)
        if hit is None:
            cx.lose(f"{path}.{key}", f"R5 has no element {table_key.split('.')[-1]}.{key}")
            continue
        element, typ = hit
        for item in v if isinstance(v, list) else [v]:
            ext = _extension(element.name.removesuffix("[x]"), item, typ, f"{path}.{element.name}", cx)
            if ext:
                parts.append(ext)
    return {"extension": parts} if parts else None


def _element(children: dict, key: str):
    """The R5 element a JSON property names, and its type (``versionAlgorithmString`` -> versionAlgorithm[x])."""
    element = children.get(key)
    if element is not None and not element.name.endswith("[x]"):
        return element, element.types[0]
    for e in children.values():
        if e.name.endswith("[x]") and key.startswith(e.name[:-3]):
            suffix = key[len(e.name) - 3:]
            for t in e.types:
                if suffix == t[0].upper() + t[1:]:
                    return e, t
    return None


def _basic_reference(ref: dict, cx: Context) -> dict:
    """A reference to a resource exported as Basic points at the Basic."""
    target = cx.batch.reference(ref.get("reference"))
    if target is not None and target.get("resourceType") in BASIC_TYPES:
        return dict(ref, reference=f"Basic/{target.get('id')}")
    return ref


def basic(res: dict, cx: Context) -> dict:
    """An R5 resource of a type R4 lacks as an R4 Basic in the guide's profile."""
    rt = res["resourceType"]
    children = _R5[rt]
    out: dict = {"resourceType": "Basic"}
    for key in ("id", "meta", "implicitRules", "language", "text"):
        if key in res:
            out[key] = res[key]
    meta = dict(out.get("meta") or {})
    meta["profile"] = list(meta.get("profile") or []) + [f"{XVER}profile-{rt}"]
    out["meta"] = convert_meta(meta, rt, cx)
    if "contained" in res:
        cx.lose(f"{rt}.contained", "contained resources of a resource exported as Basic are not converted")
    host = frozenset({"Basic", "DomainResource", "Resource"})
    exts = extensions(res.get("extension"), host, rt, cx)
    mods = extensions(res.get("modifierExtension"), host, rt, cx)
    identifiers = [datatype(i, "Identifier", f"{rt}.identifier", cx) for i in res.get("identifier") or []]
    canonical = ext_value(res, "artifact-url")
    skip = {"resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
            "modifierExtension", "identifier"}
    order, present = list(children), []
    for key in res:
        if key in skip or key in ("_id", "_implicitRules", "_language"):
            continue
        hit = None if key.startswith("_") else _element(children, key)
        if key.startswith("_"):
            cx.lose(f"{rt}.{key[1:]}", "extensions on this primitive have no place on the Basic")
        elif hit is None:
            cx.lose(f"{rt}.{key}", f"R5 has no element {rt}.{key}")
        else:
            present.append((order.index(hit[0].name), key, hit))
    for _, key, (element, typ) in sorted(present):  # in R5 element order
        if typ.startswith("@"):
            cx.lose(f"{rt}.{element.name}", f"{rt}.{element.name} is a backbone element: its cross-version "
                    "extension is complex, and the HL7 validator (6.10.4) defines none of its parts for R4 (it "
                    f"derives them from R4B, which has {rt}), so every part would be an error there; not written")
            continue
        holder: dict = {}
        add(holder, f"{rt}.{element.name}", res[key], typ, cx)
        (mods if element.modifier else exts).extend(holder.get("extension") or [])
    if exts:
        out["extension"] = exts
    if mods:
        out["modifierExtension"] = mods
    basic_res = {"identifier": [i for i in identifiers if i]} if any(identifiers) else {}
    if isinstance(canonical, str):  # R5 keeps ClinicalUseDefinition's canonical in artifact-url
        url_as_identifier(basic_res, canonical)
    out.update(basic_res)
    out["code"] = {"coding": [{"system": FHIR_TYPES, "code": rt}]}
    return out

