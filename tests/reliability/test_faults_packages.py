"""Faults during ``fhirpkg packages install``: killed midway, run twice at once.

The property: after any interruption the cache is usable: ``fhirpkg packages list`` works, the
package is either absent or complete (every file, byte for byte, index included) -- and when it
was installed before, it is still there, old or new, never gone -- and installing again succeeds
and clears what the killed install left behind.

The install runs the real CLI in a child process with a profile hook that counts every event in
archive.py, packages.py and fsutil.py frames (each member unpacked, each write, the index, the rename or
exchange, the clean-up) and SIGKILLs itself at event N (seeded, plus the final events).
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import fuzzing as F
from reliability_support import ROOT, cli, subprocess_env
from fhirpkg.fhir import packages as pk

REF = pk.PackageRef("example.big.pkg", "1.0.0")
KILL_SEEDS = range(5)
LAST_EVENTS = 4


def make_archive(path: Path, files: int, variant: str) -> Path:
    rnd = random.Random(variant)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("package/package.json", json.dumps({"name": REF.id, "version": REF.version, "variant": variant}).encode())
        for n in range(files):
            add(f"package/Basic-b{n}.json", json.dumps({"resourceType": "Basic", "id": f"b{n}",
                                                        "code": {"text": rnd.randbytes(3000).hex()}}).encode())
    return path


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Two releases of a package (500 files, 3 MB unpacked) and their installed trees."""
    folder = tmp_path_factory.mktemp("archives")
    out = {}
    for variant, files in (("v1", 500), ("v2", 501)):
        archive = make_archive(folder / f"{variant}.tgz", files, variant)
        cache = folder / f"cache-{variant}"
        pk.install(REF, from_file=archive, cache=cache)
        out[variant] = (archive, tree(cache / str(REF)))
    return out


INSTALLER = r"""
import os, signal, sys
from fhirpkg import cli, fsutil
from fhirpkg.fhir import archive, packages
watched = {archive.__file__, packages.__file__, fsutil.__file__}
renames = {os.rename, os.replace}
kill_at, mode = int(os.environ["KILL_AT"]), os.environ["KILL_MODE"]
events = moves = 0
def hook(frame, event, arg):
    global events, moves
    if frame.f_code.co_filename in watched:
        events += 1
        if mode == "event" and events == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    if (event == "c_return" and arg in renames) or (event == "return" and frame.f_code is fsutil._renameat2_exchange.__code__):
        moves += 1
        if mode == "rename" and moves == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(hook)
try:
    cli.main(sys.argv[1:])
finally:
    sys.setprofile(None)
    print("EVENTS", events, "RENAMES", moves, file=sys.stderr, flush=True)
"""


def install_child(archive: Path, cache: Path, kill_at: int, mode: str = "event") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", INSTALLER, "packages", "install", f"{REF.id}@{REF.version}",
                           "--from", str(archive)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=subprocess_env(FHIR_PACKAGE_CACHE=cache, KILL_AT=kill_at, KILL_MODE=mode))


def kill_points(archive: Path, cache: Path) -> list[tuple[str, int]]:
    """(mode, n): at the n-th event in archive.py/packages.py/fsutil.py (seeded, plus the last ones), and right
    after each rename or exchange of a folder or file, wherever it happens."""
    dry = install_child(archive, cache, 0)
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = dry.stderr.split("EVENTS")[-1].split()
    events, renames = int(counts[0]), int(counts[2])
    assert events > 500 and renames >= 1, counts
    points = {random.Random(s).randint(1, events) for s in KILL_SEEDS} | set(range(events - LAST_EVENTS, events))
    return [("event", n) for n in sorted(points)] + [("rename", n) for n in range(1, renames + 1)]


def cache_is_usable(cache: Path, monkeypatch) -> list[str]:
    monkeypatch.setenv(pk.CACHE_ENV, str(cache))
    run = cli(["packages", "list"])
    assert run.exit_code == 0, run.output
    return run.stdout.split()


def test_fresh_install_killed_midway_leaves_nothing_or_all(archives, tmp_path, monkeypatch):
    archive, complete = archives["v1"]
    cache = tmp_path / "cache"
    points = kill_points(archive, tmp_path / "dry-cache")
    outcomes = {"absent": 0, "complete": 0}
    for mode, kill_at in points:
        proc = install_child(archive, cache, kill_at, mode)
        assert proc.returncode == -signal.SIGKILL, (mode, kill_at, proc.stderr[-2000:])
        F.COUNTS["faults: package install killed"] += 1
        listed = cache_is_usable(cache, monkeypatch)
        now = tree(cache / str(REF))
        if now:
            assert now == complete, f"killed at {mode} {kill_at}: a partial package in the cache"
            assert str(REF) in listed
            outcomes["complete"] += 1
        else:
            assert str(REF) not in listed
            outcomes["absent"] += 1
        # installing again works and clears what the killed install left behind
        assert pk.install(REF, from_file=archive, cache=cache).index
        assert tree(cache / str(REF)) == complete
        assert not [p for p in cache.iterdir() if p.name.startswith(pk.TMP_PREFIX)], (mode, kill_at)
        pk.shutil.rmtree(cache / str(REF))
    assert outcomes["absent"] and outcomes["complete"], outcomes


def test_reinstall_killed_midway_never_loses_the_installed_package(archives, tmp_path, monkeypatch):
    (v1, old), (v2, new) = archives["v1"], archives["v2"]
    cache = tmp_path / "cache"
    pk.install(REF, from_file=v1, cache=cache)
    dry_cache = tmp_path / "dry-cache"
    pk.install(REF, from_file=v1, cache=dry_cache)
    points = kill_points(v2, dry_cache)
    seen = set()
    for mode, kill_at in points:
        proc = install_child(v2, cache, kill_at, mode)
        assert proc.returncode == -signal.SIGKILL, (mode, kill_at, proc.stderr[-2000:])
        F.COUNTS["faults: package re-install killed"] += 1
        now = tree(cache / str(REF))
        assert now in (old, new), f"killed at {mode} {kill_at}: the installed package is gone or mixed"
        assert str(REF) in cache_is_usable(cache, monkeypatch)
        seen.add("new" if now == new else "old")
        if now == new:
            pk.install(REF, from_file=v1, cache=cache)
    assert seen == {"old", "new"}, seen


def test_concurrent_installs_of_one_package(archives, tmp_path):
    archive, complete = archives["v1"]
    cache = tmp_path / "cache"
    for _ in range(2):
        procs = [subprocess.Popen([sys.executable, "-m", "fhirpkg.cli", "packages", "install",
                                   f"{REF.id}@{REF.version}", "--from", str(archive)], cwd=ROOT,
                                  env=subprocess_env(FHIR_PACKAGE_CACHE=cache), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
        F.COUNTS["faults: concurrent package installs"] += len(procs)
        assert tree(cache / str(REF)) == complete
        assert not [p for p in cache.iterdir() if p.name.startswith((pk.TMP_PREFIX, "."))]
