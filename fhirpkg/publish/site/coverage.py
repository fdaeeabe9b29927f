"""The coverage page: each claim of the source article and the artifacts that carry it.

The claim map is the content engineer's ``evidence/claims.json`` (beside
``definitions/``).  Its exact shape is read tolerantly — a list of claims, or
``{"claims": [...]}``, or an object keyed by claim id — each claim with an
``id``, its ``text``, the ``carriers`` (``{"Type/id": [phrases]}``, or a list of canonical URLs,
``Type/id`` or ids, each possibly an object with ``resource`` and ``phrases``),
``citations`` (Citation ids) and an ``attribution`` note where no citation exists.  The page checks what it can against the resources themselves:
that every carrier exists, that each phrase really occurs in a carrier, and
which resources name the claim in their own text ("claims carried: S4, S5").
Without the file the page says so and shows only the resources' own mentions.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fhirpkg.publish.site.html import code, esc, link
from fhirpkg.publish.site.index import Entry, SiteIndex
from fhirpkg.publish.site.pages import Page, section, short_citation

CLAIMS_FILE = Path("evidence") / "claims.json"
_CLAIM_ID = re.compile(r"\bS(\d{1,3})\b")
TEXT_KEYS = ("text", "claim_text", "statement", "claim", "summary", "source_text", "description")
CARRIER_KEYS = ("carriers", "carried_by", "carriedBy", "resources", "artifacts", "carrier")
TARGET_KEYS = ("resource", "url", "canonical", "reference", "key", "id", "file", "path")


@dataclass(frozen=True)
class Carrier:
    target: str
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    id: str
    text: str = ""
    source_ref: str = ""
    carriers: tuple[Carrier, ...] = ()
    phrases: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ClaimMap:
    source: str
    claims: tuple[Claim, ...]
    problem: str = ""


def _strings(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(s for v in value for s in _strings(v))
    return ()


def _target(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for k in TARGET_KEYS:
            if isinstance(value.get(k), str):
                return value[k]
    return ""


def _claim(cid: str, item) -> Claim:
    if isinstance(item, str):
        return Claim(cid, item)
    if not isinstance(item, dict):
        return Claim(cid)
    text = next((item[k] for k in TEXT_KEYS if isinstance(item.get(k), str) and item[k] != cid), "")
    raw = next((item[k] for k in CARRIER_KEYS if item.get(k)), [])
    carriers = []
    if isinstance(raw, dict):  # {"Type/id": ["phrase", ...]}
        carriers = [Carrier(str(k), _strings(v)) for k, v in raw.items()]
    else:
        for c in raw if isinstance(raw, list) else [raw]:
            target = _target(c)
            if target:
                phrases = _strings(c.get("phrases") or c.get("phrase")) if isinstance(c, dict) else ()
                carriers.append(Carrier(target, phrases))
    raw_cites = item.get("citations") or item.get("evidence") or []
    citations = tuple(t for t in map(_target, raw_cites if isinstance(raw_cites, list) else [raw_cites]) if t)
    ref = item.get("source_ref") or item.get("ref") or item.get("reference_number") or ""
    numbered = re.match(r"^\[(\w+)\]\s*", text)  # "[6] NEPC often ..." : the source article's reference
    if numbered and not ref:
        ref, text = f"[{numbered.group(1)}]", text[numbered.end():]
    note = item.get("attribution") or item.get("note") or item.get("gap") or item.get("status") or ""
    return Claim(cid, text, str(ref), tuple(carriers), _strings(item.get("phrases") or item.get("phrase")),
                 citations, str(note) if isinstance(note, str) else "")


def parse_claims(doc) -> tuple[Claim, ...]:
    items = doc.get("claims", doc) if isinstance(doc, dict) else doc
    claims = []
    if isinstance(items, dict):
        for key, value in items.items():
            cid = (value.get("id") if isinstance(value, dict) else None) or key
            if _CLAIM_ID.fullmatch(str(cid)) or isinstance(value, dict) and value.get("id"):
                claims.append(_claim(str(cid), value))
    elif isinstance(items, list):
        for value in items:
            cid = value.get("id") or value.get("claim_id") if isinstance(value, dict) else None
            if cid:
                claims.append(_claim(str(cid), value))
    return tuple(sorted(claims, key=lambda c: _order(c.id)))


def _order(cid: str):
    m = _CLAIM_ID.search(cid)
    return (int(m.group(1)) if m else 10**6, cid)


def load(path: Path, shown_as: str) -> ClaimMap | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return ClaimMap(shown_as, (), f"it is not readable JSON ({exc.__class__.__name__})")
    claims = parse_claims(doc)
    return ClaimMap(shown_as, claims, "" if claims else "no claims were found in it")


# --- checks against the resources -----------------------------------------------------------

def resolve_loose(index: SiteIndex, target: str) -> Entry | None:
    """A canonical, ``Type/id``, a file name such as ``PlanDefinition/x.json``, or a bare id."""
    hit = index.resolve(target)
    if hit is not None:
        return hit
    stem = re.sub(r"\.json$", "", target.replace("\\", "/")).removeprefix("definitions/")
    hit = index.resolve(stem)
    if hit is not None:
        return hit
    same = [e for e in index.entries if e.id == stem.rsplit("/", 1)[-1]]
    return same[0] if len(same) == 1 else None


def _norm(text: str) -> str:
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def _all_text(value) -> str:
    """Every string of a resource except its narrative, one per line."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(x for k, x in v.items() if k != "text")
        elif isinstance(v, list):
            stack.extend(v)
    return "\n".join(reversed(out))


def _own_words(resource: dict) -> str:
    """The resource's prose about itself: top-level strings and its artifact-* extensions."""
    parts = [v for v in resource.values() if isinstance(v, str)]
    parts += [v for ext in resource.get("extension") or () if isinstance(ext, dict)
              for k, v in ext.items() if k.startswith("value") and isinstance(v, str)]
    return "\n".join(parts)


def declared(index: SiteIndex) -> dict[str, list[Entry]]:
    """Claim id -> resources whose own text names it (e.g. 'Source-article claims carried: S4, S5')."""
    out: dict[str, list[Entry]] = {}
    for e in index.entries:
        text = _own_words(e.resource)
        if "claim" not in text.lower():
            continue
        for sentence in re.split(r"(?<=[.;])\s+|\n", text):
            if "claim" not in sentence.lower():
                continue
            for m in _CLAIM_ID.finditer(sentence):
                lst = out.setdefault(f"S{m.group(1)}", [])
                if e not in lst:
                    lst.append(e)
    return out


class _Texts(dict):
    """Normalised text of a resource, computed when a phrase is first looked up in it."""

    def text(self, entry: Entry) -> str:
        if entry.key not in self:
            self[entry.key] = _norm(_all_text(entry.resource))
        return self[entry.key]


def coverage_page(claims: ClaimMap | None, index: SiteIndex) -> Page:
    named = declared(index)
    texts = _Texts()
    if claims is None or claims.problem:
        why = (f"<code>{esc(CLAIMS_FILE.as_posix())}</code> was not found beside <code>definitions/</code>"
               if claims is None else f"<code>{esc(claims.source)}</code> could not be used: {esc(claims.problem)}")
        rows = "".join(
            f'<tr><th scope="row" id="{esc(cid)}">{esc(cid)}</th><td>'
            + ", ".join(link(e.page, e.title) for e in entries) + "</td></tr>"
            for cid, entries in sorted(named.items(), key=lambda kv: _order(kv[0])))
        body = (f'<p class="notice">The claim map is not available: {why}. Below are only the claims the resources '
                "name in their own text; the claims' wording and their citations come from the claim map.</p>"
                + (f'<table class="coverage"><caption>Claims named by resources</caption><thead><tr>'
                   f'<th scope="col">Claim</th><th scope="col">Named in</th></tr></thead><tbody>{rows}</tbody></table>'
                   if rows else "<p>No resource names a claim.</p>"))
        return Page("coverage.html", "Coverage", "<h1>Source-claim coverage</h1>" + body)
    rows, carried, missing_targets, missing_phrases = [], 0, 0, 0
    for c in claims.claims:
        cells = []
        found_any = False
        for car in c.carriers:
            hit = resolve_loose(index, car.target)
            if hit is None:
                missing_targets += 1
                cells.append(f'<li class="problem">{code(car.target)} — <strong>not in this package</strong></li>')
                continue
            found_any = True
            checks = []
            for phrase in car.phrases:
                ok = _norm(phrase) in texts.text(hit)
                missing_phrases += not ok
                checks.append(f'<span class="{"ok" if ok else "problem"}">“{esc(phrase)}” '
                              f'{"(found)" if ok else "<strong>(not found)</strong>"}</span>')
            cells.append(f"<li>{link(hit.page, hit.key)}" + (f"<br>{'; '.join(checks)}" if checks else "") + "</li>")
        carriers_html = f"<ul>{''.join(cells)}</ul>" if cells else '<p class="problem"><strong>No carrier</strong></p>'
        hits = [resolve_loose(index, car.target) for car in c.carriers]
        hits = [h for h in hits if h is not None]
        phrase_checks = []
        for phrase in c.phrases:
            ok = any(_norm(phrase) in texts.text(h) for h in hits)
            missing_phrases += not ok
            phrase_checks.append(f'<li class="{"ok" if ok else "problem"}">“{esc(phrase)}” — '
                                 f'{"found in a carrier" if ok else "<strong>not found in any carrier</strong>"}</li>')
        cites = []
        for ref in c.citations:
            hit = resolve_loose(index, ref)
            cites.append(f"<li>{link(hit.page, short_citation(hit)) if hit else code(ref)}</li>")
        also = ", ".join(link(e.page, e.id) for e in named.get(c.id, []))
        carried += found_any
        text = esc(c.text) + (f' <span class="kind">source ref {esc(c.source_ref)}</span>' if c.source_ref else "")
        note = f'<p class="kind">{esc(c.note)}</p>' if c.note else ""
        rows.append(f'<tr id="{esc(c.id)}"><th scope="row">{esc(c.id)}</th><td>{text}{note}</td><td>{carriers_html}'
                    + (f"<ul>{''.join(phrase_checks)}</ul>" if phrase_checks else "") + "</td>"
                    f"<td>{'<ul>' + ''.join(cites) + '</ul>' if cites else '—'}</td><td>{also or '—'}</td></tr>")
    summary = (f"<p>{carried} of {len(claims.claims)} claims have at least one carrier in this package; "
               f"{missing_targets} carrier reference(s) do not resolve and {missing_phrases} phrase(s) were not found "
               f"in the carrier text. Read from <code>{esc(claims.source)}</code>.</p>")
    table = ('<table class="coverage"><caption>Source-article claims and the artifacts that carry them</caption>'
             '<thead><tr><th scope="col">Claim</th><th scope="col">Source article says</th>'
             '<th scope="col">Carried by (phrase check)</th><th scope="col">Citations</th>'
             f'<th scope="col">Named in resource text</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return Page("coverage.html", "Coverage", "<h1>Source-claim coverage</h1>" + summary + section("Claims", table))
