"""``fhirpkg build``: definitions/ in, importable and reproducible artifacts out.

The pipeline runs one way: load and validate the project, add narratives and
the package's ImplementationGuide, lay out every output file in memory, then
either compare with the committed build/ (``--check``) or write a new build/
in a temporary folder and swap it in.  Dates come from the manifest (or
SOURCE_DATE_EPOCH when it has none), elements follow StructureDefinition order and the archive
is normalised, so the same input gives the same bytes on any machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from fhirpkg import __version__
from fhirpkg.publish import bundle, narrative, npm_package
from fhirpkg.publish.cache import BuildCache, Texts, digest, now_finding
from fhirpkg.errors import FhirpkgError
from fhirpkg.fsutil import DirectoryLock, swap_in_directory
from fhirpkg.issues import Issue, Severity
from fhirpkg.reports import issue_dict, oo_issue
from fhirpkg.fhir.serialize import Orderer, dumps, dumps_utf8

R5, R4B, R4 = "5.0.0", "4.3.0", "4.0.1"
ALL_VERSIONS = (R5, R4B, R4)


class BuildError(FhirpkgError):
    """The build refused to run or to write; the message says why (exit 1: the content, not the call)."""

    exit_code = 1


@dataclass
class BuildResult:
    files: dict[str, bytes] = field(default_factory=dict)  # path relative to build/ -> bytes
    issues: list[Issue] = field(default_factory=list)  # validation of definitions/ and of the outputs
    report: dict = field(default_factory=dict)
    written: bool = False
    stale: list[str] = field(default_factory=list)  # --check: files that differ


def release_time(manifest) -> tuple[str, int]:
    """(FHIR instant, epoch seconds) of the release: the manifest date, else SOURCE_DATE_EPOCH.

    The committed manifest wins so that `build --check` gives the same bytes on a CI machine
    that happens to export SOURCE_DATE_EPOCH; the variable only fills in a manifest without a date.
    """
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if manifest.date:
        epoch = int(datetime.strptime(manifest.date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
    elif env.isdigit():
        epoch = int(env)
    else:
        raise BuildError("package.json has no 'date' (YYYYMMDDHHmmss) and SOURCE_DATE_EPOCH is not set: "
                         "a reproducible build needs a fixed release time")
    instant = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return instant, epoch


def _relative_files(issues: list[Issue], root: Path) -> list[Issue]:
    """Issue paths relative to the project, so reports do not depend on where the build ran
    (each file's path resolved once, however many issues it has)."""
    parent = root.resolve().parent
    relative: dict[str, str | None] = {}
    out = []
    for issue in issues:
        name = issue.file
        if name not in relative:
            try:
                relative[name] = str(Path(name).resolve().relative_to(parent))
            except (ValueError, OSError, TypeError):
                relative[name] = None
        out.append(issue if relative[name] is None else issue.at(file=relative[name]))
    return out


def _summary(issues: list[Issue]) -> dict:
    c = Counter(i.severity.code for i in issues)
    return {s.code: c.get(s.code, 0) for s in Severity}


def build(project_root: str | Path = "definitions", *, fhir_versions=ALL_VERSIONS, force: bool = False,
          log: Callable[[str], None] = lambda m: None, defs=None, site: bool = True,
          jobs: int | None = None, cache: BuildCache | None = None) -> BuildResult:
    """Validate and lay out every output in memory (nothing is written here).

    ``jobs``: processes validating the resources and rendering the site (default: the machine's
    cores).  ``cache``: reuse per-resource work of earlier builds (:mod:`fhirpkg.publish.cache`;
    same bytes as without it).
    """
    from fhirpkg import api, parallel

    processes = parallel.cores() if jobs is None else jobs
    root = Path(project_root)
    t0 = time.perf_counter()
    project, issues, defs = api.validate_project(root, defs=defs, jobs=processes, cache=cache)
    issues = _relative_files(issues, root)
    if project.manifest is None:
        raise BuildError("; ".join(i.message for i in issues if i.is_error) or f"{root} is not a content project")
    errors = [i for i in issues if i.is_error]
    if errors and not force:
        raise BuildError(f"{len(errors)} validation error(s) in {root}: nothing was written "
                         f"(fix them, or use --force to build anyway)")
    if errors:
        log(f"WARNING: building despite {len(errors)} validation error(s) (--force); the outputs are not valid")
    manifest = project.manifest
    instant, epoch = release_time(manifest)
    date_compact = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y%m%d%H%M%S")
    orderer = Orderer(defs)
    texts = Texts(cache)  # each resource's JSON text, written once whatever the outputs
    keys: dict[int, str] = {}  # id(laid-out resource) -> its cache key
    resources = []
    for r in project.resources:
        laid_out = _laid_out(r, orderer, cache)
        if cache is not None:
            keys[id(laid_out)] = r.digest
            texts.register(laid_out, r.digest)
        resources.append(laid_out)
    ig = orderer.resource(narrative.with_narrative(
        npm_package.implementation_guide(manifest, bundle.ordered(resources), instant[:10])))
    resources = bundle.ordered(resources)
    output_issues = _validate_outputs(defs, resources + [ig], project, cache, keys)
    all_issues = issues + output_issues
    result = BuildResult(issues=all_issues)
    # What the build records: errors and warnings.  Information-level notes (mostly "not checked
    # offline") depend on optional local data such as the OS iso-codes tables, and would make the
    # same input give different bytes on different machines.
    recorded = [i for i in all_issues if i.severity >= Severity.WARNING]
    files = result.files
    stem = f"{manifest.name}-{manifest.version}"
    kw = dict(name=manifest.name, version=manifest.version, canonical=manifest.canonical, timestamp=instant)
    text_cache = texts.table
    files[f"{stem}.transaction.json"] = _json(bundle.transaction(resources, **kw), text_cache)
    files[f"{stem}.collection.json"] = _json(bundle.collection(resources, **kw), text_cache)
    summary = {"package": f"{manifest.name}#{manifest.version}", "tool": f"fhirpkg {__version__}",
               "date": instant, "resources": len(resources), "issues": _summary(recorded),
               "recorded": "errors and warnings (information-level notes are not recorded)"}
    other = {
        "validation-summary.json": (json.dumps(summary, indent=2) + "\n").encode(),
        "validation-oo.json": _json({"resourceType": "OperationOutcome", "id": "validation",
                                     "issue": [oo_issue(i) for i in sorted(recorded, key=Issue.sort_key)] or [
                                         {"severity": "information", "code": "informational",
                                          "details": {"text": "No issues"}}]}),
    }
    pkg_files = npm_package.package_files(manifest, [ig] + resources, other,
                                          lambda r: dumps(r, cache=text_cache), date_compact)
    files["package.tgz"] = npm_package.tgz(pkg_files, epoch)
    conversions = {}
    for version in fhir_versions:
        if version == R5:
            continue
        memo = _conversion_memo(cache, keys, texts, version) if cache is not None else None
        conversions[version] = _export(version, resources, manifest, instant, epoch, files, log, text_cache, memo)
    if site:
        from fhirpkg.publish.site import generate as site_generate
        from fhirpkg.publish.site.safe import Verdicts
        verdicts = Verdicts(cache.get("site", "narrative verdicts") or {}) if cache is not None else None
        for path, data in site_generate(project=project, resources=resources, ig=ig, files=files,
                                        issues=recorded, defs=defs, json_texts=text_cache,
                                        narrative_verdicts=verdicts, jobs=processes).items():
            files[f"site/{path}"] = data
        if cache is not None and verdicts.reached != verdicts.earlier:
            cache.put("site", "narrative verdicts", verdicts.reached)
    result.report = _report(manifest, resources, recorded, files, conversions, defs, time.perf_counter() - t0)
    files["build-report.json"] = (json.dumps(result.report, indent=2, ensure_ascii=False) + "\n").encode()
    files["SHA256SUMS"] = _sha256sums(files)
    if cache is not None:
        texts.store()
        cache.save()
        log(cache.summary())
    return result


def _laid_out(resource, orderer: Orderer, cache: BuildCache | None) -> dict:
    """The project resource as published: its narrative added, elements in definition order."""
    def lay_out():
        return orderer.resource(narrative.with_narrative(resource.json)), ()
    return (lay_out() if cache is None else cache.recall("layout", resource.digest, lay_out))[0]


def _conversion_memo(cache: BuildCache, keys: dict[int, str], texts: Texts, version: str):
    """A :data:`fhirpkg.publish.convert.Memo` over the build cache: a resource's conversion is
    reused while its layout and the package resources it looked up are unchanged."""
    def memo(res, as_basic, batch, convert_one):
        source = keys.get(id(res))
        if source is None:
            return convert_one()
        key = digest(version, source, str(as_basic))

        def convert():
            batch.reads = set()
            try:
                return convert_one(), batch.reads
            finally:
                batch.reads = None
        unit, reused = cache.recall(f"convert {version}", key, convert, now_finding(batch.looked_up, keys))
        if unit.resource is not None:
            texts.register(unit.resource, key, reuse=reused)
        return unit
    return memo


def _json(value, cache: dict | None = None) -> bytes:
    return dumps_utf8(value, cache=cache) + b"\n"


def _validate_generated(resource: dict, validator, cache: BuildCache | None, keys: dict[int, str]) -> list[Issue]:
    """Issues of a generated resource; with a cache, reused while the resource and the package
    resources its validation looked up are unchanged (as for authored ones)."""
    if cache is None:
        return list(validator.validate_resource(resource))
    resolver = validator.resolver

    def validate():
        resolver.note_reads()
        return list(validator.validate_resource(resource)), resolver.note_reads()
    return cache.recall("validate generated", digest(dumps(resource, indent=None)), validate,
                        now_finding(resolver.looked_up, keys))[0]


def _validate_outputs(defs, resources: list[dict], project, cache: BuildCache | None = None,
                      keys: dict[int, str] | None = None) -> list[Issue]:
    """What the build generated must be valid too: the ImplementationGuide in full, and every
    generated narrative against the narrative rules (the rest was validated as authored; a
    narrative checked by an earlier build is not checked again)."""
    from fhirpkg.validation import Options, Validator
    from fhirpkg.validation.references import Resolver
    from fhirpkg.validation.xhtml import issues_for

    out = []
    for r in resources:
        where = f"(generated) {r['resourceType']}/{r.get('id')}"
        if r.get("resourceType") == "ImplementationGuide":
            resolver = Resolver()
            for other in resources:
                resolver.add(other)
            for i in _validate_generated(r, Validator(defs, Options(package_mode=True), resolver), cache, keys or {}):
                out.append(i.at(file=where))
        elif (r.get("text") or {}).get("status") == "generated":
            div, expression = r["text"]["div"], f"{r['resourceType']}.text.div"

            def check(div=div, expression=expression):
                return list(issues_for(div, expression)), ()
            found, _ = check() if cache is None else cache.recall("narrative", digest(expression, div), check)
            for i in found:
                out.append(replace(i, message=f"Generated narrative: {i.message}", file=where))
    return out


def _export(version: str, resources: list[dict], manifest, instant: str, epoch: int, files: dict, log,
            text_cache: dict | None = None, memo=None) -> dict:
    """An R4B or R4 export in its own folder, with the list of what could not be carried over."""
    from fhirpkg.publish import convert
    from fhirpkg.publish.convert import fidelity
    folder = "r4b" if version == R4B else "r4"
    conv = convert.to_r4b(resources, memo) if version == R4B else convert.to_r4(resources, memo)
    stem = f"{manifest.name}-{manifest.version}"
    kw = dict(name=manifest.name, version=manifest.version, canonical=manifest.canonical, timestamp=instant)
    # the ".r4b.json" / ".r4.json" suffix tells `fhirpkg validate` which FHIR version a file is
    files[f"{folder}/{stem}.transaction.{folder}.json"] = _json(bundle.transaction(conv.resources, **kw), text_cache)
    files[f"{folder}/{stem}.collection.{folder}.json"] = _json(bundle.collection(conv.resources, **kw), text_cache)
    losses = [{"resource": l.resource, "path": l.path, "reason": l.reason} for l in conv.losses]
    files[f"{folder}/losses.json"] = (json.dumps({"fhirVersion": version, "dropped": conv.dropped,
                                                  "asBasic": conv.as_basic, "losses": losses},
                                                 indent=2, ensure_ascii=False) + "\n").encode()
    rows = fidelity.table(resources, conv)
    if version == R4:  # the one line issue 12 asks for; R4B's counts are in build-report.json
        log(fidelity.line("R4", rows, len(losses)))
    return {"fhirVersion": version, "resources": len(conv.resources), "dropped": len(conv.dropped),
            "asBasic": len(conv.as_basic), "losses": len(losses), "carried": len(conv.carried),
            "fidelity": fidelity.as_dicts(rows)}


def _report(manifest, resources, issues, files, conversions, defs, seconds) -> dict:
    counts = Counter(r["resourceType"] for r in resources)
    return {
        "package": {"name": manifest.name, "version": manifest.version, "canonical": manifest.canonical,
                    "fhirVersion": R5, "dependencies": manifest.dependencies},
        "tool": {"name": "fhirpkg", "version": __version__},
        "definitions": {"packages": list(defs.packages) if defs is not None else []},
        "resources": dict(sorted(counts.items())),
        "validation": _summary(issues),
        "issues": [issue_dict(i) for i in sorted(issues, key=Issue.sort_key) if i.severity >= Severity.WARNING],
        "exports": conversions,
        "files": sorted(files),
    }


def _sha256sums(files: dict[str, bytes]) -> bytes:
    lines = [f"{hashlib.sha256(files[p]).hexdigest()}  {p}" for p in sorted(files)]
    return ("\n".join(lines) + "\n").encode()


# --- writing and checking ------------------------------------------------------------

def write(result: BuildResult, out_dir: str | Path) -> None:
    """Write the build into a temporary folder beside ``out_dir``, then swap it in.

    An interrupted build leaves the previous folder as it was; two builds at once
    take turns (a lock beside the folder), so the folder is never a mix.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out):
        _remove_stale_staging(out)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            for rel, data in sorted(result.files.items()):
                path = staged / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            swap_in_directory(staged, out)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    result.written = True


def _remove_stale_staging(out: Path) -> None:
    """Remove what killed builds left beside ``out``: only the lock holder writes
    there, so any staging or old folder of ``out`` seen under the lock is stale."""
    for p in out.parent.glob(f".{out.name}.*-*"):
        if p.is_dir() and not p.is_symlink() and (p.name.startswith(f".{out.name}.tmp-")
                                                  or p.name.startswith(f".{out.name}.old-")):
            shutil.rmtree(p, ignore_errors=True)


def check(result: BuildResult, out_dir: str | Path) -> list[str]:
    """Files of the committed build that differ from a fresh build (missing, changed or extra)."""
    out = Path(out_dir)
    stale = []
    existing = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()
    for rel, data in sorted(result.files.items()):
        path = out / rel
        if rel not in existing:
            stale.append(f"missing: {rel}")
        elif path.read_bytes() != data:
            stale.append(f"changed: {rel}")
    for rel in sorted(existing - set(result.files)):
        stale.append(f"extra: {rel}")
    result.stale = stale
    return stale
