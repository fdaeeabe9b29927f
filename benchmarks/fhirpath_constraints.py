"""FHIRPath constraints over the R5 examples: raw fhirpathpy vs fhirpkg's invariants layer.

    .venv/bin/python benchmarks/fhirpath_constraints.py               # focus types, 3 runs
    .venv/bin/python benchmarks/fhirpath_constraints.py --all         # + every example, per-constraint cost
    .venv/bin/python benchmarks/fhirpath_constraints.py --all --raw-all --timeout 10   # + raw fhirpathpy on all

Context nodes come from the snapshot element paths (``invariants.SnapshotIndex``:
resource-level, inherited dom-2..dom-6, element-level, datatype constraints on
nodes of their type, ele-1 everywhere), top-level resources only.  Finding the
nodes is timed apart ("walk"): the structure walker will replace it.

Columns:
* raw fhirpathpy — ``fhirpathpy.compile`` per published expression, evaluated on
  the same nodes with %resource/%rootResource/%context set; errors counted;
* engine — our FhirPathEngine on the same expressions (after the HL7 fixes), no natives;
* layer — ``invariants.check_node`` (fixes, natives for ele-1/ext-1/dom-3/sdf-24/sdf-25),
  with a new engine per run (compiling from cached parse trees) and with a warm one.

Timings on a shared machine vary; compare columns of one run, not runs.
"""
from __future__ import annotations

import argparse
import collections
import signal
import statistics
import sys
import time
from pathlib import Path

import fhirpathpy
import orjson
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhirpkg.fhir.packages import cache_dir
from fhirpkg.validation import fhirpath
from fhirpkg.validation.fhirpath import FhirPathEngine, FhirPathError
from fhirpkg.validation.invariants import (
    InvariantRun,
    SnapshotIndex,
    check_node,
    default_engine,
    effective_expression,
    passes,
    root_resource,
    type_path,
)
from fhirpkg.validation.xhtml import html_checks

FOCUS = ("PlanDefinition", "ActivityDefinition", "Library", "MedicationKnowledge", "Citation", "ResearchStudy")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def load(core: Path, examples: Path, names: list[str] | None):
    index = SnapshotIndex(orjson.loads(p.read_bytes()) for p in sorted(core.glob("StructureDefinition-*.json")))
    paths = [p for p in sorted(examples.glob("*.json")) if p.name not in ("package.json", ".index.json")]
    if names is not None:
        paths = [p for p in paths if p.name.split("-")[0] in names]
    return index, paths


def walk(index: SnapshotIndex, paths: list[Path]):
    """(file, resource, [(node, constraints)]) for every file; returns the time it took."""
    started = time.perf_counter()
    tasks = []
    for path in paths:
        resource = orjson.loads(path.read_bytes())
        tasks.append((path.name, resource, index.constraint_nodes(resource)))
    return tasks, time.perf_counter() - started


def run_layer(tasks, engine=None, profile=False):
    engine = engine or default_engine()
    started = time.perf_counter()
    evaluations, findings = 0, collections.Counter()
    cost, calls = collections.Counter(), collections.Counter()
    for name, _, nodes in tasks:
        run = InvariantRun(file=name, profile=profile)
        for node, constraints in nodes:
            for issue in check_node(engine, node, constraints, run):
                findings[(issue.code, issue.rule)] += 1
        evaluations += run.evaluations
        cost.update(run.cost)
        calls.update(run.calls)
    return time.perf_counter() - started, evaluations, findings, cost, calls


def run_engine(tasks):
    """Our engine, FHIRPath only: the same effective expressions, no natives."""
    engine = FhirPathEngine(html_checks=html_checks)
    started = time.perf_counter()
    evaluations, errors = 0, collections.Counter()
    for _, resource, nodes in tasks:
        for node, constraints in nodes:
            for c in constraints:
                if not c.expression:
                    continue
                evaluations += 1
                try:
                    passes(engine.evaluate(effective_expression(c.key, c.expression), node.value,
                                           type_path=type_path(node), resource=resource,
                                           root_resource=root_resource(node.frame), shadow=node.shadow))
                except FhirPathError as e:
                    errors[(c.key, str(e).split(":")[0][:40])] += 1
    return time.perf_counter() - started, evaluations, errors


def run_raw(tasks, timeout: float):
    """fhirpathpy 2.2.4 as published, on the same nodes (baseline-measurements §5)."""
    model = models["r5"]
    compiled: dict[str, object] = {}
    options = {"traceFn": lambda *args: None}
    started = time.perf_counter()
    evaluations, errors, spent = 0, collections.Counter(), collections.Counter()
    signal.signal(signal.SIGALRM, _alarm)
    for _, resource, nodes in tasks:
        for node, constraints in nodes:
            for c in constraints:
                if not c.expression:
                    continue
                evaluations += 1
                t = time.perf_counter()
                try:
                    fn = compiled.get(c.expression)
                    if fn is None:
                        fn = compiled[c.expression] = fhirpathpy.compile(c.expression, model=model, options=options)
                    data = ResourceNode.create_node(node.value, type_path(node))
                    context = {"resource": resource, "rootResource": root_resource(node.frame), "context": data}
                    signal.setitimer(signal.ITIMER_REAL, timeout)
                    try:
                        fn(data, context)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except _Timeout:
                    errors[(c.key, "timeout")] += 1
                except Exception as e:  # fhirpathpy raises bare Exceptions
                    errors[(c.key, f"{type(e).__name__}: {str(e)[:40]}")] += 1
                spent[c.key] += time.perf_counter() - t
    return time.perf_counter() - started, evaluations, errors, spent


def median_of(runs: int, fn):
    results = [fn() for _ in range(runs)]
    order = sorted(range(runs), key=lambda i: results[i][0])
    return results[order[runs // 2]], [r[0] for r in results]


def report_focus(index, paths, runs, timeout):
    tasks, walked = walk(index, paths)
    nodes = sum(len(t[2]) for t in tasks)
    print(f"## Focus types ({', '.join(FOCUS)}): {len(tasks)} files, {nodes} nodes; walk {walked:.2f} s")
    print(f"median of {runs} runs\n")
    print("| engine | evaluations | seconds (runs) | evaluations/s | files/s (eval) | files/s (walk+eval) | errors |")
    print("|---|---|---|---|---|---|---|")
    (seconds, n, errors, _), all_s = median_of(runs, lambda: run_raw(tasks, timeout))
    print(f"| raw fhirpathpy {fhirpathpy.__version__} | {n} | {seconds:.2f} ({', '.join(f'{s:.2f}' for s in all_s)}) "
          f"| {n / seconds:,.0f} | {len(tasks) / seconds:.1f} | {len(tasks) / (seconds + walked):.1f} "
          f"| {sum(errors.values())} |")
    raw_errors = errors
    (seconds, n, errors), all_s = median_of(runs, lambda: run_engine(tasks))
    print(f"| fhirpkg engine (FHIRPath only) | {n} | {seconds:.2f} ({', '.join(f'{s:.2f}' for s in all_s)}) "
          f"| {n / seconds:,.0f} | {len(tasks) / seconds:.1f} | {len(tasks) / (seconds + walked):.1f} "
          f"| {sum(errors.values())} |")
    engine_errors = errors
    def cold_run():
        fhirpath.SHARED_COMPILED.clear()  # a fresh process: compile again (parse trees come from the disk cache)
        return run_layer(tasks)

    cold, cold_s = median_of(runs, cold_run)
    warm_engine = default_engine()
    run_layer(tasks, warm_engine)
    warm, warm_s = median_of(runs, lambda: run_layer(tasks, warm_engine))
    for label, (seconds, n, findings, _, _), all_s in (("fhirpkg layer, new engine (compiles)", cold, cold_s),
                                                       ("fhirpkg layer, warm", warm, warm_s)):
        print(f"| {label} | {n} | {seconds:.2f} ({', '.join(f'{s:.2f}' for s in all_s)}) | {n / seconds:,.0f} "
              f"| {len(tasks) / seconds:.1f} | {len(tasks) / (seconds + walked):.1f} "
              f"| {sum(v for k, v in findings.items() if k[0] != 'invariant')} not evaluated |")
    print("\nraw fhirpathpy errors:", dict(raw_errors.most_common(8)))
    print("engine errors:", dict(engine_errors.most_common(8)))
    print("layer findings:", dict(cold[2].most_common(12)))


def report_all(index, paths, raw: bool, timeout: float):
    tasks, walked = walk(index, paths)
    print(f"\n## All R5 examples: {len(tasks)} files, {sum(len(t[2]) for t in tasks)} nodes; walk {walked:.1f} s\n")
    seconds, n, findings, cost, calls = run_layer(tasks, profile=True)
    print(f"fhirpkg layer: {n:,} evaluations in {seconds:.1f} s = {n / seconds:,.0f} evaluations/s, "
          f"{len(tasks) / seconds:.0f} files/s (eval), {len(tasks) / (seconds + walked):.0f} files/s (walk+eval)")
    print("\n| constraint | seconds | evaluations | µs each |")
    print("|---|---|---|---|")
    for key, spent in cost.most_common(10):
        print(f"| {key} | {spent:.2f} | {calls[key]:,} | {spent / calls[key] * 1e6:,.0f} |")
    print("\nfindings:", dict(findings.most_common(30)))
    if raw:
        seconds, n, errors, spent = run_raw(tasks, timeout)
        print(f"\nraw fhirpathpy: {n:,} evaluations in {seconds:.1f} s = {n / seconds:,.0f} evaluations/s")
        print("raw cost top-10:", [(k, round(v, 1)) for k, v in spent.most_common(10)])
        print("raw errors:", dict(errors.most_common(12)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=Path, default=cache_dir() / "hl7.fhir.r5.core#5.0.0" / "package")
    parser.add_argument("--examples", type=Path, default=cache_dir() / "hl7.fhir.r5.examples#5.0.0" / "package")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="raw fhirpathpy: seconds per evaluation")
    parser.add_argument("--all", action="store_true", help="also run every example once (per-constraint cost)")
    parser.add_argument("--raw-all", action="store_true", help="with --all: raw fhirpathpy too (about 10 minutes)")
    args = parser.parse_args(argv)
    index, focus = load(args.core, args.examples, list(FOCUS))
    print(f"Python {sys.version.split()[0]}, fhirpathpy {fhirpathpy.__version__}\n")
    report_focus(index, focus, args.runs, args.timeout)
    if args.all:
        _, everything = load(args.core, args.examples, None)
        report_all(index, everything, args.raw_all, args.timeout)


if __name__ == "__main__":
    main()
