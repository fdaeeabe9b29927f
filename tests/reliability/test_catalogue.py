"""The hostile-input catalogue: every case in ``catalogue/NNN-name/`` through the real CLI.

Each folder holds the input files and an ``expect.json``:

``args``           the command line (``{case}`` is the case's working copy)
``exit_code``      the expected exit code (0 valid, 1 problems found, 2 usage error; 3 never)
``message_regex``  must match the combined standard output and error (multi-line mode; or a list, all must)
``rule``           a reported issue has this rule ... (optional)
``line``/``column`` ... at this position (optional)
``generate``       inputs made at test time: huge, sparse, special or hostile files (see GENERATORS)
``stdin``          text piped to standard input
``env``            environment for the run (``FHIR_PACKAGE_CACHE`` points into the case for installs)
``subprocess``     run ``python -m fhirpkg.cli`` as a child, with ``max_seconds`` and ``max_memory_mb``
                   (peak RSS from wait4; RLIMIT_AS as a safety net) instead of in-process
``files_absent``   paths that must not exist afterwards (nothing escaped, nothing half-written)
``forbid_regex``   must not match the output (secrets, forged lines)
``well_formed_xml`` the standard output parses as XML
``fixed``          the behaviour before a fix made for this issue (documentation)
``xfail``          a known bug outside the reliability owner's files: strict xfail, so the fix is noticed

Every case also checks that no traceback and no "internal error" (exit 3) comes out.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reliability_support import cli, cli_subprocess, is_root, subprocess_env
from streams import Repeat

CATALOGUE = Path(__file__).resolve().parent / "catalogue"
CASES = sorted(p for p in CATALOGUE.iterdir() if (p / "expect.json").is_file())
UNREADABLE_AS_ROOT = "/proc/sys/vm/drop_caches"  # a regular file that even root cannot open for reading


# --- generators: inputs that are too big, too special or too hostile to keep in git -----------------------

def _write_repeated(path: Path, head: bytes, fill: bytes, total: int, tail: bytes) -> None:
    chunk = fill * (1 << 20)
    remaining = max(0, total - len(head) - len(tail))
    with open(path, "wb") as f:
        f.write(head)
        while remaining > 0:
            piece = chunk[:remaining]
            f.write(piece)
            remaining -= len(piece)
        f.write(tail)


def gen_big_string(work: Path, spec: dict) -> None:
    _write_repeated(work / spec["path"], b'{"resourceType": "Basic", "id": "b", "code": {"text": "', b"x",
                    spec["megabytes"] * 2**20, b'"}}\n')


def gen_big_whitespace(work: Path, spec: dict) -> None:
    _write_repeated(work / spec["path"], b"", b" ", spec["megabytes"] * 2**20, b'{"resourceType": "Patient"')


def gen_big_newlines(work: Path, spec: dict) -> None:
    n = spec["megabytes"] * 2**20
    _write_repeated(work / spec["path"], b'{"resourceType": "Patient",', b"\n", n + 27 + 10, b'"id": NaN}')


def gen_sparse(work: Path, spec: dict) -> None:
    with open(work / spec["path"], "wb") as f:
        f.truncate(spec["megabytes"] * 2**20)


def gen_unreadable(work: Path, spec: dict) -> None:
    path = work / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_root():
        path.write_text("{}")
        path.chmod(0)
        return
    # chmod 000 does not stop root: link to a regular file that root cannot read either
    try:
        open(UNREADABLE_AS_ROOT, "rb").close()
    except PermissionError:
        path.symlink_to(UNREADABLE_AS_ROOT)
        return
    except OSError:
        pass
    pytest.skip(f"running as root and {UNREADABLE_AS_ROOT} is readable here: no way to make an unreadable file")


def gen_dir(work: Path, spec: dict) -> None:
    (work / spec["path"]).mkdir(parents=True, exist_ok=True)


def gen_fifo(work: Path, spec: dict) -> None:
    path = work / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def gen_socket(work: Path, spec: dict) -> None:
    path = work / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path.parent)  # AF_UNIX paths are limited to ~100 bytes: bind a relative name
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path.name)
        s.close()
    finally:
        os.chdir(cwd)


def gen_symlink(work: Path, spec: dict) -> None:
    path = work / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(spec["target"])


def gen_raw_name(work: Path, spec: dict) -> None:
    folder = work / spec["path"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(os.fsencode(folder), bytes.fromhex(spec["name_hex"])), "w") as f:
        f.write(spec["text"])


def gen_tgz(work: Path, spec: dict) -> None:
    with tarfile.open(work / spec["path"], "w:gz", compresslevel=1) as tar:
        for m in spec["members"]:
            info = tarfile.TarInfo(m["name"])
            kind = m.get("type", "file")
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, m["linkname"]
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, m["linkname"]
                tar.addfile(info)
            elif kind == "chardev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
            elif "fill" in m:
                info.size = m["megabytes"] * 2**20
                tar.addfile(info, io.BufferedReader(Repeat(m["fill"].encode(), info.size)))
            else:
                data = (json.dumps(m["json"]) if "json" in m else m["text"]).encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def gen_truncate(work: Path, spec: dict) -> None:
    with open(work / spec["path"], "r+b") as f:
        f.truncate(spec["bytes"])


GENERATORS = {
    "big-string": gen_big_string, "big-whitespace": gen_big_whitespace, "big-newlines": gen_big_newlines,
    "sparse": gen_sparse, "unreadable": gen_unreadable, "dir": gen_dir, "fifo": gen_fifo, "socket": gen_socket,
    "symlink": gen_symlink, "raw-name": gen_raw_name, "tgz": gen_tgz, "truncate": gen_truncate,
}


def load(case_dir: Path) -> dict:
    return json.loads((case_dir / "expect.json").read_text(encoding="utf-8"))


def test_catalogue_is_large_and_covers_the_issue():
    """≥ 50 inputs, and every kind of input the issue names is there."""
    assert len(CASES) >= 50
    covers = " | ".join(load(c)["covers"] for c in CASES)
    for kind in ["truncated and invalid JSON", "invalid UTF-8", "BOM", "UTF-16", "a 100 MB file", "10,000-deep nesting",
                 "duplicate keys", "NaN/Infinity", "numbers beyond double precision",
                 "a JSON array or string at top level", "XML given as JSON", "binary given as JSON",
                 "unknown resourceType", "missing resourceType", "ids with illegal characters", "empty files",
                 "unreadable files", "symlink loops", "special files", "a package.json missing",
                 "a package.json malformed", "canonical collisions",
                 "circular PlanDefinition/ActivityDefinition references", "with dotdot members",
                 "with absolute members", "with symlink members", "with hardlink members", "a decompression bomb",
                 "nothing to validate: an empty folder", "nothing to validate: only non-JSON files",
                 "nothing to validate: a folder of symlink loops"]:
        assert kind in covers, f"no catalogue case covers: {kind}"


def _sub(value, work: Path):
    if isinstance(value, str):
        return value.replace("{case}", str(work))
    if isinstance(value, list):
        return [_sub(v, work) for v in value]
    if isinstance(value, dict):
        return {k: _sub(v, work) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_dir", CASES, ids=[c.name for c in CASES])
def test_catalogue(case_dir, tmp_path, monkeypatch, shared_definitions, request):
    expect = load(case_dir)
    if expect.get("xfail"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=expect["xfail"]))
    work = tmp_path / "case"
    shutil.copytree(case_dir, work, symlinks=True, ignore=shutil.ignore_patterns("expect.json"))
    for spec in expect.get("generate", []):
        GENERATORS[spec["kind"]](work, spec)
    args = _sub(expect["args"], work)
    env = _sub(expect.get("env", {}), work)
    stdin = expect.get("stdin")
    monkeypatch.delenv("FHIRPKG_OFFLINE", raising=False)  # `--offline` sets it for the rest of the process
    monkeypatch.delenv("FHIRPKG_AUTHORIZATION", raising=False)
    monkeypatch.delenv("FHIRPKG_DEBUG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    limit = expect.get("max_seconds")
    if expect.get("subprocess"):
        mem = expect.get("max_memory_mb")
        run = cli_subprocess(args, input=stdin.encode() if stdin is not None else None, env=subprocess_env(**env),
                             timeout=(limit or 60) * 3, max_memory_mb=max(3 * mem, 3000) if mem else None)
        if mem:
            assert run.max_rss_mb <= mem, f"peak RSS {run.max_rss_mb:.0f} MB > {mem} MB"
    else:
        run = cli(args, input=stdin)
    out = run.output
    context = f"\n--- exit {run.exit_code} in {run.seconds:.1f}s; output:\n{out[:3000]}"
    assert run.exit_code != 3 and "Traceback" not in out and "internal error" not in out, context
    assert run.exit_code == expect["exit_code"], context
    patterns = expect["message_regex"]
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        assert re.search(pattern, out, re.M), f"no match for {pattern!r}{context}"
    if expect.get("rule"):
        rule = re.escape(expect["rule"])
        line = expect.get("line")
        col = expect.get("column")
        where = (rf":{line}:{col}: " if col is not None else rf":{line}:\d+: ") if line is not None else r"(:\d+:\d+)?:? "
        assert re.search(rf"{where}\w+ \[{rule}\]", out), f"no [{expect['rule']}] issue at line {line}, column {col}{context}"
    for pattern in expect.get("forbid_regex", []):
        assert not re.search(pattern, out), f"forbidden {pattern!r} in the output{context}"
    for path in _sub(expect.get("files_absent", []), work):
        assert not os.path.lexists(path), f"{path} exists{context}"
    if expect.get("well_formed_xml"):
        ET.fromstring(run.stdout)
    if limit:
        assert run.seconds <= limit, f"took {run.seconds:.1f} s > {limit} s{context}"
