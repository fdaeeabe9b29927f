#!/usr/bin/env python3
"""Which of the HL7 validator's rules fhirpkg implements: data extraction and docs/rule-coverage.md.

The HL7 validator names every message it can give with an id (``I18nConstants`` in
org.hl7.fhir.utilities, texts in ``Messages.properties``).  This script records *facts* about
those ids (text, which source files use them) in a data file; it copies no code.

  extract --core DIR   read an org.hl7.fhir.core checkout (or extracted copy) and write
                       docs/data/hl7-message-ids.json: the ids used by the instance validator,
                       its type/ checkers, the base validator and the JSON/XML element-model
                       parsers, with their English text and the files using them
  run-examples OUT     run the HL7 validator (tests/interop harness, offline, -allow-example-urls,
                       -no-preload) on the agreement sample of hl7.fhir.r5.examples and write
                       {file: [issue with message_id]} to OUT (minutes; needs Java and the jar)
  hits [--hl7-run F]   count how often each id fires: the outcomes recorded in the HL7 test suite
                       (texts matched back to ids) and, optionally, a run of the HL7 validator on
                       the R5 examples (JSON {file: [issue with message_id]}); writes
                       docs/data/hl7-message-hits.json
  issue-agreement F    issue-level agreement with a run-examples file: the HL7 validator's errors and
                       warnings against fhirpkg's on the same files, matched by (path, severity)
                       after normalising the HL7 path style (``x.ofType(T)`` = ``xT``, no
                       ``/*Type/id*/`` comments); prints the figures and the unmatched ids/rules
  render [--check]     write docs/rule-coverage.md from the two data files and
                       fhirpkg.validation.rules (--check: exit 1 if the committed file differs)
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "docs" / "data" / "hl7-message-ids.json"
HITS = ROOT / "docs" / "data" / "hl7-message-hits.json"
DOC = ROOT / "docs" / "rule-coverage.md"
SUITE = ROOT / "tests" / "conformance" / "fhir-test-cases" / "validator"

VALIDATION = "org.hl7.fhir.validation/src/main/java/org/hl7/fhir/validation/"
ELEMENT_MODEL = "org.hl7.fhir.r5/src/main/java/org/hl7/fhir/r5/elementmodel/"
TX_VALIDATION = "org.hl7.fhir.r5/src/main/java/org/hl7/fhir/r5/terminologies/validation/"
UTILITIES = "org.hl7.fhir.utilities/src/main/"
#: the source files whose ids can fire when validating a JSON instance, Bundle, profile or
#: StructureDefinition (XmlParser is read only to tell XML-only ids apart)
SCOPE = (VALIDATION + "BaseValidator.java", VALIDATION + "instance/", ELEMENT_MODEL + "JsonParser.java",
         ELEMENT_MODEL + "ParserBase.java", ELEMENT_MODEL + "XmlParser.java", TX_VALIDATION + "ValueSetValidator.java")
USE = re.compile(r"I18nConstants\.([A-Za-z0-9_]+)")  # some ids are mixed case (Terminology_TX_Code_ValueSet_MISSING)
CONST = re.compile(r'public static final String ([A-Za-z0-9_]+)\s*=\s*"([^"]+)"')


# ------------------------------------------------------------------ extract
def parse_properties(text: str, plural: str = "one") -> dict[str, str]:
    """Messages.properties: ``key = text`` (MessageFormat: '' is a quote); of the plural keys
    (``_one``/``_other``) the form ``plural`` is kept under the id without the suffix."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, val = line.partition("=")
        key, val = key.strip(), val.strip().replace("''", "'")
        base = re.sub(r"_(one|other)$", "", key)
        if base != key and (base in out and not key.endswith("_" + plural)):
            continue
        out[base] = val
    return out


def _scope_files(core: Path) -> list[Path]:
    files = []
    for s in SCOPE:
        p = core / s
        files.extend(sorted(p.rglob("*.java")) if s.endswith("/") else [p] if p.is_file() else [])
    return files


def extract(core: Path, commit: str = "") -> dict:
    consts_file = core / UTILITIES / "java/org/hl7/fhir/utilities/i18n/I18nConstants.java"
    consts = dict(CONST.findall(consts_file.read_text(encoding="utf-8")))
    props = (core / UTILITIES / "resources/Messages.properties").read_text(encoding="utf-8")
    texts, others = parse_properties(props), parse_properties(props, "other")
    uses: dict[str, Counter] = defaultdict(Counter)
    for f in _scope_files(core):
        rel = str(f.relative_to(core))
        short = rel.replace(VALIDATION, "validation/").replace(ELEMENT_MODEL, "r5/elementmodel/")\
            .replace(TX_VALIDATION, "r5/terminologies/validation/")
        for name in USE.findall(f.read_text(encoding="utf-8", errors="replace")):
            if name in consts:
                uses[consts[name]][short] += 1
    if not commit:
        try:
            commit = subprocess.run(["git", "-C", str(core), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = ""
    ids = {}
    for mid, c in sorted(uses.items()):
        ids[mid] = {"text": texts.get(mid, ""), "files": dict(sorted(c.items()))}
        if others.get(mid, texts.get(mid)) != texts.get(mid):
            ids[mid]["plural"] = others[mid]
    return {"source": "hapifhir/org.hl7.fhir.core", "commit": commit, "scope": list(SCOPE), "ids": ids}


# ------------------------------------------------------------------ matching texts back to ids
def _template_regex(text: str) -> re.Pattern | None:
    parts = re.split(r"\{\d+(?:,[^}]*)?\}", text)
    literal = "".join(parts)
    if len(re.sub(r"\W", "", literal)) < 12:
        return None  # too general to identify a message
    return re.compile("^" + "(.*?)".join(re.escape(p) for p in parts) + "$", re.S)


class TextMatcher:
    """Maps a rendered HL7 message back to its id: the matching template with the most literal text."""

    def __init__(self, ids: dict[str, dict]):
        self.templates = []
        for mid, info in ids.items():
            for text in (info["text"], info.get("plural")):
                rx = _template_regex(text) if text else None
                if rx is not None:
                    lit = len(re.sub(r"\{\d+(?:,[^}]*)?\}", "", text))
                    self.templates.append((lit, mid, rx))
        self.templates.sort(key=lambda t: -t[0])

    def match(self, message: str) -> str | None:
        """The id for ``message``; a leading "SEVERITY: " and "path: " (manifest style) are tried off too."""
        message = message.strip()
        bare = re.sub(r"^(?:ERROR|WARNING|INFORMATION|FATAL): ", "", message)
        for text in (message, bare, re.sub(r"^[^\s:]+(?:\([^)]*\))?[^\s:]*: ", "", bare)):
            for _, mid, rx in self.templates:
                if rx.match(text):
                    return mid
        return None


def suite_messages() -> list[tuple[str, str]]:
    """(case, message) for every error/warning the HL7 test suite's recorded outcomes hold."""
    manifest = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
    out = []

    def java_messages(case: str, java) -> None:
        if isinstance(java, dict):
            for o in java.get("output", []):
                out.append((case, o.get("message", "") if isinstance(o, dict) else str(o)))
        elif isinstance(java, str) and (SUITE / "outcomes" / java).is_file():
            oo = json.loads((SUITE / "outcomes" / java).read_text(encoding="utf-8"))
            for i in oo.get("issue", []):
                if i.get("severity") in ("error", "fatal", "warning"):
                    out.append((case, (i.get("details") or {}).get("text", "")))

    for case in manifest["test-cases"]:
        java_messages(case["name"], case.get("java"))
        if case.get("profile"):
            java_messages(case["name"] + " [profile]", case["profile"].get("java"))
    return out


def run_examples(out: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from interop import hl7, test_agreement as agreement  # noqa: E402 - the interop harness lives with the tests

    files = agreement.example_sample()
    res = hl7.validate_files(files, extra_args=["-allow-example-urls", "true", "-no-preload"])
    from fhirpkg import fsutil

    fsutil.atomic_write_text(out, json.dumps({p.name: v for p, v in res.items()}, indent=1) + "\n")


def hits(hl7_run: Path | None) -> dict:
    ids = json.loads(DATA.read_text(encoding="utf-8"))["ids"]
    matcher = TextMatcher(ids)
    suite: dict[str, set] = defaultdict(set)
    unmatched = Counter()
    for case, msg in suite_messages():
        mid = matcher.match(msg)
        if mid:
            suite[mid].add(case)
        else:
            unmatched[msg[:120]] += 1
    examples: dict[str, set] = defaultdict(set)
    if hl7_run is not None:
        for name, issues in json.loads(hl7_run.read_text(encoding="utf-8")).items():
            for i in issues:
                if i.get("severity") not in ("error", "fatal", "warning"):
                    continue
                mid = i.get("message_id") or matcher.match(i.get("message", ""))
                if mid:
                    examples[mid].add(name)
    return {
        "suite_cases": {k: sorted(v) for k, v in sorted(suite.items())},
        "example_files": {k: len(v) for k, v in sorted(examples.items())},
        "suite_unmatched": dict(unmatched.most_common()),
    }


# ------------------------------------------------------------------ issue-level agreement
def hl7_path(expression: str | None) -> str:
    """The HL7 validator's issue path in fhirpkg's FHIRPath style."""
    e = re.sub(r"/\*.*?\*/", "", expression or "")
    return re.sub(r"\.([a-z][A-Za-z]*)\.ofType\(([A-Za-z]+)\)",
                  lambda m: f".{m.group(1)}{m.group(2)[0].upper()}{m.group(2)[1:]}", e)


def match_issues(hl7_issues: list[dict], ours: list, index: dict) -> tuple[Counter, Counter, Counter]:
    """Errors and warnings of both tools on one file, matched by (path, severity) after
    normalising the HL7 path style: (counts, HL7-only message ids, fhirpkg-only rule ids).
    ``ours``: fhirpkg Issues; ``index``: :func:`fhirpkg.validation.rules.hl7_index`."""
    counts, hl7_only, ours_only = Counter(), Counter(), Counter()
    pool: dict[tuple, list] = defaultdict(list)
    for i in ours:
        if i.severity.code in ("error", "warning", "fatal"):
            pool[(i.expression, "error" if i.severity.code == "fatal" else i.severity.code)].append(i.rule)
    # issues whose id maps to a fhirpkg rule first, so each takes its own rule's issue
    for i in sorted(hl7_issues, key=lambda i: i.get("message_id") not in index):
        sev = "error" if i.get("severity") == "fatal" else i.get("severity")
        if sev not in ("error", "warning"):
            continue
        path = hl7_path(i.get("expression"))
        rules = pool.get((path, sev))
        if not rules and "[x]" in path:  # parse errors name the choice element (value[x]), not its type
            choice = re.compile(re.escape(path).replace(re.escape("[x]"), "[A-Z][A-Za-z]*") + "$")
            rules = next((v for (p, s), v in pool.items() if s == sev and v and choice.match(p)), None)
        mine = [r for r in index.get(i.get("message_id"), ()) if rules and r in rules]
        if rules:
            rules.remove(mine[0] if mine else rules[-1])
            counts["same path and severity"] += 1
        else:
            counts["HL7 only"] += 1
            hl7_only[i.get("message_id") or "(no id)"] += 1
    for rules in pool.values():
        counts["fhirpkg only"] += len(rules)
        ours_only.update(rules)
    return counts, hl7_only, ours_only


def issue_agreement(hl7_run: Path) -> dict:
    from fhirpkg import api
    from fhirpkg.fhir import packages as pk
    from fhirpkg.fhir.inputs import Source, read_source
    from fhirpkg.validation import Options, Validator
    from fhirpkg.validation.rules import hl7_index

    runs = json.loads(hl7_run.read_text(encoding="utf-8"))
    folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
    validator = Validator(api.load_definitions(), Options(allow_example_urls=True))  # as run_examples runs HL7
    index = hl7_index()
    counts, hl7_only, ours_only = Counter(), Counter(), Counter()
    for name, issues in sorted(runs.items()):
        path = folder / name
        ours = [i for d in read_source(Source(str(path), path)) for i in validator.validate_document(d)]
        c, h, o = match_issues(issues, ours, index)
        counts.update(c)
        hl7_only.update(h)
        ours_only.update(o)
    return {"files": len(runs), "counts": dict(counts), "hl7_only": dict(hl7_only.most_common()),
            "fhirpkg_only": dict(ours_only.most_common())}


# ------------------------------------------------------------------ classification and render
XML_ONLY_FILES = {"r5/elementmodel/XmlParser.java"}
NA_FILES = {
    "validation/instance/utils/DigitalSignatureSupport.java": "digital signature verification (needs certificates/keys)",
    "validation/instance/utils/CertificateScanner.java": "digital signature verification (needs certificates/keys)",
    "validation/instance/MatchetypeValidator.java": "matchetype comparison of test outputs, not instance validation",
    "validation/instance/scoring/ScoringEngine.java": "quality scoring, not validation",
    "validation/instance/type/ViewDefinitionValidator.java": "SQL-on-FHIR ViewDefinition (not an R5 core resource)",
}
TX_SERVER = re.compile(r"terminology server|tx server|\bserver\b.*(?:code|value ?set|expan)|"
                       r"(?:code|value ?set|expan).*\bserver\b", re.I)


def classify(mid: str, info: dict, implemented: dict[str, list[str]]) -> tuple[str, str]:
    """('implemented', rule ids) | ('n/a', reason) | ('not yet', '')."""
    from fhirpkg.validation.rules import NOT_APPLICABLE

    if mid in implemented:
        return "implemented", ", ".join(implemented[mid])
    if mid in NOT_APPLICABLE:
        return "n/a", NOT_APPLICABLE[mid]
    files = set(info["files"])
    if files <= XML_ONLY_FILES:
        return "n/a", "XML only (raised by the XML parser)"
    if files <= set(NA_FILES):
        return "n/a", NA_FILES[sorted(files)[0]]
    if TX_SERVER.search(info["text"]):
        return "n/a", "terminology server only (fhirpkg validates codes offline from the loaded packages)"
    return "not yet", ""


def render() -> str:
    from fhirpkg.validation.rules import RULES, hl7_index

    data = json.loads(DATA.read_text(encoding="utf-8"))
    hit = json.loads(HITS.read_text(encoding="utf-8")) if HITS.is_file() else {"suite_cases": {}, "example_files": {}}
    implemented = hl7_index()
    rows = []
    counts = Counter()
    for mid, info in data["ids"].items():
        status, detail = classify(mid, info, implemented)
        counts[status] += 1
        rows.append((mid, status, detail, info))
    lines = [
        "# Rule coverage: the HL7 validator's message ids and fhirpkg's rules",
        "",
        "Generated by `python scripts/rule_coverage.py render` from `docs/data/hl7-message-ids.json`",
        f"(ids used by the HL7 validator's instance validator, type checkers, base validator and JSON/XML",
        f"element-model parsers in {data['source']} at `{data['commit'][:12] or 'unknown'}`), "
        "`docs/data/hl7-message-hits.json`",
        "(how often each id fires) and the rule table `fhirpkg/validation/rules.py`. Do not edit by hand.",
        "",
        f"fhirpkg has **{len(RULES)} rule ids** (plus every invariant key of the loaded StructureDefinitions, "
        "reported under its own key such as `ele-1`).",
        "",
        "| HL7 message ids | count |",
        "|---|---|",
        *(f"| {k} | {counts[k]} |" for k in ("implemented", "not yet", "n/a")),
        f"| total | {sum(counts.values())} |",
        "",
        "## Not yet implemented ids that fire on real content",
        "",
        "Counted in the outcomes the HL7 validator recorded for its own test suite (R5 cases, message texts",
        "matched back to their ids) and in a run of the HL7 validator 6.10.4 on the agreement sample of",
        "`hl7.fhir.r5.examples` (files with the message as error or warning; `rule_coverage.py run-examples`,",
        "then `hits --hl7-run`). Ids are from the newest org.hl7.fhir.core; a few texts differ from 6.10.4's.",
        "Issue-level agreement on the same run (path and severity): `rule_coverage.py issue-agreement FILE`.",
        "",
        "| id | suite cases | example files | text |",
        "|---|---|---|---|",
    ]
    firing = []
    for mid, status, _, info in rows:
        s, e = len(hit["suite_cases"].get(mid, ())), hit["example_files"].get(mid, 0)
        if status == "not yet" and (s or e):
            firing.append((-(s + e), mid, s, e, info["text"]))
    for _, mid, s, e, text in sorted(firing):
        lines.append(f"| `{mid}` | {s} | {e} | {_cell(text)} |")
    if not firing:
        lines.append("| (none) | | | |")
    lines += ["", "## Not applicable ids that fire on real content", "",
              "| id | suite cases | example files | reason |", "|---|---|---|---|"]
    na = sorted((-(len(hit["suite_cases"].get(m, ())) + hit["example_files"].get(m, 0)), m, d)
                for m, st, d, _ in rows if st == "n/a")
    for neg, mid, detail in na:
        if neg:
            lines.append(f"| `{mid}` | {len(hit['suite_cases'].get(mid, ()))} | {hit['example_files'].get(mid, 0)} "
                         f"| {_cell(detail)} |")
    lines += ["", "## Every id", "", "| id | status | fhirpkg rule / reason | text |", "|---|---|---|---|"]
    for mid, status, detail, info in rows:
        lines.append(f"| `{mid}` | {status} | {_cell(detail)} | {_cell(info['text'])} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract")
    ex.add_argument("--core", type=Path, required=True)
    ex.add_argument("--commit", default="", help="the checkout's commit, when DIR is not a git work tree")
    rx = sub.add_parser("run-examples")
    rx.add_argument("out", type=Path)
    hi = sub.add_parser("hits")
    hi.add_argument("--hl7-run", type=Path)
    ia = sub.add_parser("issue-agreement")
    ia.add_argument("hl7_run", type=Path)
    re_ = sub.add_parser("render")
    re_.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    from fhirpkg import fsutil

    if args.cmd == "extract":
        DATA.parent.mkdir(parents=True, exist_ok=True)
        fsutil.atomic_write_text(DATA, json.dumps(extract(args.core, args.commit), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {DATA}")
    elif args.cmd == "run-examples":
        run_examples(args.out)
        print(f"wrote {args.out}")
    elif args.cmd == "issue-agreement":
        res = issue_agreement(args.hl7_run)
        c = res["counts"]
        total = sum(c.values())
        print(f"{res['files']} files; HL7 validator errors+warnings vs fhirpkg's, matched by path and severity:")
        for k, n in c.items():
            print(f"  {k:24s} {n:6d}  ({n / total:.1%} of all)")
        print("  HL7-only by message id:", ", ".join(f"{k} {n}" for k, n in list(res["hl7_only"].items())[:15]))
        print("  fhirpkg-only by rule:  ", ", ".join(f"{k} {n}" for k, n in list(res["fhirpkg_only"].items())[:15]))
    elif args.cmd == "hits":
        fsutil.atomic_write_text(HITS, json.dumps(hits(args.hl7_run), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {HITS}")
    else:
        text = render()
        if args.check:
            current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
            if current != text:
                print(f"{DOC} is out of date: run python scripts/rule_coverage.py render", file=sys.stderr)
                return 1
            return 0
        fsutil.atomic_write_text(DOC, text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
