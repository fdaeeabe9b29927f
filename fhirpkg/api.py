"""The Python API the CLI calls: load definitions, validate paths or resources."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from . import inputs, packages as pk, parallel
from .definitions import Definitions, load as load_compiled
from .inputs import find_sources, read_source
from .issues import Issue, Severity
from .validation import Options, Validator
from .validation.references import Resolver


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_definitions(package_refs: Iterable = pk.R5_DEFAULT_PACKAGES, log: Callable | None = _stderr) -> Definitions:
    """Compiled definitions for these packages (installed from npm on first use)."""
    packages = pk.ensure(package_refs, log=log)
    return load_compiled(packages, log=log)


def add_conformance_resources(defs: Definitions, resources: Iterable[dict], source: str = "") -> int:
    """Make profiles, extensions, value sets and code systems from outside the packages known."""
    n = 0
    extra_terms = []
    for res in resources:
        rt = res.get("resourceType") if isinstance(res, dict) else None
        if rt == "StructureDefinition":
            try:
                if defs.add(res, source) is not None:
                    n += 1
            except Exception:  # noqa: BLE001 - a malformed definition is reported by its own validation
                continue
        elif rt in ("ValueSet", "CodeSystem"):
            extra_terms.append(res)
    if extra_terms and defs.terminology is not None and hasattr(defs.terminology, "add"):
        for r in extra_terms:
            try:
                defs.terminology.add(r)
                n += 1
            except Exception:  # noqa: BLE001 - likewise: its own validation says what is wrong
                continue
    return n


def read_conformance_inputs(paths: Iterable[str]) -> list[dict]:
    """Resources from --ig arguments: installed package ids (id#version), .tgz files or folders."""
    out: list[dict] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir() or p.is_file() and p.suffix == ".json":
            files = sorted(p.rglob("*.json")) if p.is_dir() else [p]
            for f in files:
                try:
                    res = orjson.loads(f.read_bytes())
                except (orjson.JSONDecodeError, OSError):
                    continue
                if isinstance(res, dict) and "resourceType" in res:
                    out.append(res)
        elif p.is_file() and p.name.endswith(inputs.PACKAGE_SUFFIXES):
            out.extend(_package_archive_resources(p))
        elif p.exists():
            raise pk.PackageError(f"--ig {arg}: not a folder, a .json file or a package .tgz")
        elif "/" in arg or arg.endswith((".json", *inputs.PACKAGE_SUFFIXES)):
            raise pk.PackageError(f"--ig {arg}: no such file or folder (and not a package id such as "
                                  "hl7.fhir.uv.ips@2.0.0)")
        else:
            ref = pk.PackageRef.parse(arg)
            pkg = pk.ensure([ref])[0]
            out.extend(pkg.resources({"StructureDefinition", "ValueSet", "CodeSystem"}))
    return out


def _package_archive_resources(path: Path) -> list[dict]:
    """Definitions read from a package .tgz without unpacking it; an unreadable archive is a setup error."""
    out = []
    for doc in inputs.read_package(inputs.Source(name=str(path), path=path)):
        if doc.file == str(path) and any(i.is_error for i in doc.issues):
            raise pk.PackageError(f"--ig {path}: {doc.issues[0].message}")
        if doc.ok and isinstance(doc.value, dict) and isinstance(doc.value.get("resourceType"), str):
            out.append(doc.value)
    return out


@dataclass
class Result:
    """What a validation run found, file by file."""

    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    resources: int = 0

    def count(self, severity: Severity) -> int:
        return sum(1 for i in self.issues if i.severity == severity)

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.is_error)

    def exit_code(self, fail_on: Severity = Severity.ERROR) -> int:
        return 1 if any(i.severity >= fail_on for i in self.issues) else 0


def iter_validate(paths: list[str], validator: Validator,
                  other_versions: dict | None = None, jobs: int = 1) -> Iterator[tuple[str, list[Issue]]]:
    """Validate the documents found under ``paths``, yielding (file, issues) as it goes.

    Files named ``*.r4b.json`` are validated against R4B (structure, JSON rules and
    references: the FHIRPath and terminology layers are R5-specific); ``*.r4.json``
    cannot be validated offline (R4 core is not on the npm registry) and say so.
    In a folder walk, JSON that is not a FHIR resource (a report, a manifest) is
    skipped with a note rather than reported as an error.

    With ``jobs`` > 1 the files (and NDJSON files in chunks of lines) are validated by
    that many worker processes forked from this one (``fhirpkg.parallel``); the results
    come back in input order and are the same as with one job.
    """
    other_versions = {} if other_versions is None else other_versions
    plain = []
    for path in paths:
        if path != "-" and Path(path, "package.json").is_file() and Path(path).is_dir():
            # a content project: its resources, plus the package rules
            project, issues, _ = validate_project(path, defs=validator.defs, jobs=jobs)
            by_file: dict[str, list[Issue]] = {str(r.path): [] for r in project.resources}
            for i in issues:
                by_file.setdefault(i.file, []).append(i)
            yield from by_file.items()
        else:
            plain.append(path)
    if jobs <= 1:
        for src in find_sources(plain):
            yield src.name, source_issues(src, validator, other_versions)
        return

    def work(task: tuple) -> list[Issue]:
        src, lines, prefix = task
        docs = None if lines is None else inputs.ndjson_documents(lines, src.name, prefix)
        return source_issues(src, validator, other_versions, docs)

    current, merged = None, []
    tasks = _tasks(find_sources(plain))
    stdin = lambda task: task[0].name == "-"  # noqa: E731 - workers have no standard input
    for (src, _, _), issues in parallel.ordered_map(work, tasks, jobs, validator.warm, in_parent=stdin):
        if src is not current:
            if current is not None:
                yield current.name, merged
            current, merged = src, []
        merged.extend(issues)
    if current is not None:
        yield current.name, merged


NDJSON_CHUNK = 200  # lines per task: large enough to make the hand-over cheap, small enough to balance


def _tasks(sources: Iterable[inputs.Source]) -> Iterator[tuple]:
    """(source, lines or None for the whole source, reading issues of the first chunk), in input
    order; the chunks of one NDJSON file follow each other and keep its line numbers."""
    for src in sources:
        f = inputs.open_regular(src) if src.ndjson and src.fhir_version != "4.0.1" else None
        stream = inputs.ndjson_stream(f, src.name) if f is not None else None
        if stream is None:
            if f is not None:
                f.close()
            yield src, None, []
            continue
        prefix, lines = stream
        with f:
            chunk: list = []
            for item in lines:
                chunk.append(item)
                if len(chunk) == NDJSON_CHUNK:
                    yield src, chunk, prefix
                    chunk, prefix = [], []
            if chunk:
                yield src, chunk, prefix


def source_issues(src: inputs.Source, validator: Validator, other_versions: dict,
                  docs: Iterable | None = None) -> list[Issue]:
    """The issues of one source: its documents (``docs``, or all it holds) validated."""
    file_issues: list[Issue] = []
    version = src.fhir_version
    if version == "4.0.1":
        return [Issue(Severity.INFORMATION, "not-supported", "Not validated: the R4 (4.0.1) "
                      "definitions are not available offline", "fhir-version-skipped", file=src.name)]
    v = validator
    if version == "4.3.0":
        if version not in other_versions:
            other_versions[version] = Validator(load_definitions(pk.R4B_DEFAULT_PACKAGES),
                                                Options(layers=frozenset({"json", "structure", "references"})))
        v = other_versions[version]
    for doc in (read_source(src) if docs is None else docs):
        if src.in_folder and doc.ok and isinstance(doc.value, dict) and "resourceType" not in doc.value:
            file_issues.append(Issue(Severity.INFORMATION, "informational",
                                     "Not a FHIR resource (no resourceType): skipped", "not-a-resource",
                                     file=doc.file, line=1, column=1))
            continue
        file_issues.extend(v.validate_document(doc))
    return file_issues


def validate(paths: list[str] | str, *, profiles: Iterable[str] = (), igs: Iterable[str] = (),
             defs: Definitions | None = None, options: Options | None = None,
             resolver: Resolver | None = None) -> list[Issue]:
    """Validate FHIR R5 JSON files or folders; return every issue found.

    >>> issues = validate("definitions/")          # doctest: +SKIP
    >>> [i for i in issues if i.is_error]          # doctest: +SKIP
    """
    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    defs = defs or load_definitions()
    if igs:
        add_conformance_resources(defs, read_conformance_inputs(igs))
    opts = options or Options(profiles=tuple(profiles))
    validator = Validator(defs, opts, resolver)
    out: list[Issue] = []
    for _, issues in iter_validate(list(paths), validator):
        out.extend(issues)
    return out


def validate_resource(resource: dict, *, defs: Definitions | None = None, profiles: Iterable[str] = (),
                      file: str = "") -> list[Issue]:
    """Validate one resource given as a dict (no line numbers: there is no source text)."""
    defs = defs or load_definitions()
    validator = Validator(defs, Options(profiles=tuple(profiles)))
    return [i.at(file=file) for i in validator.validate_resource(resource)]


def project_packages(project) -> list:
    """The packages a project validates against: its dependencies plus the validator's defaults."""
    refs = [pk.PackageRef(*r) for r in pk.R5_DEFAULT_PACKAGES]
    if project.manifest is not None:
        for pid, ver in project.manifest.dependencies.items():
            try:
                ref = pk.PackageRef.parse(f"{pid}#{ver}")  # never a path: names and versions are checked
            except pk.PackageError:
                continue  # reported by the manifest check
            if ref not in refs:
                refs.append(ref)
    return refs


def validate_project(root: str | Path = "definitions", defs: Definitions | None = None,
                     options: Options | None = None, jobs: int = 1):
    """Load and validate a content project: every resource, plus the package rules.

    Returns (project, issues, defs): the definitions include the project's own
    profiles and value sets, for the build steps that follow.  With ``jobs`` > 1 the
    resources are validated by forked worker processes (same issues, same order).
    """
    from . import project as proj
    from .validation import package_rules

    project = proj.load(root)
    issues = list(project.issues)
    if project.manifest is None:
        return project, issues, defs
    base = defs or load_definitions(project_packages(project))
    defs = base.derive()
    add_conformance_resources(defs, (r.json for r in project.resources), source=project.manifest.name)
    resolver = Resolver()
    for r in project.resources:
        resolver.add(r.json)
    opts = options or Options(package_mode=True)
    validator = Validator(defs, opts, resolver)
    resources = project.resources
    found = parallel.ordered_map(lambda n: validator.validate_document(resources[n].doc), range(len(resources)),
                                 jobs, validator.warm)
    for _, resource_issues in found:
        for i in resource_issues:
            if i.rule == "dom-6":  # the build writes a narrative for every resource without one
                i = i.at(severity=Severity.INFORMATION,
                         message="No narrative in the source: `fhirpkg build` generates one (dom-6)")
            issues.append(i)
    issues.extend(package_rules.check(project))
    return project, issues, defs
