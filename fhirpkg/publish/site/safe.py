"""Resource narratives on the site, only after the validator's own XHTML safety check.

A ``text.div`` is shown when ``fhirpkg.validation.xhtml.check_xhtml`` finds no
error in it (no scripts, event handlers, forms, DOCTYPEs or script URLs, only
the narrative elements the spec allows).  It is then re-serialised from the
parsed tree: text and attributes escaped again, ids and same-page anchors
prefixed so they cannot collide with the page's own, references to resources
of this package pointed at their pages, and anything that would load from
elsewhere (a remote image) turned into a plain link.  A narrative that fails
the check, or any narrative when the checker is not importable, is shown only
as escaped source.  Its headings become bold paragraphs, so the page keeps one
outline (one h1, no skipped levels).
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from fhirpkg.publish.site.html import anchor_id, esc, is_web_url, tag
from fhirpkg.publish.site.index import SiteIndex
from fhirpkg.validation.xhtml import check_xhtml

VOID = frozenset({"br", "hr", "img", "col", "area"})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


@dataclass(frozen=True)
class Verdict:
    shown: bool
    reason: str = ""  # why not, for the notice


@dataclass
class Verdicts:
    """Narrative verdicts by digest of the div: those an earlier build reached, and this one's (what
    the build cache keeps: the check is a pure function of the text)."""

    earlier: dict = field(default_factory=dict)
    reached: dict = field(default_factory=dict)

    def of(self, div: str) -> Verdict:
        key = hashlib.sha256(div.encode("utf-8", "surrogatepass")).hexdigest()
        found = self.reached.get(key) or self.earlier.get(key) or _verdict(div)
        self.reached[key] = found
        return found


def verdict(div: str, known: Verdicts | None = None) -> Verdict:
    """Whether ``div`` may be shown (``known``: verdicts already reached)."""
    return _verdict(div) if known is None else known.of(div)


def _verdict(div: str) -> Verdict:
    errors = [p for p in check_xhtml(div) if str(p.severity) in ("error", "fatal")]
    if errors:
        rules = sorted({str(getattr(p, "rule", "xhtml")) for p in errors})
        return Verdict(False, f"it failed the XHTML safety check ({len(errors)} error(s): {', '.join(rules)})")
    return Verdict(True)


def narrative(resource: dict, index: SiteIndex, prefix: str) -> str:
    """The resource's narrative as HTML, or an escaped notice; '' when it has none."""
    text = resource.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    if not isinstance(div, str) or not div.strip():
        return ""
    status = text.get("status", "")
    v = verdict(div, index.narrative_verdicts)
    if v.shown:
        try:
            root = ET.fromstring(div)
        except ET.ParseError:
            v = Verdict(False, "it could not be parsed")
        else:
            body = _element(root, index, prefix)
            return tag("div", body, class_="narrative", data_status=status)
    return (tag("p", f"The narrative is not shown because {esc(v.reason)}. Its source, as text:", class_="notice")
            + tag("pre", tag("code", esc(div)), class_="narrative-source"))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _href(value: str, index: SiteIndex, prefix: str) -> str | None:
    if value.startswith("#"):
        return "#" + anchor_id(prefix, value[1:])
    if is_web_url(value):
        hit = index.resolve(value)
        return hit.page if hit is not None else value
    hit = index.resolve(value)
    return hit.page if hit is not None else None


def _element(el: ET.Element, index: SiteIndex, prefix: str) -> str:
    name = _local(el.tag)
    attributes: list[tuple[str, str]] = []
    remote_src = None
    for key, value in el.attrib.items():
        key = "lang" if key == "{http://www.w3.org/XML/1998/namespace}lang" else _local(key)
        if key == "xmlns" or key.startswith("xmlns"):
            continue
        if key == "id" or (key == "name" and name in ("a", "map")):
            value = anchor_id(prefix, value)
        elif key == "href":
            value = _href(value, index, prefix)
        elif key == "src":
            if value.startswith("data:"):
                pass
            elif is_web_url(value):
                remote_src, value = value, None
            else:
                value = None
        elif key in ("usemap", "longdesc", "cite"):
            value = None
        if value is not None:
            attributes.append((key, value))
    if name == "img" and remote_src:  # never load from elsewhere: link to the image instead
        alt = dict(attributes).get("alt") or "image"
        return f'<a href="{esc(remote_src)}">[{esc(alt)}]</a>'
    if name in HEADINGS:  # the page's own headings are its outline; a narrative's become bold paragraphs
        name = "p"
        attributes = [(k, v) for k, v in attributes if k != "class"] + [("class", "narrative-heading")]
    attr_text = "".join(f' {k}="{esc(v)}"' for k, v in attributes)
    if name in VOID:
        return f"<{name}{attr_text}>"
    inner = [esc(el.text or "")]
    for child in el:
        inner.append(_element(child, index, prefix))
        inner.append(esc(child.tail or ""))
    return f"<{name}{attr_text}>{''.join(inner)}</{name}>"
