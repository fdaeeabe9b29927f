"""Benchmark the offline terminology engine.

Measures: building ``Terminology`` from the installed packages (R5 core,
hl7.terminology.r5, extensions), its pickled size, the time to unpickle it
(what a cold CLI run pays), first expansions, and ``validate_code`` /
``validate_in_system`` calls per second, uncached and memoized.

    .venv/bin/python benchmarks/terminology.py [--repeat N] [--json]
"""
from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time

from fhirpkg.fhir.packages import R5_DEFAULT_PACKAGES, PackageRef, installed
from fhirpkg.validation.terminology.codes import Terminology
from fhirpkg.validation.terminology.grammars import check_bcp47
from fhirpkg.validation.terminology.systems import BCP47, LOINC, SNOMED, UCUM

VS = "http://hl7.org/fhir/ValueSet/"
THO_VS = "http://terminology.hl7.org/ValueSet/"
#: A mix like real content: status codes, languages, a THO v3 filter, an unavailable system.
QUERIES = [
    (VS + "administrative-gender", None, "male"),
    (VS + "administrative-gender", None, "nonsense"),
    (VS + "publication-status", None, "active"),
    (VS + "request-intent", None, "order"),
    (VS + "all-languages", None, "en-US"),
    (VS + "all-languages", None, "de-CH"),
    (VS + "mimetypes", None, "application/pdf"),
    (VS + "currencies", None, "EUR"),
    (VS + "plan-definition-type", "http://terminology.hl7.org/CodeSystem/plan-definition-type", "eca-rule"),
    (THO_VS + "v3-ActEncounterCode", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
    (VS + "identifier-type", "http://terminology.hl7.org/CodeSystem/v2-0203", "MR"),
    (VS + "clinical-findings", SNOMED, "22298006"),
    (VS + "observation-vitalsignresult", LOINC, "8867-4"),
    (VS + "ucum-units", UCUM, "mg/dL"),
]
SYSTEM_QUERIES = [
    ("http://hl7.org/fhir/administrative-gender", "male", "Male"),
    ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
    (SNOMED, "22298006", None),
    (BCP47, "en-AU", None),
    (UCUM, "mmol/L", None),
    ("http://example.org/codes", "x", None),
]


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(repeat: int) -> dict:
    pkgs = [installed(PackageRef(*r)) for r in R5_DEFAULT_PACKAGES]
    if any(p is None for p in pkgs):
        sys.exit("install the R5 packages first: fhirpkg packages install ...")
    results: dict = {"packages": [str(p.ref) for p in pkgs]}

    builds = _time(lambda: Terminology.from_packages(pkgs), max(1, repeat // 5))
    term = Terminology.from_packages(pkgs)
    results["build_s"] = round(statistics.median(builds), 3)
    results["code_systems"] = len(term.code_systems)
    results["value_sets"] = len(term.value_sets)
    results["sources"] = list(term.sources)

    blob = pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL)
    results["pickle_bytes"] = len(blob)
    results["pickle_dump_s"] = round(statistics.median(
        _time(lambda: pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL), repeat)), 4)
    results["pickle_load_s"] = round(statistics.median(_time(lambda: pickle.loads(blob), repeat)), 4)

    fresh = pickle.loads(blob)
    t = time.perf_counter()
    for url in (THO_VS + "v3-RoleCode", VS + "security-labels", THO_VS + "v3-ActEncounterCode",
                VS + "all-languages", VS + "resource-types"):
        fresh.expand(url)
    results["first_expansions_5_s"] = round(time.perf_counter() - t, 4)
    t = time.perf_counter()
    first = fresh.validate_code(VS + "all-languages", None, "en-US")
    results["first_language_check_s"] = round(time.perf_counter() - t, 4)  # decodes the ISO lists
    assert first.valid

    n = 20_000
    for q in QUERIES:  # warm the expansions, not the answers
        term.validate_code(*q)

    def uncached():
        for i in range(n):
            term._answers.clear()
            term.validate_code(*QUERIES[i % len(QUERIES)])

    def cached():
        for i in range(n):
            term.validate_code(*QUERIES[i % len(QUERIES)])

    def in_system():
        for i in range(n):
            term._answers.clear()
            term.validate_in_system(*SYSTEM_QUERIES[i % len(SYSTEM_QUERIES)])

    results["validate_code_uncached_per_s"] = int(n / statistics.median(_time(uncached, 3)))
    results["validate_code_memoized_per_s"] = int(n / statistics.median(_time(cached, 3)))
    results["validate_in_system_uncached_per_s"] = int(n / statistics.median(_time(in_system, 3)))
    iso = term.iso
    tags = ["en", "en-US", "zh-Hant-TW", "sr-Latn-RS", "de-CH-1996", "english", "en_US"]
    t = time.perf_counter()
    for i in range(n):
        check_bcp47(tags[i % len(tags)], iso)
    results["bcp47_checks_per_s"] = int(n / (time.perf_counter() - t))
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = run(args.repeat)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    for key, value in res.items():
        print(f"{key:36s} {value}")


if __name__ == "__main__":
    main()
