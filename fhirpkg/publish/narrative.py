"""Generated narratives: a readable, safe XHTML summary for resources that have none.

Every value is escaped; only the basic elements the FHIR narrative rules allow
are used (div, p, b, i, ul, ol, li, table, tr, th, td, a with http(s) links),
so the result passes the same XHTML checks the validator applies.
"""
from __future__ import annotations

from html import escape

XHTML_NS = "http://www.w3.org/1999/xhtml"


def _t(value) -> str:
    return escape(str(value), quote=True)


def _codeable(cc) -> str:
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"])
    codings = cc.get("coding") or []
    parts = []
    for c in codings:
        if isinstance(c, dict):
            label = c.get("display") or c.get("code") or ""
            parts.append(f"{label} ({c.get('code')})" if c.get("display") and c.get("code") else str(label))
    return "; ".join(p for p in parts if p)


def _link(url: str, label: str | None = None) -> str:
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return f'<a href="{_t(url)}">{_t(label or url)}</a>'
    return _t(label or url)


def _row(label: str, html_value: str) -> str:
    return f"<tr><th>{_t(label)}</th><td>{html_value}</td></tr>" if html_value else ""


def _actions(actions, depth: int = 0) -> str:
    if not actions or depth > 6:
        return ""
    items = []
    for a in actions:
        if not isinstance(a, dict):
            continue
        head = a.get("title") or a.get("textEquivalent") or a.get("description") or a.get("id") or "action"
        bits = [f"<b>{_t(head)}</b>"]
        if a.get("description") and a.get("description") != head:
            bits.append(_t(a["description"]))
        if a.get("selectionBehavior"):
            bits.append(f"<i>choose: {_t(a['selectionBehavior'])}</i>")
        for c in a.get("condition") or ():
            expr = (c.get("expression") or {}) if isinstance(c, dict) else {}
            if expr.get("description"):
                bits.append(f"<i>{_t(c.get('kind', 'condition'))}: {_t(expr['description'])}</i>")
        if a.get("definitionCanonical"):
            bits.append(f"(definition: {_t(a['definitionCanonical'])})")
        items.append(f"<li>{' — '.join(bits)}{_actions(a.get('action'), depth + 1)}</li>")
    return f"<ol>{''.join(items)}</ol>" if items else ""


def _related(artifacts) -> str:
    items = []
    for ra in artifacts or ():
        if not isinstance(ra, dict):
            continue
        label = ra.get("display") or ra.get("label") or ra.get("citation") or ra.get("resource") or ""
        url = (ra.get("document") or {}).get("url") if isinstance(ra.get("document"), dict) else None
        text = _link(url, label) if url else _t(label)
        items.append(f"<li>{_t(ra.get('type', ''))}: {text}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _codes(cc) -> str:
    if not isinstance(cc, dict):
        return ""
    rows = []
    for c in cc.get("coding") or ():
        if isinstance(c, dict):
            rows.append(f"<li>{_t(c.get('display', ''))} <i>{_t(c.get('system', ''))}#{_t(c.get('code', ''))}</i></li>")
    return f"<ul>{''.join(rows)}</ul>" if rows else _t(cc.get("text", ""))


def generate(resource: dict) -> dict:
    """A Narrative (status generated) summarising the resource."""
    rt = resource.get("resourceType", "Resource")
    title = resource.get("title") or resource.get("name") or resource.get("id") or rt
    if isinstance(title, list):
        title = title[0] if title else rt
    rows: list[str] = [
        _row("Status", _t(resource.get("status")) if isinstance(resource.get("status"), str)
             else _t(_codeable(resource.get("status")))),
        _row("Canonical", _t(resource.get("url", ""))),
        _row("Version", _t(resource.get("version", ""))),
    ]
    body: list[str] = []
    if resource.get("description"):
        body.append(f"<p>{_t(resource['description'])}</p>")
    if resource.get("usage"):
        body.append(f"<p><b>Usage:</b> {_t(resource['usage'])}</p>")
    if rt == "PlanDefinition":
        rows.append(_row("Type", _t(_codeable(resource.get("type")))))
        goals = [g.get("description") for g in resource.get("goal") or () if isinstance(g, dict)]
        if goals:
            body.append("<p><b>Goals</b></p><ul>" + "".join(f"<li>{_t(_codeable(g))}</li>" for g in goals) + "</ul>")
        if resource.get("action"):
            body.append("<p><b>Actions</b></p>" + _actions(resource["action"]))
    elif rt == "ActivityDefinition":
        rows += [_row("Kind", _t(resource.get("kind", ""))), _row("Intent", _t(resource.get("intent", ""))),
                 _row("Product", _codes(resource.get("productCodeableConcept"))),
                 _row("Code", _codes(resource.get("code")))]
        doses = [d.get("text") for d in resource.get("dosage") or () if isinstance(d, dict) and d.get("text")]
        if doses:
            body.append("<p><b>Dosage</b></p><ul>" + "".join(f"<li>{_t(d)}</li>" for d in doses) + "</ul>")
    elif rt == "MedicationKnowledge":
        rows += [_row("Code", _codes(resource.get("code"))),
                 _row("Identifier", _t(", ".join(f"{i.get('system', '')}|{i.get('value', '')}"
                                                  for i in resource.get("identifier") or () if isinstance(i, dict))))]
        for mc in resource.get("medicineClassification") or ():
            if isinstance(mc, dict):
                rows.append(_row(_codeable(mc.get("type")) or "Classification",
                                 "; ".join(_codes(c) for c in mc.get("classification") or ())))
        issues = [r.get("reference") or r.get("display") for r in resource.get("clinicalUseIssue") or ()
                  if isinstance(r, dict)]
        if issues:
            body.append("<p><b>Clinical use issues</b></p><ul>" + "".join(f"<li>{_t(i)}</li>" for i in issues if i) + "</ul>")
    elif rt == "ClinicalUseDefinition":
        rows.append(_row("Type", _t(resource.get("type", ""))))
        ue = resource.get("undesirableEffect") or {}
        effect = (ue.get("symptomConditionEffect") or {}).get("concept") if isinstance(ue, dict) else None
        rows.append(_row("Undesirable effect", _t(_codeable(effect))))
        subjects = [s.get("reference") or s.get("display") for s in resource.get("subject") or () if isinstance(s, dict)]
        rows.append(_row("Subject", _t(", ".join(s for s in subjects if s))))
    elif rt == "Citation":
        ca = resource.get("citedArtifact") or {}
        for ident in ca.get("identifier") or ():
            if isinstance(ident, dict):
                rows.append(_row(ident.get("system", "identifier"), _t(ident.get("value", ""))))
        for s in resource.get("summary") or ():
            if isinstance(s, dict) and s.get("text"):
                body.append(f"<p>{_t(s['text'])}</p>")
        for w in ca.get("webLocation") or ():
            if isinstance(w, dict) and w.get("url"):
                body.append(f"<p>{_link(w['url'])}</p>")
    elif rt == "ResearchStudy":
        for ident in resource.get("identifier") or ():
            if isinstance(ident, dict):
                rows.append(_row("Identifier", _t(ident.get("value", ""))))
        rows.append(_row("Phase", _t(_codeable(resource.get("phase")))))
        for ps in resource.get("progressStatus") or ():
            if isinstance(ps, dict):
                rows.append(_row("Progress", _t(_codeable(ps.get("state")))))
        if resource.get("descriptionSummary"):
            body.append(f"<p>{_t(resource['descriptionSummary'])}</p>")
    elif rt == "Library":
        rows.append(_row("Type", _t(_codeable(resource.get("type")))))
    if resource.get("relatedArtifact"):
        body.append("<p><b>Related artifacts</b></p>" + _related(resource["relatedArtifact"]))
    table = "".join(r for r in rows if r)
    html = (f'<div xmlns="{XHTML_NS}"><p><b>{_t(rt)}: {_t(title)}</b></p>'
            + (f"<table>{table}</table>" if table else "") + "".join(body) + "</div>")
    return {"status": "generated", "div": html}


def with_narrative(resource: dict) -> dict:
    """The resource with a generated narrative added after ``meta``/``implicitRules``/``language``
    when it has none; resources with a narrative are returned unchanged."""
    if resource.get("text") or resource.get("resourceType") in ("Bundle", "Binary", "Parameters"):
        return resource
    out = {}
    placed = False
    for key, value in resource.items():
        if not placed and key not in ("resourceType", "id", "meta", "implicitRules", "_implicitRules",
                                      "language", "_language"):
            out["text"] = generate(resource)
            placed = True
        out[key] = value
    if not placed:
        out["text"] = generate(resource)
    return out
