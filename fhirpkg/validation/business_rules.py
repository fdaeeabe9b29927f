"""Business rules: checks the FHIR specification states in prose, which the HL7
validator applies beyond StructureDefinitions and invariants.

Each rule takes a typed node and yields Issues; ``RULES`` maps a FHIR type to
its rules, so the validator calls only those that apply.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Callable, Iterator

from ..issues import Issue, Severity
from ..jsonsource import lexeme
from ..model import Node


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


RULES: dict[str, tuple[Callable[[Node], Iterator[Issue]], ...]] = {
    "Attachment": (attachment,),
    "ValueSet": (value_set,),
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


RESOURCE_RULES: tuple[Callable[[Node], Iterator[Issue]], ...] = (one_workgroup, unique_links, supplement_content)
