"""Bundles for loading into FHIR servers: a transaction and a collection.

The transaction PUTs every resource at ``<Type>/<id>``: ids are stable and
contain letters (HAPI refuses all-numeric client ids), so loading the Bundle
again updates in place, and a server that sees identical content keeps the
same version.  Conditional updates on url+version would also be idempotent,
but HAPI silently drops duplicate conditional entries in one transaction
(hapi-fhir #8183) and non-canonical resources (MedicationKnowledge,
ClinicalUseDefinition) would need identifier searches; PUT by id avoids both.
Each ``fullUrl`` is the resource's canonical location ``<canonical>/<Type>/<id>``,
so relative references between entries resolve inside the Bundle.
"""
from __future__ import annotations

#: Load order: what others point at comes first (servers resolve a transaction as a
#: unit, so this is for readers and for servers that check references eagerly).
TYPE_ORDER = ("CodeSystem", "ValueSet", "StructureDefinition", "Citation", "ResearchStudy",
              "ClinicalUseDefinition", "MedicationKnowledge", "ActivityDefinition", "PlanDefinition",
              "Library", "ImplementationGuide")


def entry_key(resource: dict) -> tuple:
    rt = resource.get("resourceType", "")
    rank = TYPE_ORDER.index(rt) if rt in TYPE_ORDER else len(TYPE_ORDER)
    return rank, rt, resource.get("id") or ""


def ordered(resources: list[dict]) -> list[dict]:
    return sorted(resources, key=entry_key)


def full_url(canonical: str, resource: dict) -> str:
    return f"{canonical}/{resource['resourceType']}/{resource['id']}"


def bundle_id(name: str, version: str, kind: str) -> str:
    return f"{name}-{version}-{kind}".replace("+", "-")[:64]


def transaction(resources: list[dict], *, name: str, version: str, canonical: str, timestamp: str) -> dict:
    """A transaction Bundle that PUTs every resource at its id (idempotent reloads)."""
    seen = set()
    entries = []
    for r in ordered(resources):
        key = f"{r['resourceType']}/{r['id']}"
        if key in seen:
            raise ValueError(f"{key} appears twice: a transaction must not hold one resource twice")
        seen.add(key)
        entries.append({"fullUrl": full_url(canonical, r), "resource": r,
                        "request": {"method": "PUT", "url": key}})
    return {"resourceType": "Bundle", "id": bundle_id(name, version, "transaction"),
            "type": "transaction", "timestamp": timestamp, "entry": entries}


def collection(resources: list[dict], *, name: str, version: str, canonical: str, timestamp: str) -> dict:
    """A collection Bundle of the same resources, for archiving and offline use."""
    return {"resourceType": "Bundle", "id": bundle_id(name, version, "collection"),
            "type": "collection", "timestamp": timestamp,
            "entry": [{"fullUrl": full_url(canonical, r), "resource": r} for r in ordered(resources)]}
