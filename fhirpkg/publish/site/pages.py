"""One page per PlanDefinition, ActivityDefinition, MedicationKnowledge, ResearchStudy (and the rest).

Each page is a function of one index entry: the resource's own elements in
reading order, links derived from its references, who refers to it, its
narrative (after the safety check) and its JSON, collapsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fhirpkg.fhir.serialize import dumps
from fhirpkg.publish import citation
from fhirpkg.publish.site import pathway as pw
from fhirpkg.publish.site.html import anchor_id, code, esc, is_web_url, link, markdown, tag
from fhirpkg.publish.site.index import ATC, Entry, SiteIndex, artifact, code_keys, codings, review_tags, status_of, system_label, text_of
from fhirpkg.publish.site.safe import narrative

RELATED_TYPES = {"citation": "Citation", "documentation": "Documentation", "depends-on": "Depends on",
                 "derived-from": "Derived from", "composed-of": "Composed of", "justification": "Justification",
                 "predecessor": "Predecessor", "successor": "Successor", "supported-with": "Supported with"}
BEHAVIOURS = (("groupingBehavior", "Grouping"), ("selectionBehavior", "Selection"),
              ("requiredBehavior", "Required"), ("precheckBehavior", "Pre-check"),
              ("cardinalityBehavior", "Cardinality"))
CUD_SECTIONS = (("warning", "Monitoring and warnings"), ("undesirable-effect", "Side effects"),
                ("contraindication", "Contraindications"), ("interaction", "Interactions"),
                ("indication", "Indications"))


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    main: str


# --- shared blocks --------------------------------------------------------------------------

def dl(rows) -> str:
    """A description list from (term, html) pairs; empty values are left out."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows if v)
    return f'<dl class="props">{items}</dl>' if items else ""


def section(title: str, body: str, sid: str | None = None, level: int = 2) -> str:
    if not body:
        return ""
    sid = sid or anchor_id(re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"))
    return f'<section aria-labelledby="{esc(sid)}"><h{level} id="{esc(sid)}">{esc(title)}</h{level}>{body}</section>'


def ref_link(index: SiteIndex, ref, label: str | None = None) -> str:
    """A link to the page of a referenced resource of this package, else the reference as text.

    Canonical URLs and references are identifiers, not addresses: one that is not in
    this package is shown, never linked.
    """
    hit = index.resolve(ref)
    if hit is not None:
        return link(hit.page, label or hit.title)
    return esc(label or ref) + (f" {code(ref)}" if label and ref and label != ref else "")


def badges(resource: dict) -> str:
    bits = []
    status = status_of(resource)
    if status:
        bits.append(tag("span", f"Status: {esc(status)}", class_=f"badge status-{anchor_id(status)}"))
    exp = artifact(resource, "experimental")
    if exp is True:
        bits.append(tag("span", "Experimental", class_="badge experimental"))
    for t in review_tags(resource):
        bits.append(tag("span", esc(t), class_="badge review"))
    return tag("p", " ".join(bits), class_="badges") if bits else ""


def codes_table(value, caption: str) -> str:
    """Codes with their systems: the friendly name and the system URI."""
    rows = []
    for c in codings(value):
        label = system_label(c.get("system"))
        system = (f"{esc(label)}<br>" if label else "") + code(c.get("system", ""))
        rows.append(f"<tr><td>{system}</td><td>{code(c.get('code', ''))}</td><td>{esc(c.get('display', ''))}</td></tr>")
    if not rows:
        return ""
    return (f'<table class="codes"><caption>{esc(caption)}</caption><thead><tr><th scope="col">System</th>'
            f'<th scope="col">Code</th><th scope="col">Display</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def related_artifacts(artifacts, index: SiteIndex) -> str:
    items = []
    for ra in artifacts or ():
        if not isinstance(ra, dict):
            continue
        kind = RELATED_TYPES.get(ra.get("type", ""), ra.get("type", ""))
        label = ra.get("display") or ra.get("label") or ra.get("citation") or ""
        target = ra.get("resource") or (ra.get("resourceReference") or {}).get("reference")
        doc_url = (ra.get("document") or {}).get("url") if isinstance(ra.get("document"), dict) else None
        if target:
            body = ref_link(index, target, label or None)
        elif doc_url:
            body = link(doc_url, label or doc_url)
        else:
            body = esc(label)
        if ra.get("label") and ra.get("display") and ra["label"] not in body:
            body = f"{esc(ra['label'])}: {body}"
        items.append(f'<li><span class="kind">{esc(kind)}</span> {body}</li>')
    return f'<ul class="artifacts">{"".join(items)}</ul>' if items else ""


def backlinks(entry: Entry, index: SiteIndex) -> str:
    """Who refers to this resource, one line per referrer with the elements that do."""
    by_source: dict[str, tuple[Entry, list[str]]] = {}
    for b in index.referrers(entry):
        by_source.setdefault(b.source.key, (b.source, []))[1].append(b.element)
    items = [f"<li>{link(src.page, src.title)} <span class=\"kind\">{esc(src.type)} · {esc(', '.join(els))}</span></li>"
             for src, els in sorted(by_source.values(), key=lambda v: (v[0].type, v[0].title, v[0].key))]
    return section("Referenced by", f'<ul class="backlinks">{"".join(items)}</ul>' if items else "",
                   sid="referenced-by")


def clinical_use_sections(uses: list[Entry]) -> str:
    """Side effects, monitoring, contraindications... from ClinicalUseDefinitions, grouped by type."""
    out = []
    for kind, title in CUD_SECTIONS:
        items = [u for u in uses if u.resource.get("type") == kind]
        if items:
            lis = "".join(f"<li>{esc(cud_text(u.resource))} <span class=\"kind\">({link(u.page, 'details')})</span></li>"
                          for u in items)
            out.append(section(title, f"<ul>{lis}</ul>", sid=anchor_id(kind)))
    return "".join(out)


def uses_naming(entry: Entry, index: SiteIndex) -> list[Entry]:
    """ClinicalUseDefinitions whose subject is this resource."""
    seen: dict[str, Entry] = {}
    for b in index.referrers(entry):
        if b.source.type == "ClinicalUseDefinition" and b.element == "subject":
            seen.setdefault(b.source.key, b.source)
    return list(seen.values())


def source_blocks(entry: Entry, index: SiteIndex, shared_page: bool = False) -> str:
    """Narrative (checked) and JSON, both collapsed."""
    prefix = f"n-{entry.id}" if shared_page else "n"
    narr = narrative(entry.resource, index, prefix)
    out = []
    if narr:
        out.append(f'<details class="narrative-box"><summary>Narrative (text.div, {esc((entry.resource.get("text") or {}).get("status", ""))})'
                   f"</summary>{narr}</details>")
    out.append(f'<details class="json"><summary>Resource JSON ({esc(entry.key)})</summary>'
               f'<pre><code>{esc(dumps(entry.resource, cache=index.json_texts))}</code></pre></details>')
    return "".join(out)


def header(entry: Entry, index: SiteIndex, kind: str = "") -> str:
    r = entry.resource
    url = entry.url
    rows = [("Canonical URL", code(url) if url else ""),
            ("Version", esc(artifact(r, "version") or "")),
            ("Identifier", ", ".join(f"{code(i.get('value', ''))} <span class=\"kind\">{esc(system_label(i.get('system')) or i.get('system', ''))}</span>"
                                     for i in r.get("identifier") or () if isinstance(i, dict))),
            ("Date", esc(artifact(r, "date") or "")),
            ("Publisher", esc(artifact(r, "publisher") or ""))]
    return (f'{trail(entry, index)}<p class="rtype">{esc(kind or entry.type)} <code>{esc(entry.key)}</code></p>'
            f"<h1>{esc(entry.title)}</h1>{badges(r)}{dl(rows)}")


def trail(entry: Entry, index: SiteIndex) -> str:
    """Where the resource sits in the pathway: protocol › action › definition › action › … (breadcrumbs)."""
    steps = index.trails.get(entry.key)
    if not steps:
        return ""
    items = []
    for source, action_id, title in steps:
        items.append(f"<li>{link(source.page, source.title)}</li>")
        anchor = "#" + anchor_id("action", action_id) if action_id else ""
        items.append(f"<li>{link(source.page + anchor, title)}</li>")
    items.append(f'<li aria-current="page">{esc(entry.title)}</li>')
    return f'<nav class="trail" aria-label="Position in the pathway"><ol>{"".join(items)}</ol></nav>'



def description(resource: dict) -> str:
    desc = artifact(resource, "description")
    return section("Description", markdown(desc)) if desc else ""


def texts(resource: dict, skip=()) -> str:
    """description, usage, purpose (or their artifact-* extensions)."""
    out = [] if "description" in skip else [description(resource)]
    for name, title in (("usage", "Usage"), ("purpose", "Purpose")):
        value = artifact(resource, name)
        if value:
            out.append(section(title, markdown(value)))
    return "".join(out)


def footer_texts(resource: dict) -> str:
    value = artifact(resource, "copyright")
    return section("Copyright", markdown(value)) if value else ""


# --- PlanDefinition -------------------------------------------------------------------------

def _conditions(action: dict) -> str:
    items = []
    for c in action.get("condition") or ():
        if not isinstance(c, dict):
            continue
        expr = c.get("expression") or {}
        desc = expr.get("description") or ""
        formal = expr.get("expression")
        lang = expr.get("language", "")
        bits = esc(desc)
        if formal:
            bits += f' <span class="expr">{code(formal)} <span class="kind">{esc(lang)}</span></span>'
        items.append(f'<li><span class="kind">{esc(c.get("kind", ""))}</span> {bits}</li>')
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _inputs(action: dict, name: str) -> str:
    items = []
    for i in action.get(name) or ():
        if not isinstance(i, dict):
            continue
        req = i.get("requirement") or {}
        codes = "; ".join(f"{esc(c.get('display') or c.get('code'))} {code(c.get('code', ''))} "
                          f"<span class=\"kind\">{esc(system_label(c.get('system')) or c.get('system', ''))}</span>"
                          for f in req.get("codeFilter") or () for c in f.get("code") or () if isinstance(c, dict))
        items.append(f"<li>{esc(i.get('title') or req.get('type') or '')}"
                     + (f" ({esc(req.get('type'))})" if req.get("type") and i.get("title") else "")
                     + (f": {codes}" if codes else "") + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _related_actions(action: dict, titles: dict[str, str]) -> str:
    items = []
    for rel in action.get("relatedAction") or ():
        if isinstance(rel, dict):
            tid = rel.get("targetId", "")
            items.append(f"<li>{esc(pw.RELATION.get(rel.get('relationship', ''), rel.get('relationship', '')))} "
                         f"{link('#' + anchor_id('action', tid), titles.get(tid, tid))}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _definition(action: dict, index: SiteIndex) -> str:
    ref = action.get("definitionCanonical") or action.get("definitionUri")
    if not ref:
        return ""
    hit = index.resolve(ref)
    if hit is None:
        return ref_link(index, ref)
    return f'{link(hit.page, hit.title)} <span class="kind">{esc(hit.type)}</span>'


def _action(action: dict, level: int, index: SiteIndex, titles: dict[str, str], path: str) -> str:
    aid = anchor_id("action", action.get("id") or path)
    title = action.get("title") or action.get("textEquivalent") or action.get("id") or "Action"
    timing = ""
    if isinstance(action.get("timingTiming"), dict):
        timing = pw.describe_timing(action["timingTiming"])
    cycle_days = pw.days_of_cycle(action)
    behaviour = "; ".join(f"{label}: {esc(pw.SELECTION.get(action[k], action[k]) if k == 'selectionBehavior' else action[k])}"
                          for k, label in BEHAVIOURS if action.get(k))
    goals = ", ".join(link("#" + anchor_id("goal", g), g) for g in action.get("goalId") or ())
    rows = [("Description", markdown(action.get("description"))),
            ("Text equivalent", markdown(action.get("textEquivalent"))
             if action.get("textEquivalent") != action.get("title") else ""),
            ("Timing", esc(timing)), ("Days", esc(cycle_days)), ("Behaviour", behaviour),
            ("Code", esc(text_of(action.get("code")))),
            ("Reason", esc("; ".join(text_of(c) for c in action.get("reason") or ()))),
            ("For whom (conditions)", _conditions(action)), ("Inputs", _inputs(action, "input")),
            ("Outputs", _inputs(action, "output")), ("Related actions", _related_actions(action, titles)),
            ("Goals", goals), ("Definition", _definition(action, index)),
            ("Evidence", related_artifacts(action.get("documentation"), index))]
    children = [c for c in action.get("action") or () if isinstance(c, dict)]
    sub = "".join(_action(c, min(level + 1, 6), index, titles, f"{path}-{n}") for n, c in enumerate(children))
    return (f'<section class="action" aria-labelledby="{esc(aid)}"><h{level} id="{esc(aid)}">{esc(title)}</h{level}>'
            f"{dl(rows)}{f'<div class=sub>{sub}</div>' if sub else ''}</section>")


def _all_actions(actions):
    for a in actions or ():
        if isinstance(a, dict):
            yield a
            yield from _all_actions(a.get("action"))


def _goals(resource: dict, index: SiteIndex) -> str:
    out = []
    for g in resource.get("goal") or ():
        if not isinstance(g, dict):
            continue
        gid = anchor_id("goal", g.get("id") or len(out))
        rows = [("Category", esc(text_of(g.get("category")))), ("Priority", esc(text_of(g.get("priority")))),
                ("Addresses", esc("; ".join(text_of(a) for a in g.get("addresses") or ()))),
                ("Documentation", related_artifacts(g.get("documentation"), index))]
        out.append(f'<li id="{esc(gid)}"><strong>{esc(text_of(g.get("description")))}</strong>{dl(rows)}</li>')
    return f'<ul class="goals">{"".join(out)}</ul>' if out else ""


def _for_whom(resource: dict) -> str:
    rows = []
    for uc in resource.get("useContext") or ():
        if isinstance(uc, dict):
            value = uc.get("valueCodeableConcept") or uc.get("valueReference") or uc.get("valueQuantity") or {}
            rows.append((text_of(uc.get("code")) or "Context", esc(text_of(value))))
    subject = resource.get("subjectCodeableConcept") or resource.get("subjectReference")
    if subject:
        rows.append(("Subject", esc(text_of(subject))))
    return dl(rows)


def _what(option: pw.Option) -> str:
    """What an option leads to when it is not a regimen: its definition's first action, else its title."""
    if option.target is None:
        return "Not in this package"
    for a in option.target.resource.get("action") or ():
        if isinstance(a, dict) and (a.get("title") or a.get("textEquivalent")):
            return f"{option.kind}: {a.get('title') or a.get('textEquivalent')}"
    return f"{option.kind}: {option.target.title}"


def pathway_figure(p: pw.Pathway, label_id: str = "pathway") -> str:
    """The diagram with its caption, then the same content as a table."""
    rows = []
    for lane in p.lanes:
        head = esc(lane.title) + (f" <span class=\"kind\">({esc(lane.selection)})</span>" if lane.selection else "")
        if lane.shared:
            head += ('<div class="lane-whom">For every option:<ul>'
                     + "".join(f"<li>{esc(c.text)}</li>" for c in lane.shared) + "</ul></div>")
        if lane.kind != "single":  # a single option's row already says it all
            rows.append(f'<tr class="lane-row"><th scope="rowgroup" colspan="4">{head}</th></tr>')
        for n, o in enumerate(lane.options, 1):
            order = f"{n}. " if lane.kind == "sequence" else ""
            rel = f' <span class="kind">({esc(o.relation)})</span>' if o.relation else ""
            whom = "".join(f"<li>{esc(c.text)}</li>" for c in o.criteria if c not in lane.shared)
            none = "Only the criteria above" if lane.shared else "—"
            evidence = []
            if o.citations:
                evidence.append(f"{len(o.citations)} citation" + ("s" if len(o.citations) != 1 else ""))
            if o.studies:
                evidence.append(", ".join(link(s.page, next((i.get("value") for i in s.resource.get("identifier") or ()
                                                              if isinstance(i, dict) and i.get("value")), s.id))
                                          for s in o.studies))
            what = esc(o.detail or _what(o))
            if o.informational:
                what = "Information only (no order)"
            rows.append(f'<tr><th scope="row">{order}{link(o.href, o.title)}{rel}</th><td>{what}</td>'
                        f"<td>{f'<ul>{whom}</ul>' if whom else none}</td><td>{'; '.join(evidence) or '—'}</td></tr>")
    table = (f'<table class="options"><caption>Options at a glance: what, in what order, for whom, with what evidence'
             f'</caption><thead><tr><th scope="col">Option</th><th scope="col">What</th><th scope="col">For whom'
             f'</th><th scope="col">Evidence</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    caption = (f"<figcaption>Treatment pathway derived from {link(p.entry.page, p.entry.title)}: "
               f"{len(p.options)} options. Select a box to open its page; the table below has the same content as text."
               "</figcaption>")
    return f'<figure class="pathway-figure">{pw.svg(p, label_id)}{caption}</figure>{table}'


def plan_definition(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    titles = {a.get("id"): a.get("title") or a.get("id") for a in _all_actions(r.get("action")) if a.get("id")}
    kind = f"PlanDefinition · {text_of(r.get('type'))}" if r.get("type") else "PlanDefinition"
    body = [header(entry, index, kind)]
    desc = artifact(r, "description")
    if desc:
        body.append(section("Description", markdown(desc)))
    if pw.is_protocol(entry):
        body.append(section("Pathway", pathway_figure(pw.read(entry, index), f"pathway-{entry.id}"), sid="pathway"))
    body.append(section("For whom", _for_whom(r)))
    body.append(section("Goals", _goals(r, index)))
    actions = "".join(_action(a, 3, index, titles, str(n)) for n, a in enumerate(r.get("action") or ())
                      if isinstance(a, dict))
    body.append(section("Actions", actions))
    body.append(clinical_use_sections(uses_naming(entry, index)))
    body.append(section("Evidence", related_artifacts(r.get("relatedArtifact"), index)))
    for name, title in (("usage", "Usage"), ("purpose", "Purpose")):
        if r.get(name):
            body.append(section(title, markdown(r[name])))
    body += [footer_texts(r), backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


# --- ActivityDefinition ---------------------------------------------------------------------

def activity_definition(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    dosage = "".join(f"<li>{esc(d.get('text'))}</li>" for d in r.get("dosage") or () if isinstance(d, dict) and d.get("text"))
    timing = pw.describe_timing(r["timingTiming"]) if isinstance(r.get("timingTiming"), dict) else ""
    rows = [("Kind", esc(r.get("kind", ""))), ("Intent", esc(r.get("intent", ""))),
            ("Do not perform", "yes" if r.get("doNotPerform") else ""),
            ("Code", esc(text_of(r.get("code")))), ("Product", _product(r, index)),
            ("Timing", esc(timing)), ("Location", esc(text_of(r.get("location")))),
            ("Body site", esc("; ".join(text_of(b) for b in r.get("bodySite") or ())))]
    body = [header(entry, index, "ActivityDefinition"), description(r), section("Definition", dl(rows)),
            codes_table(r.get("productCodeableConcept"), "Product codes"), codes_table(r.get("code"), "Activity codes"),
            section("Dosage", f"<ul>{dosage}</ul>" if dosage else ""),
            clinical_use_sections(uses_naming(entry, index)), texts(r, skip=("description",)),
            section("Medication knowledge", _medication_for(entry, index)),
            section("Related artifacts", related_artifacts(r.get("relatedArtifact"), index)),
            footer_texts(r), backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


def _product(r: dict, index: SiteIndex) -> str:
    if isinstance(r.get("productReference"), dict):
        ref = r["productReference"]
        return ref_link(index, ref.get("reference"), ref.get("display"))
    return esc(text_of(r.get("productCodeableConcept")))


def _medication_for(entry: Entry, index: SiteIndex) -> str:
    codes = code_keys(entry.resource.get("productCodeableConcept"))
    hits = index.with_codes("MedicationKnowledge", "code", codes)
    return "<ul>" + "".join(f"<li>{link(e.page, e.title)}</li>" for e in hits) + "</ul>" if hits else ""


# --- MedicationKnowledge --------------------------------------------------------------------

def medication_users(mk: Entry, index: SiteIndex) -> tuple[list[Entry], list[tuple[Entry, Entry]], list[Entry]]:
    """(activity definitions, (regimen, via activity) pairs, research studies) for a medication."""
    codes = code_keys(mk.resource.get("code"))
    referring = {b.source.key for b in index.referrers(mk)}
    by_code = {e.key for e in index.with_codes("ActivityDefinition", "productCodeableConcept", codes)}
    ads = [e for e in index.of_type("ActivityDefinition") if e.key in referring or e.key in by_code]
    regimens = []
    seen = set()
    for ad in ads:
        for b in index.referrers(ad):
            if b.source.type == "PlanDefinition" and (b.source.key, ad.key) not in seen:
                seen.add((b.source.key, ad.key))
                regimens.append((b.source, ad))
    studies = index.with_codes("ResearchStudy", "focus", codes)
    return ads, regimens, studies


def clinical_uses(mk: Entry, index: SiteIndex) -> list[Entry]:
    """ClinicalUseDefinitions the medication lists, then those whose subject names it."""
    found: dict[str, Entry] = {}
    for ref in mk.resource.get("clinicalUseIssue") or ():
        hit = index.resolve((ref or {}).get("reference")) if isinstance(ref, dict) else None
        if hit is not None:
            found.setdefault(hit.key, hit)
    for b in index.referrers(mk):
        if b.source.type == "ClinicalUseDefinition":
            found.setdefault(b.source.key, b.source)
    return list(found.values())


def cud_text(r: dict) -> str:
    """What a ClinicalUseDefinition says, whatever its type."""
    if r.get("type") == "undesirable-effect":
        ue = r.get("undesirableEffect") or {}
        return text_of(ue.get("symptomConditionEffect"))
    if r.get("type") == "warning":
        w = r.get("warning") or {}
        return w.get("description") or text_of(w.get("code"))
    part = r.get(str(r.get("type", ""))) or {}
    if isinstance(part, dict):
        return (text_of(part.get("diseaseSymptomProcedure")) or text_of(part.get("interactant"))
                or text_of(part.get("effect")) or str(part.get("description", "")))
    return ""


def medication_knowledge(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    atc, other = [], []
    for mc in r.get("medicineClassification") or ():
        if not isinstance(mc, dict):
            continue
        for c in mc.get("classification") or ():
            atc_codes = [x for x in codings(c) if x.get("system") == ATC]
            if atc_codes:
                atc += [(x, mc) for x in atc_codes]
            else:
                other.append((text_of(mc.get("type")), text_of(c)))
    atc_html = "".join(
        f"<li>{code(x.get('code', ''))} {esc(x.get('display', ''))} <span class=\"kind\">{esc(text_of(mc.get('type')))}</span>"
        + (f" ({link(mc['sourceUri'], 'ATC/DDD index')})" if is_web_url(mc.get("sourceUri")) else "") + "</li>"
        for x, mc in atc)
    other_html = "".join(f"<li><span class=\"kind\">{esc(t)}</span> {esc(v)}</li>" for t, v in other)
    indications = []
    for ig in r.get("indicationGuideline") or ():
        if isinstance(ig, dict):
            for ind in ig.get("indication") or ():
                indications.append(f"<li>{esc(text_of(ind))}</li>")
    cud_html = clinical_use_sections(clinical_uses(entry, index))
    ads, regimens, studies = medication_users(entry, index)
    used = "".join(f"<li>{link(reg.page, reg.title)} <span class=\"kind\">via {link(ad.page, ad.title)}</span></li>"
                   for reg, ad in regimens)
    body = [header(entry, index, "MedicationKnowledge"), description(r),
            codes_table(r.get("code"), "Medication codes with their code systems"),
            section("ATC class", f"<ul>{atc_html}</ul>" if atc_html else ""),
            section("Other classifications", f"<ul>{other_html}</ul>" if other_html else ""),
            section("Indications", f"<ul>{''.join(indications)}</ul>" if indications else ""),
            cud_html,
            section("Regimens that use it", f"<ul>{used}</ul>" if used else ""),
            section("Activity definitions", "<ul>" + "".join(f"<li>{link(a.page, a.title)}</li>" for a in ads) + "</ul>"
                    if ads else ""),
            section("Studied in", "<ul>" + "".join(f"<li>{link(s.page, s.title)}</li>" for s in studies) + "</ul>"
                    if studies else ""),
            texts(r, skip=("description",)), backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


# --- ResearchStudy --------------------------------------------------------------------------

NCT = re.compile(r"^NCT\d{8}$")


def nct_number(r: dict) -> str:
    for i in r.get("identifier") or ():
        if isinstance(i, dict) and NCT.match(str(i.get("value", ""))):
            return str(i["value"])
    return ""


def research_study(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    nct = nct_number(r)
    progress = "; ".join(
        text_of(p.get("state")) + (" (actual)" if p.get("actual") else "") for p in r.get("progressStatus") or ()
        if isinstance(p, dict))
    focus = []
    for f in r.get("focus") or ():
        hits = index.with_codes("MedicationKnowledge", "code", code_keys(f))
        hit = hits[0] if hits else None
        focus.append(f"<li>{link(hit.page, text_of(f)) if hit else esc(text_of(f))}</li>")
    rows = [("Registry", link(f"https://clinicaltrials.gov/study/{nct}", f"{nct} on ClinicalTrials.gov") if nct else ""),
            ("Phase", esc(text_of(r.get("phase")))),
            ("Recruitment status", esc(progress) or "not recorded in the resource"),
            ("Publication status", esc(status_of(r))), ("Recorded", esc(r.get("date", ""))),
            ("Primary purpose", esc(text_of(r.get("primaryPurposeType")))),
            ("Conditions", esc("; ".join(text_of(c) for c in r.get("condition") or ()))),
            ("Focus", f"<ul>{''.join(focus)}</ul>" if focus else ""),
            ("Keywords", esc("; ".join(text_of(k) for k in r.get("keyword") or ()))),
            ("Region", esc("; ".join(text_of(k) for k in r.get("region") or ())))]
    notes = "".join(f"<li>{markdown(n.get('text'))}</li>" for n in r.get("note") or () if isinstance(n, dict))
    body = [header(entry, index, "ResearchStudy"), section("Study", dl(rows)),
            section("Summary", markdown(r.get("descriptionSummary"))
                    if not str(r.get("description", "")).startswith(str(r.get("descriptionSummary", ""))) else ""),
            section("Description", markdown(r.get("description"))),
            section("Notes (as recorded)", f"<ul>{notes}</ul>" if notes else ""),
            section("Related artifacts", related_artifacts(r.get("relatedArtifact"), index)),
            backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


# --- ClinicalUseDefinition and the rest -------------------------------------------------------

def clinical_use_definition(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    subjects = "".join(f"<li>{ref_link(index, s.get('reference'), s.get('display'))}</li>"
                       for s in r.get("subject") or () if isinstance(s, dict))
    ue = r.get("undesirableEffect") or {}
    rows = [("Type", esc(r.get("type", ""))), ("What", esc(cud_text(r))),
            ("Frequency", esc(text_of(ue.get("frequencyOfOccurrence")))),
            ("Classification", esc(text_of(ue.get("classification")))),
            ("Subject", f"<ul>{subjects}</ul>" if subjects else "")]
    body = [header(entry, index, "ClinicalUseDefinition"), section("Clinical use", dl(rows)), texts(r),
            backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


def generic(entry: Entry, index: SiteIndex) -> Page:
    r = entry.resource
    extra = ""
    if r.get("concept"):
        rows = "".join(f"<tr><td>{code(c.get('code', ''))}</td><td>{esc(c.get('display', ''))}</td>"
                       f"<td>{esc(c.get('definition', ''))}</td></tr>" for c in r["concept"] if isinstance(c, dict))
        extra = section("Concepts", '<table><caption>Concepts</caption><thead><tr><th scope="col">Code</th>'
                        '<th scope="col">Display</th><th scope="col">Definition</th></tr></thead>'
                        f"<tbody>{rows}</tbody></table>")
    body = [header(entry, index), texts(r), extra,
            section("Related artifacts", related_artifacts(r.get("relatedArtifact"), index)),
            footer_texts(r), backlinks(entry, index), source_blocks(entry, index)]
    return Page(entry.page, entry.title, "".join(body))


# --- citations ----------------------------------------------------------------------------------

def short_citation(entry: Entry) -> str:
    """'Beltran H 2011' (first author and year), else the journal and year, else the id."""
    return citation.short_citation(entry.resource) or entry.id


def citation_article(entry: Entry, index: SiteIndex) -> str:
    r = entry.resource
    ca = r.get("citedArtifact") or {}
    summary = next((s.get("text") for s in r.get("summary") or () if isinstance(s, dict) and s.get("text")), "")
    ids = "".join(f"<li>{esc(label)} " + (link(url, value) if url else code(value)) + "</li>"
                  for label, value, url in citation.identifier_links(
                      r, lambda system: system_label(system) or "Identifier"))
    web = "".join(f"<li>{link(w.get('url'), w.get('url'))} <span class=\"kind\">{esc(text_of((w.get('classifier') or [{}])[0]))}</span></li>"
                  for w in ca.get("webLocation") or () if isinstance(w, dict) and is_web_url(w.get("url")))
    pub = citation.publication_form(r)
    journal = (pub.get("publishedIn") or {}).get("title", "")
    notes = "".join(f"<li>{esc(n.get('text'))}</li>" for n in ca.get("note") or () if isinstance(n, dict))
    citing: dict[str, Entry] = {}
    for b in sorted(index.referrers(entry), key=lambda b: (b.source.title, b.source.key)):
        if b.source.type != "Citation":
            citing.setdefault(b.source.key, b.source)
    cited_by = "".join(f"<li>{link(e.page, e.title)}</li>" for e in citing.values())
    rows = [("Published in", esc(journal)), ("Year", esc(pub.get("publicationDateText", ""))),
            ("Identifiers", f"<ul>{ids}</ul>" if ids else ""), ("Web", f"<ul>{web}</ul>" if web else ""),
            ("Canonical URL", code(entry.url)), ("Notes", f"<ul>{notes}</ul>" if notes else ""),
            ("Cited by", f"<ul>{cited_by}</ul>" if cited_by else "")]
    return (f'<article class="citation" id="{esc(entry.id)}" aria-labelledby="{esc(entry.id)}-h">'
            f'<h2 id="{esc(entry.id)}-h">{esc(entry.title)}</h2>{badges(r)}'
            f"{tag('p', esc(summary), class_='summary') if summary else ''}{dl(rows)}"
            f"{source_blocks(entry, index, shared_page=True)}</article>")


_CITATION_PREFIX = re.compile(r"^Citation:\s*")


def citations_page(index: SiteIndex) -> Page:
    cits = index.of_type("Citation")
    toc = "".join(f"<li>{link('#' + c.id, short_citation(c))}: {esc(_CITATION_PREFIX.sub('', c.title))}</li>"
                  for c in cits)
    main = (f"<h1>Citations</h1><p>{len(cits)} Citation resources, with DOI, PubMed and PubMed Central links "
            f"where the record has the identifier. “Cited by” lists the artifacts that refer to each one.</p>"
            f'<nav aria-label="Citations"><ol class="toc">{toc}</ol></nav>'
            + "".join(citation_article(c, index) for c in cits))
    return Page("citations.html", "Citations", main)


RENDERERS = {"PlanDefinition": plan_definition, "ActivityDefinition": activity_definition,
             "MedicationKnowledge": medication_knowledge, "ResearchStudy": research_study,
             "ClinicalUseDefinition": clinical_use_definition}


def resource_page(entry: Entry, index: SiteIndex) -> Page:
    return RENDERERS.get(entry.type, generic)(entry, index)
