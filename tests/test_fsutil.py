"""Files written whole: a temporary sibling renamed over the target, except where the target is
not a regular file (a device or FIFO), which a rename would replace."""
from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from click.testing import CliRunner

from fhirpkg.cli import main
from fhirpkg.fsutil import atomic_write_bytes


def _read_fifo(path, out: list) -> threading.Thread:
    def read():
        with open(path, "rb") as f:
            out.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_a_fifo_is_written_in_place_not_replaced(tmp_path):
    """Before, the temporary file was renamed over the FIFO (and, as root, over /dev/null with
    ``fhirpkg validate -o /dev/null``), leaving a regular file where the device was."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list = []
    reader = _read_fifo(fifo, got)
    atomic_write_bytes(fifo, b"report")
    reader.join(10)
    assert got == [b"report"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary sibling left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_validate_report_to_a_fifo(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"resourceType": "Patient", "id": "p", "gender": "x"}))
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    got: list = []
    reader = _read_fifo(fifo, got)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "p.json"), "--format", "json", "-o", str(fifo)])
    reader.join(10)
    assert result.exit_code == 1 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert any(i["expression"] == "Patient.gender" for i in json.loads(got[0])["issues"])


def test_a_regular_file_is_still_replaced_whole(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["f"]
