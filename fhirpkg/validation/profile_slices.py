"""Slices that disagree with their slicing element, in a StructureDefinition (the HL7
validator's StructureDefinitionValidator.validateSDElement).

SD_PATH_SLICE_INCONSISTENT_MS (warning): the element that defines the slicing is must-support
and one of its slices is not.  The HL7 validator looks at the snapshot (generating it when the
definition has only a differential); here the snapshot is used when present, else the
differential, with each element's mustSupport inherited from the base definition's snapshot
when the differential does not state it.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup


def _base_elements(defs, resolver, url) -> dict[str, dict]:
    base = canonical_lookup.find(defs, resolver, url, "StructureDefinition")
    elements = ((base or {}).get("snapshot") or {}).get("element") or ()
    return {e["id"]: e for e in elements if isinstance(e, dict) and isinstance(e.get("id"), str)}


def _unsliced_id(eid: str) -> str:
    """The id of the element a new slice starts from: Patient.identifier:SSN -> Patient.identifier."""
    head, _, last = eid.rpartition(".")
    return (head + "." if head else "") + last.split(":", 1)[0]


def must_support_slices(node: Node, defs, resolver=None) -> Iterator[Issue]:
    sd = node.value
    if not isinstance(sd, dict) or node.location != node.frame.location:
        return
    snapshot = (sd.get("snapshot") or {}).get("element") if isinstance(sd.get("snapshot"), dict) else None
    part = "snapshot" if snapshot else "differential"
    elements = snapshot or ((sd.get("differential") or {}).get("element") if isinstance(sd.get("differential"), dict)
                            else None) or []
    elements = [e for e in elements if isinstance(e, dict) and isinstance(e.get("path"), str)]
    if not any("sliceName" in e for e in elements):
        return
    base = {} if snapshot else _base_elements(defs, resolver, sd.get("baseDefinition"))

    def must_support(e: dict) -> bool:
        if isinstance(e.get("mustSupport"), bool):
            return e["mustSupport"]
        eid = e.get("id") if isinstance(e.get("id"), str) else e["path"]
        b = base.get(eid) or base.get(_unsliced_id(eid))
        return bool(b and b.get("mustSupport") is True)

    entries: list[tuple[int, dict]] = [(i, e) for i, e in enumerate(elements) if "slicing" in e]
    if not snapshot:  # slices whose slicing element is only in the base definition
        have = {e["path"] for _, e in entries}
        for i, e in enumerate(elements):
            if "sliceName" in e and e["path"] not in have and isinstance(e.get("id"), str):
                entry = base.get(_unsliced_id(e["id"]))
                if entry is not None and "slicing" in entry:
                    entries.append((i - 1, entry))
                    have.add(e["path"])
    expr, loc = f"{node.expression}.{part}", node.location + (part,)
    for index, entry in entries:
        if not must_support(entry):
            continue
        for e in elements[index + 1:]:
            if len(e["path"]) < len(entry["path"]):
                break
            if e["path"] == entry["path"] and "sliceName" in e and not must_support(e):
                yield Issue(Severity.WARNING, "invalid", f"The slice '{e['sliceName']}' on path '{entry['path']}' is "
                            "not marked as 'must-support' which is not consistent with the element that defines the "
                            "slicing, where 'must-support' is true", "slice-must-support", expr, location=loc)
