"""Business rules: checks the FHIR specification states in prose, which the HL7
validator applies beyond StructureDefinitions and invariants.

Each rule takes a typed node and yields Issues; ``RULES`` maps a FHIR type to
its rules, so the validator calls only those that apply.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Callable, Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import lexeme
from fhirpkg.fhir.model import Node
from fhirpkg.validation import (codesystem, extension_use, implementation_guide, profile_slices, questionnaire,
                                bundle, search_parameter, valueset_filters, capability_statement, measure_report,
                                derived_values)


def attachment(node: Node) -> Iterator[Issue]:
    """Attachment.size and .hash must describe the inline data (SHA-1, base64)."""
    att = node.value
    if not isinstance(att, dict):
        return
    data = att.get("data")
    if not isinstance(data, str):
        return
    try:
        content = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return  # the base64Binary check reports it
    size = att.get("size")
    if size is not None and not isinstance(size, bool):
        try:
            stated = int(lexeme(size)) if not isinstance(size, str) else int(size)
        except ValueError:
            stated = None
        if stated is not None and stated != len(content):
            yield Issue(Severity.ERROR, "structure", f"Stated Attachment Size {stated} does not match actual "
                        f"attachment size {len(content)}", "attachment-size", node.expression,
                        location=node.location)
    digest = att.get("hash")
    if isinstance(digest, str):
        try:
            stated_hash = base64.b64decode(digest, validate=False)
        except (binascii.Error, ValueError):
            return
        actual = hashlib.sha1(content).digest()
        if stated_hash != actual:
            yield Issue(Severity.ERROR, "structure", f"The hash of the data did not match the data (stated: "
                        f"'{digest}', actual: '{base64.b64encode(actual).decode()}')", "attachment-hash",
                        node.expression, location=node.location)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PROTOCOL = re.compile(r"[A-Za-z][A-Za-z0-9_\[\]]*")


def _absolute(uri: str) -> bool:
    """The HL7 validator's InstanceValidator.isAbsolute: a protocol that is a token (a letter, then
    letters, digits, '_', '[' or ']') before the first ':'; a file: URI needs '/' or ':' after it."""
    protocol, colon, tail = uri.partition(":")
    if not colon or not _PROTOCOL.fullmatch(protocol):
        return False
    return tail.startswith("/") or ":" in tail if protocol == "file" else True


def identifier(node: Node) -> Iterator[Issue]:
    """Identifier.system is absolute (http:, https:, urn:, ldap:), and the two IETF systems are
    used as the HL7 validator's checkIdentifier says: urn:ietf:rfc:3986 takes a full URI, and
    https://tools.ietf.org/html/rfc4122 is not the system for a UUID."""
    ident = node.value
    if not isinstance(ident, dict):
        return
    system, value = ident.get("system"), ident.get("value")
    if not isinstance(system, str):
        return
    if not system.startswith(("http:", "https:", "urn:", "ldap:")):
        yield Issue(Severity.ERROR, "code-invalid", "Identifier.system must be an absolute reference, not a local "
                    "reference", "identifier-system", node.expression, location=node.location)
    if not isinstance(value, str):
        return
    if system == "urn:ietf:rfc:3986" and not _absolute(value):
        yield Issue(Severity.ERROR, "code-invalid", "if identifier.system is 'urn:ietf:rfc:3986', then the "
                    f"identifier.value must be a full URI (e.g. start with a scheme), not '{value}'",
                    "identifier-system", node.expression, location=node.location)
    elif system == "https://tools.ietf.org/html/rfc4122":
        if value.startswith("urn:uuid:"):
            yield Issue(Severity.WARNING, "code-invalid", "The URL 'https://tools.ietf.org/html/rfc4122' should not "
                        f"be used with the UUID '{value}'. Use the system value 'urn:ietf:rfc:3986' instead",
                        "identifier-system", node.expression, location=node.location)
        elif _UUID.match(value):
            yield Issue(Severity.WARNING, "code-invalid", "The URL 'https://tools.ietf.org/html/rfc4122' should not "
                        f"be used with the UUID '{value}'. Prefix the value with 'urn:uuid:' and use the system value "
                        "'urn:ietf:rfc:3986' instead", "identifier-system", node.expression, location=node.location)
        else:
            yield Issue(Severity.ERROR, "code-invalid", "The URL 'https://tools.ietf.org/html/rfc4122' is not correct "
                        f"for the identifier '{value}'", "identifier-system", node.expression, location=node.location)


def attachment_content(node: Node) -> Iterator[Issue]:
    """An Attachment has data and/or url, or else SHOULD say its contentType and/or language."""
    att = node.value
    if isinstance(att, dict) and not any(k in att for k in ("data", "url", "contentType", "language")):
        yield Issue(Severity.WARNING, "structure", "Attachments have data and/or url, or else SHOULD have either "
                    "contentType and/or language", "attachment-content", node.expression, location=node.location)


def value_set(node: Node) -> Iterator[Issue]:
    """ValueSet.compose.include.system must be an absolute URI (a contained CodeSystem is named by its url)."""
    vs = node.value
    if not isinstance(vs, dict) or not isinstance(vs.get("compose"), dict):
        return
    for part in ("include", "exclude"):
        for i, inc in enumerate(vs["compose"].get(part) or ()):
            system = inc.get("system") if isinstance(inc, dict) else None
            if isinstance(system, str) and ":" not in system:
                yield Issue(Severity.ERROR, "invalid", f"URI values in ValueSet.compose.{part}.system must be "
                            f"absolute. To reference a contained code system, use the full CodeSystem URL and "
                            f"reference it using the http://hl7.org/fhir/StructureDefinition/valueset-system "
                            f"extension (found '{system}')", "valueset-system-absolute",
                            f"{node.expression}.compose.{part}[{i}]",
                            location=node.location + ("compose", part, i))
            if isinstance(system, str) and system.startswith("#"):
                yield from _contained_code_system(vs, inc, system, f"{node.expression}.compose.{part}[{i}]",
                                                  node.location + ("compose", part, i))


def _contained_code_system(vs: dict, inc: dict, system: str, expr: str, loc: tuple) -> Iterator[Issue]:
    """An include naming a contained code system by '#id' (VALUESET_INCLUDE_CS_*): one CodeSystem
    with that id (and the include's version, if it gives one) must be contained."""
    version = inc.get("version") if isinstance(inc.get("version"), str) else None
    found = []
    for c in vs.get("contained") or ():
        if isinstance(c, dict) and f"#{c.get('id')}" == system:
            if c.get("resourceType") != "CodeSystem":
                yield Issue(Severity.ERROR, "invalid", f"The include system '{system}' is a reference to a contained "
                            f"resource, but the contained resource with that id is not a CodeSystem, it's a "
                            f"{c.get('resourceType')}", "valueset-contained-system", expr, location=loc)
            elif version is None or version == c.get("version"):
                found.append(c)
    ver = f" version '{version}'" if version is not None else ""
    if not found:
        yield Issue(Severity.ERROR, "invalid", f"No matching contained code system found for system '{system}'{ver}",
                    "valueset-contained-system", expr, location=loc)
    elif len(found) > 1:
        yield Issue(Severity.ERROR, "invalid", f"Multiple matching contained code systems found for system "
                    f"'{system}'{ver}", "valueset-contained-system", expr, location=loc)


WG_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-wg"


def one_workgroup(node: Node) -> Iterator[Issue]:
    """An HL7 artifact names one owning work group (structuredefinition-wg at most once)."""
    res = node.value
    if not isinstance(res, dict) or node.location != node.frame.location:
        return
    wgs = [e for e in res.get("extension") or () if isinstance(e, dict) and e.get("url") == WG_EXT]
    if len(wgs) > 1:
        yield Issue(Severity.ERROR, "business-rule", f"This resource has more than one workgroup extension ({WG_EXT})",
                    "workgroup-multiple", node.expression, location=node.location)


STANDARDS_STATUS_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"
#: The R5 resource types the HL7 validator treats as canonical resources (VersionUtilities).
CANONICAL_TYPES = frozenset((
    "ActorDefinition ActivityDefinition CapabilityStatement ChargeItemDefinition Citation ClinicalUseDefinition "
    "CodeSystem CompartmentDefinition ConceptMap ConditionDefinition EventDefinition Evidence EvidenceReport "
    "EvidenceVariable ExampleScenario GraphDefinition ImplementationGuide Library Measure MessageDefinition "
    "NamingSystem ObservationDefinition OperationDefinition PlanDefinition Questionnaire Requirements SearchParameter "
    "SpecimenDefinition StructureDefinition StructureMap SubscriptionTopic TerminologyCapabilities TestPlan TestScript "
    "ValueSet").split())
#: standards status -> the resource statuses consistent with it (warning otherwise), and those
#: that need no review (information otherwise), as the HL7 validator pairs them.
STATUS_CONSISTENT = {
    "draft": ({"draft"}, {"draft"}),
    "normative": ({"active"}, {"active"}),
    "trial-use": ({"draft", "active"}, {"active"}),
    "informative": ({"draft", "active", "retired"}, {"draft", "active"}),
    "deprecated": ({"retired"}, {"retired"}),
    "withdrawn": ({"retired"}, {"retired"}),
    "external": ({"draft", "active", "retired"}, {"draft", "active"}),
}


def version_without_hash(node: Node) -> Iterator[Issue]:
    """A canonical resource's version should not contain '#' (VALIDATION_VAL_VERSION_NOHASH)."""
    res = node.value
    if not isinstance(res, dict) or node.frame.type not in CANONICAL_TYPES or node.location != node.frame.location:
        return
    version = res.get("version")
    if isinstance(version, str) and "#" in version:
        yield Issue(Severity.WARNING, "business-rule", f"Version '{version}' contains a '#', which is problematic, as "
                    "this character is used in some URLs to separate the version and the fragment id. Systems will "
                    "generally wrongly parse these URLs", "version-hash", node.expression, location=node.location)


def standards_status(node: Node) -> Iterator[Issue]:
    """A canonical resource's status agrees with its standards-status extension."""
    res = node.value
    if not isinstance(res, dict) or node.frame.type not in CANONICAL_TYPES or node.location != node.frame.location:
        return
    status = res.get("status")
    ext = next((e for e in res.get("extension") or () if isinstance(e, dict) and e.get("url") == STANDARDS_STATUS_EXT),
               None)
    std = ext.get("valueCode") if ext else None
    if not isinstance(status, str) or not status or not isinstance(std, str) or std not in STATUS_CONSISTENT:
        return
    consistent, reviewed = STATUS_CONSISTENT[std]
    if status not in consistent:
        yield Issue(Severity.WARNING, "business-rule", f"The resource status '{status}' and the standards status "
                    f"'{std}' are not consistent", "status-consistent", node.expression, location=node.location)
    elif status not in reviewed:
        yield Issue(Severity.INFORMATION, "business-rule", f"The resource status '{status}' and the standards status "
                    f"'{std}' may not be consistent and should be reviewed", "status-consistent", node.expression,
                    location=node.location)


#: The effective[x] types the HL7 validator's ObservationValidator counts.  It reports its three
#: recommendations at its default best-practice level (bpCheck), a warning.
OBSERVATION_EFFECTIVE = ("effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant")


def observation_best_practice(node: Node) -> Iterator[Issue]:
    """Every Observation should have a subject, a performer and an effective[x] (a recommendation)."""
    obs = node.value
    if not isinstance(obs, dict) or node.frame.type != "Observation" or node.location != node.frame.location:
        return
    performers = obs.get("performer")
    missing = []
    if obs.get("subject") is None:
        missing.append("a subject")
    if not (isinstance(performers, list) and performers):
        missing.append("a performer")
    if not any(obs.get(k) is not None or obs.get("_" + k) is not None for k in OBSERVATION_EFFECTIVE):
        missing.append("an effective[x] ()")  # the HL7 validator's own wording, its empty type summary included
    for what in missing:
        yield Issue(Severity.WARNING, "invalid", f"Best Practice Recommendation: In general, all observations should "
                    f"have {what}", "observation-best-practice", node.expression, location=node.location)


_ROOT_TAG = re.compile(r"^\s*(?:<\?xml[^>]*>\s*)?<div\b([^>]*)>", re.S)
_CHILD_LANG_DIV = re.compile(r"<div\b[^>]*\b(?:xml:)?lang\s*=", re.S)
LANG_NOTE = "see https://www.w3.org/TR/i18n-html-tech-lang/#langvalues"


def _attribute(attrs: str, name: str) -> str | None:
    m = re.search(r"(?:^|\s)" + re.escape(name) + r"\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", attrs)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def narrative_language(node: Node) -> Iterator[Issue]:
    """A resource with a language states it on its narrative too, as both lang and xml:lang (warnings)."""
    res = node.value
    if not isinstance(res, dict) or not isinstance(res.get("language"), str):
        return
    text = res.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    m = _ROOT_TAG.match(div) if isinstance(div, str) else None
    if m is None:
        return  # no narrative, or one the narrative layer reports
    lang, attrs = res["language"], m.group(1)
    l, xl = _attribute(attrs, "lang"), _attribute(attrs, "xml:lang")
    if l is None and xl is None and _CHILD_LANG_DIV.search(div, m.end()):
        return  # language sections: the HL7 validator reads the first section's attributes; not checked here
    found = []
    if l is None and xl is None:
        found.append(f"Resource has a language, but the XHTML does not have an lang or an xml:lang tag (needs both - "
                     f"{LANG_NOTE})")
    else:
        if l is None:
            found.append(f"Resource has a language, but the XHTML does not have a lang tag (needs both lang and "
                         f"xml:lang - {LANG_NOTE})")
        elif l != lang:
            found.append(f"Resource has a language ({lang}), and the XHTML has a lang ({l}), but they differ")
        if xl is None:
            found.append(f"Resource has a language, but the XHTML does not have an xml:lang tag (needs both lang and "
                         f"xml:lang - {LANG_NOTE})")
        elif xl != lang and xl != l:
            found.append(f"Resource has a language ({lang}), and the XHTML has an xml:lang ({xl}), but they differ")
    for message in found:
        yield Issue(Severity.WARNING, "business-rule", message, "narrative-language", node.expression,
                    location=node.location + ("text", "div"))


def contained_ids(node: Node) -> Iterator[Issue]:
    """Contained resources have distinct ids (the second and later holders of an id are errors)."""
    res = node.value
    if not isinstance(res, dict) or not isinstance(res.get("contained"), list):
        return
    seen = set()
    for i, c in enumerate(res["contained"]):
        ident = c.get("id") if isinstance(c, dict) else None
        if not isinstance(ident, str):
            continue  # a contained resource without an id is reported by the structure layer
        if ident in seen:
            yield Issue(Severity.ERROR, "duplicate", f"Duplicate ID for contained resource: {ident}",
                        "contained-id-duplicate", f"{node.expression}.contained[{i}]",
                        location=node.location + ("contained", i))
        seen.add(ident)


def _concepts(concepts, location: tuple, expression: str):
    """Every concept of a CodeSystem, depth first, with its JSON location and FHIRPath."""
    for i, c in enumerate(concepts if isinstance(concepts, list) else ()):
        if isinstance(c, dict):
            yield c, location + ("concept", i), f"{expression}.concept[{i}]"
            yield from _concepts(c.get("concept"), location + ("concept", i), f"{expression}.concept[{i}]")


def code_system_metadata(node: Node) -> Iterator[Issue]:
    """What the HL7 validator asks of a CodeSystem beyond its invariants.

    HL7-defined code systems (url containing 'hl7') should give every concept a display and a
    definition (reported once, at the first concept lacking one); caseSensitive, and
    hierarchyMeaning when concepts nest, should be stated (warning for HL7's, information for
    others); content = complete with no concepts makes no sense.
    """
    cs = node.value
    if not isinstance(cs, dict):
        return
    url = cs.get("url") if isinstance(cs.get("url"), str) else ""
    concepts = list(_concepts(cs.get("concept"), node.location, node.expression))
    if "hl7" in url:
        for key in ("display", "definition"):
            first = next(((loc, expr) for c, loc, expr in concepts if key not in c), None)
            if first is not None:
                yield Issue(Severity.WARNING, "business-rule", f"HL7 Defined CodeSystems should ensure that every "
                            f"concept has a {key}", "codesystem-concept-text", first[1], location=first[0])
    if "supplements" not in cs and cs.get("content") != "supplement":
        hl7 = "hl7.org" in url or "fhir.org" in url
        nested = any(isinstance(c.get("concept"), list) and c["concept"] for c in cs.get("concept") or ()
                     if isinstance(c, dict))
        for key in ("caseSensitive", "hierarchyMeaning") if nested else ("caseSensitive",):
            if cs.get(key) in (None, ""):
                if hl7:
                    yield Issue(Severity.WARNING, "business-rule", f"HL7 Defined CodeSystems SHOULD have a stated "
                                f"value for the {key} element so that users know the status and meaning of the code "
                                "system clearly", "codesystem-metadata", node.expression, location=node.location)
                else:
                    yield Issue(Severity.INFORMATION, "business-rule", f"CodeSystems SHOULD have a stated value for "
                                f"the {key} element so that users know the status and meaning of the code system "
                                "clearly", "codesystem-metadata", node.expression, location=node.location)
    if cs.get("content") == "complete" and not concepts:
        yield Issue(Severity.WARNING, "business-rule", "When a CodeSystem has content = 'complete', it doesn't make "
                    "sense for there to be no concepts defined", "codesystem-metadata", node.expression,
                    location=node.location)


EXTENSION_BASE = "http://hl7.org/fhir/StructureDefinition/Extension"
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"


def extension_url_fixed(node: Node) -> Iterator[Issue]:
    """An extension definition fixes Extension.url (in its differential) to its own canonical URL."""
    sd = node.value
    if not isinstance(sd, dict) or sd.get("type") != "Extension" or sd.get("baseDefinition") != EXTENSION_BASE:
        return
    url = sd.get("url")
    if not isinstance(url, str):
        return
    diff = sd.get("differential")
    fixed = None
    for e in (diff.get("element") or ()) if isinstance(diff, dict) else ():
        if isinstance(e, dict) and e.get("path") == "Extension.url":
            fixed = next((v for k, v in e.items() if k.startswith("fixed")), None)
            break
    if fixed is None:
        yield Issue(Severity.ERROR, "invalid", f"The value of Extension.url is not fixed to the extension URL {url}",
                    "extension-url-fixed", node.expression, location=node.location)
    elif fixed != url:
        yield Issue(Severity.ERROR, "invalid", f"The fixed value for the extension URL is {fixed} which doesn't "
                    f"match the canonical URL {url}", "extension-url-fixed", node.expression, location=node.location)


def _element_exists(defs, path: str) -> bool:
    """Whether an element context names an element (``url#path`` or ``Type.path``).

    Steps go through contentReference and into the children of an element's data type
    (``Medication.code.coding``); a choice may be named without ``[x]``.
    """
    url, _, rest = path.partition("#") if "#" in path else (None, "", path)
    parts = rest.split(".")
    td = defs.get(url) if url else defs.get(CORE_SD + parts[0])
    if td is None:
        return False
    current = td.root
    for name in parts[1:]:
        child = td.by_id.get(f"{current.id}.{name}") or td.by_id.get(f"{current.id}.{name}[x]")
        if child is None and len(current.types) == 1:
            inner = defs.base_type(current.types[0].code)
            if inner is not None:
                td = inner
                child = td.by_id.get(f"{td.root.id}.{name}") or td.by_id.get(f"{td.root.id}.{name}[x]")
        if child is None:
            return False
        if child.content_reference:
            child = td.by_id.get(child.content_reference.split("#", 1)[1])
            if child is None:
                return False
        current = child
    return True


def extension_context_elements(node: Node, defs, resolver=None) -> Iterator[Issue]:
    """An extension's ``element`` contexts must name elements that exist (in this FHIR version)."""
    sd = node.value
    if not isinstance(sd, dict) or sd.get("type") != "Extension":
        return
    for i, ctx in enumerate(sd.get("context") or ()):
        if not isinstance(ctx, dict) or ctx.get("type") != "element" or ctx.get("extension"):
            continue  # contexts with a version-specific-use extension name elements of other versions
        expr = ctx.get("expression")
        if isinstance(expr, str) and expr and not _element_exists(defs, expr):
            yield Issue(Severity.ERROR, "invalid", f"The element {expr} is not valid", "extension-context-element",
                        f"{node.expression}.context[{i}]", location=node.location + ("context", i))


RULES: dict[str, tuple[Callable[[Node], Iterator[Issue]], ...]] = {
    "Attachment": (attachment, attachment_content),
    "Identifier": (identifier,),
    "CodeSystem": (code_system_metadata,),
    "ValueSet": (value_set,),
    "StructureDefinition": (extension_url_fixed,),
}
#: Rules that also need the loaded definitions and the resolver, called with (node, defs, resolver).
CONTEXT_RULES: dict[str, tuple[Callable[..., Iterator[Issue]], ...]] = {
    "StructureDefinition": (extension_context_elements, profile_slices.must_support_slices, derived_values.check),
    "Questionnaire": (questionnaire.derivation,),
    "CodeSystem": (codesystem.check,),
    "ValueSet": (valueset_filters.check,),
    "CapabilityStatement": (capability_statement.check,),
    "MeasureReport": (measure_report.check,),
    "Extension": (extension_use.fhir_version,),
    "ImplementationGuide": (implementation_guide.check,),
    "SearchParameter": (search_parameter.check,),
    "Bundle": (bundle.check,),
}
#: Rules for every resource (applied to resource roots).
#: Bundle.link relations that name one page or the Bundle itself (http.html#paging): at most once each.
UNIQUE_LINKS = ("self", "first", "previous", "prev", "next", "last")


def unique_links(node: Node) -> Iterator[Issue]:
    """A Bundle has at most one link of each paging relation (and one self link)."""
    if node.frame.type != "Bundle" or not isinstance(node.value, dict):
        return
    seen = set()
    for i, link in enumerate(node.value.get("link") or ()):
        rel = link.get("relation") if isinstance(link, dict) else None
        if rel in UNIQUE_LINKS:
            if rel in seen:
                yield Issue(Severity.ERROR, "invalid", f"The link relationship type '{rel}' can only occur once",
                            "bundle-link-unique", f"{node.expression}.link[{i}]", location=node.location + ("link", i))
            seen.add(rel)


def supplement_content(node: Node) -> Iterator[Issue]:
    """A CodeSystem that supplements another says so in its content (codesystem.html#supplements)."""
    res = node.value
    if node.frame.type != "CodeSystem" or not isinstance(res, dict) or node.location != node.frame.location:
        return
    if res.get("supplements") and res.get("content") not in (None, "supplement"):
        yield Issue(Severity.ERROR, "business-rule", "CodeSystem Supplements SHALL have a content value of "
                    f"'supplement' (not '{res.get('content')}')", "codesystem-supplement-content",
                    f"{node.expression}.content", location=node.location + ("content",))


RESOURCE_RULES: tuple[Callable[[Node], Iterator[Issue]], ...] = (one_workgroup, standards_status, narrative_language,
                                                                  contained_ids, unique_links, supplement_content,
                                                                  observation_best_practice, version_without_hash)
