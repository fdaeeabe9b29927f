"""Helpers for the reliability suite (a module of its own: tests/ and tests/reliability/ both have a
conftest.py, so ``import conftest`` would be ambiguous): the CLI in-process and as a bounded subprocess."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFINITIONS = ROOT / "definitions"
# FHIRPKG_FUZZ_SCALE=10 multiplies the example counts for a longer local campaign.
SCALE = max(1, int(os.environ.get("FHIRPKG_FUZZ_SCALE", "1")))


def examples(n: int) -> int:
    return n * SCALE


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
