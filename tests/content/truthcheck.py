"""Truth checks for definitions/: every number with a unit and every trial phase in a resource's prose or
structured elements must be quoted in a source excerpt of evidence/quantitative-claims.json (issue 13).

Pure functions over a definitions folder, so the mutation test can run them on a mutated copy in-process.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGISTER = ROOT / "evidence" / "quantitative-claims.json"

ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "ib": "1b", "ia": "1a"}
UNITS = [  # (regex alternatives, canonical unit)
    (r"mg/m2|mg/m²", "mg/m2"), (r"mg/kg", "mg/kg"), (r"mg", "mg"), (r"gy", "gy"),
    (r"months?|mo\b", "months"), (r"weeks?|wk\b", "weeks"), (r"days?|d\b", "days"),
    (r"patients|patient|men|pts|cases", "patients"), (r"cycles?", "cycles"), (r"%", "%"),
]
_UNIT_RE = "|".join(f"(?:{u})" for u, _ in UNITS)
NUM = r"\d+(?:\.\d+)?"
TOKEN_RE = re.compile(
    rf"(?P<phase>phase\s*(?:[0-9]+[ab]?|i{{1,3}}[ab]?|iv)(?:\s*[-/]\s*(?:[0-9]+[ab]?|i{{1,3}}[ab]?))?\b)"
    rf"|(?P<auc>auc\s*(?:of\s*)?(?P<aucv>{NUM}))"
    rf"|(?P<hr>(?:hazard ratio|hr)\s*[=:,]?\s*(?P<hrv>\d\.\d+))"
    rf"|(?P<q>\bq(?P<qv>\d+)(?P<qu>[dw])\b)"
    rf"|(?P<n>\bn\s*=\s*(?P<nv>\d+))"
    rf"|(?<![a-z0-9.])(?P<pval>\d+)\s+(?:[a-z-]+\s+){{1,2}}(?P<punit>patients|men|cases)\b"
    rf"|(?<![a-z0-9.])(?P<val>{NUM})\s*[-–]?\s*(?P<unit>{_UNIT_RE})",
    re.I)


@lru_cache(maxsize=None)
def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("–", "-").replace("—", "-").replace("²", "2").replace("\u00a0", " ")).strip().lower()


def _canon_phase(raw: str) -> str:
    parts = re.split(r"\s*[-/]\s*", re.sub(r"^phase\s*", "", raw.lower()))
    return "phase " + "/".join(ROMAN.get(p, p) for p in parts)


@lru_cache(maxsize=None)
def _tokens(text: str) -> frozenset[str]:
    return frozenset(_scan(text))


def tokens(text: str) -> set[str]:
    """Canonical number-with-unit and phase tokens of a text ("6.6 months", "phase 1b/2", "auc 5", "hr 0.34")."""
    return set(_tokens(text))


DAY_RE = re.compile(r"\bdays?\s+(\d+(?:\s*(?:,|, and|and|-|to)\s*\d+)*)")


def _days(spec: str) -> set[str]:
    out = set()
    for part in re.split(r"\s*(?:,|and)\s*", spec):
        m = re.fullmatch(r"(\d+)\s*(?:-|to)\s*(\d+)", part.strip())
        if m and int(m.group(2)) - int(m.group(1)) < 40:
            out |= {f"day {d}" for d in range(int(m.group(1)), int(m.group(2)) + 1)}
        elif part.strip().isdigit():
            out.add(f"day {int(part)}")
    return out


def _scan(text: str) -> set[str]:
    out = set()
    for m in DAY_RE.finditer(norm(text)):
        out |= _days(m.group(1))
    for m in TOKEN_RE.finditer(norm(text)):
        if m.group("phase"):
            out.add(_canon_phase(m.group("phase")))
        elif m.group("auc"):
            out.add(f"auc {m.group('aucv')}")
        elif m.group("hr"):
            out.add(f"hr {m.group('hrv')}")
        elif m.group("q"):
            out.add(f"{m.group('qv')} {'days' if m.group('qu') == 'd' else 'weeks'}")
        elif m.group("pval"):
            out.add(f"{m.group('pval')} patients")
        elif m.group("n"):
            out.add(f"{m.group('nv')} patients")
        else:
            unit = m.group("unit")
            canon = next(c for u, c in UNITS if re.fullmatch(u, unit, re.I))
            out.add(f"{m.group('val')} {canon}" if canon != "%" else f"{m.group('val')}%")
    return out


SKIP_KEYS = {"url", "system", "reference", "resource", "definitionCanonical", "version", "date", "code", "id",
             "linkId", "targetId", "status", "publicationDateText", "pageString", "volume", "issue", "value",
             "data"}  # data: base64 attachments (CQL/ELM), not prose


def strings(obj, path=""):
    """(path, text) for every prose string; skips identifiers, codes and titles of cited publications."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in SKIP_KEYS or k in {"meta", "identifier"}:
                continue
            yield from strings(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(obj, str):
        # publication titles are checked by the Citation identity test, not here
        if re.search(r"(relatedArtifact|documentation)\[\d+\]\.display$|citedArtifact\.title\[\d+\]\.text$|coding\[\d+\]\.display$|compose\.include\[\d+\]\.concept\[\d+\]\.display$|\.summary\[\d+\]\.text$", path):
            return
        yield path, obj


def structured_tokens(res: dict) -> set[str]:
    """Tokens carried by structured elements: timing periods and coded trial phases."""
    out = set()

    def walk(o):
        if isinstance(o, dict):
            if o.get("url") == "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle":
                out.update(f"day {e['valueInteger']}" for e in o.get("extension", []) if "valueInteger" in e)
            rep = o.get("timingTiming", {}).get("repeat") if "timingTiming" in o else None
            if rep and "period" in rep:
                unit = {"d": "days", "wk": "weeks", "mo": "months"}.get(rep.get("periodUnit"), rep.get("periodUnit"))
                out.add(f"{rep['period']:g} {unit}")
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(res)
    return out


PHASE_CODES = {"phase 1": "phase-1", "phase 1b": "phase-1", "phase 2": "phase-2", "phase 3": "phase-3",
               "phase 1/2": "phase-1-phase-2", "phase 1b/2": "phase-1-phase-2"}


def load_definitions(folder: Path) -> dict[str, dict]:
    res = {}
    for f in sorted(Path(folder).glob("*/*.json")):
        r = json.loads(f.read_text(encoding="utf-8"))
        res[f"{r['resourceType']}/{r['id']}"] = r
    return res


def load_register(path: Path = REGISTER) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check(folder: Path | None = None, register: dict | None = None, resources: dict[str, dict] | None = None) -> list[str]:
    """All truth problems of a definitions folder (or of already-loaded resources keyed "Type/id") against the
    claims register (empty list = clean)."""
    reg = register or load_register()
    excerpts = reg["excerpts"]
    res = resources if resources is not None else load_definitions(folder)
    problems: list[str] = []
    by_res: dict[str, list[dict]] = {}
    union: dict[tuple, set] = {}
    for rec in reg["records"]:
        if rec["excerpt"] in excerpts:
            union.setdefault((rec["resource"], norm(rec["statement"])), set()).update(tokens(excerpts[rec["excerpt"]]["text"]))
    for rec in reg["records"]:
        by_res.setdefault(rec["resource"], []).append(rec)
        ex = excerpts.get(rec["excerpt"])
        if ex is None:
            problems.append(f"{rec['id']}: unknown excerpt {rec['excerpt']}")
            continue
        st = norm(rec["statement"])
        missing = tokens(st) - union[(rec["resource"], st)]
        if missing:
            problems.append(f"{rec['id']}: {sorted(missing)} not in excerpt {rec['excerpt']}")
        for rule in ex.get("population_rules", []) if not rec["resource"].startswith("Citation/") else []:
            if norm(rule["if"]) in st:
                for q in rule["require"]:
                    if norm(q) not in st:
                        problems.append(f"{rec['id']}: statement uses {rule['if']!r} without population qualifier {q!r}")
        r = res.get(rec["resource"])
        if r is None:
            problems.append(f"{rec['id']}: resource {rec['resource']} missing")
            continue
        if not any(st in norm(t) for _, t in strings(r)):
            problems.append(f"{rec['id']}: statement no longer in {rec['resource']} (changed text?)")
    for key, r in res.items():
        recs = by_res.get(key, [])
        covered_texts = [norm(rec["statement"]) for rec in recs]
        for path, text in strings(r):
            for sentence in re.split(r"(?<=[.;])\s+(?=[A-Z(])|\n+", text):
                toks = tokens(sentence)
                if not toks:
                    continue
                ns = norm(sentence)
                ok = {t for rec, st in zip(recs, covered_texts) if ns in st or st in ns
                      for t in tokens(st) & tokens(excerpts.get(rec["excerpt"], {}).get("text", ""))}
                for t in sorted(toks - ok):
                    problems.append(f"{key} {path}: {t!r} has no quoted source record")
        st_toks = structured_tokens(r)
        quoted = set().union(*[tokens(excerpts[rec["excerpt"]]["text"]) for rec in recs if rec["excerpt"] in excerpts]) if recs else set()
        for t in sorted(st_toks - quoted):
            problems.append(f"{key}: structured {t!r} has no quoted source record")
        if r["resourceType"] == "ResearchStudy":
            text_phase = tokens(r.get("phase", {}).get("text", ""))
            codes = {c["code"] for c in r.get("phase", {}).get("coding", [])}
            for p in text_phase:
                if PHASE_CODES.get(p) not in codes:
                    problems.append(f"{key}: phase.text {p!r} disagrees with phase code {sorted(codes)}")
    problems += check_regimens(res, reg)
    problems += check_citations(res, reg)
    problems += check_hedges(res, reg)
    return problems


def check_regimens(res: dict, reg: dict) -> list[str]:
    """A regimen's drugs (ActivityDefinitions of its actions) equal the drugs the source's regimen sentence names."""
    out = []
    for rid, spec in reg.get("regimens", {}).items():
        r = res.get(f"PlanDefinition/{rid}")
        if r is None:
            out.append(f"regimen {rid} missing")
            continue
        found = set()

        def walk(actions):
            for a in actions:
                dc = a.get("definitionCanonical", "")
                if "/ActivityDefinition/ad-" in dc:
                    found.add(dc.rsplit("/ad-", 1)[1])
                walk(a.get("action", []))
        walk(r.get("action", []))
        if found != set(spec["drugs"]):
            out.append(f"regimen {rid}: drugs {sorted(found)} differ from source regimen {sorted(spec['drugs'])}")
        for d in spec["drugs"]:
            if d.replace("-", " ") not in norm(spec["source_sentence"]):
                out.append(f"regimen {rid}: {d} not in its source sentence")
        sel = {a.get("selectionBehavior") for a in r.get("action", [])} | {
            b.get("selectionBehavior") for a in r.get("action", []) for b in a.get("action", [])}
        if spec.get("selectionBehavior") and spec["selectionBehavior"] not in sel:
            out.append(f"regimen {rid}: selectionBehavior {sorted(x for x in sel if x)} is not {spec['selectionBehavior']}")
    return out


def check_citations(res: dict, reg: dict) -> list[str]:
    """Citation identifiers, year and journal equal the verified evidence records (evidence/shared-evidence-subset.json)."""
    out = []
    subset = json.loads((ROOT / "evidence" / "shared-evidence-subset.json").read_text(encoding="utf-8"))
    ev = {c["id"].lower(): c for c in subset["citations"]}
    for key, r in res.items():
        if r["resourceType"] != "Citation":
            continue
        c = ev.get(r["id"])
        if c is None:
            out.append(f"{key}: no verified evidence record")
            continue
        ca = r.get("citedArtifact", {})
        ids = {(i["system"], i["value"]) for i in ca.get("identifier", [])}
        for sysurl, field in (("https://pubmed.ncbi.nlm.nih.gov", "pmid"), ("https://doi.org", "doi"),
                              ("https://www.ncbi.nlm.nih.gov/pmc/", "pmcid")):
            have = {v for s, v in ids if s == sysurl}
            want = {c[field]} if c.get(field) and field not in c.get("unverified_fields", []) else set()
            if have != want:
                out.append(f"{key}: {field} {sorted(have)} != verified {sorted(want)}")
        for pf in ca.get("publicationForm", []):
            year = pf.get("publicationDateText")
            if year and str(c.get("year")) != year:
                out.append(f"{key}: year {year} != verified {c.get('year')}")
            title = pf.get("publishedIn", {}).get("title")
            if title and title != c.get("journal"):
                out.append(f"{key}: journal {title!r} != verified {c.get('journal')!r}")
    return out


def check_hedges(res: dict, reg: dict) -> list[str]:
    """Strength-of-evidence wording: each registered hedged statement must keep its hedge (e.g. 'may', 'typically')."""
    out = []
    for h in reg.get("hedges", []):
        r = res.get(h["resource"])
        if r is None or not any(norm(h["statement"]) in norm(t) for _, t in strings(r)):
            out.append(f"{h['resource']}: hedged statement {h['statement']!r} changed or removed")
    return out
