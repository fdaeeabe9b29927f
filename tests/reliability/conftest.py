"""Shared helpers for the reliability suite (issue #7): the CLI in-process and as a subprocess,
bounded subprocess runs (time and memory), and the hypothesis profile.

Every run here is bounded and reproducible: hypothesis runs derandomized (a fixed seed
derived from each test) with fixed example counts, and every random choice in the fault
tests comes from ``random.Random(seed)`` with the seed in the test id.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFINITIONS = ROOT / "definitions"

# Fixed seeds and example counts: the same inputs on every run, on every machine.
# FHIRPKG_FUZZ_SCALE=10 multiplies the example counts for a longer local campaign.
SCALE = max(1, int(os.environ.get("FHIRPKG_FUZZ_SCALE", "1")))
settings.register_profile(
    "reliability", derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture],
)


def examples(n: int) -> int:
    return n * SCALE


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
    from fhirpkg import api, packages as pk
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


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(args, input: bytes | str | None = None, env: dict | None = None) -> Run:
    """The real CLI in-process (click's CliRunner); exceptions are results, never raised."""
    from click.testing import CliRunner
    from fhirpkg.cli import main
    runner = CliRunner()
    t = time.perf_counter()
    r = runner.invoke(main, [str(a) for a in args], input=input, env=env, catch_exceptions=True)
    seconds = time.perf_counter() - t
    out, err = r.stdout, r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback
        err += "".join(traceback.format_exception(r.exception))
    return Run(r.exit_code, out, err, seconds)


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("FHIRPKG_OFFLINE", None)
    env.pop("FHIRPKG_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli_subprocess(args, *, input: bytes | None = None, env: dict | None = None, timeout: float = 120,
                   max_memory_mb: int | None = None, cwd: Path | None = None) -> Run:
    """``python -m fhirpkg.cli ARGS`` with a wall-clock timeout and, optionally, an address-space
    limit (RLIMIT_AS); returns the child's own peak RSS (from wait4, not the whole session's)."""
    import tempfile
    limit = max_memory_mb * 2**20 if max_memory_mb else None

    def preexec():
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        if input:
            fin.write(input)
            fin.seek(0)
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fhirpkg.cli", *map(str, args)], stdin=fin, stdout=fout,
                                stderr=ferr, env=env or subprocess_env(), cwd=cwd or ROOT, preexec_fn=preexec)
        code, rss = popen_rusage(proc, timeout)
        seconds = time.perf_counter() - t
        fout.seek(0)
        ferr.seek(0)
        return Run(code, fout.read().decode("utf-8", "replace"), ferr.read().decode("utf-8", "replace"), seconds, rss)


def popen_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for a child and return (exit status, its own peak RSS in MB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{proc.args} did not finish within {timeout} s")
        time.sleep(0.02)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


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
