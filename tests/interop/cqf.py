"""Harness around the reference $apply engine, cqf-fhir-cr (our Java front end in ``cqf-apply/``).

``org.opencds.cqf.fhir:cqf-fhir-cr:4.4.0`` (HAPI FHIR 8.8.0 underneath) comes from Maven Central;
``cqf-apply/`` builds ``target/cqf_apply.jar`` with ``target/lib/*.jar`` on its class path.  The engine
evaluates FHIR R4 only (``applyR5`` runs but has no FHIR 5.0.0 model info), so it gets the package's
R4 form, made at call time by the project's own converter (``fhirpkg.publish.convert.to_r4``, what
``fhirpkg build`` writes to ``build/r4/``), and the patient records converted by
``fhirpkg.logic.r4data.to_r4_bundle``.

Public API::

    jar_path(build=True) -> Path
    r4_content(package="definitions") -> (bundle dict, Conversion)
    patient_runs(names=None) -> list[PatientRun]        # tests/patients/expected.json
    run(content, runs, *, warmup=0, repeat=1, elm_only=False, share_caches=False, timeout=None) -> dict
    summary(doc) -> {(name, plan id): {"actions": [...], "activities": [...], "errors": [...]}}

One JVM applies every (patient, PlanDefinition) pair, each on a fresh in-memory repository with fresh
engine caches (see ``CqfApply.java``); with ``repeat`` >= 2 the passes alternate forward and reverse
order and the output's ``consistent`` says whether every pass agreed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fhirpkg.logic import jvm
from . import hl7

HERE = Path(__file__).resolve().parent
PROJECT_DIR = HERE / "cqf-apply"
TARGET = PROJECT_DIR / "target"
JAR = TARGET / "cqf_apply.jar"
REPO = HERE.parent.parent
PATIENTS = REPO / "tests" / "patients"

CQF_FHIR_VERSION = "4.4.0"  # see cqf-apply/pom.xml
HAPI_VERSION = "8.8.0"

#: JVM options; override with FHIRPKG_CQF_JAVA_OPTS (space-separated).
DEFAULT_JAVA_OPTS = ("-Xmx2g", "-XX:+UseSerialGC")
RUN_TIMEOUT = 900  # JVM start + engine load + the panel, on 2 shared cores

CANONICAL = "http://example.org/fhir/nepc"


class CqfError(RuntimeError):
    """The engine front end failed as a program (crash, time-out, unreadable output)."""


def jar_path(build: bool = True) -> Path:
    """The front end's jar, built with ``mvn -q -B package`` if missing or older than its sources.

    ``FHIRPKG_CQF_JAR`` names a prebuilt jar instead (its ``lib/`` folder must sit beside it).
    """
    return jvm.built_jar(PROJECT_DIR, JAR, "FHIRPKG_CQF_JAR", build)


# ---------------------------------------------------------------------------------- inputs

def r4_content(package: Path | str = REPO / "definitions"):
    """The package's resources in the R4 shape, as one collection Bundle (the engine's content).

    Made with the same converter ``fhirpkg build`` uses for ``build/r4/`` (never read from the
    committed ``build/``).  Returns ``(bundle, conversion)``; ``conversion.losses`` says what R4
    could not carry.
    """
    from fhirpkg.publish import convert
    from fhirpkg.content import project

    proj = project.load(package)
    conv = convert.to_r4([r.json for r in proj.resources])
    bundle = {"resourceType": "Bundle", "id": "nepc-content-r4", "type": "collection",
              "entry": [{"fullUrl": f"{r.get('url') or CANONICAL + '/' + r['resourceType'] + '/' + r['id']}",
                         "resource": r} for r in conv.resources]}
    return bundle, conv


@dataclass(frozen=True)
class PatientRun:
    """One patient of the panel and what tests/patients/expected.json says about it."""

    name: str  # file name in tests/patients/
    path: Path
    subject: str
    why: str
    expected: dict  # {plan id: {"actions": [...], "activities": [...]}}


def expected_file() -> Path:
    return PATIENTS / "expected.json"


def panel_names() -> list[str]:
    """The names of the panel's patients with recorded expectations (none if the file is unreadable)."""
    try:
        return sorted(json.loads(expected_file().read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []


def patient_runs(names: Sequence[str] | None = None) -> list[PatientRun]:
    """The panel's patients (all, or the ``names`` given), in file-name order."""
    doc = json.loads(expected_file().read_text(encoding="utf-8"))
    out = []
    for name in sorted(doc):
        if names is not None and name not in names:
            continue
        entry = doc[name]
        out.append(PatientRun(name, PATIENTS / name, entry["subject"], entry.get("why", ""),
                              entry.get("plans") or {}))
    return out


def plan_canonical(plan_id: str) -> str:
    return f"{CANONICAL}/PlanDefinition/{plan_id}"


# ---------------------------------------------------------------------------------- running

def java_opts() -> list[str]:
    env = os.environ.get("FHIRPKG_CQF_JAVA_OPTS")
    return env.split() if env else list(DEFAULT_JAVA_OPTS)


def command(content_file: Path, runs_file: Path, output: Path, *, warmup: int = 0, repeat: int = 1,
            elm_only: bool = False, share_caches: bool = False) -> list[str]:
    java = hl7.java_exe()
    if not java:
        raise hl7.InteropUnavailable("; ".join(hl7.missing_tools()))
    cmd = [java, *java_opts(), "-jar", str(jar_path()), "-content", str(content_file),
           "-runs", str(runs_file), "-output", str(output), "-warmup", str(warmup), "-repeat", str(repeat)]
    if elm_only:
        cmd.append("-elm-only")
    if share_caches:
        cmd.append("-share-caches")
    return cmd


def run(content: dict, runs: Sequence[dict], *, warmup: int = 0, repeat: int = 1, elm_only: bool = False,
        share_caches: bool = False, timeout: float | None = None) -> dict:
    """Apply every run's plans in ONE JVM and return the front end's JSON output.

    ``runs``: ``[{"name": .., "data": <R4 Bundle dict>, "subject": "Patient/x", "plans": [canonical, ..]}]``.
    ``share_caches`` (benchmarks only) keeps compiled libraries cached across runs, as a server would.
    The output gets ``wallSeconds`` (the whole process, JVM start included).
    """
    with tempfile.TemporaryDirectory(prefix="cqf-") as tmp:
        tmpd = Path(tmp)
        content_file = tmpd / "content.r4.json"
        content_file.write_text(json.dumps(content), encoding="utf-8")
        listed = []
        for i, r in enumerate(runs):
            data_file = tmpd / f"data-{i}.r4.json"
            data_file.write_text(json.dumps(r["data"]), encoding="utf-8")
            listed.append({"name": r["name"], "data": str(data_file), "subject": r["subject"],
                           "plans": list(r["plans"])})
        runs_file = tmpd / "runs.json"
        runs_file.write_text(json.dumps(listed), encoding="utf-8")
        out = tmpd / "out.json"
        log = tmpd / "log.txt"
        cmd = command(content_file, runs_file, out, warmup=warmup, repeat=repeat, elm_only=elm_only,
                      share_caches=share_caches)
        started = time.monotonic()
        with open(log, "wb") as logf:
            try:
                proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=timeout or RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise CqfError(f"cqf-apply timed out after {timeout or RUN_TIMEOUT} s; log tail:\n"
                               f"{tail(log)}") from None
        wall = time.monotonic() - started
        if proc.returncode != 0 or not out.is_file():
            raise CqfError(f"cqf-apply failed (exit {proc.returncode}); log tail:\n{tail(log)}")
        try:
            doc = json.loads(out.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CqfError(f"cqf-apply output is not JSON: {e}") from None
    doc["wallSeconds"] = wall
    return doc


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


#: Engine log lines that are not errors here: our ValueSets enumerate their codes (no filters; the engine
#: refuses a compose with filters outright), so expanding from the compose is exact.
BENIGN = (re.compile(r"^WARN \S*RepositoryTerminologyProvider: ValueSet \S+ is not expanded\. "
                     r"Falling back to compose definition\."),)


def errors(result: dict) -> list[str]:
    """The engine's messages for one result, less the :data:`BENIGN` ones."""
    return [e for e in result["errors"] if not any(b.match(e) for b in BENIGN)]


def summary(doc: dict) -> dict[tuple[str, str], dict]:
    """``{(run name, PlanDefinition id): {"actions", "activities", "errors"}}`` from :func:`run`'s output."""
    return {(r["name"], r["plan"].rsplit("/", 1)[-1].split("|")[0]):
            {"actions": r["actions"], "activities": r["activities"], "errors": errors(r)}
            for r in doc["results"]}
