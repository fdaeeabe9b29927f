"""The Python API the CLI calls: load definitions, validate paths or resources."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fhirpkg.content import evidence
from fhirpkg import loader
from fhirpkg.errors import InputError
from fhirpkg.fhir import inputs, packages as pk, xmlformat
from fhirpkg import parallel
from fhirpkg.fhir.definitions import Definitions, load as load_compiled
from fhirpkg.fhir.inputs import find_sources, read_source
from fhirpkg.issues import Issue, Severity
from fhirpkg.validation import Options, Validator
from fhirpkg.validation.references import Resolver


def load_definitions(package_refs: Iterable = pk.R5_DEFAULT_PACKAGES,
                     log: Callable | None = pk.log_to_stderr) -> Definitions:
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
    if extra_terms and defs.terminology is not None:
        for r in extra_terms:
            try:
                defs.terminology.add(r)
                n += 1
            except Exception:  # noqa: BLE001 - likewise: its own validation says what is wrong
                continue
    return n


def read_conformance_inputs(paths: Iterable[str], defs: Definitions | None = None) -> list[dict]:
    """Resources from --ig arguments: installed package ids (id#version), .tgz files, JSON or XML
    files, or folders of them.

    JSON, Bundles and archives are read as ``fhirpkg.load`` reads them; FHIR XML files (``.xml``)
    are converted by ``xmlformat``, which needs ``defs`` to know each element's type.
    """
    out: list[dict] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir() or p.is_file() and p.name.endswith((".json", ".xml", *inputs.PACKAGE_SUFFIXES)):
            out.extend(_conformance_files(p, defs))
        elif p.exists():
            raise pk.PackageError(f"--ig {arg}: not a folder, a .json or .xml file or a package .tgz")
        elif "/" in arg or arg.endswith((".json", ".xml", *inputs.PACKAGE_SUFFIXES)):
            raise pk.PackageError(f"--ig {arg}: no such file or folder (and not a package id such as "
                                  "hl7.fhir.uv.ips@2.0.0)")
        else:
            ref = pk.PackageRef.parse(arg)
            pkg = pk.ensure([ref])[0]
            out.extend(pkg.resources({"StructureDefinition", "ValueSet", "CodeSystem", "ImplementationGuide"}))
    return out


def _conformance_files(path: Path, defs: Definitions | None) -> list[dict]:
    """The resources of one --ig file or folder; files that do not parse are left to their own
    validation, but an archive that cannot be read at all is a setup error."""
    out = []
    if path.is_dir() or not path.name.endswith(".xml"):
        try:
            package = loader.load(path)
        except InputError:
            package = None  # a folder without JSON: it may hold XML
        if package is not None:
            broken = next((i for i in package.issues if i.file == str(path) and i.is_error), None)
            if broken is not None and path.name.endswith(inputs.PACKAGE_SUFFIXES):
                raise pk.PackageError(f"--ig {path}: {broken.message}")
            out.extend(r.json for r in package.resources)
    xml_files = [path] if path.is_file() and path.name.endswith(".xml") else (
        [f for f in sorted(path.rglob("*.xml")) if not any(part.startswith(".") for part in f.relative_to(path).parts)]
        if path.is_dir() else [])
    for f in xml_files:
        if defs is None:
            raise pk.PackageError(f"--ig {f}: reading FHIR XML needs the definitions (pass defs)")
        try:
            res = xmlformat.read_file(f, defs)
        except xmlformat.XmlError as e:
            raise pk.PackageError(f"--ig {f}: {e}") from None
        if res is not None:
            out.append(res)
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


@dataclass
class FileResult:
    """One file's issues and how many resources it held; unpacks as ``(file, issues)``."""

    file: str
    issues: list[Issue]
    resources: int = 0

    def __iter__(self):
        return iter((self.file, self.issues))


def count_resources(value) -> int:
    """The resources in one parsed document: itself, and each Bundle entry's resource (nested too)."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return 0
    entries = value.get("entry") if value["resourceType"] == "Bundle" else None
    return 1 + sum(count_resources(e.get("resource")) for e in entries or () if isinstance(e, dict))


def iter_validate(paths: list[str], validator: Validator, other_versions: dict | None = None,
                  fhir_version: str | None = None, jobs: int = 1) -> Iterator[FileResult]:
    """Validate the documents found under ``paths``, yielding each file's result as it goes.

    Each file is validated against its FHIR version: ``fhir_version`` when given, else the one
    its name states (``*.r4b.json`` R4B 4.3.0, ``*.r4.json`` R4 4.0.1), else R5.  Another version
    than ``validator``'s gets a validator of its own (same options, that version's default
    packages), kept in ``other_versions``.  In a folder walk, JSON that is not a FHIR resource (a
    report, a manifest) is skipped with a note rather than reported as an error.

    With ``jobs`` > 1 the files (and NDJSON files in chunks of lines) are validated by
    that many worker processes forked from this one (``fhirpkg.parallel``); the results
    come back in input order and are the same as with one job.  ``iter_parts`` gives the same
    issues without holding a whole file's.
    """
    current = None
    for part in iter_parts(paths, validator, other_versions, fhir_version, jobs):
        if part.first:
            if current is not None:
                yield current
            current = FileResult(part.file, [], 0)
        current.issues.extend(part.issues)
        current.resources += part.resources
    if current is not None:
        yield current


@dataclass
class Part:
    """Some of one file's issues as validation yields them (one document, or a chunk of NDJSON
    lines), so a reader of a large file holds only a part at a time; ``first`` marks the first
    part of each file, in input order."""

    file: str
    issues: list[Issue]
    resources: int = 0
    first: bool = False


def iter_parts(paths: list[str], validator: Validator, other_versions: dict | None = None,
               fhir_version: str | None = None, jobs: int = 1) -> Iterator[Part]:
    """``iter_validate``'s issues in parts of a file (see there for the arguments)."""
    other_versions = {} if other_versions is None else other_versions
    plain = []
    for path in paths:
        if path != "-" and Path(path, "package.json").is_file() and Path(path).is_dir():
            # a content project: its resources, plus the package rules
            project, issues, _ = validate_project(path, defs=validator.defs, jobs=jobs)
            by_file = {str(r.path): Part(str(r.path), [], 1, True) for r in project.resources}
            for i in issues:
                by_file.setdefault(i.file, Part(i.file, [], 0, True)).issues.append(i)
            yield from by_file.values()
        else:
            plain.append(path)
    if jobs <= 1:
        for src in find_sources(plain):
            yield Part(src.name, [], 0, True)
            for _doc, issues, count in document_issues(src, validator, other_versions, fhir_version=fhir_version):
                if issues or count:
                    yield Part(src.name, issues, count)
        return

    def work(task: tuple) -> tuple[list[Issue], int]:
        src, cut, prefix = task
        docs = None if cut is None else inputs.ndjson_documents(inputs.range_lines(src.path, *cut), src.name, prefix)
        return source_issues(src, validator, other_versions, docs, fhir_version)

    current = None
    tasks = _tasks(find_sources(plain))
    stdin = lambda task: task[0].name == "-"  # noqa: E731 - workers have no standard input
    for (src, _, _), (issues, resources) in parallel.ordered_map(work, tasks, jobs, validator.warm, in_parent=stdin):
        yield Part(src.name, issues, resources, src is not current)
        current = src


NDJSON_RANGE_BYTES = 2**20  # per task: large enough to make the hand-over cheap, small enough to balance


def _tasks(sources: Iterable[inputs.Source]) -> Iterator[tuple]:
    """(source, (start, end, first line) of a range of its lines or None for the whole source,
    reading issues of the first range), in input order; the ranges of one NDJSON file follow each
    other, and the worker reads its range itself."""
    for src in sources:
        ranges = inputs.ndjson_ranges(src, NDJSON_RANGE_BYTES) if src.ndjson else None
        if ranges is None:
            yield src, None, []
            continue
        prefix, cuts = ranges
        for cut in cuts:
            yield src, cut, prefix
            prefix = []


def source_issues(src: inputs.Source, validator: Validator, other_versions: dict,
                  docs: Iterable | None = None, fhir_version: str | None = None) -> tuple[list[Issue], int]:
    """The issues of one source, and how many resources it held: its documents (``docs``, or all
    it holds) validated against ``fhir_version``, else the version its name states."""
    file_issues: list[Issue] = []
    resources = 0
    for _doc, issues, count in document_issues(src, validator, other_versions, docs, fhir_version):
        file_issues.extend(issues)
        resources += count
    return file_issues, resources


def document_issues(src: inputs.Source, validator: Validator, other_versions: dict,
                    docs: Iterable | None = None, fhir_version: str | None = None) -> Iterator[tuple]:
    """(document, its issues, how many resources it held) for each document of one source."""
    v = version_validator(fhir_version or src.fhir_version, validator, other_versions)
    for doc in (read_source(src, v.options.allow_comments) if docs is None else docs):
        if src.in_folder and doc.ok and isinstance(doc.value, dict) and "resourceType" not in doc.value:
            yield doc, [Issue(Severity.INFORMATION, "informational", "Not a FHIR resource (no resourceType): skipped",
                              "not-a-resource", file=doc.file, line=1, column=1)], 0
            continue
        yield doc, v.validate_document(doc), (count_resources(doc.value) if doc.ok else 0)


@dataclass(frozen=True)
class ValidatorSpec:
    """What a validator is made of, small enough to send to another process (a Spark executor)
    that makes the same validator there: the FHIR version, --ig inputs and --profile URLs."""

    fhir_version: str | None = None
    igs: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    timings: bool = False
    security_checks: bool = False
    html_in_markdown: str = "warning"
    allow_comments: bool = False
    assume_valid_rest_references: bool = False
    allow_example_urls: bool = False


def make_validator(spec: ValidatorSpec, log: Callable | None = pk.log_to_stderr) -> Validator:
    """The validator ``fhirpkg validate`` uses for these options.  A --profile that no loaded
    package or --ig input defines is an InputError."""
    defs = load_definitions(pk.DEFAULT_PACKAGES[spec.fhir_version or "5.0.0"], log=log)
    globals_ = ()
    if spec.igs:
        inputs = read_conformance_inputs(spec.igs, defs)
        n = add_conformance_resources(defs, inputs)
        globals_ = global_profiles(inputs)
        if log is not None:
            log(f"Loaded {n} conformance resources from {', '.join(spec.igs)}"
                + (f"; {len(globals_)} global profiles of their ImplementationGuides apply" if globals_ else ""))
    for url in spec.profiles:
        if defs.get(url) is None:
            raise InputError(f"--profile {url}: no such profile in the loaded packages or --ig inputs")
    return Validator(defs, Options(profiles=spec.profiles, timings=spec.timings, security_checks=spec.security_checks,
                                   html_in_markdown=spec.html_in_markdown, allow_comments=spec.allow_comments,
                                   assume_valid_rest_references=spec.assume_valid_rest_references,
                                   allow_example_urls=spec.allow_example_urls, global_profiles=globals_))


def global_profiles(resources: Iterable[dict]) -> tuple[tuple[str, str], ...]:
    """(type, profile) of every ImplementationGuide.global among ``resources``: an IG's profiles that
    all its resources of that type meet, as the HL7 validator applies them with -ig."""
    out = []
    for r in resources:
        if isinstance(r, dict) and r.get("resourceType") == "ImplementationGuide":
            for g in r.get("global") or ():
                if isinstance(g, dict) and isinstance(g.get("type"), str) and isinstance(g.get("profile"), str):
                    out.append((g["type"], g["profile"]))
    return tuple(dict.fromkeys(out))


def version_validator(version: str, validator: Validator, other_versions: dict) -> Validator:
    """``validator`` if it is for ``version``, else one for that version (made once, kept in
    ``other_versions``) with the same options bar the profiles, which belong to one version."""
    if version == validator.defs.fhir_version:
        return validator
    if version not in other_versions:
        if version not in pk.DEFAULT_PACKAGES:
            raise pk.PackageError(f"FHIR version {version} is not supported (use one of "
                                  f"{', '.join(pk.DEFAULT_PACKAGES)})")
        other_versions[version] = Validator(load_definitions(pk.DEFAULT_PACKAGES[version]),
                                            replace(validator.options, profiles=()))
    return other_versions[version]


def validate(paths: list[str] | str, *, profiles: Iterable[str] = (), igs: Iterable[str] = (),
             defs: Definitions | None = None, options: Options | None = None,
             resolver: Resolver | None = None, fhir_version: str | None = None) -> list[Issue]:
    """Validate FHIR JSON files or folders (R5, or ``fhir_version``: 4.3.0, 4.0.1); return every issue.

    >>> issues = validate("definitions/")          # doctest: +SKIP
    >>> [i for i in issues if i.is_error]          # doctest: +SKIP
    """
    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    defs = defs or load_definitions(pk.DEFAULT_PACKAGES[fhir_version or "5.0.0"])
    globals_ = ()
    if igs:
        inputs = read_conformance_inputs(igs, defs)
        add_conformance_resources(defs, inputs)
        globals_ = global_profiles(inputs)
    opts = options or Options(profiles=tuple(profiles), global_profiles=globals_)
    validator = Validator(defs, opts, resolver)
    out: list[Issue] = []
    for _, issues in iter_validate(list(paths), validator, fhir_version=fhir_version):
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
                     options: Options | None = None, jobs: int = 1, cache=None):
    """Load and validate a content project: every resource, plus the package rules.

    Returns (project, issues, defs): the definitions include the project's own
    profiles and value sets, for the build steps that follow.  Warnings the project has
    answered (codes its evidence register verified, an ignoreWarnings.txt) are information.
    With ``jobs`` > 1 the resources are validated by forked worker processes (same issues,
    same order).  ``cache`` (a :class:`fhirpkg.publish.cache.BuildCache`) reuses the issues of
    resources whose source, and whatever project resource their validation looked up, is unchanged.
    """
    from fhirpkg.content import project as proj
    from fhirpkg.content import package_rules

    project = proj.load(root, defer_manifest_check=True)
    if project.manifest is None:
        return project, list(project.issues), defs
    base = defs or load_definitions(project_packages(project))
    defs = base.derive()
    add_conformance_resources(defs, (r.json for r in project.resources), source=project.manifest.name)
    resolver = Resolver()
    for r in project.resources:
        resolver.add(r.json)
    opts = options or Options(package_mode=True)
    validator = Validator(defs, opts, resolver)
    found = _validate_resources(validator, project, opts, jobs, cache)
    project.finish()  # done already, while the workers validated (see _validate_resources)
    issues = list(project.issues)
    for resource_issues in found:
        for i in resource_issues:
            if i.rule == "dom-6":  # the build writes a narrative for every resource without one
                i = i.at(severity=Severity.INFORMATION,
                         message="No narrative in the source: `fhirpkg build` generates one (dom-6)")
            issues.append(i)
    issues.extend(package_rules.check(project))
    answers = evidence.find(project.root)
    if answers:
        issues = evidence.answer(issues, {str(r.path): r.json for r in project.resources}, answers)
    return project, issues, defs


#: Resources per worker below which the build cache's leftovers are validated in one process.
FEW = 8


def _validate_resources(validator: Validator, project, opts: Options, jobs: int, cache=None) -> list[list]:
    """Each project resource's issues, in order: computed by ``jobs`` processes, or taken from
    ``cache`` for resources whose own text, the definitions, the project's conformance resources and
    manifest, and the project resources their validation looked up are as they were (``BuildCache.bind``)."""
    resources = project.resources
    if cache is None:
        found = parallel.ordered_map(lambda n: validator.validate_document(resources[n].doc),
                                     range(len(resources)), jobs, validator.warm, meanwhile=project.finish)
        return [issues for _, issues in found]
    from fhirpkg.publish.cache import digest, now_finding
    cache.bind(validator.defs, project)
    resolver = validator.resolver
    now = now_finding(resolver.looked_up, {id(r.json): r.digest for r in resources})
    shared = json.dumps(asdict(opts), default=sorted, sort_keys=True)  # sets in a stable order
    keys = [digest(shared, str(r.path), r.digest) for r in resources]
    out = [cache.get("validate", k, now) for k in keys]
    resolver.note_reads()

    def work(n: int):
        resolver.note_reads()
        issues = validator.validate_document(resources[n].doc)
        return issues, resolver.note_reads()

    todo = [n for n, v in enumerate(out) if v is None]
    # a few changed resources are validated here: forking workers would cost more than it saves
    for n, (issues, reads) in parallel.ordered_map(work, todo, jobs if len(todo) > FEW * jobs else 1,
                                                   validator.warm, meanwhile=project.finish):
        out[n] = issues
        cache.put("validate", keys[n], issues, [(read, now(read)) for read in reads])
    return out


def cql(project_root: str | Path = "definitions", *, force: bool = False, log: Callable | None = None):
    """Translate the project's changed CQL (``<project>/cql/*.cql``) with the official translator and
    rewrite its Library resources; no Java runs when nothing changed.  Returns
    :class:`fhirpkg.logic.translate.CqlResult`; raises ``translate.CqlError`` (errors in the CQL) or
    :class:`fhirpkg.logic.jvm.JavaUnavailable`."""
    from fhirpkg.logic import translate
    return translate.update(project_root, force=force, log=log or (lambda m: None))


def apply(plan_definition, data, subject: str, *, package=None):
    """PlanDefinition/$apply for one patient, offline: the Bundle $apply returns, and why.

    ``plan_definition`` is a file, an id (``nepc-pathway``, ``PlanDefinition/nepc-pathway``) or a canonical
    url; ``data`` an R5 Bundle (path or dict); ``subject`` ``Patient/<id>``; ``package`` the content folder
    (default: the project the file is in, or definitions/).  Returns :class:`fhirpkg.logic.apply.Applied`
    (``bundle``, ``actions``, ``activities``, ``conditions``); bad input raises
    :class:`fhirpkg.errors.ApplyError`.
    """
    from fhirpkg.logic.apply import apply as run
    return run(plan_definition, data, subject, package=package)
