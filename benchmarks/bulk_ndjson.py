#!/usr/bin/env python3
"""A bulk NDJSON of clinical resources, as an EHR's `$export` would give: the R5 examples of
the clinical types (Observation, Condition, Patient, Encounter, MedicationRequest, Procedure,
DiagnosticReport, AllergyIntolerance, Immunization), repeated round-robin with ids made unique.

Usage: python benchmarks/bulk_ndjson.py OUT.ndjson [--resources 20000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLINICAL = ("Observation", "Condition", "Patient", "Encounter", "MedicationRequest", "Procedure",
            "DiagnosticReport", "AllergyIntolerance", "Immunization")


def clinical_examples() -> list[dict]:
    """The R5 examples of the clinical types, as parsed JSON (each a single resource)."""
    from fhirpkg.fhir import packages as pk
    folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
    out = []
    for p in pk.resource_files(folder):
        if p.name.split("-", 1)[0] in CLINICAL:
            res = orjson.loads(p.read_bytes())
            if isinstance(res, dict) and res.get("resourceType") in CLINICAL:
                out.append(res)
    return out


def lines(count: int) -> "list[bytes]":
    """``count`` NDJSON lines (bytes, without the newline)."""
    examples = clinical_examples()
    out = []
    for n in range(count):
        res = dict(examples[n % len(examples)])
        res["id"] = f"{str(res.get('id', 'r'))[:50]}-{n}"
        out.append(orjson.dumps(res))
    return out


def write(path: Path, count: int) -> int:
    data = lines(count)
    with open(path, "wb") as f:
        for line in data:
            f.write(line + b"\n")
    return len(data)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--resources", type=int, default=20000)
    args = ap.parse_args()
    n = write(args.out, args.resources)
    print(f"wrote {n} resources ({args.out.stat().st_size / 2**20:.1f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
