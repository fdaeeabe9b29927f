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

Where an extension may be used by context (the structure walker asks ``context_ok`` with the
element's logical paths, ``Logical``, as the HL7 NodeStack keeps them), and which unknown
extensions the HL7 validator lets pass, are decided here too.
"""
from __future__ import annotations

import re
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.definitions import CANONICAL_TYPES, Definitions
from fhirpkg.fhir.model import ElementDef, Node, TypeDef

#: extensions the HL7 tools define for themselves (unknown ones there are let pass, as the HL7 validator does)
TOOLS_EXTENSION_PREFIX = "http://hl7.org/fhir/tools/StructureDefinition/"
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


def unknown_extension_allowed(url: str, allow_example_urls: bool, domains: tuple[str, ...]) -> bool:
    """Unknown extensions are errors except in namespaces the HL7 validator also lets pass."""
    if allow_example_urls and ("example.org" in url or "acme.com" in url):
        return True
    if "nema.org" in url or url.startswith(TOOLS_EXTENSION_PREFIX) or \
            url == "http://hl7.org/fhir/StructureDefinition/structuredefinition-expression":
        return True
    return any(url.startswith(d) for d in domains)


def context_ok(defs: Definitions, ext_def: TypeDef, plist: frozenset) -> bool:
    """May this extension be used on an element with these logical paths? (FHIR extension contexts)."""
    for ctype, en in fixed_contexts(ext_def):
        if ctype == "element":
            profile_part = None
            if "#" in en:
                profile_part, en = en.split("#", 1)
            if en in ("Element", "Any", "Base"):
                return True
            if en == "Resource" and "@resource" in plist:
                return True
            if en == "CanonicalResource" and "@resource" in plist and plist & CANONICAL_TYPES:
                return True
            if has_element_name(plist, en) and profile_part is None:
                return True
            for p in plist:  # a context on a base type covers its specializations
                head, dot, rest = p.partition(".")
                td = defs.base_type(head)
                hops = 0
                while td is not None and hops < 12:
                    if td.type + dot + rest == en:
                        return True
                    td = defs.get(td.base_definition) if td.base_definition else None
                    hops += 1
        elif ctype == "extension":
            # on the extension itself, or on its value (HL7: an element named value* of an Extension)
            if en in plist or any(p.startswith(en + ".value") for p in plist):
                return True
        elif ctype == "fhirpath":
            return True  # FHIRPath contexts are not evaluated: allowed rather than guessed
    return False


def _strip_indexes(expr: str) -> str:
    return re.sub(r"\[\d+\]", "", expr)


_REAL_PATHS = {"Element": ("id", "extension"), "BackboneElement": ("modifierExtension",),
               "BackboneType": ("modifierExtension",), "Resource": ("id", "meta", "implicitRules", "language"),
               "DomainResource": ("text", "contained", "extension", "modifierExtension")}


class Logical:
    """An element's logical paths (HL7 NodeStack), worked out only when an extension asks.

    Most elements never carry an extension, so the walker keeps just the parent
    link, the definition and the type; ``paths`` builds the set on first use.
    """

    __slots__ = ("parent", "edef", "tcode", "expr", "_paths")

    def __init__(self, parent: "Logical | None", edef: ElementDef | None, tcode: str | None, expr: str):
        self.parent, self.edef, self.tcode, self.expr = parent, edef, tcode, expr
        self._paths = None

    @classmethod
    def fixed(cls, paths) -> "Logical":
        obj = cls(None, None, None, "")
        obj._paths = frozenset(paths)
        return obj

    @property
    def paths(self) -> frozenset:
        if self._paths is None:
            self._paths = child_logical(self.parent.paths, self.edef, self.tcode) | {_strip_indexes(self.expr)}
        return self._paths


def child_logical(logical: frozenset, edef: ElementDef, tcode: str | None) -> frozenset:
    """The logical paths of a child element (HL7 NodeStack.push)."""
    tail = edef.path.rsplit(".", 1)[-1]
    out = set()
    for lp in logical:
        if lp.startswith("@"):
            continue
        allowed = _REAL_PATHS.get(lp)
        if allowed is None or tail in allowed:
            out.add(f"{lp}.{tail}")
            if tail.endswith("[x]") and tcode:
                out.add(f"{lp}.{tail[:-3]}{tcode[:1].upper()}{tcode[1:]}")
    if edef.content_reference:
        out.add(edef.content_reference.split("#", 1)[-1])
    elif tcode:
        out.add(tcode)
    return frozenset(out)


def has_element_name(plist, en: str) -> bool:
    if en in plist:
        return True
    ep = en.split(".")
    for s in plist:
        sp = s.split(".")
        if len(sp) != len(ep):
            continue
        if all(a == b or (b.endswith("[x]") and a.startswith(b[:-3])) for a, b in zip(sp, ep)):
            return True
    return False


def fixed_contexts(ext_def: TypeDef) -> tuple:
    """Extension contexts, with the corrections the HL7 validator applies to a few core
    extensions whose published context is known to be wrong (FHIR-13328 and others)."""
    contexts = ext_def.contexts
    url = ext_def.url
    if url == "http://hl7.org/fhir/StructureDefinition/regex":
        return contexts + (("element", "ElementDefinition.type"),)
    if url == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" and contexts:
        return (("element", "ElementDefinition.type"),) + contexts[1:]
    if url == "http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version" and contexts:
        return (("element", "Element"),) + contexts[1:]
    return contexts
