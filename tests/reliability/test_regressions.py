"""Regression tests for the bugs this suite found and fixed in jsonsource.py, inputs.py and packages.py.

(The catalogue and crashers/ cover the same bugs end to end through the CLI; these pin down
the mechanism, cheaply.)
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from reliability_support import ROOT, subprocess_env
from fhirpkg.fhir import inputs, packages as pk
from fhirpkg.errors import InputError
from fhirpkg.issues import Severity
from fhirpkg.fhir.jsonsource import LineIndex, PositionMap, parse, read_documents


# --- jsonsource ----------------------------------------------------------------------------------------------

def test_position_scan_of_a_huge_string_is_linear():
    """Was: a backtracking regex kept state per character: 34 s and 12 GB for one 100 MB string."""
    text = '{"resourceType": "Basic", "a": "' + "x" * (20 * 2**20) + '", "b": NaN}'
    tracemalloc.start()
    t = time.perf_counter()
    try:
        pm = PositionMap.scan(text)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pm.constants and pm.constants[0][1] == "NaN"
    assert seconds < 5 and peak < 2**20, (seconds, peak)


def test_line_index_memory_does_not_grow_with_the_line_count():
    """Was: a list with one int per line (GBs for 100 M lines)."""
    text = "\n" * (10 * 2**20)
    tracemalloc.start()
    try:
        idx = LineIndex(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, peak
    assert idx.line_col(len(text)) == (len(text) + 1, 1)
    assert idx.line_col(5) == (6, 1)


def test_integer_with_thousands_of_digits_is_a_value_not_a_crash():
    """Was: ValueError 'Exceeds the limit (4300 digits)' from json.loads: exit 3."""
    doc = parse('{"v": ' + "9" * 5000 + ', "w": 12}')
    assert doc.ok and str(doc.value["v"]) == "9" * 5000 and doc.value["w"] == 12


def test_number_with_an_out_of_range_exponent_is_reported():
    """Was: decimal.InvalidOperation from the number hook: exit 3 (found by the byte fuzzer)."""
    doc = parse('{"resourceType": "Observation",\n "valueInteger": 1e9999999007199254740993}', "o.json")
    (issue,) = [i for i in doc.issues if i.rule == "json-number"]
    assert issue.severity is Severity.ERROR and "out of range" in issue.message
    assert issue.expression == "Observation.valueInteger" and doc.locate(issue.location) == (2, 2)


def test_top_level_null_is_not_silently_valid():
    """Was: no issue at all, '0 errors', exit 0."""
    (doc,) = read_documents(b"null", "n.json")
    assert not doc.ok and [(i.rule, i.severity) for i in doc.issues] == [("json-not-resource", Severity.FATAL)]
    (_, doc2) = read_documents(b'{"resourceType": "Basic"}\nnull\n', "n.ndjson", ndjson=True)
    assert doc2.issues[0].rule == "json-not-resource" and doc2.issues[0].line == 2


def test_lone_surrogate_escapes_are_reported_and_repaired():
    """Was: lone surrogates in values and keys, which crash every report that prints them (exit 3)."""
    doc = parse('{"resourceType": "Patient", "\\ud800": 1, "name": [{"text": "a\\udc00b \\ud83d\\ude00"}]}', "s.json")
    hits = sorted(i.expression for i in doc.issues if i.rule == "json-encoding")
    assert hits == ["Patient.name[0].text", "Patient.\ufffd"]
    assert doc.value["name"][0]["text"] == "a\ufffdb \U0001f600"
    json.dumps(doc.value, ensure_ascii=False).encode("utf-8")  # printable now


def test_reading_issues_name_their_file():
    """Was: issues from the reader had no file, so a broken package.json was reported as '<input>'."""
    for data in (b"", b"{", b'\xff', b"null", b'{"a": NaN}'):
        for doc in read_documents(data, "dir/package.json"):
            assert doc.issues and all(i.file == "dir/package.json" for i in doc.issues), data


# --- inputs --------------------------------------------------------------------------------------------------

def test_undecodable_file_names_are_shown_escaped(tmp_path):
    """Was: a file name with bytes that are not UTF-8 crashed every report written with -o (exit 3)."""
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.json")
    with open(raw, "w") as f:
        f.write('{"resourceType": "Basic"}')
    (src,) = list(inputs.find_sources([str(tmp_path)]))
    assert src.name.endswith("\\xff\\xfe.json") and src.name.encode("utf-8")
    (doc,) = list(inputs.read_source(src))  # still opened through its real path
    assert doc.ok and doc.value == {"resourceType": "Basic"}


def test_empty_folder_says_nothing_was_validated(tmp_path):
    """Was: '0 files checked: 0 errors' and exit 0 for a folder with nothing to validate; now an
    InputError naming the folder (the CLI exits 2)."""
    with pytest.raises(InputError, match=r": nothing to validate \(no \.json, \.ndjson or \.tgz files"):
        list(inputs.find_sources([str(tmp_path)]))


def test_oversized_file_is_refused_without_reading_it(tmp_path):
    """Was: 512 MB read into memory before the size was checked."""
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(inputs.MAX_FILE_BYTES + 1)
    tracemalloc.start()
    try:
        (doc,) = list(inputs.read_source(inputs.Source(str(big), big)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "larger than 512 MB" in doc.issues[0].message and peak < 2**20


SWAP_TO_FIFO = r"""
import os, sys
from fhirpkg.fhir import inputs
path = sys.argv[1]
(src,) = list(inputs.find_sources([path]))   # a regular file when found ...
os.unlink(path)
os.mkfifo(path)                               # ... a FIFO with no writer when read
for doc in inputs.read_source(src):
    print(doc.issues[0].message)
"""


def test_file_replaced_by_a_fifo_is_not_waited_on(tmp_path):
    """Was: open() on a FIFO blocks until a writer comes (forever, in a pipeline)."""
    path = tmp_path / "x.json"
    path.write_text("{}")
    proc = subprocess.run([sys.executable, "-c", SWAP_TO_FIFO, str(path)], capture_output=True, text=True,
                          timeout=30, env=subprocess_env(), cwd=ROOT)
    assert "Not a regular file" in proc.stdout, proc.stderr


def test_archive_errors_are_one_line(tmp_path):
    """Was: tarfile's five-line 'file could not be opened successfully' message in a one-line report."""
    bad = tmp_path / "x.tgz"
    bad.write_bytes(b"not an archive")
    (doc,) = list(inputs.read_source(inputs.Source(str(bad), bad)))
    assert doc.issues[0].message == "Not a readable .tgz package (not a gzip, bzip2, xz or tar archive)"
    with pytest.raises(pk.PackageError) as e:
        pk.safe_extract(bad, tmp_path)
    assert "\n" not in str(e.value)


# --- packages ------------------------------------------------------------------------------------------------

def make_pkg(path: Path, version="1.0.0", extra: dict | None = None, name="example.reliability.pkg") -> Path:
    files = {"package/package.json": json.dumps({"name": name, "version": version}).encode(),
             "package/Basic-b1.json": json.dumps({"resourceType": "Basic", "id": "b1"}).encode()}
    files.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


REF = pk.PackageRef("example.reliability.pkg", "1.0.0")


def test_reinstall_never_leaves_the_package_absent(tmp_path, monkeypatch):
    """Was: the installed copy was renamed away, then the new one renamed in: absent in between
    (a concurrent reader would reinstall it from npm; a kill there lost it)."""
    cache = tmp_path / "cache"
    pk.install(REF, from_file=make_pkg(tmp_path / "v1.tgz"), cache=cache)
    manifest = cache / str(REF) / "package" / "package.json"
    seen = []
    real_rename, real_replace = os.rename, os.replace

    def watch(fn):
        def wrapped(a, b, *args, **kw):
            seen.append(manifest.is_file())
            out = fn(a, b, *args, **kw)
            seen.append(manifest.is_file())
            return out
        return wrapped

    monkeypatch.setattr(os, "rename", watch(real_rename))
    monkeypatch.setattr(os, "replace", watch(real_replace))
    v2 = make_pkg(tmp_path / "v2.tgz", extra={"package/Basic-b2.json": b'{"resourceType": "Basic", "id": "b2"}'})
    pkg = pk.install(REF, from_file=v2, cache=cache)
    assert seen and all(seen), seen
    assert (pkg.folder / "Basic-b2.json").is_file()


def test_concurrent_install_of_the_same_package_is_not_a_crash(tmp_path, monkeypatch):
    """Was: another process installing the same package between the check and the rename made
    rename() fail with 'Directory not empty' (exit 3)."""
    cache = tmp_path / "cache"
    archive = make_pkg(tmp_path / "p.tgz")
    real_extract = pk.safe_extract

    def racing_extract(a, dest):
        real_extract(a, dest)
        if not (cache / str(REF)).exists():  # the other process finishes first
            other = tmp_path / "other"
            real_extract(archive, other)
            os.rename(other, cache / str(REF))

    monkeypatch.setattr(pk, "safe_extract", racing_extract)
    monkeypatch.setattr(pk, "_npm_pack", lambda ref, dest: archive)  # "from npm", without the network
    assert pk.install(REF, cache=cache).folder == cache / str(REF) / "package"
    assert pk.install(REF, from_file=archive, cache=cache).index  # and a forced reinstall swaps in
    assert pk.list_installed(cache) == [REF]


HOLD_LOCK = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_abandoned_install_folders_are_cleaned_but_live_ones_kept(tmp_path):
    """Was: every killed install left its temporary folder (a whole unpacked package) in the cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    dead, live, old, young = (cache / f"{pk.TMP_PREFIX}{n}" for n in ("dead", "live", "old", "young"))
    for d in (dead, live, old, young):
        (d / "staging" / "package").mkdir(parents=True)
    (dead / ".lock").touch()
    (live / ".lock").touch()
    os.utime(old, (time.time() - 2 * pk.ABANDONED_AFTER,) * 2)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(live / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pk.install(REF, from_file=make_pkg(tmp_path / "p.tgz"), cache=cache)
        assert not dead.exists() and not old.exists()
        assert live.exists() and young.exists()
    finally:
        holder.kill()
        holder.wait()
    assert not [p for p in cache.iterdir() if p.name.startswith(pk.TMP_PREFIX) and p not in (live, young)]


def test_list_installed_ignores_what_is_not_a_package(tmp_path):
    for name in ("example.good.pkg#1.0.0", "#", "bad name#1.0.0", ".hidden#1.0.0", "x.y#../..", "x.y#"):
        folder = tmp_path / name / "package"
        folder.mkdir(parents=True)
        (folder / "package.json").write_text("{}")
    assert pk.list_installed(tmp_path) == [pk.PackageRef("example.good.pkg", "1.0.0")]
