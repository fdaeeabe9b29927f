"""Small HTML helpers: every piece of resource text passes through ``esc`` on its way out.

The site is written as strings (no template engine), so the one rule that keeps
it safe is here: text is escaped where it is placed, attributes are always
quoted and escaped, and links get an ``href`` only for http(s) URLs or pages
this site generated.
"""
from __future__ import annotations

import re
from html import escape

_URL_OK = re.compile(r"^https?://[^\s<>\"'`\\]+$")
_ANCHOR_OK = re.compile(r"[^A-Za-z0-9_.:-]")


def esc(value) -> str:
    """Text for HTML content or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def attrs(**kw) -> str:
    """` name="value"` pairs in the given order; None drops an attribute, ``class_`` is ``class``."""
    out = []
    for key, value in kw.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f' {name}' if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


def tag(name: str, content: str = "", **kw) -> str:
    """An element whose content is already HTML."""
    return f"<{name}{attrs(**kw)}>{content}</{name}>"


def is_web_url(url) -> bool:
    """An absolute http(s) URL that can be written into an href unchanged."""
    return isinstance(url, str) and bool(_URL_OK.match(url))


def link(href: str | None, text: str, **kw) -> str:
    """A link when ``href`` is a site page or a web URL, else the escaped text."""
    if href and (is_web_url(href) or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", href)):
        return tag("a", esc(text), href=href, **kw)
    return esc(text)


def anchor_id(*parts) -> str:
    """An HTML id from FHIR ids (already [A-Za-z0-9-.]) with anything else replaced."""
    return _ANCHOR_OK.sub("-", "-".join(str(p) for p in parts if p not in (None, "")))


def code(text) -> str:
    return tag("code", esc(text))


# --- markdown (FHIR ``markdown`` values) -------------------------------------------------

_INLINE = re.compile(
    r"\[(?P<ltext>[^\]\n]+)\]\((?P<lurl>https?://[^)\s]+)\)"  # [text](url)
    r"|\*\*(?P<bold>[^*\n]+)\*\*"
    r"|`(?P<code>[^`\n]+)`"
    r"|(?P<url>https?://[^\s<>()]+[^\s<>().,;:!?'\"])"
)
_RESERVED = re.compile(r"^https?://([^/:?#]+\.)?(example(\.com|\.org|\.net)?|localhost|invalid|test)([/:?#]|$)", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def inline(text: str) -> str:
    """Escaped text with the few inline markdown forms FHIR content uses (links, bold, code)."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(esc(text[pos:m.start()]))
        if m.group("ltext") is not None:
            out.append(link(m.group("lurl"), m.group("ltext")))
        elif m.group("bold") is not None:
            out.append(tag("strong", esc(m.group("bold"))))
        elif m.group("code") is not None:
            out.append(code(m.group("code")))
        elif _RESERVED.match(m.group("url")):  # example domains (RFC 2606) are placeholders, not addresses
            out.append(esc(m.group("url")))
        else:
            out.append(link(m.group("url"), m.group("url")))
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def markdown(text, **kw) -> str:
    """Paragraphs and bullet lists from FHIR markdown; everything else stays literal (escaped)."""
    if not isinstance(text, str) or not text.strip():
        return ""
    blocks = re.split(r"\n[ \t]*\n", text.strip().replace("\r\n", "\n"))
    html = []
    for block in blocks:
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if lines and all(_LIST_ITEM.match(ln) for ln in lines):
            items = "".join(tag("li", inline(_LIST_ITEM.sub("", ln, count=1))) for ln in lines)
            ordered = lines[0].lstrip()[0].isdigit()
            html.append(tag("ol" if ordered else "ul", items))
        else:
            html.append(tag("p", "<br>".join(inline(ln.strip()) for ln in lines)))
    return tag("div", "".join(html), **kw) if kw else "".join(html)


def sentence_case(name: str) -> str:
    """'No Prior Platinum Chemotherapy' -> 'No prior platinum chemotherapy' (acronyms kept)."""
    words = name.split()
    return " ".join(w if i == 0 or not (w[:1].isupper() and w[1:].islower()) else w.lower()
                    for i, w in enumerate(words))


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap by character count (for SVG text, which does not wrap by itself)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:  # a single over-long word is cut
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width - 1] + "-")
            word = word[width - 1:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines
