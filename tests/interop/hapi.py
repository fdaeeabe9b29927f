"""Harness around our HAPI FHIR JPA test server (``hapi-server/``, a Spring Boot fat jar): R5, or R4 with
``--fhirpkg.hapi.fhir-version=R4`` (PlanDefinition/$apply with ``--fhirpkg.hapi.cr=true``).

Public API::

    jar_path(build=True) -> Path
    free_port() -> int
    HapiServer(port=None, java_opts=None, extra_args=())   .start(timeout) / .stop() / .base_url / .log_tail()
    request(method, url, body=None, content_type=None, timeout=120) -> Response(status, headers, body, json)
    install_package(base_url, tgz_bytes, types=None, mode="STORE_AND_INSTALL", validate_status=None) -> dict

The server listens on 127.0.0.1 only; its FHIR base is ``http://127.0.0.1:<port>/fhir`` and
``POST http://127.0.0.1:<port>/packages/install`` installs an NPM ``package.tgz`` (request body)
through HAPI's ``IPackageInstallerSvc``.  Only stdlib HTTP (urllib) is used.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fhirpkg.logic import jvm
from . import hl7

HERE = Path(__file__).resolve().parent
PROJECT_DIR = HERE / "hapi-server"
TARGET = PROJECT_DIR / "target"
JAR = TARGET / "hapi-server.jar"

HAPI_VERSION = "8.8.0"  # see hapi-server/pom.xml

#: JVM options; override with FHIRPKG_HAPI_JAVA_OPTS (space-separated).
DEFAULT_JAVA_OPTS = ("-Xmx2g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
#: Seconds to wait for /fhir/metadata; override with FHIRPKG_HAPI_START_TIMEOUT.
DEFAULT_START_TIMEOUT = 900.0


def jar_path(build: bool = True) -> Path:
    """The server's fat jar, built with ``mvn -q -B package`` if missing or older than its sources.

    ``FHIRPKG_HAPI_JAR`` names a prebuilt jar instead.
    """
    return jvm.built_jar(PROJECT_DIR, JAR, "FHIRPKG_HAPI_JAR", build)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(method: str, url: str, body=None, content_type: str | None = None,
            headers: dict | None = None, timeout: float = 120) -> Response:
    """One HTTP request; ``body`` may be bytes or a JSON-able object (sent as application/fhir+json).
    Never raises for HTTP error statuses: look at ``Response.status``."""
    data = None
    hdrs = {"Accept": "application/fhir+json, application/json;q=0.9"}
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            content_type = content_type or "application/fhir+json"
        hdrs["Content-Type"] = content_type or "application/octet-stream"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers or {}), e.read() or b"")


def install_package(base_url: str, tgz: bytes, types: Sequence[str] | None = None,
                    mode: str = "STORE_AND_INSTALL", validate_status: bool | None = None,
                    timeout: float = 600) -> dict:
    """Install an NPM package through HAPI's IPackageInstallerSvc (our ``/packages/install``).

    ``base_url`` is the FHIR base (``.../fhir``) or the server root.  ``types``: resource types to
    install (default: the server's list, conformance types plus PlanDefinition, ActivityDefinition,
    MedicationKnowledge, ClinicalUseDefinition, Citation, ResearchStudy, Library, ...).
    ``validate_status=False`` also installs resources whose status is not ``active`` (HAPI's default
    skips them with only a log warning).  Returns the JSON answer (``name, version, messages,
    resourcesInstalled, validateResourceStatus``); raises RuntimeError on a non-200 answer.
    """
    root = base_url[:-5] if base_url.rstrip("/").endswith("/fhir") else base_url.rstrip("/")
    root = root.rstrip("/")
    query = {"mode": mode}
    if types:
        query["types"] = ",".join(types)
    if validate_status is not None:
        query["validateStatus"] = "true" if validate_status else "false"
    url = f"{root}/packages/install?{urllib.parse.urlencode(query)}"
    resp = request("POST", url, tgz, content_type="application/gzip", timeout=timeout)
    if resp.status != 200:
        raise RuntimeError(f"package install failed: HTTP {resp.status}: {resp.text[:2000]}")
    return resp.json


class HapiServer:
    """A HAPI JPA server process on a loopback port (in-memory H2: every start is empty)."""

    def __init__(self, port: int | None = None, java_opts: Sequence[str] | None = None,
                 extra_args: Sequence[str] = (), log_path: Path | None = None):
        self.port = port or free_port()
        env_opts = os.environ.get("FHIRPKG_HAPI_JAVA_OPTS")
        self.java_opts = list(java_opts) if java_opts is not None else (
            env_opts.split() if env_opts else list(DEFAULT_JAVA_OPTS))
        self.extra_args = list(extra_args)
        self.log_path = log_path or TARGET / f"hapi-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/fhir"

    def start(self, timeout: float | None = None) -> "HapiServer":
        """Start the jar and poll ``/fhir/metadata`` until it answers 200 (or fail with the log tail)."""
        if timeout is None:
            timeout = float(os.environ.get("FHIRPKG_HAPI_START_TIMEOUT", DEFAULT_START_TIMEOUT))
        java = hl7.java_exe()
        if not java:
            raise hl7.InteropUnavailable("; ".join(hl7.missing_tools()))
        jar = jar_path()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [java, *self.java_opts, "-jar", str(jar), f"--server.port={self.port}",
               "--server.address=127.0.0.1", *self.extra_args]
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.log_path.parent, start_new_session=True)
        deadline = started + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"HAPI server exited with {self.proc.returncode} during start-up; "
                                   f"log tail:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if request("GET", f"{self.base_url}/metadata", timeout=10).status == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"HAPI server not healthy after {timeout:.0f} s; log tail:\n{self.log_tail()}")
            time.sleep(1.0)
        self.start_seconds = time.monotonic() - started
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def rss_mb(self) -> float | None:
        """Resident set size of the server JVM now (Linux /proc), in MiB."""
        if not self.alive():
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "HapiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
