"""Cross-version export: FHIR R5 resources in the R4B (4.3.0) and R4 (4.0.1) shapes.

Servers that speak R4B or R4 cannot read R5 content; this package rewrites each resource element
by element, following the StructureDefinitions of hl7.fhir.r5.core#5.0.0 and hl7.fhir.r4b.core#4.3.0.
R4 (4.0.1) definitions are not on the npm registry; for the types handled here R4 equals R4B except
where noted (``elements.R4_PATCHES``, ``context.NOT_IN_R4``), checked against the R4 element list that
hl7.fhir.xver-extensions#0.1.0 ships (``other/xver-paths-4.0.json``).

Nothing R5 says is dropped silently: what has no counterpart is listed as a
:class:`~fhirpkg.publish.convert.context.Loss`.  Where the FHIR Extensions Pack
(hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1, the pack R4 and R4B content uses) defines an extension
for an R5 element in the target context, the element is carried in that extension instead (for
example ``copyrightLabel`` -> ``artifact-copyrightLabel``, ``MedicationKnowledge.identifier`` ->
``artifact-identifier``).  Exports therefore depend on that package as well as on the target core
package.

This module drives a batch and dispatches each resource: ``context`` (what every step shares),
``elements`` (what the targets have), ``walker`` (the generic walk), ``datatypes``, and one module per
resource family: ``definitions`` (PlanDefinition, ActivityDefinition), ``medication``
(MedicationKnowledge, ClinicalUseDefinition), ``research`` (ResearchStudy, Citation), ``conformance``
(metadata, Library, CodeSystem, ValueSet, ImplementationGuide).

Pure functions: no file I/O; inputs are never changed; JSON numbers (``FhirDecimal``) are kept as
they are.
"""
from __future__ import annotations

from typing import Callable

from fhirpkg.fhir.jsonsource import copy_json
from fhirpkg.publish.convert.conformance import (canonical_metadata, code_system, implementation_guide, library,
                                                 value_set)
from fhirpkg.publish.convert.context import (BASIC_TYPES, R4, R4B, Batch, Context, Conversion, Unit, exists_in,
                                             resource_key)
from fhirpkg.publish.convert.datatypes import coding
from fhirpkg.publish.convert.definitions import activity_definition, plan_definition
from fhirpkg.publish.convert.medication import clinical_use_definition, medication_knowledge
from fhirpkg.publish.convert.research import citation, research_study, study_state
from fhirpkg.publish.convert.walker import walk_resource
from fhirpkg.publish.convert.xver import basic


#: What converts one resource in a batch (``convert_one`` below, or a cache in front of it):
#: (resource, whether it goes out as Basic, batch, the conversion itself) -> its Unit.
Memo = Callable[[dict, bool, Batch, Callable[[], Unit]], Unit]


def to_r4b(resources: list[dict], memo: Memo | None = None) -> Conversion:
    """R5 resources in the FHIR R4B (4.3.0) shape.

    Pass the whole package in one call: references between its resources (a RelatedArtifact naming a
    MedicationKnowledge, a citation naming a Citation) are resolved within the batch.  ``memo``
    may answer for a resource instead of converting it (the build cache; see :data:`Memo`).
    """
    return _convert(resources, R4B, memo)


def to_r4(resources: list[dict], memo: Memo | None = None) -> Conversion:
    """R5 resources in the FHIR R4 (4.0.1) shape: Citation and ClinicalUseDefinition folded or dropped."""
    return _convert(resources, R4, memo)


def _convert(resources: list[dict], target: str, memo: Memo | None) -> Conversion:
    batch = Batch.of(resources, target, _resource)
    out = Conversion()
    basic_ids = {r.get("id") for r in resources if isinstance(r, dict) and r.get("resourceType") == "Basic"}
    for res in resources:
        if not isinstance(res, dict):
            continue
        as_basic = target == R4 and res.get("resourceType", "") in BASIC_TYPES and res.get("id") not in basic_ids
        if as_basic:
            basic_ids.add(res.get("id"))
        unit = (memo(res, as_basic, batch, lambda: convert_one(res, batch, as_basic)) if memo is not None
                else convert_one(res, batch, as_basic))
        out.add(unit)
    return out


def convert_one(res: dict, batch: Batch, as_basic: bool) -> Unit:
    """One resource of a batch: converted, written as Basic (``as_basic``: the R4 cross-version
    shape; the batch decides, as two resources may not both be Basic/<id>) or not exported."""
    rt = res.get("resourceType", "")
    unit = Unit(resource_key(res))
    cx = Context(batch, unit.key, unit.losses, set(), unit.carried)
    if as_basic:
        unit.outcome, unit.resource = "basic", basic(copy_json(res), cx)
        return unit
    unit.outcome = "dropped"
    if not exists_in(rt, batch.target):
        cx.lose(rt, f"{rt} does not exist in {cx.version_name}; the resource is not exported"
                + (f" (Basic/{res.get('id')} is taken: the cross-version Basic cannot be written)"
                   if rt in BASIC_TYPES and batch.target == R4 else "")
                + (": citing artifacts carry its citation text in relatedArtifact.citation"
                   if rt == "Citation" else "")
                + (": MedicationKnowledge resources that list it carry a one-line summary"
                   if rt == "ClinicalUseDefinition" else ""))
        return unit
    if rt == "ResearchStudy" and study_state(res.get("progressStatus") or []) is None:
        # R4B/R4 require the study's recruitment state; the package does not know it, and
        # writing one would state a fact nobody verified
        cx.lose("ResearchStudy.progressStatus", f"{cx.version_name} ResearchStudy.status (the study's "
                "recruitment state) is required, its value set has no 'unknown', and the package records "
                "no state for this study: the resource is not exported rather than given a guessed state")
        return unit
    unit.outcome, unit.resource = "converted", _resource(copy_json(res), cx)
    return unit


def _resource(res: dict, cx: Context) -> dict:
    rt = res.get("resourceType", "")
    special = CONVERTERS.get(rt)
    res = canonical_metadata(res, rt, cx)
    if special is None:
        return _generic(res, rt, cx)
    res = special(res, cx)
    return walk_resource(res, rt, cx)


CONVERTERS: dict[str, Callable[[dict, Context], dict]] = {
    "PlanDefinition": plan_definition,
    "ActivityDefinition": activity_definition,
    "MedicationKnowledge": medication_knowledge,
    "ClinicalUseDefinition": clinical_use_definition,
    "Citation": citation,
    "ResearchStudy": research_study,
    "Library": library,
    "CodeSystem": code_system,
    "ValueSet": value_set,
    "ImplementationGuide": implementation_guide,
}


def _generic(res: dict, rt: str, cx: Context) -> dict:
    """Types without a mapping here: codings updated, everything else kept as R5 wrote it."""
    cx.lose(rt, f"{rt} is not specifically converted to {cx.version_name}: elements are kept as R5 names them; "
            "validate the result")

    def fix(value):
        if isinstance(value, dict):
            value = {k: fix(v) for k, v in value.items()}
            if isinstance(value.get("system"), str) and "code" in value:
                value = coding(value, rt, cx)
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return fix(res)
