"""Narrative XHTML: the checks the FHIR spec and the HL7 validator make on ``Narrative.div``.

The spec (narrative.html, txt-1) allows only the basic HTML 4.0 formatting
elements and attributes, ``<a>`` (name or href), images and internal styles, and
forbids scripts, forms, objects, frames, event handlers and DOCTYPEs.  The lists
below are the HL7 validator's (``XhtmlValidator`` / ``FHIRPathEngine.checkHtmlNames``
in hapifhir/org.hl7.fhir.core), so our verdicts match its:

* wrong or missing XHTML namespace, root not ``div`` → error;
* element or attribute outside the lists → error (``xml:space`` only a hint);
* block elements inside ``<p>``, misplaced table/list parts → error;
* a DOCTYPE (XXE protection), processing instructions, undefined entities → error;
* ``<a href>`` / ``<img src>`` with characters a URL cannot have, bad ``data:`` URLs → error;
* duplicate ids, mixed language sections → warning.

We add what the spec forbids but the validator lets through: ``javascript:`` and
other script URLs anywhere, and ``data:`` URLs outside ``<img>``.

Parsing uses expat with namespaces; the DOCTYPE is blanked out before parsing
and a foreign DTD is declared without ever being loaded, so no entity — external
or internal — is ever expanded.  Line and column are 1-based within the string.
"""
from __future__ import annotations

import base64
import binascii
import re
import xml.parsers.expat as expat
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node

XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Elements the HL7 validator accepts (HTML 4.0 chapters 7-11 and 15, less forms/objects).
ELEMENTS = frozenset({
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong",
    "small", "big", "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address",
    "bdo", "kbd", "sub", "sup", "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup",
    "col", "thead", "tr", "tfoot", "tbody", "th", "td", "code", "samp", "img", "map", "area",
})
#: Attributes allowed on every element.
ATTRIBUTES = frozenset({
    "title", "style", "class", "id", "lang", "xml:lang", "dir", "accesskey", "tabindex",
    "span", "width", "align", "valign", "char", "charoff", "abbr", "axis", "headers", "scope", "rowspan",
    "colspan",
})
#: Attributes allowed on one element only ("element.attribute").
ELEMENT_ATTRIBUTES = frozenset({
    "a.href", "a.name", "img.src", "img.border", "div.xmlns", "blockquote.cite", "q.cite",
    "a.charset", "a.type", "a.hreflang", "a.rel", "a.rev", "a.shape", "a.coords",
    "img.alt", "img.longdesc", "img.height", "img.width", "img.usemap", "img.ismap", "map.name", "area.shape",
    "area.coords", "area.href", "area.nohref", "area.alt", "table.summary", "table.width", "table.border",
    "table.frame", "table.rules", "table.cellspacing", "table.cellpadding", "pre.space", "td.nowrap",
})
BLOCK_IN_PARAGRAPH = frozenset({"div", "blockquote", "table", "ol", "ul", "p"})
_NOT_IN_TEXT = frozenset({"div", "pre", "table", "ul", "ol"})
_TEXT_LEVEL = frozenset({"a", "b", "em", "i", "strong", "small", "big", "sub", "sup", "code", "tt", "dfn", "q",
                         "var", "abbr", "acronym", "cite", "bdo", "kbd", "samp"})
_XML_ENTITIES = frozenset({"lt", "gt", "amp", "quot", "apos"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc", "usemap"})
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:")
_URL_PUNCTUATION = frozenset(";?:@&=+$.,/%-_~#[]!'()*|")

_URL_OK = re.compile(r"[^\W_]*(?:[;?:@&=+$.,/%_~#\[\]!'()*|-]+[^\W_]*)*")
_ENTITY_REF = re.compile(r"&([A-Za-z_][A-Za-z0-9._-]*);")
_DOCTYPE = re.compile(r"<!DOCTYPE(?:[^\[>]*\[.*?\]\s*>|[^>]*>)", re.S | re.I)
_DECLARED_ENTITY = re.compile(r"<!ENTITY\s+%?\s*([A-Za-z_][A-Za-z0-9._-]*)", re.I)


@dataclass(frozen=True, slots=True)
class XhtmlProblem:
    severity: str  # "error" | "warning" | "information"
    rule: str  # stable id: xhtml-syntax, xhtml-namespace, xhtml-element, xhtml-attribute, ...
    message: str  # the HL7 validator's wording where it has one
    line: int
    column: int


class _Source:
    """The parsed text; turns expat's byte offsets into line/column only when asked."""

    def __init__(self, text: str):
        self.text = text
        self.data = text.encode("utf-8")

    def position(self, byte_offset: int) -> tuple[int, int]:
        return _position(self.text, len(self.data[:byte_offset].decode("utf-8", "ignore")))


@dataclass(slots=True)
class _Element:
    name: str  # local name ("p"); qualified name if not in the XHTML namespace
    ns: str | None
    attributes: dict[str, str]
    source: _Source = field(repr=False)
    offset: int  # byte offset of the start tag (expat's CurrentColumnNumber is O(line) per call)
    children: list  # _Element | str (text)
    ns_declared: str | None = None  # namespace this element itself declares for its own name

    @property
    def line(self) -> int:
        return self.source.position(self.offset)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.offset)[1]


# --------------------------------------------------------------------------- parsing


class _Parse:
    """One expat pass: a small element tree plus the problems found on the way."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.problems: list[XhtmlProblem] = []
        self.root: _Element | None = None
        self.stack: list[_Element] = []
        self.pending: dict = {}
        self._run()

    def _problem(self, severity, rule, message, line, column):
        self.problems.append(XhtmlProblem(severity, rule, message, line, column))

    @staticmethod
    def _char_column(line: int, column: int) -> int:
        """expat counts characters (not bytes) from 0; we report from 1."""
        return column + 1

    def _run(self):
        text = self._blank_doctype(self.text)
        self.source = _Source(text)
        self._scan_entities(text)
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.namespace_prefixes = True
        parser.ordered_attributes = True
        # A foreign DTD that is never loaded: undefined entities are skipped, not fatal,
        # and nothing is fetched or expanded.
        parser.UseForeignDTD(True)
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.ExternalEntityRefHandler = lambda *args: 1
        parser.StartNamespaceDeclHandler = self._declare
        self.parser = parser
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        parser.ProcessingInstructionHandler = lambda target, data: self._problem(
            "error", "xhtml-instruction", f"Elements of type [instruction] cannot appear at {self._where()}",
            *self.source.position(parser.CurrentByteIndex))
        try:
            parser.Parse(text, True)
        except expat.ExpatError as e:
            self.root = None
            message, column = self._syntax_message(e)
            self._problem("error", "xhtml-syntax", "Error parsing XHTML: " + message, e.lineno, column)

    def _blank_doctype(self, text: str) -> str:
        """Report a DOCTYPE and blank it out, newlines kept so positions stay true."""
        self.declared: set[str] = set()
        for match in _DOCTYPE.finditer(text):
            line, column = _position(text, match.start())
            self._problem("error", "xhtml-doctype",
                          "Malformed XHTML: Found a DocType declaration, and these are not allowed "
                          "(XXE security vulnerability protection)", line, column)
            self.declared.update(_DECLARED_ENTITY.findall(match.group(0)))
        return _DOCTYPE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)

    def _scan_entities(self, text: str):
        for match in _ENTITY_REF.finditer(text):
            name = match.group(1)
            if name not in _XML_ENTITIES and name not in self.declared:
                line, column = _position(text, match.start())
                self._problem("error", "xhtml-entity", f"Invalid entity in the XHTML ('&{name};')", line, column)

    def _where(self) -> str:
        return "/".join(e.name for e in self.stack) or "div"

    def _declare(self, prefix, uri):
        self.pending[prefix] = uri

    def _start(self, name, attrs):
        ns, local, prefix = _split_name(name)
        declared = self.pending
        if declared:
            self.pending = {}
        attributes = {}
        for i in range(0, len(attrs), 2):
            key = attrs[i]
            if " " in key:  # a namespaced attribute
                a_ns, a_local, a_prefix = _split_name(key)
                key = "xml:" + a_local if a_ns == XML_NS else f"{a_prefix or a_ns}:{a_local}"
            attributes[key] = attrs[i + 1]
        element = _Element(local if ns in (XHTML_NS, None) else (f"{prefix}:{local}" if prefix else local),
                           ns, attributes, self.source, self.parser.CurrentByteIndex, [],
                           declared.get(prefix) if declared else None)
        stack = self.stack
        if stack:
            stack[-1].children.append(element)
        else:
            self.root = element
        stack.append(element)

    def _end(self, name):
        self.stack.pop()

    def _chars(self, data):
        if self.stack:
            children = self.stack[-1].children
            if children and isinstance(children[-1], str):
                children[-1] += data
            else:
                children.append(data)

    def _syntax_message(self, error: expat.ExpatError) -> tuple[str, int]:
        """expat's reason (in the HL7 validator's words where they differ) and the column."""
        column = self._char_column(error.lineno, error.offset)
        if error.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH] and self.stack:
            line = self.lines[error.lineno - 1] if error.lineno <= len(self.lines) else ""
            start = line.rfind("</", 0, column)
            found = re.match(r"</[^>\s]*>?", line[start:]) if start >= 0 else None
            if found:
                return f'Malformed XHTML: Found "{found.group(0)}" expecting "</{self.stack[-1].name}>"', start + 1
        return f"Malformed XHTML: {expat.ErrorString(error.code)}", column


@lru_cache(maxsize=64)
def _parsed(div: str) -> _Parse:
    """One parse per narrative, shared by txt-1, txt-2 and the structural checks."""
    return _Parse(div)


@lru_cache(maxsize=1024)
def _split_name(name: str) -> tuple[str | None, str, str | None]:
    parts = name.split(" ")
    if len(parts) == 1:
        return None, parts[0], None
    if len(parts) == 2:
        return parts[0], parts[1], None
    return parts[0], parts[1], parts[2]


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --------------------------------------------------------------------------- checks


def check_xhtml(div: str) -> list[XhtmlProblem]:
    """Every problem in one narrative ``div``, in document order."""
    return list(_check_xhtml(div))


@lru_cache(maxsize=256)
def _check_xhtml(div: str) -> tuple[XhtmlProblem, ...]:
    if not isinstance(div, str) or not div.strip():
        return (XhtmlProblem("error", "xhtml-syntax", "Error parsing XHTML: the narrative is empty", 1, 1),)
    parsed = _parsed(div)
    problems = list(parsed.problems)
    root = parsed.root
    if root is not None:
        problems.extend(_check_root(root))
        _check_tree(root, False, problems)
        problems.extend(_check_structure(root, "div"))
        problems.extend(_check_ids(root))
        problems.extend(_check_languages(root))
    return tuple(sorted(problems, key=lambda p: (p.line, p.column)))


def _check_root(root: _Element):
    if root.ns != XHTML_NS:
        yield XhtmlProblem("error", "xhtml-namespace",
                           f"Wrong namespace on the XHTML ('{root.ns or 'null'}', should be '{XHTML_NS}')",
                           root.line, root.column)
    if root.name != "div":
        yield XhtmlProblem("error", "xhtml-root", f"Wrong name on the XHTML ('{root.name}') - must start with div",
                           root.line, root.column)


def _check_tree(element: _Element, in_paragraph: bool, out: list) -> None:
    """Element and attribute names, namespaces and blocks in paragraphs, appended to ``out`` in
    document order (a list, not a generator per element: narratives have thousands of elements)."""
    for child in element.children:
        if type(child) is str:
            continue
        name = child.name
        if child.ns_declared is not None and child.ns_declared != XHTML_NS:
            out.append(XhtmlProblem("error", "xhtml-namespace",
                                    f"Wrong namespace on the XHTML ('{child.ns_declared}', should be '{XHTML_NS}')",
                                    child.line, child.column))
        if name not in ELEMENTS:
            out.append(XhtmlProblem("error", "xhtml-element", f"Invalid element name in the XHTML ('{name}')",
                                    child.line, child.column))
        if child.attributes:
            _check_attributes(child, out)
        if in_paragraph and name in BLOCK_IN_PARAGRAPH:
            out.append(XhtmlProblem("error", "xhtml-element-in-paragraph",
                                    f"Invalid element name inside a paragraph in the XHTML ('{name}')",
                                    child.line, child.column))
        if child.children:
            _check_tree(child, in_paragraph or name == "p", out)


def _check_attributes(element: _Element, out: list) -> None:
    for name, value in element.attributes.items():
        allowed = name in ATTRIBUTES or name.startswith("xmlns") or f"{element.name}.{name}" in ELEMENT_ATTRIBUTES
        if not allowed:
            if name == "xml:space":
                out.append(XhtmlProblem("information", "xhtml-xml-space",
                                        "The attribute 'xml:space' is legal but has a fixed value of 'preserve'. "
                                        "Its use is discouraged", element.line, element.column))
            else:
                rule = "xhtml-event-handler" if name.lower().startswith("on") else "xhtml-attribute"
                out.append(XhtmlProblem("error", rule,
                                        f"Invalid attribute name in the XHTML ('{name}' on '{element.name}')",
                                        element.line, element.column))
        if name in _URL_ATTRIBUTES or name == "style":
            out.extend(_check_attribute_value(element, name, value))


def _check_attribute_value(element: _Element, name: str, value: str):
    if name not in _URL_ATTRIBUTES and (name != "style" or ("(" not in value and ":" not in value)):
        return
    lowered = re.sub(r"[\x00-\x20]", "", value).lower()
    if any(scheme in lowered for scheme in _SCRIPT_SCHEMES) and (name in _URL_ATTRIBUTES or name == "style"):
        yield XhtmlProblem("error", "xhtml-script-url",
                           f"Script URL in the XHTML ('{name}' on '{element.name}'): scripts are not allowed",
                           element.line, element.column)
        return
    if name == "style" and "expression(" in lowered:
        yield XhtmlProblem("error", "xhtml-script-url",
                           f"Script expression in the XHTML style on '{element.name}': scripts are not allowed",
                           element.line, element.column)
    if name not in _URL_ATTRIBUTES:
        return
    if lowered.startswith("data:") and element.name != "img":
        yield XhtmlProblem("error", "xhtml-data-url",
                           f"data: URLs are only allowed for images ('{name}' on '{element.name}')",
                           element.line, element.column)
    if (element.name, name) in (("a", "href"), ("img", "src")):
        reason = url_problem(value)
        if reason is not None:
            yield XhtmlProblem("error", "xhtml-url", f"The URL is not valid because '({reason})': {value}",
                               element.line, element.column)


def url_problem(value: str) -> str | None:
    """Why an href/src is not a usable URL, per the HL7 validator's ``UrlUtil``; None if fine."""
    if value == "":
        return "URL is empty"
    if value.startswith("data:"):
        parts = value[5:].split(",")
        if len(parts) < 2:
            return "No data found in data: URL"
        if len(parts) > 2:
            return f"Comma found in data portion of data URL: {value}"
        header, data = parts
        if header.endswith(";base64") and not _is_base64(data):
            return f"The data should be valid base64 content for a data: URL: {value}"
        mimetype = header[: -len(";base64")] if header.endswith(";base64") else header
        if mimetype.strip() and not re.fullmatch(r"\s*[\w.+-]+/[\w.+-]+(\s*;.*)?", mimetype):
            return f"The mimetype portion of the data: URL is not valid ({mimetype}) in URL: {value}"
        return None
    if _URL_OK.fullmatch(value):
        return None
    invalid = [ch for ch in value if not (ch.isalnum() or ch in _URL_PUNCTUATION)]
    if not invalid:
        return None
    listed = ",".join(f"'{ch}'" for ch in sorted(set(invalid)))
    return f"URL contains Invalid Character: {listed}" if len(invalid) == 1 else \
        f"URL contains {len(invalid)} Invalid Characters: {listed}"


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(re.sub(r"\s", "", data), validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def _check_structure(element: _Element, path: str):
    """The validator's content-model rules (paragraphs, tables, lists)."""
    for child in element.children:
        if isinstance(child, str):
            continue
        cpath = f"{path}/{child.name}"
        name = child.name
        if name in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "address", "span", "dd", "dt", "caption"):
            yield from _no_blocks(child, cpath)
        elif name in ("br", "img", "hr", "area"):
            if any(not isinstance(c, str) or c for c in child.children):
                yield _structure(child, f"Elements of type {name} cannot have children")
        elif name in _TEXT_LEVEL:
            yield from _no_blocks(child, cpath)
            nested = _descendants_named(child, cpath, {name})
            if nested:
                yield _structure(child, f"Elements of type {name} at {cpath} cannot contain nested {name} at "
                                        f"{','.join(nested)}")
        only = _ONLY_CHILDREN.get(name)
        if only is not None:
            wrong = [("@text" if isinstance(c, str) else c.name) for c in child.children
                     if (isinstance(c, str) and _java_trim(c)) or (not isinstance(c, str) and c.name not in only)]
            if wrong:
                yield _structure(child, f"Elements of type {name} at {cpath} cannot have the following children: "
                                        f"{','.join(wrong)}")
        parents = _PARENTS.get(name)
        if parents is not None and element.name not in parents:
            yield _structure(child, f"Elements of type {name} must be in a {'|'.join(parents)}, not a "
                                    f"{element.name} at {cpath}")
        yield from _check_structure(child, cpath)


_ONLY_CHILDREN = {
    "table": ("tbody", "tr", "caption", "thead", "tfoot", "col", "colgroup"),
    "tr": ("td", "th"),
    "tbody": ("tr",), "thead": ("tr",), "tfoot": ("tr",),
    "ul": ("li",), "ol": ("li",),
    "dl": ("dd", "dt"),
    "map": ("area",),
}
_PARENTS = {
    "tr": ("table", "thead", "tfoot", "tbody"),
    "tbody": ("table",), "thead": ("table",), "tfoot": ("table",),
    "caption": ("table",), "colgroup": ("table",), "col": ("colgroup", "table"),
    "th": ("tr", "thead", "tfoot"), "td": ("tr", "thead", "tfoot"),
    "li": ("ul", "ol"),
    "dd": ("dl",), "dt": ("dl",),
}


def _no_blocks(element: _Element, path: str):
    found = _descendants_named(element, path, _NOT_IN_TEXT)
    if found:
        yield _structure(element, f"Found block structures inside a paragraph/text element {element.name} at {path}: "
                                  f"{','.join(found)}")


def _descendants_named(element: _Element, path: str, names) -> list[str]:
    found = []
    for child in element.children:
        if isinstance(child, str):
            continue
        cpath = f"{path}/{child.name}"
        if child.name in names:
            found.append(cpath)
        found.extend(_descendants_named(child, cpath, names))
    return found


def _structure(element: _Element, message: str) -> XhtmlProblem:
    return XhtmlProblem("error", "xhtml-structure", message, element.line, element.column)


def _check_ids(root: _Element):
    seen: dict[str, int] = {}
    first: dict[str, _Element] = {}
    for element in _walk(root):
        ident = element.attributes.get("id")
        names = [ident] if ident is not None else []
        anchor = element.attributes.get("name") if element.name == "a" else None
        if anchor is not None and anchor != ident:
            names.append(anchor)
        for n in names:
            seen[n] = seen.get(n, 0) + 1
            first.setdefault(n, element)
    duplicates = sorted(n for n, count in seen.items() if count > 1)
    if duplicates:
        summary = ", ".join(f"{n} ({seen[n]}x)" for n in duplicates)
        where = first[duplicates[0]]
        yield XhtmlProblem("warning", "xhtml-duplicate-id",
                           "The XHTML  the resource contains more than one node for each of the following node ids "
                           f"and anchor names: {summary}", where.line, where.column)


def _check_languages(root: _Element):
    languages, other = [], False
    for child in root.children:
        if isinstance(child, str):
            other = other or bool(_java_trim(child))
        elif child.name == "div" and "xml:lang" in child.attributes:
            languages.append(child.attributes["xml:lang"])
        else:
            other = True
    if languages and other:
        yield XhtmlProblem("warning", "xhtml-mixed-languages",
                           f"The xhtml has some language sections ({', '.join(languages)}), and also has content "
                           "that is not in a language section", root.line, root.column)


def _walk(element: _Element):
    stack = [element]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(c for c in reversed(e.children) if not isinstance(c, str))


# --------------------------------------------------------------------------- FHIRPath functions


@lru_cache(maxsize=1024)
def html_checks(div: str) -> bool:
    """txt-1 (``htmlChecks()``) as the HL7 validator evaluates it.

    Well-formed, and every element and attribute from the allowed lists, and no
    DOCTYPE.  Namespace, structure and URL problems are separate errors
    (``check_xhtml``), not txt-1 failures.
    """
    if not isinstance(div, str):
        return False
    parsed = _parsed(div)
    if parsed.root is None or any(p.rule == "xhtml-doctype" for p in parsed.problems):
        return False
    return all(_names_ok(e) for e in _walk(parsed.root))


def _names_ok(element: _Element) -> bool:
    if element.name not in ELEMENTS:
        return False
    return all(name.startswith("xmlns") or name in ATTRIBUTES or name == "xml:space"
               or f"{element.name}.{name}" in ELEMENT_ATTRIBUTES for name in element.attributes)


@lru_cache(maxsize=1024)
def has_content(div: str) -> bool:
    """txt-2 as the HL7 validator runs it: some non-whitespace text, or an image."""
    if not isinstance(div, str):
        return False
    parsed = _parsed(div)
    return parsed.root is not None and _has_content(parsed.root)


def _has_content(element: _Element) -> bool:
    for child in element.children:
        if isinstance(child, str):
            if _java_trim(child):
                return True
        elif child.name == "img" or _has_content(child):
            return True
    return False


_JAVA_WHITESPACE = "".join(chr(i) for i in range(33))


def _java_trim(text: str) -> str:
    """Java's String.trim(): strips characters up to U+0020 only (not NBSP)."""
    return text.strip(_JAVA_WHITESPACE)


# --------------------------------------------------------------------------- the narrative layer

_CODES = {"xhtml-structure": "structure", "xhtml-instruction": "structure",
          "xhtml-duplicate-id": "business-rule", "xhtml-mixed-languages": "business-rule"}
_SEVERITIES = {"error": Severity.ERROR, "warning": Severity.WARNING, "information": Severity.INFORMATION}


def check_node(node: Node) -> Iterator[Issue]:
    """Issues for one ``xhtml`` node (Narrative.div), located at the element."""
    if isinstance(node.value, str):
        yield from issues_for(node.value, node.expression, node.location)


def issues_for(div: str, expression: str, location: tuple = ()) -> Iterator[Issue]:
    """The narrative rules' problems with ``div`` as Issues at ``expression``.

    Positions inside the narrative go into the message for parse errors only,
    as the HL7 validator words them ("... at line 2 column 7").
    """
    for problem in check_xhtml(div):
        message = problem.message
        if problem.rule == "xhtml-syntax":
            message = f"{message} at line {problem.line} column {problem.column}"
        yield Issue(_SEVERITIES[problem.severity], _CODES.get(problem.rule, "invalid"), message, problem.rule,
                    expression, location=location)


__all__ = ["XhtmlProblem", "check_xhtml", "check_node", "issues_for", "html_checks", "has_content", "url_problem", "ELEMENTS",
           "ATTRIBUTES", "ELEMENT_ATTRIBUTES", "XHTML_NS"]
