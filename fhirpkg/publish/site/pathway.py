"""The treatment pathway, read from a clinical-protocol PlanDefinition and drawn as SVG.

Nothing here knows this package's ids.  The pathway's top-level actions are
sorted into lanes by their structure alone:

* leaf actions linked by ``relatedAction`` (after/before) form the *sequence*
  (first line, then after progression), in the order the relations give;
* actions with sub-actions are *groups* whose leaves are options to use
  alongside the sequence (supportive care, clinical-trial options), with their
  ``selectionBehavior``;
* other leaf actions stand on their own (information such as "ADT is
  typically ineffective" when the definition orders nothing).

Every leaf action with a definition is one option, drawn as one node that links
to the page of the resource its ``definitionCanonical`` resolves to.  What a
node says is derived by following the canonicals: the regimen's drugs and
cycle from the order set, the applicability conditions ("for whom"), and the
number of citations and registered studies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fhirpkg.logic.translate import is_cql_identifier
from fhirpkg.publish.site.html import attrs, esc, sentence_case, wrap
from fhirpkg.publish.site.index import Entry, SiteIndex, text_of

SELECTION = {"any": "choose any", "all": "all of these", "all-or-none": "all or none",
             "exactly-one": "choose exactly one", "at-most-one": "choose at most one",
             "one-or-more": "choose one or more"}
_JOIN = {"exactly-one": " or ", "at-most-one": " or ", "any": " and/or ", "one-or-more": " and/or ",
         "all": " + ", "all-or-none": " + "}
RELATION = {"after": "after", "after-start": "after it starts", "after-end": "after it ends",
            "before": "before", "before-start": "before it starts", "before-end": "before it ends",
            "concurrent": "at the same time", "concurrent-with-start": "starting together",
            "concurrent-with-end": "ending together"}
UNITS = {"s": "second", "min": "minute", "h": "hour", "d": "day", "wk": "week", "mo": "month", "a": "year"}
DAYS_OF_CYCLE = "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle"


@dataclass(frozen=True)
class Criterion:
    short: str  # a name for the diagram (the CQL identifier, in sentence case)
    text: str  # the condition's description


@dataclass(frozen=True)
class Option:
    key: str
    title: str
    target: Entry | None
    detail: str = ""
    criteria: tuple[Criterion, ...] = ()
    citations: tuple[Entry, ...] = ()
    studies: tuple[Entry, ...] = ()
    informational: bool = False
    relation: str = ""  # how it follows the previous option of its lane

    @property
    def href(self) -> str | None:
        return self.target.page if self.target else None

    @property
    def kind(self) -> str:
        """What the target is, in words ("Recommendation", "Order set", "Activity")."""
        if self.target is None:
            return "Not in this package"
        r = self.target.resource
        if self.target.type == "PlanDefinition":
            return text_of(r.get("type")) or "Plan definition"
        return {"ActivityDefinition": "Activity"}.get(self.target.type, self.target.type)


@dataclass(frozen=True)
class Lane:
    key: str
    title: str
    kind: str  # "sequence" | "group" | "single"
    options: tuple[Option, ...]
    description: str = ""
    selection: str = ""
    shared: tuple[Criterion, ...] = ()  # criteria every option of the lane has


@dataclass(frozen=True)
class Pathway:
    entry: Entry
    lanes: tuple[Lane, ...] = field(default=())

    @property
    def options(self) -> list[Option]:
        return [o for lane in self.lanes for o in lane.options]


def is_protocol(entry: Entry) -> bool:
    r = entry.resource
    return entry.type == "PlanDefinition" and any(
        c.get("code") == "clinical-protocol" for c in (r.get("type") or {}).get("coding") or () if isinstance(c, dict))


# --- reading ------------------------------------------------------------------------------

def read(entry: Entry, index: SiteIndex) -> Pathway:
    actions = [a for a in entry.resource.get("action") or () if isinstance(a, dict)]
    ordered = _sequence(actions)
    in_sequence = {id(a) for a in ordered}
    lanes: list[Lane] = []
    if ordered:
        options = []
        for pos, a in enumerate(ordered):
            rel = _relation_to(a, ordered[pos - 1]) if pos else ""
            options.append(_option(a, index, relation=rel))
        lanes.append(_lane("sequence", "In sequence", "sequence", options))
    for a in actions:
        if id(a) in in_sequence:
            continue
        children = [c for c in a.get("action") or () if isinstance(c, dict)]
        if children:
            opts = [_option(leaf, index, outer=a) for leaf in _leaves(children)]
            lanes.append(_lane(_key(a), a.get("title") or a.get("id") or "Group", "group", opts,
                               description=a.get("description") or "",
                               selection=SELECTION.get(a.get("selectionBehavior", ""), "")))
        elif a.get("definitionCanonical") or a.get("definitionUri"):
            lanes.append(_lane(_key(a), a.get("title") or "", "single", [_option(a, index)],
                               description=a.get("description") or ""))
    return Pathway(entry, tuple(lanes))


def _key(action: dict) -> str:
    return str(action.get("id") or action.get("linkId") or action.get("title") or "action")


def _leaves(actions: list[dict]) -> list[dict]:
    out = []
    for a in actions:
        children = [c for c in a.get("action") or () if isinstance(c, dict)]
        out.extend(_leaves(children) if children else [a])
    return out


def _sequence(actions: list[dict]) -> list[dict]:
    """Top-level leaf actions that relatedAction orders, earliest first (stable otherwise)."""
    by_id = {a.get("id"): a for a in actions if a.get("id")}
    before: dict[int, set[int]] = {}  # action -> actions that must come before it
    linked: set[int] = set()
    for a in actions:
        for rel in a.get("relatedAction") or ():
            if not isinstance(rel, dict):
                continue
            other = by_id.get(rel.get("targetId"))
            kind = str(rel.get("relationship", ""))
            if other is None or other is a or a.get("action") or other.get("action"):
                continue
            if kind.startswith("after"):
                before.setdefault(id(a), set()).add(id(other))
            elif kind.startswith("before"):
                before.setdefault(id(other), set()).add(id(a))
            else:
                continue
            linked |= {id(a), id(other)}
    pending = [a for a in actions if id(a) in linked]
    done: list[dict] = []
    while pending:
        ready = next((a for a in pending if before.get(id(a), set()) <= {id(d) for d in done}), pending[0])
        done.append(ready)
        pending.remove(ready)
    return done


def _relation_to(action: dict, previous: dict) -> str:
    for rel in action.get("relatedAction") or ():
        if isinstance(rel, dict) and rel.get("targetId") == previous.get("id"):
            return RELATION.get(rel.get("relationship", ""), rel.get("relationship", ""))
    return "then"


def _lane(key, title, kind, options, description="", selection="") -> Lane:
    sets = [set(o.criteria) for o in options]
    shared = set.intersection(*sets) if len(sets) > 1 else set()
    ordered_shared = tuple(c for c in options[0].criteria if c in shared) if options else ()
    return Lane(key, title, kind, tuple(options), description, selection, ordered_shared)


def _option(action: dict, index: SiteIndex, outer: dict | None = None, relation: str = "") -> Option:
    target = index.resolve(action.get("definitionCanonical") or action.get("definitionUri"))
    criteria = _criteria(outer or {}) + _criteria(action)
    citations: dict[str, Entry] = {}
    studies: dict[str, Entry] = {}
    informational = False
    detail = ""
    if target is not None:
        criteria += _target_criteria(target.resource)
        for ref in _artifact_refs(target.resource):
            hit = index.resolve(ref)
            if hit is not None and hit.type == "Citation":
                citations.setdefault(hit.key, hit)
            elif hit is not None and hit.type == "ResearchStudy":
                studies.setdefault(hit.key, hit)
        informational = target.type == "PlanDefinition" and not _defines_anything(target.resource.get("action"))
        detail = regimen_summary(target, index)
    unique = tuple(dict.fromkeys(criteria))
    return Option(_key(action), action.get("title") or (target.title if target else _key(action)), target, detail,
                  unique, tuple(citations.values()), tuple(studies.values()), informational, relation)


def _criteria(action: dict) -> tuple[Criterion, ...]:
    out = []
    for c in action.get("condition") or ():
        if not isinstance(c, dict) or c.get("kind") != "applicability":
            continue
        expr = c.get("expression") or {}
        name = expr.get("expression") if is_cql_identifier(expr.get("language")) else None
        text = expr.get("description") or expr.get("expression") or ""
        out.append(Criterion(sentence_case(str(name)) if name else str(text), str(text)))
    return tuple(out)


def _target_criteria(resource: dict) -> tuple[Criterion, ...]:
    """Applicability of a recommendation: the conditions on its top-level actions."""
    out: tuple[Criterion, ...] = ()
    for a in resource.get("action") or ():
        if isinstance(a, dict):
            out += _criteria(a)
    return out


def _artifact_refs(resource: dict) -> list[str]:
    """Canonicals of the evidence a definition cites (relatedArtifact and action documentation)."""
    refs = []

    def take(artifacts):
        for ra in artifacts or ():
            if isinstance(ra, dict):
                refs.append(ra.get("resource") or (ra.get("resourceReference") or {}).get("reference"))

    take(resource.get("relatedArtifact"))

    def walk(actions):
        for a in actions or ():
            if isinstance(a, dict):
                take(a.get("documentation"))
                walk(a.get("action"))

    walk(resource.get("action"))
    return [r for r in refs if r]


def _defines_anything(actions) -> bool:
    for a in actions or ():
        if isinstance(a, dict) and (a.get("definitionCanonical") or a.get("definitionUri")
                                    or _defines_anything(a.get("action"))):
            return True
    return False


def regimen_summary(entry: Entry, index: SiteIndex, depth: int = 0) -> str:
    """'(Cisplatin or Carboplatin) + Etoposide, every 21 days' from the order set a definition leads to."""
    r = entry.resource
    if entry.type != "PlanDefinition" or depth > 3:
        return ""
    if any(c.get("code") == "order-set" for c in (r.get("type") or {}).get("coding") or () if isinstance(c, dict)):
        return _summarize([a for a in r.get("action") or () if isinstance(a, dict)], "all")[0]
    for a in r.get("action") or ():
        target = index.resolve(a.get("definitionCanonical")) if isinstance(a, dict) else None
        if target is not None:
            found = regimen_summary(target, index, depth + 1)
            if found:
                return found
    return ""


def _summarize(actions: list[dict], behavior: str) -> tuple[str, int]:
    """(text, number of parts) for an action list joined by its selection behaviour."""
    parts, timings = [], []
    for a in actions:
        children = [c for c in a.get("action") or () if isinstance(c, dict)]
        if children:
            text, n = _summarize(children, a.get("selectionBehavior") or "all")
            inner = _JOIN.get(a.get("selectionBehavior") or "all")
            parts.append(f"({text})" if n > 1 and inner != _JOIN.get(behavior) and len(actions) > 1 else text)
        else:
            parts.append(str(a.get("title") or a.get("textEquivalent") or _key(a)))
        if isinstance(a.get("timingTiming"), dict):
            timings.append(describe_timing(a["timingTiming"]))
    text = _JOIN.get(behavior, ", ").join(p for p in parts if p)
    timing = "; ".join(t for t in timings if t)
    return (f"{text}, {timing}" if timing and text else text or timing), len(parts)


def trails(index: SiteIndex) -> dict[str, tuple[tuple[Entry, str, str], ...]]:
    """Where each definition sits: the shortest chain of actions from a clinical protocol to it."""
    found: dict[str, tuple[tuple[Entry, str, str], ...]] = {}
    queue = [(e, ()) for e in index.entries if is_protocol(e)]
    seen = {e.key for e, _ in queue}
    while queue:
        entry, trail = queue.pop(0)
        for a in _all(entry.resource.get("action")):
            target = index.resolve(a.get("definitionCanonical"))
            if target is None or target.key in seen:
                continue
            seen.add(target.key)
            step = trail + ((entry, str(a.get("id") or ""), str(a.get("title") or _key(a))),)
            found[target.key] = step
            queue.append((target, step))
    return found


def _all(actions):
    for a in actions or ():
        if isinstance(a, dict):
            yield a
            yield from _all(a.get("action"))


# --- timing ---------------------------------------------------------------------------------

def _unit(value, unit: str) -> str:
    name = UNITS.get(unit, unit)
    return f"{value} {name}" + ("" if str(value) == "1" else "s")


def describe_timing(timing: dict) -> str:
    """A Timing in words: 'every 21 days (21-day cycle), 4 times'."""
    rep = timing.get("repeat") or {}
    parts = []
    freq, period, punit = rep.get("frequency"), rep.get("period"), rep.get("periodUnit")
    if period is not None and punit:
        every = f"every {_unit(period, punit)}" if str(period) != "1" else f"every {UNITS.get(punit, punit)}"
        parts.append(every if freq in (None, 1) or str(freq) == "1" else f"{freq} times {every}")
    dur, dunit = rep.get("duration"), rep.get("durationUnit")
    if dur is not None and dunit:
        if period is not None and str(dur) == str(period) and dunit == punit:
            parts[-1] += f" ({dur}-{UNITS.get(dunit, dunit)} cycle)"
        else:
            parts.append(f"lasting {_unit(dur, dunit)}")
    if rep.get("count") is not None:
        count = str(rep["count"]) + (f"–{rep['countMax']}" if rep.get("countMax") is not None else "")
        parts.append(f"{count} times")
    bounds = rep.get("boundsDuration")
    if isinstance(bounds, dict) and bounds.get("value") is not None:
        parts.append(f"for {_unit(bounds['value'], bounds.get('code') or bounds.get('unit', ''))}")
    if rep.get("dayOfWeek"):
        parts.append("on " + ", ".join(map(str, rep["dayOfWeek"])))
    if rep.get("timeOfDay"):
        parts.append("at " + ", ".join(map(str, rep["timeOfDay"])))
    if timing.get("code"):
        parts.append(text_of(timing["code"]))
    return ", ".join(parts)


def days_of_cycle(action: dict) -> str:
    """'days 1–3 of each cycle' from the timing-daysOfCycle extension."""
    days = []
    for ext in action.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == DAYS_OF_CYCLE:
            days += [int(e["valueInteger"]) for e in ext.get("extension") or ()
                     if isinstance(e, dict) and e.get("url") == "day" and isinstance(e.get("valueInteger"), int)]
    if not days:
        return ""
    days = sorted(set(days))
    runs, start = [], days[0]
    for prev, cur in zip(days, days[1:] + [None]):
        if cur is None or cur != prev + 1:  # a run ends at prev
            runs.append(str(start) if start == prev else f"{start}–{prev}")
            start = cur
    return ("day " if len(days) == 1 else "days ") + ", ".join(runs) + " of each cycle"


# --- drawing --------------------------------------------------------------------------------

W, M, GAP = 960, 16, 24
LEFT_W = 448
RIGHT_X = M + LEFT_W + GAP
RIGHT_W = W - M - RIGHT_X
TITLE_PX, SMALL_PX = 8.6, 6.9  # average glyph widths used to wrap (bold 14px, regular 12px)
BIG_GROUP = 4  # groups with more options than this get the full width below


def _text_block(x: float, y: float, lines: list[tuple[str, str]]) -> tuple[str, float]:
    """<text> with one tspan per (class, line); returns svg and the height used."""
    out, dy = [], 0.0
    for cls, line in lines:
        step = 18 if cls == "t" else 16
        dy += step
        out.append(f'<tspan class="{cls}" x="{x:g}" y="{y + dy - 4:g}">{esc(line)}</tspan>')
    return (f"<text>{''.join(out)}</text>" if out else ""), dy


def _node_lines(option: Option, width: float, hide: set[Criterion]) -> list[tuple[str, str]]:
    chars_t = max(12, int((width - 24) / TITLE_PX))
    chars_s = max(14, int((width - 24) / SMALL_PX))
    lines = [("t", ln) for ln in wrap(option.title, chars_t)]
    if option.detail:
        lines += [("d", ln) for ln in wrap(option.detail, chars_s)]
    own = [c.short for c in option.criteria if c not in hide]
    if own:
        lines += [("c", ln) for ln in wrap(("If: " if not hide else "Also: ") + "; ".join(own), chars_s)]
    meta = [option.kind]
    if option.informational:
        meta = ["Information only, no order"]
    if option.citations:
        meta.append(f"{len(option.citations)} citation" + ("s" if len(option.citations) != 1 else ""))
    if option.studies:
        meta.append(f"{len(option.studies)} registered stud" + ("ies" if len(option.studies) != 1 else "y"))
    lines += [("m", ln) for ln in wrap(" · ".join(meta), chars_s)]
    return lines


def _node(option: Option, x: float, y: float, w: float, h: float, lines, palette: str) -> str:
    label = option.title + (f" ({option.kind})" if option.target else "")
    text, _ = _text_block(x + 12, y + 8, lines)
    shape = (f'<rect{attrs(class_="box", x=f"{x:g}", y=f"{y:g}", width=f"{w:g}", height=f"{h:g}", rx="8")}/>'
             + text)
    cls = f"node {palette}" + (" info" if option.informational else "")
    if option.href:
        return (f'<a{attrs(href=option.href, class_=cls, data_option=option.key, aria_label=label)}>'
                f"<title>{esc(label)}</title>{shape}</a>")
    return f'<g{attrs(class_=cls + " missing", data_option=option.key)}><title>{esc(label)}</title>{shape}</g>'


def _lane_head(lane: Lane, x: float, y: float, w: float) -> tuple[str, float]:
    chars_t = int((w - 24) / 9.2)
    chars_s = int((w - 24) / SMALL_PX)
    lines = [("lt", ln) for ln in wrap(lane.title, chars_t)]
    notes = []
    if lane.selection:
        notes.append(lane.selection.capitalize())
    if lane.description:
        notes.append(lane.description)
    if lane.shared:
        notes.append("For every option: " + "; ".join(c.short for c in lane.shared))
    for note in notes:
        lines += [("ln", ln) for ln in wrap(note, chars_s)]
    text, h = _text_block(x + 12, y + 8, lines)
    return text, h + 14


def _grid(lane: Lane, x: float, y: float, w: float, cols: int, palette: str) -> tuple[str, float]:
    gap = 12
    cw = (w - 24 - gap * (cols - 1)) / cols
    out, cy = [], y
    opts = list(lane.options)
    hide = set(lane.shared)
    for row in range(0, len(opts), cols):
        cells = opts[row:row + cols]
        line_sets = [_node_lines(o, cw, hide) for o in cells]
        h = max(sum(18 if c == "t" else 16 for c, _ in ls) for ls in line_sets) + 18
        for i, (o, ls) in enumerate(zip(cells, line_sets)):
            out.append(_node(o, x + 12 + i * (cw + gap), cy, cw, h, ls, palette))
        cy += h + gap
    return "".join(out), cy - y


def _container(lane: Lane, x: float, y: float, w: float, cols: int, palette: str) -> tuple[str, float]:
    head, hh = _lane_head(lane, x, y, w)
    body, bh = _grid(lane, x, y + hh, w, cols, palette)
    h = hh + bh
    rect = f'<rect{attrs(class_=f"lane {palette}", x=f"{x:g}", y=f"{y:g}", width=f"{w:g}", height=f"{h:g}", rx="12")}/>'
    return f'<g{attrs(class_="lane-group", data_lane=lane.key)}>{rect}{head}{body}</g>', h


def _sequence_lane(lane: Lane, x: float, y: float, w: float, marker: str) -> tuple[str, float]:
    head, hh = _lane_head(lane, x, y, w)
    out, cy = [head], y + hh
    hide = set(lane.shared)
    for pos, o in enumerate(lane.options):
        if pos:
            ax = x + w / 2
            out.append(f'<line{attrs(class_="arrow", x1=f"{ax:g}", y1=f"{cy - 2:g}", x2=f"{ax:g}", y2=f"{cy + 30:g}")}'
                       f' marker-end="url(#{marker})"/>')
            out.append(f'<text{attrs(class_="rel", x=f"{ax + 10:g}", y=f"{cy + 19:g}")}>{esc(o.relation)}</text>')
            cy += 36
        lines = _node_lines(o, w - 24, hide)
        h = sum(18 if c == "t" else 16 for c, _ in lines) + 18
        out.append(_node(o, x + 12, cy, w - 24, h, lines, "p-seq"))
        cy += h + 12
    h = cy - y
    rect = f'<rect{attrs(class_="lane p-seq", x=f"{x:g}", y=f"{y:g}", width=f"{w:g}", height=f"{h:g}", rx="12")}/>'
    return f'<g{attrs(class_="lane-group", data_lane=lane.key)}>{rect}{"".join(out)}</g>', h


def svg(pathway: Pathway, label_id: str = "pathway") -> str:
    """The pathway diagram: sequence on the left, small groups on the right, large groups below."""
    left, right, below = [], [], []
    for lane in pathway.lanes:
        if lane.kind == "sequence" or lane.kind == "single":
            left.append(lane)
        elif len(lane.options) > BIG_GROUP:
            below.append(lane)
        else:
            right.append(lane)
    if not right:  # nothing alongside: the sequence takes the full width
        left_w = W - 2 * M
    else:
        left_w = LEFT_W
    palettes = iter(["p-grp1", "p-grp2", "p-grp3"] * 10)
    parts: list[str] = []
    ly = ry = M
    for lane in left:
        if lane.kind == "sequence":
            g, h = _sequence_lane(lane, M, ly, left_w, f"{label_id}-arrow")
        else:  # a single option: its node alone, the lane title is its own title
            o = lane.options[0]
            lines = _node_lines(o, left_w, set())
            h = sum(18 if c == "t" else 16 for c, _ in lines) + 18
            g = (f'<g{attrs(class_="lane-group", data_lane=lane.key)}>'
                 f'{_node(o, M, ly, left_w, h, lines, "p-info" if o.informational else "p-seq")}</g>')
        parts.append(g)
        ly += h + GAP
    for lane in right:
        g, h = _container(lane, RIGHT_X, ry, RIGHT_W, 1, next(palettes))
        parts.append(g)
        ry += h + GAP
    y = max(ly, ry)
    for lane in below:
        cols = min(4, max(2, (len(lane.options) + 1) // 2))
        g, h = _container(lane, M, y, W - 2 * M, cols, next(palettes))
        parts.append(g)
        y += h + GAP
    height = y - GAP + M
    n = len(pathway.options)
    title = f"Treatment pathway: {pathway.entry.title}"
    desc = (f"{n} options in {len(pathway.lanes)} lanes. " + " ".join(
        f"{lane.title}: " + ", ".join(o.title for o in lane.options) + "." for lane in pathway.lanes)
        + " Each option links to its page; the table below gives the same content as text.")
    defs = (f'<defs><marker id="{esc(label_id)}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
            'orient="auto-start-reverse"><path class="arrowhead" d="M0,0 L10,5 L0,10 z"/></marker></defs>')
    return (f'<svg{attrs(class_="pathway", viewBox=f"0 0 {W} {height:g}", role="group", aria_labelledby=f"{label_id}-title {label_id}-desc", data_options=str(n))}'
            ' xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{esc(label_id)}-title">{esc(title)}</title><desc id="{esc(label_id)}-desc">{esc(desc)}</desc>'
            f"{defs}{''.join(parts)}</svg>")
