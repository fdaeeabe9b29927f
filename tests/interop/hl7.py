"""Harness around the HL7 FHIR validator (our Java front end in ``hl7-validator/``).

The validator library comes from Maven Central (``ca.uhn.hapi.fhir:org.hl7.fhir.validation``);
``hl7-validator/`` builds ``target/validator_cli.jar`` with ``target/lib/*.jar`` on its class path.
It runs fully offline:

* ``-tx n/a`` (no terminology server), ``-no-http-access`` and a ``fhir-settings.json`` with
  ``prohibitNetworkAccess``/``ignoreDefaultPackageServers``, so a missing package fails at once
  instead of hanging on packages.fhir.org;
* a *private* package cache (``<home>/.fhir/packages``, the JVM gets ``-Duser.home=<home>``),
  filled by copying packages from the shared fhirpkg cache.  The validator writes into the cache it
  uses (``packages.ini``, ``.index.json`` files in package sub-folders) and deletes every package in
  it when ``packages.ini`` names another cache version, so it never sees the user's cache.  In the
  private copy the circular, unsatisfiable dependencies between ``hl7.terminology.r5#7.0.1`` and
  ``hl7.fhir.uv.extensions.r5#5.3.0-ballot-tc1`` (on versions npm does not serve) are rewritten.

Public API::

    jar_path(build=True) -> Path
    prepare_home(igs=()) -> Path
    validate_files(paths, igs=[], extra_args=[], *, fhir_version="5.0.0", timeout=None,
                   batch_size=500) -> dict[Path, list[dict]]
    validate_file(path, igs=[], extra_args=[], **kw) -> list[dict]
    errors(issues) -> list[dict]
    Hl7Session(igs=[], extra_args=[], *, fhir_version="5.0.0")   # one resident JVM, many calls

``fhir_version`` 4.0.1 (R4) or 4.3.0 (R4B) loads that core package and the R4 editions of the
terminology and extension packages instead of the R5 ones (:data:`PACKAGES_BY_VERSION`).

Each issue is a plain dict: ``{severity, code, message, expression, line, col, message_id}``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

from fhirpkg.logic import jvm
from fhirpkg.logic.jvm import BUILD_TIMEOUT, JavaUnavailable, file_lock, java_exe, java_version, maven_build, missing_tools, mvn_exe

HERE = Path(__file__).resolve().parent
PROJECT_DIR = HERE / "hl7-validator"
TARGET = PROJECT_DIR / "target"
JAR = TARGET / "validator_cli.jar"

HL7_CORE_VERSION = "6.10.4"  # ca.uhn.hapi.fhir:org.hl7.fhir.validation, see hl7-validator/pom.xml

EXT_FILE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-file"
EXT_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
EXT_COL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"
EXT_MSG_ID = "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id"

#: Packages the engine loads on every run, with the ``dependencies`` we give them in the private copy.
BASE_PACKAGES: dict[tuple[str, str], dict | None] = {
    ("hl7.fhir.r5.core", "5.0.0"): None,  # None: keep package.json as it is
    ("hl7.fhir.xver-extensions", "0.1.0"): None,  # loaded without its dependencies by the engine
    ("hl7.terminology.r5", "7.0.1"): {},  # was {hl7.fhir.uv.extensions.r5: 5.2.0}: not on npm
    ("hl7.fhir.uv.extensions.r5", "5.3.0-ballot-tc1"): {"hl7.terminology.r5": "7.0.1"},  # was 6.5.0
}

#: The same for R4 (``hl7.fhir.r4.core`` is the one fhirpkg builds from ``hl7.fhir.r4.examples``)
#: and R4B.  The R4 terminology and extension packages name versions npm does not serve
#: (``hl7.fhir.uv.extensions.r4#5.2.0``, ``hl7.terminology.r4#6.5.0``): rewritten as for R5.
R4_PACKAGES: dict[tuple[str, str], dict | None] = {
    ("hl7.fhir.r4.core", "4.0.1"): None,
    ("hl7.fhir.xver-extensions", "0.1.0"): None,
    ("hl7.terminology.r4", "7.0.1"): {"hl7.fhir.r4.core": "4.0.1"},  # was + extensions.r4 5.2.0
    ("hl7.fhir.uv.extensions.r4", "5.3.0-ballot-tc1"): {"hl7.fhir.r4.core": "4.0.1",
                                                        "hl7.terminology.r4": "7.0.1"},  # was 6.5.0
}
R4B_PACKAGES: dict[tuple[str, str], dict | None] = {
    ("hl7.fhir.r4b.core", "4.3.0"): None,
    **{k: v for k, v in R4_PACKAGES.items() if k[0] != "hl7.fhir.r4.core"},
}
PACKAGES_BY_VERSION = {"5.0.0": BASE_PACKAGES, "4.0.1": R4_PACKAGES, "4.3.0": R4B_PACKAGES}

FHIR_SETTINGS = {"prohibitNetworkAccess": True, "ignoreDefaultPackageServers": True}

#: JVM options; override with FHIRPKG_HL7_JAVA_OPTS (space-separated).
DEFAULT_JAVA_OPTS = ("-Xmx3g", "-XX:+UseSerialGC", "-Xss4m")

LOAD_TIMEOUT = 600  # engine load; ~15-60 s measured on 2 shared cores
PER_FILE_TIMEOUT = 20


# Java/Maven helpers are shared with fhirpkg's own build-time front end (the CQL translator):
# InteropUnavailable is fhirpkg.logic.jvm.JavaUnavailable, so either name catches a missing tool.
InteropUnavailable = JavaUnavailable


class ValidatorError(RuntimeError):
    """The validator failed as a program (start-up failure, crash, time-out, unreadable output)."""


# ---------------------------------------------------------------- tools and build

def jar_path(build: bool = True) -> Path:
    """The validator jar; built with ``mvn -q -B package`` if missing or older than its sources.

    ``FHIRPKG_HL7_JAR`` names a prebuilt jar instead (its ``lib/`` folder must sit beside it).
    """
    return jvm.built_jar(PROJECT_DIR, JAR, "FHIRPKG_HL7_JAR", build)


# ---------------------------------------------------------------- private package cache

def home_dir() -> Path:
    """The JVM's ``user.home``: holds ``.fhir/packages`` (private cache) and ``fhir-settings.json``."""
    return Path(os.environ.get("FHIRPKG_HL7_HOME") or TARGET / "home")


def _shared_cache() -> Path:
    from fhirpkg.fhir import packages

    return packages.cache_dir()


def _ensure_shared(pid: str, version: str) -> Path:
    """The package's folder in the shared cache, installing it from npm if it is missing."""
    from fhirpkg.fhir import packages

    ref = packages.PackageRef(pid, version)
    pkg = packages.installed(ref) or packages.install(ref, log=lambda m: print(m, flush=True))
    return Path(pkg.folder).parent  # <cache>/<id>#<version>


def _copy_package(src: Path, dest_root: Path, deps: dict | None) -> None:
    """Copy ``<id>#<ver>`` (real copies, never links) into the private cache, atomically."""
    dest = dest_root / src.name
    if (dest / "package" / "package.json").is_file():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=dest_root))
    try:
        shutil.copytree(src, tmp / src.name, symlinks=False)
        if deps is not None:
            pj = tmp / src.name / "package" / "package.json"
            manifest = json.loads(pj.read_text(encoding="utf-8-sig"))
            manifest["dependencies"] = deps
            manifest["x-fhirpkg-note"] = "dependencies rewritten for offline use by tests/interop/hl7.py"
            pj.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        (tmp / src.name).rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _package_deps(folder: Path) -> dict[str, str]:
    try:
        manifest = json.loads((folder / "package" / "package.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return {}
    return dict(manifest.get("dependencies") or {})


def prepare_home(igs: Iterable[str] = (), fhir_version: str = "5.0.0") -> Path:
    """Create/refresh the private ``user.home`` and return it.

    Copies the packages of ``fhir_version`` (:data:`PACKAGES_BY_VERSION`; installing them into the shared cache from npm first if needed;
    with ``FHIRPKG_OFFLINE=1`` they must already be there) and every ``-ig`` given as
    ``id#version``, with the dependencies it names, into ``<home>/.fhir/packages``.
    """
    home = home_dir()
    cache = home / ".fhir" / "packages"
    with file_lock(home.parent / ".home.lock"):
        cache.mkdir(parents=True, exist_ok=True)
        settings = home / "fhir-settings.json"
        if not settings.is_file() or json.loads(settings.read_text()) != FHIR_SETTINGS:
            settings.write_text(json.dumps(FHIR_SETTINGS, indent=2))
        if fhir_version not in PACKAGES_BY_VERSION:
            raise ValueError(f"FHIR version {fhir_version}: use one of {', '.join(PACKAGES_BY_VERSION)}")
        for (pid, ver), deps in PACKAGES_BY_VERSION[fhir_version].items():
            if not (cache / f"{pid}#{ver}" / "package" / "package.json").is_file():
                _copy_package(_ensure_shared(pid, ver), cache, deps)
        todo = [ig for ig in igs if "#" in ig and not Path(ig).exists()]
        seen: set[str] = set()
        while todo:
            ig = todo.pop()
            if ig in seen:
                continue
            seen.add(ig)
            pid, _, ver = ig.partition("#")
            if pid in {"hl7.fhir.r5.core", "hl7.fhir.r4.core", "hl7.fhir.r4b.core"} and (cache / ig).exists():
                continue
            src = _shared_cache() / ig
            if not (src / "package" / "package.json").is_file():
                src = _ensure_shared(pid, ver)
            _copy_package(src, cache, None)
            todo.extend(f"{d}#{v}" for d, v in _package_deps(cache / ig).items()
                        if not d.startswith("hl7.fhir.r5.core"))
    return home


# ---------------------------------------------------------------- running

def java_opts() -> list[str]:
    env = os.environ.get("FHIRPKG_HL7_JAVA_OPTS")
    return env.split() if env else list(DEFAULT_JAVA_OPTS)


def base_command(igs: Sequence[str] = (), extra_args: Sequence[str] = (), fhir_version: str = "5.0.0") -> list[str]:
    """The java command line up to (not including) the sources/output options."""
    java = java_exe()
    if not java:
        raise InteropUnavailable("; ".join(missing_tools()))
    jar = jar_path()
    home = prepare_home(igs, fhir_version)
    cmd = [java, *java_opts(), f"-Duser.home={home}", "-Djava.awt.headless=true", "-jar", str(jar),
           "-version", fhir_version, "-tx", "n/a", "-no-http-access",
           "-fhir-settings", str(home / "fhir-settings.json")]
    for ig in igs:
        cmd += ["-ig", str(ig)]
    cmd += [str(a) for a in extra_args]
    return cmd


def _ext(obj: dict, url: str):
    for ext in obj.get("extension") or ():
        if ext.get("url") == url:
            for key, val in ext.items():
                if key.startswith("value"):
                    return val
    return None


def issue_to_dict(issue: dict) -> dict:
    expressions = issue.get("expression") or issue.get("location") or []
    details = issue.get("details") or {}
    message = details.get("text") or issue.get("diagnostics") or ""
    return {
        "severity": issue.get("severity"),
        "code": issue.get("code"),
        "message": message,
        "expression": expressions[0] if expressions else None,
        "line": _ext(issue, EXT_LINE),
        "col": _ext(issue, EXT_COL),
        "message_id": _ext(issue, EXT_MSG_ID),
    }


def _is_all_ok(issue: dict) -> bool:
    # The validator adds one synthetic "All OK" information issue when it has nothing to say.
    return (issue.get("severity") == "information" and not issue.get("expression")
            and (issue.get("details") or {}).get("text") == "All OK")


def parse_outcomes(doc: dict) -> dict[str, list[dict]]:
    """Map each OperationOutcome's ``operationoutcome-file`` to its issues (as plain dicts)."""
    if doc.get("resourceType") == "OperationOutcome":
        outcomes = [doc]
    elif doc.get("resourceType") == "Bundle":
        outcomes = [e.get("resource") or {} for e in doc.get("entry") or ()]
    else:
        raise ValidatorError(f"unexpected validator output: resourceType={doc.get('resourceType')!r}")
    res: dict[str, list[dict]] = {}
    for oo in outcomes:
        name = _ext(oo, EXT_FILE)
        if name is None:
            raise ValidatorError("an OperationOutcome in the output has no operationoutcome-file extension")
        res.setdefault(name, []).extend(issue_to_dict(i) for i in oo.get("issue") or () if not _is_all_ok(i))
    return res


def errors(issues: Iterable[dict]) -> list[dict]:
    """The issues of severity error or fatal."""
    return [i for i in issues if i["severity"] in ("error", "fatal")]


def _unique_paths(paths: Iterable[Path | str]) -> tuple[list[Path], dict[str, Path]]:
    order: list[Path] = []
    key_to_path: dict[str, Path] = {}
    for p in paths:
        key = str(Path(p).resolve())
        if key not in key_to_path:
            key_to_path[key] = Path(p)
            order.append(Path(p))
    return order, key_to_path


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    with contextlib.suppress(Exception):
        proc.wait(timeout=30)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def validate_files(paths: Sequence[Path | str], igs: Sequence[str] = (), extra_args: Sequence[str] = (),
                   *, fhir_version: str = "5.0.0", timeout: float | None = None, batch_size: int = 500,
                   log_dir: Path | None = None) -> dict[Path, list[dict]]:
    """Validate many files with as few JVMs as possible (one per ``batch_size`` files).

    Returns ``{path: [issue, ...]}`` with the caller's Path objects as keys (every input path is
    present; an empty list means the validator said nothing, not even a warning).  ``timeout`` is
    per batch (default: 600 s for loading + 20 s a file).  Raises :class:`ValidatorError` when the
    validator cannot start or crashes, :class:`InteropUnavailable` when Java/Maven are missing.
    """
    order, key_to_path = _unique_paths(paths)
    if not order:
        return {}
    cmd = base_command(igs, extra_args, fhir_version)
    result: dict[Path, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="hl7v-", dir=log_dir) as tmp:
        tmpd = Path(tmp)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            keys = [str(p.resolve()) for p in batch]
            lst = tmpd / f"sources-{start}.txt"
            lst.write_text("\n".join(keys) + "\n", encoding="utf-8")
            out = tmpd / f"out-{start}.json"
            log = tmpd / f"log-{start}.txt"
            limit = timeout if timeout is not None else LOAD_TIMEOUT + PER_FILE_TIMEOUT * len(batch)
            with open(log, "wb") as logf:
                proc = subprocess.Popen([*cmd, "-sources", str(lst), "-output", str(out)],
                                        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
                try:
                    rc = proc.wait(timeout=limit)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    raise ValidatorError(f"HL7 validator timed out after {limit:.0f} s on {len(batch)} "
                                         f"files; log tail:\n{_tail(log)}") from None
            if rc not in (0, 1) or not out.is_file():
                raise ValidatorError(f"HL7 validator failed (exit {rc}); log tail:\n{_tail(log)}")
            try:
                parsed = parse_outcomes(json.loads(out.read_bytes()))
            except ValueError as e:
                raise ValidatorError(f"HL7 validator output {out} is not JSON: {e}") from None
            for key in keys:
                if key not in parsed:
                    raise ValidatorError(f"no OperationOutcome for {key} in the validator output")
                result[key_to_path[key]] = parsed[key]
    return result


def validate_file(path: Path | str, igs: Sequence[str] = (), extra_args: Sequence[str] = (), **kw) -> list[dict]:
    """Issues for one file (starts a JVM: prefer :func:`validate_files` or :class:`Hl7Session`)."""
    return validate_files([path], igs, extra_args, **kw)[Path(path)]


class Hl7Session:
    """One resident validator JVM (``-stdin`` mode): the engine loads once (~15-60 s), then every
    :meth:`validate_files` call costs only the validation itself.  Each call runs on a fresh copy
    of the loaded engine, so conformance resources in one call's files are not seen by the next.

    Use as a context manager, or call :meth:`close`.  Not thread-safe across calls (serialised).
    """

    def __init__(self, igs: Sequence[str] = (), extra_args: Sequence[str] = (), *,
                 load_timeout: float = LOAD_TIMEOUT, workdir: Path | None = None, fhir_version: str = "5.0.0"):
        self.igs = tuple(igs)
        self.fhir_version = fhir_version
        self.extra_args = tuple(extra_args)
        self._tmp = tempfile.TemporaryDirectory(prefix="hl7s-", dir=workdir)
        self.dir = Path(self._tmp.name)
        self.log_path = self.dir / "validator.log"
        self._lock = threading.Lock()
        self._n = 0
        cmd = [*base_command(self.igs, self.extra_args, fhir_version), "-stdin"]
        self._log = open(self.log_path, "wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     start_new_session=True, text=True, bufsize=1)
        line = self._read_line(load_timeout)
        if not line.startswith("@@READY"):
            self.close()
            raise ValidatorError(f"HL7 validator did not start ({line!r}); log tail:\n{_tail(self.log_path)}")
        self.load_seconds = time.monotonic() - started

    def _read_line(self, timeout: float) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            _kill(self.proc)
            raise ValidatorError(f"HL7 validator gave no answer within {timeout:.0f} s; log tail:\n"
                                 f"{_tail(self.log_path)}")
        return box[0].rstrip("\n") if box else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def validate_files(self, paths: Sequence[Path | str], *, timeout: float | None = None) -> dict[Path, list[dict]]:
        order, key_to_path = _unique_paths(paths)
        if not order:
            return {}
        with self._lock:
            if not self.alive():
                raise ValidatorError(f"HL7 validator has exited; log tail:\n{_tail(self.log_path)}")
            self._n += 1
            lst = self.dir / f"req-{self._n}.txt"
            out = self.dir / f"out-{self._n}.json"
            keys = [str(p.resolve()) for p in order]
            lst.write_text("\n".join(keys) + "\n", encoding="utf-8")
            self.proc.stdin.write(f"VALIDATE\t{lst}\t{out}\n")
            self.proc.stdin.flush()
            line = self._read_line(timeout if timeout is not None else 60 + PER_FILE_TIMEOUT * len(order))
            if not line.startswith("@@DONE"):
                raise ValidatorError(f"HL7 validator request failed: {line!r}; log tail:\n{_tail(self.log_path)}")
            parsed = parse_outcomes(json.loads(out.read_bytes()))
            out.unlink(missing_ok=True)
            lst.unlink(missing_ok=True)
        return {key_to_path[k]: parsed.get(k, []) for k in keys}

    def validate_file(self, path: Path | str, **kw) -> list[dict]:
        return self.validate_files([path], **kw)[Path(path)]

    def log_tail(self, n: int = 40) -> str:
        return _tail(self.log_path, n)

    def close(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill(self.proc)
        with contextlib.suppress(Exception):
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> "Hl7Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
