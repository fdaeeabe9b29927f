"""Java and Maven for the build-time and test-time Java front ends (CQL translator, HL7 validator,
reference engines): find the tools, and build a front end's jar once, under a lock, only when its
sources are newer than the jar.  No JVM is needed at run time by fhirpkg itself."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

BUILD_TIMEOUT = 1800  # a first build downloads the jars from Maven Central


class JavaUnavailable(RuntimeError):
    """Java or Maven is missing, or a front end's jar cannot be built; the message says why."""


def java_exe() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def mvn_exe() -> str | None:
    return shutil.which("mvn")


def java_version() -> int | None:
    """The major version of ``java_exe()``, or None."""
    java = java_exe()
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit() and ("." in token or token.isdigit()) and int(head) >= 8:
            return int(head)
    return None


def missing_tools() -> list[str]:
    """Human-readable reasons why the Java front ends cannot run here (empty when they can)."""
    reasons = []
    if not java_exe():
        reasons.append("no 'java' on PATH (need Java 17+; set JAVA_HOME or install openjdk-17-jdk-headless)")
    elif (v := java_version()) is not None and v < 17:
        reasons.append(f"'java' is version {v}; need 17+")
    if not mvn_exe():
        reasons.append("no 'mvn' on PATH (install maven)")
    return reasons


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock (fcntl.flock), so parallel processes build only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def newest_source_mtime(project: Path) -> float:
    newest = (project / "pom.xml").stat().st_mtime
    for p in (project / "src").rglob("*"):
        if p.is_file():
            newest = max(newest, p.stat().st_mtime)
    return newest


def maven_build(project: Path, artifact: Path, timeout: float = BUILD_TIMEOUT,
                extra: Sequence[str] = ()) -> Path:
    """``mvn -q -B package`` in ``project`` unless ``artifact`` is newer than the sources.

    The lock sits beside the artifact, so a build into another folder (``extra`` setting the
    build directory) works from a read-only source tree.  ``FHIRPKG_MAVEN_OFFLINE=1`` adds ``-o``.
    """
    with file_lock(artifact.parent / ".build.lock"):
        if artifact.is_file() and artifact.stat().st_mtime >= newest_source_mtime(project):
            return artifact
        mvn = mvn_exe()
        if not mvn or not java_exe():
            raise JavaUnavailable("; ".join(missing_tools()) or "java/mvn missing")
        cmd = [mvn, "-q", "-B", "-DskipTests", *extra, "package"]
        if os.environ.get("FHIRPKG_MAVEN_OFFLINE", "") not in ("", "0", "false"):
            cmd.insert(1, "-o")
        try:
            proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise JavaUnavailable(f"{' '.join(cmd)} in {project} timed out after {timeout} s") from None
        if proc.returncode != 0 or not artifact.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
            raise JavaUnavailable(f"{' '.join(cmd)} in {project} failed (exit {proc.returncode}):\n{tail}")
        os.utime(artifact)  # Maven may leave an up-to-date jar untouched: mark it as built now
        return artifact


def built_jar(project: Path, jar: Path, env_var: str | None = None, build: bool = True) -> Path:
    """``jar`` from the Maven ``project`` (built by :func:`maven_build` when missing or stale), or the
    prebuilt jar that the environment variable ``env_var`` names (its ``lib/`` folder beside it)."""
    if env_var and (env := os.environ.get(env_var)):
        prebuilt = Path(env)
        if not prebuilt.is_file():
            raise JavaUnavailable(f"{env_var}={env}: no such file")
        return prebuilt
    if not build:
        if not jar.is_file():
            raise JavaUnavailable(f"{jar} is not built (cd {project} && mvn -q -B package)")
        return jar
    return maven_build(project, jar)
