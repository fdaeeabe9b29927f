"""ImplementationGuide dependency checks, as the HL7 validator's ImplementationGuideValidator
makes them (checkDependency), without what needs the package registry.

* a ``dependsOn.uri`` with a ``|version`` suffix: the suffix must not be empty
  (IG_DEPENDENCY_CAN_VERSION_NONE), the dependency must then state the version explicitly
  (_CAN_VERSION_ALONE) and the same one (_CAN_VERSION_ERROR, only for a uri that does not name
  an ImplementationGuide resource, as the HL7 validator has it) - errors;
* the uri should name the ImplementationGuide resource itself (IG_DEPENDENCY_DIRECT, error);
* a uri naming no ImplementationGuide known to the run (IG_DEPENDENCY_INVALID_URL, warning).

And a guide whose url starts with http://hl7.org/fhir/ (an HL7 guide) must state its standards
status and work group (IG_HL7_STANDARDS_STATUS_REQUIRED, _WG_REQUIRED: errors) and should state
its maturity (IG_HL7_FMM_SHOULD: warning).
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup


EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-"
HL7_GUIDE_EXTENSIONS = ((f"{EXT}standards-status", Severity.ERROR, "must state their status"),
                        (f"{EXT}wg", Severity.ERROR, "must state their owning workgroup"),
                        (f"{EXT}fmm", Severity.WARNING, "should state their maturity"))


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    ig = node.value
    if not isinstance(ig, dict) or node.location != node.frame.location:
        return
    yield from dependencies(node, defs, resolver)
    url = ig.get("url")
    if isinstance(url, str) and url.startswith("http://hl7.org/fhir/"):
        present = {e.get("url") for e in ig.get("extension") or () if isinstance(e, dict)}
        for ext, severity, what in HL7_GUIDE_EXTENSIONS:
            if ext not in present:
                yield Issue(severity, "business-rule", f"HL7 Implementation Guides {what} explicitly using the "
                            f"extension {ext}", "ig-hl7-metadata", node.expression, location=node.location)


def dependencies(node: Node, defs, resolver=None) -> Iterator[Issue]:
    ig = node.value
    for i, dep in enumerate(ig.get("dependsOn") or ()):
        if not isinstance(dep, dict):
            continue
        expr, loc = f"{node.expression}.dependsOn[{i}]", node.location + ("dependsOn", i)
        uri, version = dep.get("uri"), dep.get("version")
        uri = uri if isinstance(uri, str) else None
        version = version if isinstance(version, str) else None

        def error(message: str) -> Issue:
            return Issue(Severity.ERROR, "business-rule", message, "ig-dependency", expr, location=loc)

        if uri is not None and "|" in uri:
            uri, _, uver = uri.partition("|")
            if not uver:
                yield error("The canonical URL cannot end in '|'")
            elif version is None:
                yield error(f"The canonical URL specifies the version '{uver}', while the dependency does not. If a "
                            "version is specified, it must be in the explicit version property")
            elif uver != version and "/ImplementationGuide/" not in uri:
                yield error(f"The canonical URL specifies the version '{uver}', while the dependency has version "
                            f"'{version}'. If a version is specified, it must be the same as in the explicit version "
                            "property")
        if uri is not None and "/ImplementationGuide/" not in uri:
            yield error("The URL should refer directly to the ImplementationGuide resource (e.g. include "
                        "'/ImplementationGuide/')")
        if uri is not None and canonical_lookup.find(defs, resolver, uri, "ImplementationGuide") is None:
            yield Issue(Severity.WARNING, "business-rule", f"The canonical URL {uri} doesn't point to an actual "
                        "ImplementationGuide resource", "ig-dependency-unknown", expr, location=loc)
