"""Faults during ``fhirpkg build``: killed at random points, two builds at once, a full disk.

The property: ``build/`` is always exactly the previous build or exactly the new one (every
file, byte for byte), never absent, never a mix; and the next build succeeds.

* kills inside ``build.write()``: a child process loads a finished build and writes it with a
  profile hook that counts every call, return and C call in build.py and fsutil.py frames (each
  open, write, fsync, mkdir, rename, the exchange, the clean-up) and SIGKILLs itself at event N;
  N is drawn from a fixed seed, plus the last events (the swap and the clean-up) every time;
* kills of the real CLI: ``python -m fhirpkg.cli build`` killed after a seeded random delay;
* two writers at once, in a loop, while the parent watches that build/ never disappears and its
  SHA256SUMS is always one of the two; and two real CLI builds of different content at once;
* a full disk: fsync fails (ENOSPC) at a random file.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fuzzing as F
from reliability_support import DEFINITIONS, ROOT, subprocess_env
from fhirpkg.publish import build as b

KILL_SEEDS = range(12)  # random kill points inside write(), plus the last LAST_EVENTS events every time
LAST_EVENTS = 8
CLI_KILL_SEEDS = range(3)


def tree(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_tree(result: b.BuildResult) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in result.files.items()}


def consistent(folder: Path) -> bool:
    """The folder is one whole build: SHA256SUMS lists exactly its other files, with their hashes."""
    sums = folder / "SHA256SUMS"
    listed = dict(reversed(line.split("  ", 1)) for line in sums.read_text().splitlines())
    actual = tree(folder)
    actual.pop("SHA256SUMS")
    return listed == actual


def sha256sums(files: dict[str, bytes]) -> bytes:
    """A SHA256SUMS file as ``sha256sum`` writes it (digest, two spaces, path; one line a file, sorted)."""
    return "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files)).encode()


@pytest.fixture(scope="module")
def builds(defs, tmp_path_factory):
    """(old, new): the real build of definitions/, and a different 'previous release' of it."""
    new = b.build(DEFINITIONS, defs=defs)
    old = b.BuildResult(files={k: v + b"\n(previous release)\n" for k, v in new.files.items() if k != "SHA256SUMS"})
    old.files.pop(sorted(old.files)[0])  # a file the new build adds
    old.files["retired.json"] = b"{}\n"  # and one it drops
    old.files["SHA256SUMS"] = sha256sums(old.files)
    folder = tmp_path_factory.mktemp("pickles")
    for name, result in (("old", old), ("new", new)):
        with open(folder / f"{name}.pickle", "wb") as f:
            pickle.dump(b.BuildResult(files=result.files), f)
    return old, new, folder


WRITER = r"""
import os, pickle, signal, sys
from fhirpkg import fsutil
from fhirpkg.publish import build as b
result = pickle.load(open(sys.argv[1], "rb"))
out, kill_at = sys.argv[2], int(sys.argv[3])
watched = {b.__file__, fsutil.__file__}
count = 0
def hook(frame, event, arg):
    global count
    if frame.f_code.co_filename in watched:
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(hook)
b.write(result, out)
sys.setprofile(None)
print(count, flush=True)
"""


def run_writer(pickle_path: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRITER, str(pickle_path), str(out), str(kill_at)],
                          capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=ROOT)


def test_build_killed_at_random_points_of_the_write_leaves_old_or_new(builds, tmp_path):
    old, new, pickles = builds
    old_tree, new_tree = expected_tree(old), expected_tree(new)
    out = tmp_path / "build"
    b.write(old, out)
    events = int(run_writer(pickles / "new.pickle", tmp_path / "dry-run", 0).stdout.split()[-1])
    assert events > 100, events
    points = sorted({random.Random(seed).randint(1, events) for seed in KILL_SEEDS}
                    | set(range(events - LAST_EVENTS + 1, events + 1)))
    outcomes = {"old": 0, "new": 0}
    for kill_at in points:
        proc = run_writer(pickles / "new.pickle", out, kill_at)
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.returncode, proc.stderr[-2000:])
        F.COUNTS["faults: build killed inside write()"] += 1
        now = tree(out)
        assert now in (old_tree, new_tree), f"killed at event {kill_at}/{events}: build/ is a mix or incomplete"
        outcomes["old" if now == old_tree else "new"] += 1
        if now == new_tree:
            b.write(old, out)  # back to the previous release for the next kill
    assert outcomes["old"] and outcomes["new"], outcomes  # both sides of the swap were hit
    # what the kills left behind does not stop the next build, and is never mistaken for build/
    b.write(new, out)
    assert tree(out) == new_tree and b.check(new, out) == []
    # the next build removes the staging folders the kills left (it holds the lock, so they are stale)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".build.tmp-")]
    assert not leftovers, leftovers


def test_real_cli_build_killed_at_random_times(builds, tmp_path):
    old, new, _ = builds
    old_tree, new_tree = expected_tree(old), expected_tree(new)
    out = tmp_path / "build"
    args = [sys.executable, "-m", "fhirpkg.cli", "build", "--project", str(DEFINITIONS), "--out", str(out)]
    b.write(old, out)
    t = time.perf_counter()
    full = subprocess.run(args, capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=ROOT)
    duration = time.perf_counter() - t
    assert full.returncode == 0, full.stderr[-2000:]
    assert tree(out) == new_tree  # the CLI builds the same bytes as the API
    for seed in CLI_KILL_SEEDS:
        b.write(old, out)
        delay = random.Random(seed).uniform(0.5, 1.0) * duration  # validation comes first: aim at the end
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(),
                                cwd=ROOT)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        F.COUNTS["faults: fhirpkg build killed (random time)"] += 1
        assert tree(out) in (old_tree, new_tree), f"seed {seed}: killed after {delay:.2f}s of {duration:.2f}s"


CONCURRENT_WRITER = r"""
import pickle, sys
from fhirpkg.publish import build as b
result = pickle.load(open(sys.argv[1], "rb"))
for _ in range(int(sys.argv[3])):
    b.write(result, sys.argv[2])
"""


def test_two_concurrent_builds_never_mix(builds, tmp_path):
    old, new, pickles = builds
    old_tree, new_tree = expected_tree(old), expected_tree(new)
    sums = {old.files["SHA256SUMS"], new.files["SHA256SUMS"]}
    out = tmp_path / "build"
    b.write(old, out)
    stop = threading.Event()
    seen = {"missing": 0, "foreign": 0, "reads": 0}

    def watch():
        while not stop.is_set():
            try:
                data = (out / "SHA256SUMS").read_bytes()
            except OSError:
                seen["missing"] += 1
            else:
                seen["reads"] += 1
                if data not in sums:
                    seen["foreign"] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rounds = 5
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(pickles / f"{name}.pickle"), str(out),
                               str(rounds)], env=subprocess_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for name in ("old", "new")]
    try:
        for p in procs:
            assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    finally:
        stop.set()
        watcher.join()
    F.COUNTS["faults: concurrent build writes"] += 2 * rounds
    assert seen["missing"] == 0 and seen["foreign"] == 0 and seen["reads"] > 0, seen
    assert tree(out) in (old_tree, new_tree)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".build.tmp-")]


def test_two_concurrent_cli_builds_of_different_content(tmp_path):
    """End to end: two `fhirpkg build` of different release dates into one folder at once."""
    out = tmp_path / "build"
    projects = []
    for date in ("20260101000000", "20270101000000"):
        project = tmp_path / f"definitions-{date}"
        shutil.copytree(DEFINITIONS, project)
        manifest = json.loads((project / "package.json").read_text())
        manifest["date"] = date
        (project / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        projects.append(project)
    procs = [subprocess.Popen([sys.executable, "-m", "fhirpkg.cli", "build", "--project", str(project),
                               "--out", str(out)], env=subprocess_env(), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for project in projects]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
    F.COUNTS["faults: concurrent fhirpkg build runs"] += 2
    assert consistent(out)


def test_full_disk_while_writing_leaves_the_previous_build(builds, tmp_path, monkeypatch):
    old, new, _ = builds
    old_tree = expected_tree(old)
    out = tmp_path / "build"
    b.write(old, out)
    real_fsync = os.fsync
    n_files = len(new.files)
    for seed in range(6):
        fail_at = random.Random(seed).randint(1, n_files)
        calls = [0]

        def fsync(fd):
            calls[0] += 1
            if calls[0] == fail_at:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fsync(fd)

        monkeypatch.setattr(b.os, "fsync", fsync)
        with pytest.raises(OSError) as e:
            b.write(new, out)
        assert e.value.errno == errno.ENOSPC
        F.COUNTS["faults: disk full during build write"] += 1
        assert tree(out) == old_tree
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".build.tmp-")]
    monkeypatch.setattr(b.os, "fsync", real_fsync)
    b.write(new, out)
    assert b.check(new, out) == []
