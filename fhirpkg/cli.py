"""The command line: thin click commands that call the API and render its results.

Exit codes: 0 success, 1 validation errors (or warnings with --fail-on warning),
2 usage error, 3 an internal error (reported in one line, never a traceback).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from fhirpkg import __version__
from fhirpkg.errors import FhirpkgError, describe
from fhirpkg.issues import Severity

EXIT_INTERNAL = 3


def _err(msg: str) -> None:
    click.echo(msg, err=True)


class Group(click.Group):
    """Turns unexpected exceptions into one clear line and exit code 3."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _err("fhirpkg: interrupted")
            ctx.exit(130)
        except FhirpkgError as e:  # an input or setup problem, said in its own words
            _err(f"fhirpkg: {e}")
            ctx.exit(e.exit_code)
        except Exception as e:  # noqa: BLE001 - the last line of defence: no tracebacks for users
            if os.environ.get("FHIRPKG_DEBUG"):
                raise
            _err(f"fhirpkg: {describe(e)}")
            ctx.exit(EXIT_INTERNAL)


def _show_version(ctx, _param, value) -> None:
    """fhirpkg's version and the FHIR packages it validates against (a verdict depends on both)."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version
    from fhirpkg.fhir import packages as pk
    try:
        models = f", fhir.resources {version('fhir.resources')}"
    except PackageNotFoundError:
        models = ""
    click.echo(f"fhirpkg {__version__} (Python {sys.version.split()[0]}{models})")
    click.echo(f"FHIR packages (in {pk.cache_dir()}):")
    for use, refs in (("R5", pk.R5_DEFAULT_PACKAGES), ("R4B", pk.R4B_DEFAULT_PACKAGES)):
        for ref in map(lambda r: pk.PackageRef(*r), refs):
            note = "" if pk.installed(ref) is not None else "  (not installed: installed on first use)"
            click.echo(f"  {use:4s} {ref}{note}")
    ctx.exit()


@click.group(cls=Group)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version and the FHIR packages in use, then exit.")
@click.option("--offline", is_flag=True, envvar="FHIRPKG_OFFLINE",
              help="Guarantee no network access: missing packages are an error, not a download.")
def main(offline: bool) -> None:
    """Validate, bundle and ship FHIR R5 knowledge content, offline."""
    if offline:
        os.environ["FHIRPKG_OFFLINE"] = "1"


# --- validate ---------------------------------------------------------------------

@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "operationoutcome", "junit", "sarif", "parquet"]),
              default="text", show_default=True,
              help="Report format; parquet (with --spark and -o DIR): one row per issue, written by Spark.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (atomically) instead of standard output.")
@click.option("--fail-on", type=click.Choice(["error", "warning"]), default="error", show_default=True,
              help="Lowest severity that makes the exit code 1.")
@click.option("--level", type=click.Choice(["information", "warning", "error"]), default="information",
              show_default=True, help="Lowest severity shown in the text report.")
@click.option("--verbose", "-v", is_flag=True, help="Text report: every issue on its own line, repeats not grouped.")
@click.option("--quiet", "-q", is_flag=True, help="Text report: errors only (same as --level error).")
@click.option("--profile", "profiles", multiple=True, metavar="URL",
              help="Also validate every resource against this profile (repeatable).")
@click.option("--ig", "igs", multiple=True, metavar="PKG|DIR|FILE",
              help="Load profiles, extensions and value sets from a package (id#version), a folder, "
                   "a .tgz, or a JSON or FHIR XML file.")
@click.option("--progress/--no-progress", default=None, help="Show progress on standard error (default: on a terminal).")
@click.option("--timings", is_flag=True, help="Print the time spent in each validation layer (with -j 1).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the machine's cores; 1 = validate in this process).")
@click.option("--fhir-version", type=click.Choice(["5.0.0", "4.3.0", "4.0.1"]), default=None,
              help="Validate every file as this FHIR version (default: R5, or the version a name such as "
                   "x.r4.json or x.r4b.json states).")
@click.option("--spark", "spark_master", metavar="MASTER",
              help="Validate on Apache Spark (local[N], spark://host:port, yarn, ...): one validator per executor "
                   "process; needs the spark extra (pip install 'fhirpkg[spark]').")
@click.option("--security-checks", is_flag=True,
              help="Text that looks like embedded HTML tags is an error, not a hint (the HL7 validator's "
                   "-security-checks).")
@click.option("--html-in-markdown", type=click.Choice(["ignore", "warning", "error"]), default="warning",
              show_default=True, help="Level for raw HTML in markdown, which renderers escape.")
@click.option("--allow-comments", is_flag=True, help="Read // and /* */ comments in JSON files as whitespace.")
@click.option("--assume-valid-rest-references", is_flag=True,
              help="Take the type a RESTful reference URL names (Patient/1) as its target's: a type the element does "
                   "not allow is an error, not information.")
@click.option("--allow-example-urls", is_flag=True,
              help="Unknown extensions whose URL contains example.org or acme.com are allowed, not errors (the HL7 "
                   "validator's -allow-example-urls).")
def validate(paths, fmt, output, fail_on, level, verbose, quiet, profiles, igs, progress, timings, jobs,
             fhir_version, spark_master, security_checks, html_in_markdown, allow_comments,
             assume_valid_rest_references, allow_example_urls):
    """Validate FHIR JSON (R5, R4B, R4): files, folders (recursive), Bundles, NDJSON, or - for stdin.

    The text report gives one line per kind of problem (rule and message, with its count and first
    places); -v lists every issue.
    """
    from fhirpkg import api, reports
    if fmt == "parquet" and not (spark_master and output):
        raise click.UsageError("--format parquet needs --spark MASTER and -o DIR")
    spec = api.ValidatorSpec(fhir_version, tuple(igs), tuple(profiles), timings, security_checks, html_in_markdown,
                             allow_comments, assume_valid_rest_references, allow_example_urls)
    validator = api.make_validator(spec)
    if spark_master:
        from fhirpkg import spark
        if fmt == "parquet":
            counts = spark.write_parquet(spark_master, list(paths), spec, output)
            _err(f"wrote {counts.total} issues to {output}: {counts.errors} errors, {counts.warnings} warnings, "
                 f"{counts.information} information")
            sys.exit(1 if counts.at_least(Severity.parse(fail_on)) else 0)
        parts = (api.Part(r.file, r.issues, r.resources, True) for r in spark.run(spark_master, list(paths), spec))
    else:
        if jobs is None:
            from fhirpkg.parallel import cores
            jobs = 1 if timings else cores()
        parts = api.iter_parts(list(paths), validator, fhir_version=fhir_version, jobs=jobs)
    show = progress if progress is not None else sys.stderr.isatty()
    started = last = time.perf_counter()
    with reports.Collector(keep_all=fmt != "text" or verbose) as found:
        for part in parts:
            if part.first:
                found.add_file(part.file)
            found.add(part.issues, part.resources)
            now = time.perf_counter()
            if show and now - last > 0.5:
                last = now
                click.echo(f"\rvalidated {len(found.files)} files, {found.errors} errors ...", err=True, nl=False)
        if show and found.files:
            click.echo("\r" + " " * 60 + "\r", err=True, nl=False)
        report = _batched(reports.chunks(fmt, found, Severity.parse("error" if quiet else level),
                                         resources=found.resources, verbose=verbose))
        if output:
            from fhirpkg.fsutil import atomic_writer
            with atomic_writer(output) as f:
                for text in report:
                    f.write(text.encode("utf-8"))
            if fmt != "text":
                _err(reports.summary(found.counts, len(found.files), found.resources))
        else:
            for text in report:
                click.echo(text, nl=False)
    if timings:
        total = time.perf_counter() - started
        _err(f"validated {len(found.files)} files in {total:.2f} s")
        for layer, secs in sorted(validator.layer_seconds.items(), key=lambda kv: -kv[1]):
            _err(f"  {layer:12s} {secs:8.3f} s")
    sys.exit(1 if found.any_at_least(Severity.parse(fail_on)) else 0)


def _batched(texts, size: int = 1 << 16):
    """Report pieces joined into writes of about ``size`` characters."""
    held, n = [], 0
    for text in texts:
        held.append(text)
        n += len(text)
        if n >= size:
            yield "".join(held)
            held, n = [], 0
    if held:
        yield "".join(held)


# --- build ------------------------------------------------------------------------

@main.command()
@click.option("--project", "project_dir", default="definitions", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The content project folder.")
@click.option("--out", "out_dir", default="build", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the artifacts go.")
@click.option("--fhir-version", "fhir_versions", multiple=True, type=click.Choice(["5.0.0", "4.3.0", "4.0.1"]),
              help="Versions to export (repeatable); default: all three (R5, R4B in r4b/, R4 in r4/).")
@click.option("--force", is_flag=True, help="Write the build even if definitions/ has validation errors.")
@click.option("--check", is_flag=True, help="Rebuild in memory and fail if the committed build/ differs.")
@click.option("--canonical", metavar="URL",
              help="Adopt the content: build it under this canonical base (every url, canonical reference and "
                   "identifier system on the base, and the package name when derived from it).")
@click.option("--publisher", metavar="TEXT", help="Adopt the content: this publisher on every resource and as author.")
@click.option("--version", "release_version", metavar="X.Y.Z",
              help="Adopt the content: this package and artifact version.")
@click.option("--no-cache", is_flag=True,
              help="Redo every resource's work instead of reusing what an earlier build did for unchanged "
                   "resources (the output is the same either way).")
def build(project_dir, out_dir, fhir_versions, force, check, canonical, publisher, release_version, no_cache):
    """Validate definitions/ and write build/: transaction and collection Bundles, package.tgz, exports, site."""
    if canonical is None and publisher is None and release_version is None:
        return _build(project_dir, out_dir, fhir_versions, force, check, not no_cache)
    from fhirpkg.content import rebase
    try:
        with rebase.adopted(project_dir, canonical, publisher, release_version) as (adopted_dir, a):
            _err(f"adopted {project_dir}: {a.old_base} -> {a.new_base}, package {a.old_name}#{a.old_version} -> "
                 f"{a.new_name}#{a.new_version}")
            _build(adopted_dir, out_dir, fhir_versions, force, check, False)  # a temporary folder each time
    except rebase.AdoptionError as e:
        raise click.UsageError(str(e)) from None


def _build(project_dir, out_dir, fhir_versions, force, check, use_cache):
    from fhirpkg.publish import build as b
    from fhirpkg.publish.cache import BuildCache
    from fhirpkg.reports import text_line
    versions = tuple(fhir_versions) or b.ALL_VERSIONS
    if b.R5 not in versions:
        versions = (b.R5,) + versions
    if not check and Path(project_dir).is_dir():
        _cql_update(project_dir)  # changed CQL first; --check reports a stale Library instead
    try:
        result = b.build(project_dir, fhir_versions=versions, force=force, log=_err,
                         cache=BuildCache.for_project(project_dir) if use_cache else None)
    except b.BuildError as e:
        from fhirpkg import api
        _, issues, _ = api.validate_project(project_dir)
        for i in sorted(issues, key=lambda i: i.sort_key()):
            if i.is_error:
                _err(text_line(i))
        raise click.ClickException(str(e)) from None
    errors = sum(1 for i in result.issues if i.is_error)
    warnings = sum(1 for i in result.issues if i.severity == Severity.WARNING)
    if check:
        stale = b.check(result, out_dir)
        if stale:
            for s in stale:
                _err(f"  {s}")
            raise click.ClickException(f"{out_dir}/ is stale: {len(stale)} file(s) differ from a fresh build "
                                       f"(run: fhirpkg build)")
        click.echo(f"{out_dir}/ is up to date ({len(result.files)} files)")
        return
    try:
        b.write(result, out_dir)
    except OSError as e:
        raise click.ClickException(f"cannot write {out_dir}/: {e.strerror or e} (the previous build, if any, "
                                   "is unchanged)") from None
    click.echo(f"built {out_dir}/: {len(result.files)} files from {sum(result.report['resources'].values())} resources "
               f"({errors} errors, {warnings} warnings)")


# --- cql --------------------------------------------------------------------------

def _cql_update(project_dir, force: bool = False):
    """Run ``api.cql``; CQL errors exit 1 (one located line each), a missing JVM exits 2."""
    from fhirpkg import api
    from fhirpkg.logic.jvm import JavaUnavailable
    from fhirpkg.logic.translate import CqlError
    try:
        return api.cql(project_dir, force=force, log=_err)
    except CqlError as e:
        for line in str(e).splitlines():
            _err(line)
        _err("fhirpkg cql: the CQL has errors; no Library was written")
        sys.exit(1)
    except JavaUnavailable as e:
        _err(f"fhirpkg cql: the CQL changed and the translator cannot run: {str(e).splitlines()[0]}")
        sys.exit(2)


@main.command()
@click.argument("project_dir", default="definitions", required=False,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Translate every CQL file, changed or not.")
def cql(project_dir, force):
    """Translate changed CQL (PROJECT/cql/*.cql) to ELM and rewrite the Library resources that carry them."""
    if not project_dir.is_dir():
        raise click.BadParameter(f"{project_dir} is not a folder", param_hint="PROJECT")
    result = _cql_update(project_dir, force)
    for path in result.written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(result.translated)} library(ies) translated, {len(result.written)} Library file(s) "
               f"changed, {len(result.unchanged)} unchanged")


# --- push and diff ------------------------------------------------------------------

@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--server", required=True, metavar="URL", help="FHIR base URL, e.g. https://fhir.example/fhir")
@click.option("--header", "headers", multiple=True, metavar="'Name: value'",
              help="Extra HTTP header (repeatable). Values are never printed. Prefer $FHIRPKG_AUTHORIZATION "
                   "for a token: command-line arguments are visible to other users of the machine.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
@click.option("--max-attempts", type=click.IntRange(1, 20), default=5, show_default=True,
              help="Attempts per request (429, 5xx, resets and time-outs are retried).")
@click.option("--backoff", type=float, default=1.0, show_default=True, help="Base of the exponential backoff, s.")
@click.option("--max-wait", type=float, default=60.0, show_default=True, help="Longest single wait, s.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Trust this CA bundle (PEM).")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="One line per artifact, not only the problems.")
def push(bundle, server, headers, timeout, max_attempts, backoff, max_wait, ca_file, insecure, fmt, verbose):
    """Load a transaction Bundle into a FHIR server and verify what it holds afterwards."""
    from fhirpkg.publish import push as p, transport
    try:
        data = p.load_bundle(bundle)
        hdrs = transport.parse_headers(list(headers))
        if os.environ.get("FHIRPKG_AUTHORIZATION") and "Authorization" not in hdrs:
            hdrs["Authorization"] = os.environ["FHIRPKG_AUTHORIZATION"]
        opts = transport.PushOptions(server, hdrs, timeout, max_attempts, backoff, max_wait,
                             verify_tls=not insecure, ca_file=ca_file)
        p.preflight(data, opts)
    except transport.PushError as e:
        raise click.UsageError(str(e)) from None
    report = p.push(data, opts, log=_err)
    click.echo(report.to_json() if fmt == "json" else p.render_text(report, verbose), nl=fmt != "json")
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences (like git diff).")
def diff(old, new, fmt, output, exit_code):
    """What changed between two releases: folders, Bundles or package.tgz files."""
    from fhirpkg.publish import diff as d
    try:
        report = d.diff(d.load_side(old), d.load_side(new))
    except d.DiffError as e:
        raise click.UsageError(str(e)) from None
    text = d.render_json(report) if fmt == "json" else d.render_text(report)
    if output:
        from fhirpkg.fsutil import atomic_write_text
        atomic_write_text(output, text)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if exit_code and (report.added or report.removed or report.changed):
        sys.exit(1)


# --- apply ------------------------------------------------------------------------

@main.command()
@click.argument("plan_definition", metavar="PLANDEF")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="The patient's records: an R5 Bundle (JSON).")
@click.option("--subject", required=True, metavar="Patient/ID", help="The patient, as in the data.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result Bundle here (atomically) instead of standard output.")
@click.option("--explain", is_flag=True, help="List every condition evaluated, with its value (on standard error).")
@click.option("--package", "package", type=click.Path(file_okay=False),
              help="The content folder (default: the project PLANDEF is in, or definitions/).")
def apply(plan_definition, data, subject, output, explain, package):
    """PlanDefinition/$apply for one patient: the CarePlan, RequestOrchestration and requests that apply.

    PLANDEF is a file, an id (nepc-pathway) or a canonical url."""
    from fhirpkg import api
    from fhirpkg.errors import ApplyError
    from fhirpkg.fhir.serialize import dumps
    try:
        result = api.apply(plan_definition, data, subject, package=package)
    except ApplyError as e:
        _err(f"fhirpkg apply: {e}")
        sys.exit(2)
    if explain:
        for pd_id, action_id, expression, value in result.conditions:
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
            _err(f"{pd_id}#{action_id}: {expression!r} = {shown}")
    text = dumps(result.bundle) + "\n"
    requests = sum(1 for e in result.bundle["entry"]
                   if e["resource"]["resourceType"] not in ("CarePlan", "RequestOrchestration"))
    summary = f"{len(result.actions)} action(s) apply for {subject}, {requests} request(s) created"
    if output:
        from fhirpkg.fsutil import atomic_write_text
        atomic_write_text(output, text)
        click.echo(f"{summary}: {output}")
        for a in result.actions:
            click.echo(f"  {a}")
    else:
        click.echo(text, nl=False)
        _err(summary)


# --- packages ---------------------------------------------------------------------

@main.group()
def packages():
    """The FHIR package cache (~/.fhir/packages, or $FHIR_PACKAGE_CACHE)."""


@packages.command("install")
@click.argument("specs", nargs=-1)
@click.option("--from", "from_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Install from this .tgz instead of the npm registry (air-gapped machines).")
@click.option("--defaults", is_flag=True, help="Install the packages the validator needs (R5 core, THO, extensions).")
def packages_install(specs, from_file, defaults):
    """Install packages given as id@version (or id#version)."""
    from fhirpkg.fhir import packages as pk
    try:
        refs = [pk.PackageRef.parse(s) for s in specs]
    except pk.PackageError as e:
        raise click.UsageError(str(e)) from None
    if defaults:
        refs += [pk.PackageRef(*r) for r in pk.R5_DEFAULT_PACKAGES]
    if not refs:
        raise click.UsageError("name a package (e.g. hl7.fhir.r5.core@5.0.0) or use --defaults")
    if from_file and len(refs) != 1:
        raise click.UsageError("--from installs exactly one package")
    try:
        for ref in refs:
            pkg = pk.install(ref, from_file=from_file, log=_err)
            click.echo(f"{ref}: {pkg.folder} ({len(pkg.index)} resources)")
    except pk.PackageError as e:
        raise click.ClickException(str(e)) from None


@packages.command("list")
def packages_list():
    """List the installed packages."""
    from fhirpkg.fhir import packages as pk
    for ref in pk.list_installed():
        click.echo(str(ref))


def run() -> None:
    """The console script: ``main``, then an exit that skips tearing down the loaded definitions.

    Freeing the interpreter's heap (hundreds of thousands of objects of compiled definitions)
    takes about a tenth of a second, as long as validating a dozen resources; the process is
    ending anyway.  Output is flushed and the ``atexit`` handlers run first (temporary folders).
    """
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    if not isinstance(code, int):  # sys.exit("message") or sys.exit(None)
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): nothing left to say there
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()
