"""Canonical-resource metadata (R5-only elements as Extensions Pack extensions) and the
knowledge-artifact and terminology types: Library, CodeSystem, ValueSet, ImplementationGuide.
"""
from __future__ import annotations

from fhirpkg.publish.convert.context import EXT, Context
from fhirpkg.publish.convert.elements import ELEMENTS, extension_allowed, resolve

# ---------------------------------------------------------------------- canonical metadata
#: R5 metadata elements with an Extensions Pack counterpart: element -> (extension, value type).
_METADATA_EXTENSIONS = {
    "versionAlgorithmString": ("artifact-versionAlgorithm", "String"),
    "versionAlgorithmCoding": ("artifact-versionAlgorithm", "Coding"),
    "copyrightLabel": ("artifact-copyrightLabel", "String"),
}
#: Elements R5 added to CodeSystem, ValueSet (and ImplementationGuide lacks in R4B) with their extensions.
_ARTIFACT_EXTENSIONS = {
    "approvalDate": ("artifact-approvalDate", "Date"),
    "lastReviewDate": ("artifact-lastReviewDate", "Date"),
    "effectivePeriod": ("artifact-effectivePeriod", "Period"),
    "topic": ("artifact-topic", "CodeableConcept"),
    "author": ("artifact-author", "ContactDetail"),
    "editor": ("artifact-editor", "ContactDetail"),
    "reviewer": ("artifact-reviewer", "ContactDetail"),
    "endorser": ("artifact-endorser", "ContactDetail"),
    "relatedArtifact": ("artifact-relatedArtifact", "RelatedArtifact"),
}


def canonical_metadata(res: dict, rt: str, cx: Context) -> dict:
    """R5-only metadata elements as Extensions Pack extensions where the target allows them, else a loss."""
    moves = dict(_METADATA_EXTENSIONS)
    children = ELEMENTS[cx.target].get(rt)
    if rt in ("CodeSystem", "ValueSet", "ImplementationGuide"):
        moves.update(_ARTIFACT_EXTENSIONS)
    if rt == "ImplementationGuide":
        moves["identifier"] = ("artifact-identifier", "Identifier")
    added = []
    for element, (ext, vtype) in moves.items():
        if element not in res or (children and resolve(children, element)):
            continue
        value = res.pop(element)
        res.pop("_" + element, None)
        r5_name = "versionAlgorithm[x]" if element.startswith("versionAlgorithm") else element
        if extension_allowed(EXT + ext, frozenset({rt})) and rt in ELEMENTS[cx.target]:
            for v in value if isinstance(value, list) else [value]:
                added.append({"url": EXT + ext, "value" + vtype: v})
        else:
            cx.lose(f"{rt}.{r5_name}", f"{rt}.{r5_name} is new in R5 and {ext} is not defined for {rt} "
                    f"in {cx.version_name}")
    if added:
        res["extension"] = list(res.get("extension") or []) + added
    return res


def library(lib: dict, cx: Context) -> dict:
    """Library differs only in metadata and data types, which the shared steps handle."""
    return lib


def code_system(cs: dict, cx: Context) -> dict:
    for f in cs.get("filter") or []:
        ops = f.get("operator") or []
        kept = [o for o in ops if o not in ("child-of", "descendent-leaf")]
        if len(kept) < len(ops):
            cx.lose("CodeSystem.filter.operator", "filter operators child-of and descendent-leaf are new in R5")
            f["operator"] = kept or ["="]
    return cs


def value_set(vs: dict, cx: Context) -> dict:
    compose = vs.get("compose")
    if isinstance(compose, dict):
        for part in ("include", "exclude"):
            kept = []
            for inc in compose.get(part) or []:
                if any(f.get("op") in ("child-of", "descendent-leaf") for f in inc.get("filter") or []):
                    cx.lose(f"ValueSet.compose.{part}.filter.op", "filter operators child-of and descendent-leaf "
                            f"are new in R5; the whole {part} is dropped rather than changed in meaning")
                else:
                    kept.append(inc)
            if part in compose:
                compose[part] = kept
                if not kept:
                    del compose[part]
    return vs


def implementation_guide(ig: dict, cx: Context) -> dict:
    """R5 ImplementationGuide -> R4B/R4: isExample/profile -> example[x], page.name -> nameUrl; the guide now
    describes the exported package, so fhirVersion is the target's."""
    p = "ImplementationGuide"
    if ig.get("fhirVersion") not in (None, [cx.target]):
        cx.lose(f"{p}.fhirVersion", f"fhirVersion {', '.join(map(str, ig['fhirVersion']))} replaced by {cx.target}")
        ig["fhirVersion"] = [cx.target]
    for dep in ig.get("dependsOn") or []:
        if "reason" in dep:
            del dep["reason"]
            cx.lose(f"{p}.dependsOn.reason", "dependsOn.reason is new in R5")
    definition = ig.get("definition") or {}
    for group in ("definition", "manifest"):
        holder = ig.get(group) or {}
        for r in holder.get("resource") or []:
            example = r.pop("isExample", None)
            profiles = r.pop("profile", None) or []
            if profiles:
                r["exampleCanonical"] = profiles[0]
                if len(profiles) > 1:
                    cx.lose(f"{p}.{group}.resource.profile", "R4B example[x] names one profile")
            elif example is not None:
                r["exampleBoolean"] = example
    if isinstance(definition.get("page"), dict):
        definition["page"] = _ig_page(definition["page"], cx)
    params = []
    for prm in definition.get("parameter") or []:
        code = prm.get("code")
        if isinstance(code, dict):
            prm = dict(prm, code=code.get("code"))
            if code.get("system") not in (None, "http://hl7.org/fhir/guide-parameter-code"):
                cx.lose(f"{p}.definition.parameter.code", f"R4B parameter codes come from guide-parameter-code; "
                        f"{code.get('system')}#{code.get('code')} kept as a bare code")
        params.append(prm)
    if params:
        definition["parameter"] = params
    return ig


def _ig_page(page: dict, cx: Context) -> dict:
    page = dict(page)
    for k in [k for k in page if k.startswith("source")]:
        del page[k]
        cx.lose("ImplementationGuide.definition.page.source[x]", "page.source[x] is new in R5")
    if "name" in page:
        page["nameUrl"] = page.pop("name")
    if "page" in page:
        page["page"] = [_ig_page(x, cx) for x in page["page"]]
    return page
