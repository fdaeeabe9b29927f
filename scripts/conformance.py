#!/usr/bin/env python3
"""Run the HL7 validator test-suite cases (R5 or R4 JSON) and compare verdicts with the HL7 validator's.

Verdict = the outcome has an issue of severity error or fatal.  Each case is
compared once for its base validation and, when the case has a profile step,
once more for that.  Cases that need something unavailable here (an XML
supporting file, a package that is not on the npm registry) are listed as
skipped with the reason, and count against the agreement figure.

Two suites: ``r5`` (tests/conformance/fhir-test-cases/validator, validated against R5) and ``r4``
(…/validator-r4, the cases for version 4.0, validated against R4 4.0.1).

Usage: python scripts/conformance.py [--suite r5|r4] [--json OUT] [--show-agreeing]
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "conformance" / "fhir-test-cases" / "validator"
#: suite name -> (folder, FHIR version its cases are validated as)
SUITES = {"r5": (SUITE, "5.0.0"), "r4": (SUITE.parent / "validator-r4", "4.0.1")}
sys.path.insert(0, str(ROOT))

from fhirpkg import api
from fhirpkg.fhir import packages as pk  # noqa: E402
from fhirpkg.fhir.inputs import Source, read_source  # noqa: E402
from fhirpkg.validation import Options, Validator  # noqa: E402
from fhirpkg.validation.references import Resolver  # noqa: E402


@dataclass
class Row:
    case: str
    step: str  # base | profile
    expected_invalid: bool | None
    got_invalid: bool | None = None
    status: str = "ok"  # ok | skipped | crash | unrecorded (the suite has no HL7 verdict: not a comparison)
    reason: str = ""
    expected_errors: list[str] = field(default_factory=list)
    got_errors: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.status == "ok" and self.expected_invalid == self.got_invalid


def expected(java, suite: Path = SUITE) -> tuple[bool, list[str]]:
    if isinstance(java, dict) and "errorCount" in java:
        return java["errorCount"] > 0, [o.get("message", "") if isinstance(o, dict) else str(o)
                                       for o in java.get("output", [])]
    if isinstance(java, (str, dict)):
        if isinstance(java, dict) and isinstance(java.get("outcome"), dict):
            oo = java["outcome"]  # recorded inline
        elif isinstance(java, str):
            oo = json.loads((suite / "outcomes" / java).read_text(encoding="utf-8"))
        else:
            raise ValueError(f"unexpected expectation {java!r}")
        errs = [f"{(i.get('expression') or [''])[0]}: {i['details']['text']}" for i in oo.get("issue", [])
                if i.get("severity") in ("error", "fatal")]
        return bool(errs), errs
    raise ValueError(f"unexpected expectation {java!r}")


def supporting_resources(names: list[str], defs, suite: Path = SUITE) -> tuple[list[dict], str | None]:
    """The supporting definitions; XML ones are read with fhirpkg's FHIR XML reader."""
    from fhirpkg.fhir import xmlformat
    out = []
    for name in names:
        path = suite / name
        if not path.exists():
            return [], f"supporting file {name} is missing from the suite copy"
        if name.endswith(".xml"):
            try:
                out.append(xmlformat.read(path.read_text(encoding="utf-8"), defs))
            except xmlformat.XmlError as e:
                return [], f"supporting file {name} could not be read as FHIR XML: {e}"
        else:
            out.append(json.loads(path.read_text(encoding="utf-8")))
    return out, None


def suite_packages(names: list[str], suite: Path) -> tuple[list[dict], list[str]]:
    """Resources of the package archives a case names that the suite itself holds (with the
    dependencies found beside them as ``<id>#<version>.tgz``), and the names it cannot have."""
    out, missing, todo, seen = [], [], [suite / n for n in names if n.endswith(".tgz")], set()
    missing = [n for n in names if not n.endswith(".tgz") or not (suite / n).is_file()]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        out.extend(api.read_conformance_inputs([str(path)]))
        for dep, ver in (pk.read_tgz_manifest(path).get("dependencies") or {}).items():
            todo.append(path.parent / f"{dep}#{ver}.tgz")
    return out, missing


def _expected_row(name: str, step: str, java, suite: Path) -> Row:
    """The row for one comparison; a missing recorded outcome makes it a skip with the reason."""
    try:
        invalid, errs = expected(java, suite)
    except FileNotFoundError as e:
        return Row(name, step, None, status="unrecorded",
                   reason=f"the manifest names the outcome {Path(e.filename).name}, which the suite lacks")
    except ValueError:
        return Row(name, step, None, status="unrecorded", reason="the manifest records no HL7 validator outcome")
    return Row(name, step, invalid, expected_errors=errs)


def run_case(base_defs, case: dict, suite: Path = SUITE) -> list[Row]:
    rows = []
    name = case["name"]
    base = _expected_row(name, "base", case.get("java"), suite)
    rows.append(base)
    prof = case.get("profile")
    prof_row = None
    if prof:
        prof_row = _expected_row(name, "profile", prof.get("java"), suite)
        rows.append(prof_row)
    if any(r.status == "unrecorded" for r in rows):
        for r in rows:  # the other step is still a comparison, but the case is not run half-way
            if r.status != "unrecorded":
                r.status, r.reason = "skipped", "the other step of this case has no recorded outcome"
        return rows
    pkg_resources, missing = suite_packages(case.get("packages") or [], suite)
    if missing:
        for r in rows:
            r.status, r.reason = "skipped", f"needs package(s) {', '.join(missing)}, not on the npm registry"
        return rows
    if not case["file"].endswith(".json"):
        for r in rows:
            r.status, r.reason = "skipped", "the instance is not JSON"
        return rows
    support_names = list(case.get("supporting") or []) + list(case.get("profiles") or []) + \
        list(case.get("supporting5") or [])
    supp, why = supporting_resources(support_names, base_defs, suite)
    supp = pkg_resources + supp
    if why:
        for r in rows:
            r.status, r.reason = "skipped", why
        return rows
    defs = base_defs.derive()
    api.add_conformance_resources(defs, supp)
    domains = tuple(filter(None, [case.get("allowed-extension-domain")]))
    # the HL7 test harness (ValidationTests) allows example URLs unless the case says "examples": false
    allow_examples = bool(case.get("examples", True))
    path = suite / case["file"]

    resolver = Resolver()  # supporting resources resolve as the HL7 validator's context has them
    for r in supp:
        if isinstance(r, dict):
            resolver.add(r)

    def validate(profiles=(), step=case):
        v = Validator(defs, Options(profiles=tuple(profiles), allowed_extension_domains=domains,
                                    allow_example_urls=allow_examples, **case_options(case),
                                    assume_valid_rest_references=bool(step.get("assumeValidRestReferences")),
                                    global_profiles=api.global_profiles(supp)),
                      resolver)
        issues = []
        for doc in read_source(Source(str(path), path), v.options.allow_comments):
            issues.extend(v.validate_document(doc))
        return issues

    try:
        issues = validate()
        base.got_invalid = any(i.is_error for i in issues)
        base.got_errors = [f"{i.expression}: [{i.rule}] {i.message}" for i in issues if i.is_error]
    except Exception as e:  # a crash is a result, recorded
        base.status, base.reason = "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
    if prof_row is not None:
        psupp, why = supporting_resources([prof["source"]] + list(prof.get("supporting") or []), base_defs, suite)
        if why:
            prof_row.status, prof_row.reason = "skipped", why
        else:
            api.add_conformance_resources(defs, psupp)
            try:
                issues = validate([psupp[0]["url"]], prof)
                prof_row.got_invalid = any(i.is_error for i in issues)
                prof_row.got_errors = [f"{i.expression}: [{i.rule}] {i.message}" for i in issues if i.is_error]
            except Exception as e:
                prof_row.status, prof_row.reason = "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
    return rows


def case_options(case: dict) -> dict:
    """The validator options a test case sets, as the HL7 test harness (ValidationTests) applies them."""
    opts = {}
    if case.get("security-checks"):
        opts["security_checks"] = True
    if case.get("noHtmlInMarkdown"):
        opts["html_in_markdown"] = "error"
    if case.get("allow-comments"):
        opts["allow_comments"] = True
    return opts


def run(suite: str = "r5") -> list[Row]:
    folder, version = SUITES[suite]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    defs = api.load_definitions(pk.DEFAULT_PACKAGES[version])
    rows: list[Row] = []
    for case in manifest["test-cases"]:
        rows.extend(run_case(defs, case, folder))
    return rows


def table(rows: list[Row]) -> dict:
    """Agreement over the comparisons: every row with a recorded HL7 verdict (skips and crashes
    count against it; rows without a verdict are counted apart)."""
    unrecorded = sum(1 for r in rows if r.status == "unrecorded")
    rows = [r for r in rows if r.status != "unrecorded"]
    n = len(rows)
    ok = [r for r in rows if r.status == "ok"]
    agree = sum(r.agrees for r in rows)
    return {
        "rows": n, "agree": agree, "agreement": agree / n if n else 0.0,
        "both_valid": sum(1 for r in ok if not r.expected_invalid and not r.got_invalid),
        "both_invalid": sum(1 for r in ok if r.expected_invalid and r.got_invalid),
        "only_hl7_invalid": sum(1 for r in ok if r.expected_invalid and not r.got_invalid),
        "only_fhirpkg_invalid": sum(1 for r in ok if not r.expected_invalid and r.got_invalid),
        "skipped": sum(1 for r in rows if r.status == "skipped"),
        "crashes": sum(1 for r in rows if r.status == "crash"),
        "unrecorded": unrecorded,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="r5", help="which cases (default r5)")
    ap.add_argument("--json", type=Path, help="write every row to this JSON file")
    ap.add_argument("--show-agreeing", action="store_true")
    args = ap.parse_args(argv)
    rows = run(args.suite)
    t = table(rows)
    print(f"HL7 validator test-suite ({args.suite.upper()} JSON): {t['rows']} comparisons")
    print(f"  agreement            {t['agree']}/{t['rows']} = {t['agreement']:.1%}")
    for k in ("both_valid", "both_invalid", "only_hl7_invalid", "only_fhirpkg_invalid", "skipped", "crashes",
              "unrecorded"):
        print(f"  {k:20s} {t[k]}")
    print("\nDisagreements, skips and crashes:")
    for r in rows:
        if r.agrees and not args.show_agreeing:
            continue
        label = "AGREE" if r.agrees else r.status.upper() if r.status != "ok" else \
            ("ONLY-HL7-INVALID" if r.expected_invalid else "ONLY-FHIRPKG-INVALID")
        print(f"- {r.case} [{r.step}] {label}{': ' + r.reason.splitlines()[0] if r.reason else ''}")
        for e in r.expected_errors[:4]:
            print(f"    hl7:     {e[:160]}")
        for e in r.got_errors[:4]:
            print(f"    fhirpkg: {e[:160]}")
    if args.json:
        args.json.write_text(json.dumps({"summary": t, "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
