"""Validation on Apache Spark: the same validator, one per executor process, over a Spark dataset.

The inputs become an RDD of tasks: every JSON file, package or small input is one task, and every
NDJSON file is cut into byte ranges at line ends (the driver reads it once to find the cuts and
the line number each range starts at), so partitions are validated in parallel and every issue
keeps the line and column a local run reports.  Each executor's Python worker makes its
validator once (``api.make_validator`` from a ``ValidatorSpec``) and keeps it for every later
task: the compiled definitions come from the package cache and ``~/.cache/fhirpkg`` on that
machine (shipped to a cluster with ``--archives``, see docs/scale.md), never with the records.

``run`` gathers the issues into the per-file results a local run gives, in input order, so
every report format is the same; ``issues`` gives them as a DataFrame (one row per issue) and
``write_parquet`` writes that without bringing the issues to the driver.  The inputs must be on
a filesystem every executor sees (a local path for ``local[N]``, a shared mount on a cluster);
data already in Spark (HDFS, S3, tables) goes through ``validate(spark, dataframe)``.

pyspark is an optional dependency (``pip install 'fhirpkg[spark]'``), imported only here.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from fhirpkg import api
from fhirpkg.errors import InputError
from fhirpkg.fhir import inputs
from fhirpkg.fhir.jsonsource import ndjson_documents
from fhirpkg.issues import Issue, Severity

#: One row per issue (the --format parquet columns and the DataFrame ``issues`` returns).
ISSUE_SCHEMA = ("file string, line int, column int, resource_type string, resource_id string, "
                "severity string, rule string, expression string, message string")
#: Bytes per NDJSON range: partitions of a few MB balance well and keep a task's memory small.
RANGE_BYTES = 8 * 2**20


def session(master: str):
    """A SparkSession on ``master`` (an active one is reused), with executors running this Python."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--spark needs pyspark: pip install 'fhirpkg[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    spark = (SparkSession.builder.master(master).appName("fhirpkg validate")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- tasks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One unit of work: a whole source, or the lines of an NDJSON file between two byte offsets."""

    index: int          # the source's position in the input order
    part: int           # the range's position in its file
    source: inputs.Source
    start: int = 0
    end: int = -1       # -1: the whole source, read as a local run reads it
    first_line: int = 0
    prefix: tuple = ()  # the file's reading issues (a BOM), given to its first range


def tasks(paths: list[str], range_bytes: int = RANGE_BYTES) -> list[Task]:
    """The tasks for these paths, in input order (the sources a local run finds, in its order)."""
    out: list[Task] = []
    for k, src in enumerate(inputs.find_sources(paths)):
        if src.name == "-":
            raise InputError("--spark cannot read standard input: give files or folders")
        ranges = inputs.ndjson_ranges(src, range_bytes) if src.ndjson and src.problem is None else None
        if ranges is None:
            out.append(Task(k, 0, src))
            continue
        prefix, cuts = ranges
        for part, (start, end, line) in enumerate(cuts):  # read now: the task list goes to the cluster
            out.append(Task(k, part, src, start, end, line, tuple(prefix) if part == 0 else ()))
    return out


# --- executors ------------------------------------------------------------------------------

_VALIDATORS: dict = {}  # per Python worker process: ValidatorSpec -> (validator, other versions)


def _validator(spec: api.ValidatorSpec):
    found = _VALIDATORS.get(spec)
    if found is None:
        found = _VALIDATORS[spec] = (api.make_validator(spec, log=None), {})
    return found


def _run_task(spec: api.ValidatorSpec, task: Task) -> tuple[int, int, list[tuple], int]:
    """(source index, part, [(issue, resource type, resource id)], resources) for one task."""
    validator, others = _validator(spec)
    docs = None
    if task.end >= 0:
        lines = inputs.range_lines(task.source.path, task.start, task.end, task.first_line)
        if not lines:
            return task.index, task.part, [(i, None, None) for i in task.prefix], 0
        docs = ndjson_documents(lines, task.source.name, list(task.prefix))
    found, resources = [], 0
    for doc, issues, count in api.document_issues(task.source, validator, others, docs, spec.fhir_version):
        value = doc.value if doc.ok and isinstance(doc.value, dict) else {}
        rtype, rid = value.get("resourceType"), value.get("id")
        found.extend((i, rtype if isinstance(rtype, str) else None, rid if isinstance(rid, str) else None)
                     for i in issues)
        resources += count
    return task.index, task.part, found, resources


def _partition(spec: api.ValidatorSpec):
    def run(items: Iterable[Task]) -> Iterator[tuple]:
        for task in items:
            yield _run_task(spec, task)
    return run


def _task_rdd(spark, paths: list[str], spec: api.ValidatorSpec, range_bytes: int):
    todo = tasks(paths, range_bytes)
    if not todo:
        raise InputError(f"nothing to validate in {', '.join(paths)}")
    sc = spark.sparkContext
    return todo, sc.parallelize(todo, min(len(todo), max(sc.defaultParallelism * 4, 1))).mapPartitions(
        _partition(spec))


def row(issue: Issue, rtype: str | None, rid: str | None) -> tuple:
    """An issue as a row of ``ISSUE_SCHEMA``."""
    return (issue.file, issue.line, issue.column, rtype, rid, issue.severity.code, issue.rule, issue.expression,
            issue.message)


# --- the driver -----------------------------------------------------------------------------

def run(master_or_session, paths: list[str], spec: api.ValidatorSpec,
        range_bytes: int = RANGE_BYTES) -> list[api.FileResult]:
    """Validate ``paths`` on Spark; the per-file results of a local run, in input order."""
    spark = session(master_or_session) if isinstance(master_or_session, str) else master_or_session
    todo, rdd = _task_rdd(spark, paths, spec, range_bytes)
    done = sorted(rdd.collect(), key=lambda r: (r[0], r[1]))
    names = {t.index: t.source.name for t in todo}
    results: dict[int, api.FileResult] = {}
    for index, _part, found, resources in done:
        result = results.setdefault(index, api.FileResult(names[index], [], 0))
        result.issues.extend(i for i, _, _ in found)
        result.resources += resources
    return [results[k] for k in sorted(results)]


def issues(spark, paths: list[str], spec: api.ValidatorSpec | None = None, range_bytes: int = RANGE_BYTES):
    """The issues of ``paths`` as a DataFrame of ``ISSUE_SCHEMA`` rows, computed on the executors."""
    _, rdd = _task_rdd(spark, paths, spec or api.ValidatorSpec(), range_bytes)
    rows = rdd.flatMap(lambda done: [row(*found) for found in done[2]])
    return spark.createDataFrame(rows, ISSUE_SCHEMA)


def validate(spark, path_or_dataframe, spec: api.ValidatorSpec | None = None):
    """``fhirpkg.spark.validate(spark, path_or_dataframe) -> DataFrame`` of issues (``ISSUE_SCHEMA``).

    A path (or list of paths) is read as ``fhirpkg validate`` reads it.  A DataFrame holds one
    resource per row in a ``value`` column (as ``spark.read.text`` gives NDJSON from HDFS or S3),
    with optional ``file`` and ``line`` (1-based) columns to locate the issues."""
    spec = spec or api.ValidatorSpec()
    if isinstance(path_or_dataframe, (str, Path)):
        return issues(spark, [str(path_or_dataframe)], spec)
    if isinstance(path_or_dataframe, (list, tuple)):
        return issues(spark, [str(p) for p in path_or_dataframe], spec)
    df = path_or_dataframe
    if "value" not in df.columns:
        raise InputError("the DataFrame needs a 'value' column with one FHIR resource (JSON) per row")
    has_file, has_line = "file" in df.columns, "line" in df.columns

    def rows(records):
        validator, others = _validator(spec)
        for rec in records:
            text = rec["value"]
            if text is None or not text.strip():
                continue
            name = (rec["file"] if has_file else None) or "<dataframe>"
            line = (rec["line"] - 1) if has_line and rec["line"] else 0
            src = inputs.Source(name)
            for doc, found, _count in api.document_issues(src, validator, others, ndjson_documents(
                    [(line, text)], name, []), spec.fhir_version):
                value = doc.value if doc.ok and isinstance(doc.value, dict) else {}
                for i in found:
                    yield row(i, value.get("resourceType") if isinstance(value.get("resourceType"), str) else None,
                              value.get("id") if isinstance(value.get("id"), str) else None)

    return df.sparkSession.createDataFrame(df.rdd.mapPartitions(rows), ISSUE_SCHEMA)


@dataclass(frozen=True)
class Counts:
    """Issue counts of a parquet run, computed by Spark."""

    errors: int
    warnings: int
    information: int

    @property
    def total(self) -> int:
        return self.errors + self.warnings + self.information

    def at_least(self, severity: Severity) -> bool:
        if severity >= Severity.ERROR:
            return self.errors > 0
        return self.errors + self.warnings > 0 if severity == Severity.WARNING else self.total > 0


def write_parquet(master_or_session, paths: list[str], spec: api.ValidatorSpec, out: str | Path,
                  range_bytes: int = RANGE_BYTES) -> Counts:
    """Write one row per issue to the parquet folder ``out``, which must not exist.  A local ``out``
    is written beside it under a temporary name and renamed when complete, so a failed run leaves
    nothing; a URL (``hdfs://``, ``s3a://``) relies on Spark's output committer."""
    local = "://" not in str(out)
    if local and Path(out).exists():
        raise InputError(f"{out} exists: --format parquet writes a new folder")
    spark = session(master_or_session) if isinstance(master_or_session, str) else master_or_session
    df = issues(spark, paths, spec, range_bytes).cache()
    if local:
        target = Path(out).resolve()
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            df.write.parquet(str(partial))
            os.rename(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    else:
        df.write.parquet(str(out))
    by = {r["severity"]: r["count"] for r in df.groupBy("severity").count().collect()}
    df.unpersist()
    return Counts(by.get("error", 0) + by.get("fatal", 0), by.get("warning", 0), by.get("information", 0))
