"""Fixtures for the reliability suite (issue #7) and the hypothesis profile; the helpers are in
reliability_support.py.

Every run here is bounded and reproducible: hypothesis runs derandomized (a fixed seed
derived from each test) with fixed example counts, and every random choice in the fault
tests comes from ``random.Random(seed)`` with the seed in the test id.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "reliability", derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _restore_environment():
    """`fhirpkg --offline` sets FHIRPKG_OFFLINE in the process it runs in (in-process CLI runs here):
    put the environment back after every test, whatever it did."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def defs():
    from fhirpkg import api
    return api.load_definitions(log=None)


@pytest.fixture
def shared_definitions(monkeypatch, defs):
    """In-process CLI runs reuse the session's definitions (a derived copy each time, so ``--ig``
    additions never leak into the next run) instead of unpickling them for every case."""
    from fhirpkg import api
    from fhirpkg.fhir import packages as pk
    real = api.load_definitions

    def key(refs):
        return tuple((r.id, r.version) if isinstance(r, pk.PackageRef) else tuple(r) for r in refs)

    def load(package_refs=pk.R5_DEFAULT_PACKAGES, log=None):
        package_refs = list(package_refs)
        if key(package_refs) == key(pk.R5_DEFAULT_PACKAGES):
            return defs.derive()
        return real(package_refs, log=log)

    monkeypatch.setattr(api, "load_definitions", load)
    return defs


def pytest_terminal_summary(terminalreporter):
    """How many inputs and faults this run tried, per kind (quoted in docs/reliability.md)."""
    try:
        from fuzzing import COUNTS
    except ImportError:
        return
    if COUNTS:
        terminalreporter.write_sep("-", "reliability: executions per kind")
        for kind, n in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{n:8d}  {kind}")
        terminalreporter.write_line(f"{sum(COUNTS.values()):8d}  in all")
