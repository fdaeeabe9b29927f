"""CapabilityStatement checks the HL7 validator makes (InstanceValidator.validateCapabilityStatement).

* CAPABALITYSTATEMENT_CS_SP_WRONGTYPE (error): a ``rest.resource.searchParam`` whose ``definition``
  names a known SearchParameter of another type than the ``type`` it states.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    cs = node.value
    if not isinstance(cs, dict):
        return
    for r, rest in enumerate(cs.get("rest") or ()):
        for k, res in enumerate(rest.get("resource") or () if isinstance(rest, dict) else ()):
            for p, param in enumerate(res.get("searchParam") or () if isinstance(res, dict) else ()):
                ref = param.get("definition") if isinstance(param, dict) else None
                if not isinstance(ref, str) or not ref:
                    continue
                sp = canonical_lookup.find(defs, resolver, ref, "SearchParameter")
                if sp is None or sp.get("type") == param.get("type"):
                    continue
                versioned = sp.get("url", ref) + (f"|{sp['version']}" if isinstance(sp.get("version"), str) else "")
                yield Issue(Severity.ERROR, "invalid", f"Type mismatch - SearchParameter '{versioned}' type is "
                            f"{sp.get('type')}, but type here is {param.get('type')}", "capability-search-param",
                            f"{node.expression}.rest[{r}].resource[{k}].searchParam[{p}]",
                            location=node.location + ("rest", r, "resource", k, "searchParam", p))
