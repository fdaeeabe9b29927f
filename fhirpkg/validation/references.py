"""References: format, target type, and resolution (contained, Bundle, package).

Resolution follows the FHIR rules (R5 references.html, bundle.html#references):
``#id`` points into the container's ``contained``; inside a Bundle a reference
resolves against the entries' ``fullUrl`` (relative ones only when the entry's
fullUrl is a RESTful URL); ``urn:uuid:``/``urn:oid:`` must match a fullUrl.
Package-local resolution (Type/id and canonical URLs among the project's
resources) is offered by ``Resolver.package``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node, ResourceFrame

_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
_ABSOLUTE = re.compile(r"^(https?://\S+?)/?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
#: An absolute URI as the HL7 validator's Utilities.isAbsoluteUrl accepts it: a lower-case token
#: as the scheme (http, urn, resource, ...), then something without spaces.
ABSOLUTE_URI = re.compile(r"^[a-z][a-z0-9_]*:[^ ]+$")
_WHITESPACE = re.compile(r"[ \t\n\x0b\f\r]")  # Java's \s: the HL7 validator wants the reference to match \S+
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")
_UUID = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class _Noted(dict):
    """A lookup table that notes each key asked of it (see :meth:`Resolver.note_reads`)."""

    def __init__(self, items: dict, tag: str, reads: set):
        super().__init__(items)
        self.tag, self.reads = tag, reads

    def get(self, key, default=None):
        self.reads.add(f"{self.tag}:{key}")
        return super().get(key, default)

    def __contains__(self, key) -> bool:
        self.reads.add(f"{self.tag}:{key}")
        return super().__contains__(key)

    def __getitem__(self, key):
        self.reads.add(f"{self.tag}:{key}")
        return super().__getitem__(key)


@dataclass
class Resolver:
    """Finds the resource a reference points at, where that is knowable offline."""

    #: Project/package resources: "Type/id" -> resource, and canonical url -> resource.
    by_type_id: dict[str, dict] = field(default_factory=dict)
    by_canonical: dict[str, dict] = field(default_factory=dict)

    def add(self, resource: dict) -> None:
        rt, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(rt, str) and isinstance(rid, str):
            self.by_type_id[f"{rt}/{rid}"] = resource
        url = resource.get("url")
        if isinstance(url, str):
            self.by_canonical[url] = resource
            if isinstance(resource.get("version"), str):
                self.by_canonical[f"{url}|{resource['version']}"] = resource

    def note_reads(self) -> set[str]:
        """What was looked up among the project's resources since the last call ("r:Type/id",
        "c:url"), and note afresh: the build cache reuses a resource's validation only while
        what it read is unchanged.  The first call starts noting."""
        if not isinstance(self.by_type_id, _Noted):
            reads: set = set()
            self.by_type_id = _Noted(self.by_type_id, "r", reads)
            self.by_canonical = _Noted(self.by_canonical, "c", reads)
        found = set(self.by_type_id.reads)
        self.by_type_id.reads.clear()
        return found

    def looked_up(self, read: str) -> dict | None:
        """What a noted read ("r:Type/id", "c:url") finds now (itself not noted)."""
        tag, _, key = read.partition(":")
        return dict.get(self.by_type_id if tag == "r" else self.by_canonical, key)

    def resolve(self, reference: str, frame: ResourceFrame) -> dict | None:
        found = self.locate(reference, frame)
        return found[0] if found else None

    def locate(self, reference: str, frame: ResourceFrame) -> tuple[dict, str] | None:
        """(resource, how) for a reference made from inside ``frame``, or None."""
        if not isinstance(reference, str) or not reference:
            return None
        if reference.startswith("#"):
            container = _container(frame)
            if reference == "#":
                return container.json, "container"
            for c in container.json.get("contained") or ():
                if isinstance(c, dict) and c.get("id") == reference[1:]:
                    return c, "contained"
            return None
        bundle_hit = self._in_bundle(reference, frame)
        if bundle_hit is not None:
            return bundle_hit, "bundle"
        ref = reference.split("|", 1)[0]
        if ref in self.by_type_id:
            return self.by_type_id[ref], "package"
        if reference in self.by_canonical:
            return self.by_canonical[reference], "package"
        if ref in self.by_canonical:
            return self.by_canonical[ref], "package"
        m = _ABSOLUTE.match(ref)
        if m and f"{m.group(2)}/{m.group(3)}" in self.by_type_id and ref in self.by_canonical:
            return self.by_type_id[f"{m.group(2)}/{m.group(3)}"], "package"
        return None

    @staticmethod
    def _in_bundle(reference: str, frame: ResourceFrame) -> dict | None:
        entry_frame, bundle = _bundle_of(frame)
        if bundle is None:
            return None
        target = reference
        m = _RELATIVE.match(reference)
        if m and entry_frame is not None and entry_frame.full_url:
            am = _ABSOLUTE.match(entry_frame.full_url)
            if am:
                target = f"{am.group(1)}/{m.group(1)}/{m.group(2)}"
        for entry in bundle.get("entry") or ():
            if isinstance(entry, dict) and entry.get("fullUrl") == target and isinstance(entry.get("resource"), dict):
                return entry["resource"]
        return None


def _container(frame: ResourceFrame) -> ResourceFrame:
    """The resource that holds ``contained`` for this frame (itself, or its container)."""
    if frame.parent is not None and len(frame.location) >= 2 and frame.location[-2] == "contained":
        return frame.parent
    return frame


def _bundle_of(frame: ResourceFrame) -> tuple[ResourceFrame | None, dict | None]:
    """The Bundle entry frame and Bundle JSON enclosing this frame, if any."""
    f = frame
    while f is not None:
        if f.parent is not None and f.parent.type == "Bundle" and len(f.location) >= 3 and f.location[-3] == "entry":
            return f, f.parent.json
        f = f.parent
    return None, None


def check_reference(node: Node, resolver: Resolver, defs, assume_valid_rest: bool = False) -> Iterator[Issue]:
    """Format, target type and resolvability of one Reference element.  ``assume_valid_rest``: the
    type a RESTful reference URL names is taken as the target's (the HL7 validator's
    -assumeValidRestReferences), so a type the element does not allow is an error, not information."""
    value = node.value
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if not isinstance(ref, str):
        return
    # at the Reference, as the HL7 validator reports these; the position is the reference string's
    expr, loc = node.expression, node.location + ("reference",)
    if _WHITESPACE.search(ref):
        yield Issue(Severity.ERROR, "invalid", f"The reference '{ref}' is not a valid reference", "reference-format",
                    expr, location=loc)
        return
    frame = node.frame
    ref_type = None
    in_transaction = _in_transaction(frame)
    if ref.startswith("#"):
        if resolver.locate(ref, frame) is None:
            yield Issue(Severity.ERROR, "structure", f"Unable to resolve resource with reference '{ref}'",
                        "reference-contained", expr, location=loc)
            return
    elif ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
        entry_frame, bundle = _bundle_of(frame)
        if bundle is not None and resolver.locate(ref, frame) is None:
            yield Issue(Severity.WARNING, "required", f"URN reference is not locally contained within the bundle {ref}",
                        "reference-bundle", expr, location=loc)
    elif "://" in ref:
        m = _ABSOLUTE.match(ref)
        ref_type = m.group(2) if m else None
    elif ABSOLUTE_URI.match(ref):
        pass  # an absolute URI of another scheme ("resource:0" in SMART Health Cards), as the HL7 validator reads it
    else:
        m = _RELATIVE.match(ref)
        c = _CONDITIONAL.match(ref)
        if m:
            ref_type = m.group(1)
            entry_frame, bundle = _bundle_of(frame)
            if bundle is not None and resolver.locate(ref, frame) is None:
                yield from _bundle_relative(ref, m, entry_frame, bundle, expr, loc)
        elif c and in_transaction:
            ref_type = c.group(1)
            if not re.fullmatch(r"[A-Za-z0-9_\-.:]+=[^&=]*(&[A-Za-z0-9_\-.:]+=[^&=]*)*", c.group(2)):
                yield Issue(Severity.ERROR, "invalid", f"The query part of the conditional reference is not a valid "
                            f"query string ({ref})", "reference-format", expr, location=loc)
        else:
            yield Issue(Severity.ERROR, "invalid", "Relative URLs must be of the format [ResourceName]/[id], or a "
                        f"search URL is allowed ([type]?parameters. Encountered {ref})", "reference-format",
                        expr, location=loc)
            return
    if ref_type is not None and defs is not None and not defs.is_resource_type(ref_type):
        yield Issue(Severity.ERROR, "structure", f"The reference '{ref}' names an unknown resource type '{ref_type}'",
                    "reference-type", expr, location=loc)
        return
    declared = value.get("type")
    if isinstance(declared, str) and ref_type and declared != ref_type:
        yield Issue(Severity.ERROR, "structure", f"The type '{declared}' implied by the reference URL {ref} does not "
                    f"match the type stated ({declared} vs {ref_type})", "reference-type", expr, location=loc)
    target_type = ref_type
    if target_type is None:
        found = resolver.locate(ref, frame)
        if found is not None and isinstance(found[0].get("resourceType"), str):
            target_type = found[0]["resourceType"]
    allowed = _allowed_targets(node, defs)
    if target_type and allowed and target_type not in allowed and "Resource" not in allowed:
        resolved = resolver.locate(ref, frame) is not None
        if not resolved and assume_valid_rest and ref_type is not None:
            yield Issue(Severity.ERROR, "structure", f"The type '{ref_type}' implied by the reference URL {ref} is not "
                        f"a valid Target for this element (must be one of [{', '.join(sorted(allowed))}])",
                        "reference-target-type", expr, location=loc)
            return
        # An error when the target is in hand, as the HL7 validator's Reference_REF_BadTargetType.  When
        # only the URL says so the HL7 validator says nothing unless -assumeValidRestReferences (checked
        # with 6.10.4 offline on Observation.subject = Encounter/1); information keeps it visible.
        yield Issue(Severity.ERROR if resolved else Severity.INFORMATION, "structure",
                    f"Invalid Resource target type. Found {target_type}"
                    f"{'' if resolved else ' (from the reference URL)'}, but expected one of "
                    f"({', '.join(sorted(allowed))})", "reference-target-type", expr, location=loc)


def _bundle_relative(ref, m, entry_frame, bundle, expr, loc) -> Iterator[Issue]:
    full = entry_frame.full_url if entry_frame is not None else None
    if full and _ABSOLUTE.match(full):
        return  # a RESTful base: the target may be on the server; nothing to say
    for n, entry in enumerate(bundle.get("entry") or ()):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == m.group(1) and res.get("id") == m.group(2):
            yield Issue(Severity.WARNING, "required", f"Entry {n} matches the reference {ref} by type and id but its "
                        f"fullUrl {entry.get('fullUrl')} does not match the full target URL",
                        "reference-bundle", expr, location=loc)
            return
    yield Issue(Severity.INFORMATION, "informational", f"The URL '{ref}' cannot be resolved unless the fullURL is a "
                "RESTFul base URL, or a baseURL has been provided and the Bundle is a batch or transaction",
                "reference-bundle", expr, location=loc)


def _in_transaction(frame: ResourceFrame) -> bool:
    entry_frame, bundle = _bundle_of(frame)
    return bundle is not None and bundle.get("type") in ("transaction", "batch", "transaction-response",
                                                         "batch-response")


def _allowed_targets(node: Node, defs) -> set[str]:
    out = set()
    for t in node.definition.types:
        if t.code != "Reference":
            continue
        for tp in t.target_profiles:
            name = tp.rsplit("/", 1)[-1]
            td = defs.get(tp) if defs is not None else None
            out.add(td.type if td is not None else name)
    return out


def check_canonical(node: Node, resolver: Resolver, defs) -> Iterator[Issue]:
    """In a package, every canonical must resolve to the package or its dependencies."""
    value = node.value
    if not isinstance(value, str) or not value:
        return
    if value.startswith("#"):
        yield from check_contained_canonical(node, resolver)
        return
    url = value.split("|", 1)[0]
    if value in resolver.by_canonical or url in resolver.by_canonical:
        return
    if defs is not None and (url in defs.canonicals or defs.get(url) is not None):
        return
    declared = _declared_type(node.shadow)
    known = defs.naming_systems.get(url) if defs is not None else None
    if known is not None or declared in ("CodeSystem", "NamingSystem"):
        why = f"registered by the NamingSystem {known}" if known else f"declared a {declared} by cqf-resourceType"
        yield Issue(Severity.INFORMATION, "informational", f"The canonical '{value}' names an external code "
                    f"system ({why}); its definition is not available offline, so it was not resolved",
                    "canonical-external", node.expression, location=node.location)
        return
    yield Issue(Severity.ERROR, "not-found", f"The canonical '{value}' does not resolve to a resource in this "
                "package or its dependencies", "canonical-unresolved", node.expression, location=node.location)


def check_contained_canonical(node: Node, resolver: Resolver) -> Iterator[Issue]:
    """A canonical '#id' must name a contained resource (or '#' the container)."""
    if resolver.locate(node.value, node.frame) is None:
        yield Issue(Severity.ERROR, "invalid", f"The URL value '{node.value}' is invalid because there is no "
                    "matching target", "canonical-unresolved", node.expression, location=node.location)


def check_package_reference(node: Node, resolver: Resolver) -> Iterator[Issue]:
    """In a package, a relative reference (Type/id) must name a resource of the package."""
    value = node.value
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return
    ref = value["reference"]
    if _RELATIVE.match(ref) and resolver.locate(ref, node.frame) is None:
        yield Issue(Severity.ERROR, "not-found", f"The reference '{ref}' does not resolve to a resource in this "
                    "package", "reference-unresolved", node.expression, location=node.location + ("reference",))


def _declared_type(shadow) -> str | None:
    """The resource type a canonical declares with the cqf-resourceType extension, if any."""
    if not isinstance(shadow, dict):
        return None
    for ext in shadow.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == "http://hl7.org/fhir/StructureDefinition/cqf-resourceType":
            return ext.get("valueCode")
    return None
