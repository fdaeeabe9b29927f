"""Fixtures for the Java interop suite (HL7 validator, HAPI FHIR JPA server).

* ``hl7_validator`` (session): an :class:`Hl7Harness` — ``validate_files(paths, igs=(), extra_args=())``
  returning ``{path: [issue dict]}``, backed by resident validator JVMs (one per igs/extra_args).
* ``hapi_server`` (session): the FHIR base URL (``http://127.0.0.1:<port>/fhir``) of a fresh
  HAPI JPA R5 server; ``hapi_server_process`` gives the :class:`hapi.HapiServer` itself.

When Java 17+ or Maven is missing, or a jar cannot be built, the tests are skipped with the reason,
except when ``FHIRPKG_REQUIRE_INTEROP=1`` (CI): then they fail with it.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Sequence

import pytest

from . import hapi, hl7


def require_interop() -> bool:
    return os.environ.get("FHIRPKG_REQUIRE_INTEROP", "") not in ("", "0", "false", "no")


def unavailable(reason: str):
    """Skip (default) or fail (FHIRPKG_REQUIRE_INTEROP=1) because the interop tools are missing."""
    if require_interop():
        pytest.fail(f"interop suite required (FHIRPKG_REQUIRE_INTEROP=1) but cannot run: {reason}",
                    pytrace=False)
    pytest.skip(f"interop suite cannot run here: {reason}")


def check_tools() -> None:
    if reasons := hl7.missing_tools():
        unavailable("; ".join(reasons))


def _report(config, text: str) -> None:
    """Print past pytest's output capture (fixture set-up/teardown output is otherwise hidden)."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    tr = config.pluginmanager.get_plugin("terminalreporter")
    ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with ctx:
        if tr is not None:
            tr.write_line(text)
        else:
            print(text, file=sys.stderr)


class Hl7Harness:
    """What the ``hl7_validator`` fixture gives: the harness functions plus resident sessions."""

    def __init__(self) -> None:
        self.jar = hl7.jar_path()
        self.home = hl7.prepare_home()
        self._sessions: dict[tuple, hl7.Hl7Session] = {}

    def session(self, igs: Sequence[str] = (), extra_args: Sequence[str] = ()) -> hl7.Hl7Session:
        key = (tuple(igs), tuple(extra_args))
        sess = self._sessions.get(key)
        if sess is None or not sess.alive():
            sess = self._sessions[key] = hl7.Hl7Session(igs, extra_args)
        return sess

    def validate_files(self, paths, igs: Sequence[str] = (), extra_args: Sequence[str] = (),
                       **kw) -> dict[Path, list[dict]]:
        return self.session(igs, extra_args).validate_files(paths, **kw)

    def validate_file(self, path, igs: Sequence[str] = (), extra_args: Sequence[str] = (), **kw) -> list[dict]:
        return self.validate_files([path], igs, extra_args, **kw)[Path(path)]

    # one-shot JVM per call (what CI batch runs use): hl7.validate_files
    validate_files_oneshot = staticmethod(hl7.validate_files)
    errors = staticmethod(hl7.errors)

    def close(self) -> None:
        for sess in self._sessions.values():
            sess.close()
        self._sessions.clear()


@pytest.fixture(scope="session")
def hl7_validator(request):
    check_tools()
    try:
        harness = Hl7Harness()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    failed_before = request.session.testsfailed
    yield harness
    if request.session.testsfailed > failed_before:
        for (igs, extra), sess in harness._sessions.items():
            _report(request.config, f"\n--- HL7 validator log tail (igs={list(igs)}, args={list(extra)}) ---\n"
                                    f"{sess.log_tail()}")
    harness.close()


@pytest.fixture(scope="session")
def hapi_server_process(request):
    check_tools()
    try:
        hapi.jar_path()
    except hl7.InteropUnavailable as e:
        unavailable(str(e))
    server = hapi.HapiServer()
    try:
        server.start()
    except RuntimeError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    _report(request.config, f"\nHAPI FHIR {hapi.HAPI_VERSION} up at {server.base_url} "
                            f"after {server.start_seconds:.1f} s (RSS {server.rss_mb() or 0:.0f} MiB)")
    failed_before = request.session.testsfailed
    yield server
    if request.session.testsfailed > failed_before or not server.alive():
        _report(request.config, f"\n--- HAPI server log tail ({server.log_path}) ---\n{server.log_tail()}")
    server.stop()


@pytest.fixture(scope="session")
def hapi_server(hapi_server_process) -> str:
    """The FHIR base URL of the session's HAPI server."""
    return hapi_server_process.base_url
