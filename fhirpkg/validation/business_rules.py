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


def extension_context_elements(node: Node, defs) -> Iterator[Issue]:
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
    "Attachment": (attachment,),
    "ValueSet": (value_set,),
    "StructureDefinition": (extension_url_fixed,),
}
#: Rules that also need the loaded definitions, called with (node, defs).
DEFINITION_RULES: dict[str, tuple[Callable[..., Iterator[Issue]], ...]] = {
    "StructureDefinition": (extension_context_elements,),
}
#: Rules for every resource (applied to resource roots).
RESOURCE_RULES: tuple[Callable[[Node], Iterator[Issue]], ...] = (one_workgroup,)
