"""Embedded HTML in text values, and URNs in URI values, as the HL7 validator checks them.

Pure functions on one primitive value; the structure walker reports what they find.

* ``html_tags_in`` — a string that "looks like embedded HTML tags" (HL7 ``HTMLUtilities.containsHtmlTags``):
  information by default (SECURITY_STRING_CONTENT_WARNING), an error with ``--security-checks``
  (SECURITY_STRING_CONTENT_ERROR). As in the HL7 validator, a tag counts only when another ``<``
  follows it, so a lone ``<b>`` at the end of a text is not reported.
* ``markdown_html_at`` — markdown that holds a raw HTML tag, comment or processing instruction,
  which renderers escape (HL7 ``MarkDownProcessor.preProcess``; TYPE_SPECIFIC_CHECKS_DT_MARKDOWN_HTML):
  a warning by default, an error or nothing with ``--html-in-markdown error|ignore``.
* ``urn_problem`` — ``urn:uuid:`` and ``urn:oid:`` values in uri-like types must be a valid lower-case
  UUID (TYPE_SPECIFIC_CHECKS_DT_UUID_VALID) or a plausible OID (TYPE_SPECIFIC_CHECKS_DT_OID_VALID).
"""
from __future__ import annotations

import re
from typing import Callable, Iterator

from fhirpkg.issues import Severity

#: a tag name, then nothing or whitespace (HL7 looksLikeHtmlTag)
_TAG = re.compile(r"[^\W\d_]\w*(?:\s.*)?", re.DOTALL)
#: an unescaped open or close tag, then a comment/processing instruction/declaration (preProcess)
_MARKDOWN_TAG = re.compile(r"(?<!\\)</?[A-Za-z][A-Za-z0-9-]*[\s>]|<[!?]")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
URI_LIKE_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid"})


def html_tags_in(text: str) -> bool:
    """Does ``text`` hold something like ``<tag ...>`` that is followed by another ``<``?"""
    start = text.find("<")
    while start > -1:
        text = text[start + 1:]
        start = text.find("<")
        end = text.find(">")
        if -1 < end < start and _TAG.fullmatch(text[:end]):
            return True
    return False


def markdown_html_at(text: str) -> str | None:
    """Where raw HTML starts in markdown (the two characters shown in the message), or None."""
    m = _MARKDOWN_TAG.search(text)
    if m is None:
        return None
    i = m.start()
    return text[i:i + 2] if i < len(text) - 1 else text


def embedded_html(value: str, tcode: str, security_checks: bool, html_in_markdown: str,
                  in_rendering_xhtml: Callable[[], bool], describes_narrative: Callable[[], bool]
                  ) -> Iterator[tuple[Severity, str, str]]:
    """(severity, message, rule) for HTML in one text value (not xhtml).  The two callables are asked
    only when needed: is the value a rendering-xhtml extension's (XHTML by definition), or the
    ElementDefinition.comment of a narrative div (HL7 exempts both, as here)."""
    if security_checks:
        if html_tags_in(value):
            yield (Severity.ERROR, "The string value contains text that looks like embedded HTML tags, which are "
                   "not allowed for security reasons in this context", "string-html")
    elif tcode != "markdown" and html_tags_in(value) and not in_rendering_xhtml():
        yield (Severity.INFORMATION, "The string value contains text that looks like embedded HTML tags. If this "
               "content is rendered to HTML without appropriate post-processing, it may be a security risk",
               "string-html")
    if tcode == "markdown" and html_in_markdown != "ignore":
        at = markdown_html_at(value)
        if at is not None and not describes_narrative():
            yield (Severity.ERROR if html_in_markdown == "error" else Severity.WARNING,
                   f"The markdown contains content that appears to be an embedded HTML tag starting at '{at}'. This "
                   "will (or SHOULD) be escaped by the presentation layer. The content should be checked to confirm "
                   "that this is the desired behaviour", "markdown-html")


def describes_narrative(path: str, resource: dict, loc: tuple) -> bool:
    """Is this the ``comment`` of an ElementDefinition whose path ends in ``.text.div``?  (``loc`` is the
    value's JSON location inside ``resource``.)"""
    if not path.endswith(".comment") or len(loc) < 2:
        return False
    parent = resource
    for step in loc[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return False
    element_path = parent.get("path") if isinstance(parent, dict) else None
    return isinstance(element_path, str) and element_path.endswith(".text.div")


def urn_problem(value: str, tcode: str) -> tuple[str, str] | None:
    """(rule message, HL7 id) when a ``urn:uuid:``/``urn:oid:`` value is malformed, else None."""
    if value.startswith("urn:uuid:"):
        s = value.split("#", 1)[0]
        if tcode == "canonical" and "|" in s:
            s = s[:s.rindex("|")]
        s = s[9:]
        if not _UUID.fullmatch(s):
            return f"UUIDs must be valid and lowercase ({s})", "TYPE_SPECIFIC_CHECKS_DT_UUID_VALID"
    elif value.startswith("urn:oid:"):
        s = value[8:]
        if tcode == "canonical" and "|" in s:
            s = s[:s.index("|")]
        # OID roots shorter than 4 characters are almost never namespaces, except 1.3.x (as HL7 says)
        if not _OID.fullmatch(s) or not (s.rfind(".") >= 4 or s.startswith("1.3")):
            return f"OIDs must be valid ({s})", "TYPE_SPECIFIC_CHECKS_DT_OID_VALID"
    return None
