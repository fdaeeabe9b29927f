"""Where an extension may be used, by FHIR version (the HL7 validator's checkExtensionContext).

An extension definition can limit itself to a range of FHIR versions with its own
version-specific-use extension (startFhirVersion / endFhirVersion, compared by major.minor);
used in a resource of a version outside it, the HL7 validator reports an error on the element
that holds the extension (EXTENSION_FHIR_VERSION_EARLIEST / _LATEST).  Contexts limited the same
way are handled where contexts are checked (fhirpkg.fhir.elements.compile_contexts).

An extension url in one of HL7's own URL spaces that names no definition is also reported on the
url itself (Type_Specific_Checks_DT_URL_Resolve, error), besides the unknown extension: the HL7
validator resolves every uri it meets and knows these spaces hold definitions.  (It does the same
for other uri elements; only Extension.url is checked here.)
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node

#: URL spaces whose URLs must resolve to a definition (InstanceValidator.isKnownSpace)
KNOWN_SPACES = ("http://hl7.org/fhir", "http://terminology.hl7.org/", "http://fhir.org/guides")
RELEASE_BY_MAJOR_MINOR = {"1.0": "R2", "1.4": "R2B", "3.0": "R3", "4.0": "R4", "4.3": "R4B", "5.0": "R5", "6.0": "R6"}


def unresolved_url(url: str) -> Issue | None:
    """The issue for an unknown extension's url in an HL7 URL space (cross-version and the HL7
    tools' own extensions are told apart before this is asked)."""
    if not url.startswith(KNOWN_SPACES):
        return None
    return Issue(Severity.ERROR, "invalid", f"No definition could be found for URL value '{url}'", "url-unresolved")


def _major_minor(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in version.split("-")[0].split(".")[:2])
    except ValueError:
        return None


def release_name(version: str) -> str:
    """'R4B' for 4.3 (VersionUtilities.getNameForVersion)."""
    return RELEASE_BY_MAJOR_MINOR.get(".".join(version.split(".")[:2]), "R?")


def fhir_version(node: Node, defs, resolver=None) -> Iterator[Issue]:
    """An extension whose definition is limited to other FHIR versions than the resource's."""
    ext = node.value
    url = ext.get("url") if isinstance(ext, dict) else None
    td = defs.get(url) if isinstance(url, str) else None
    if td is None or td.fhir_versions == (None, None):
        return
    used = defs.fhir_version
    here = _major_minor(used)
    parent = node.location[:-2] if len(node.location) >= 2 else node.location
    expr = node.expression.rsplit(".", 1)[0] if "." in node.expression else node.expression
    start, end = td.fhir_versions
    for bound, word, outside in ((start, "earliest", lambda b: here < b), (end, "latest", lambda b: here > b)):
        b = _major_minor(bound) if bound else None
        if b is not None and here is not None and outside(b):
            yield Issue(Severity.ERROR, "business-rule", f"The definition of the extension '{url}' specifies that the "
                        f"{word} version it can be used with is {release_name(bound)} (v{bound}), but this context "
                        f"of use is version {release_name(used)} (v{used})", "extension-fhir-version", expr,
                        location=parent)
