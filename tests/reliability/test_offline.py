"""No network access except by the commands that exist for it; ``--offline`` guarantees none.

Every command runs as a child process whose ``sitecustomize`` replaces socket connect, connect_ex,
sendto, create_connection and getaddrinfo with a function that records the attempt and refuses
it, and whose PATH starts with a fake ``npm`` that records being run (the package installer
fetches through npm).  With a warm package cache, validate, build, diff and the package commands
must record nothing.  Two controls prove the trap works: ``push`` (which exists to use the
network) and an online install of a missing package are both recorded.
"""
from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

import fuzzing as F
from reliability_support import DEFINITIONS, cli_subprocess, subprocess_env

SITECUSTOMIZE = r'''
import os, socket
_LOG = os.environ["FHIRPKG_NETLOG"]

def _trap(what):
    def refuse(*args, **kwargs):
        with open(_LOG, "a") as f:
            f.write(f"{what} {args[1:] if what.startswith('socket.') else args}\n")
        raise OSError(101, f"network access blocked by the reliability test ({what})")
    return refuse

for _name in ("connect", "connect_ex", "sendto"):
    setattr(socket.socket, _name, _trap(f"socket.{_name}"))
socket.create_connection = _trap("create_connection")
socket.getaddrinfo = _trap("getaddrinfo")
'''

FAKE_NPM = """#!/bin/sh
echo "npm $*" >> "$FHIRPKG_NETLOG"
exit 1
"""


@pytest.fixture(scope="module")
def trap(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trap")
    (folder / "site").mkdir()
    (folder / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (folder / "bin").mkdir()
    npm = folder / "bin" / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    return folder


def run(trap: Path, tmp_path: Path, args, **env):
    log = tmp_path / "network.log"
    log.write_text("")
    e = subprocess_env(FHIRPKG_NETLOG=log, **env)
    e["PYTHONPATH"] = str(trap / "site") + os.pathsep + e["PYTHONPATH"]
    e["PATH"] = str(trap / "bin") + os.pathsep + e.get("PATH", "")
    result = cli_subprocess(args, env=e, timeout=300)
    F.COUNTS["offline: commands run with the network trapped"] += 1
    return result, log.read_text()


def small_package(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, value in (("package/package.json", {"name": "example.offline.pkg", "version": "1.0.0"}),
                            ("package/Basic-b.json", {"resourceType": "Basic", "id": "b"})):
            data = json.dumps(value).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


COMMANDS = {
    "validate-project": lambda t: ["validate", str(DEFINITIONS)],
    "validate-file-with-ig": lambda t: ["validate", str(DEFINITIONS / "package.json"), "--ig",
                                        str(DEFINITIONS / "CodeSystem")],
    "build": lambda t: ["build", "--project", str(DEFINITIONS), "--out", str(t / "build")],
    "diff": lambda t: ["diff", str(DEFINITIONS), str(DEFINITIONS)],
    "packages-list": lambda t: ["packages", "list"],
    "packages-install-installed": lambda t: ["packages", "install", "hl7.fhir.r5.core@5.0.0"],
    "packages-install-from-file": lambda t: ["packages", "install", "example.offline.pkg@1.0.0", "--from",
                                             str(small_package(t / "p.tgz"))],
}


CASES = [(c, how) for c in sorted(COMMANDS) for how in ("--offline", "FHIRPKG_OFFLINE=1")] + [
    (c, "online, warm cache") for c in ("validate-project", "build", "diff", "packages-list")]


@pytest.mark.parametrize("command,how", CASES, ids=[f"{c}-{h}" for c, h in CASES])
def test_no_network_access(trap, tmp_path, command, how):
    args = COMMANDS[command](tmp_path)
    env = {"FHIR_PACKAGE_CACHE": tmp_path / "cache"} if command == "packages-install-from-file" else {}
    if how == "--offline":
        args = ["--offline"] + args
    elif how == "FHIRPKG_OFFLINE=1":
        env["FHIRPKG_OFFLINE"] = "1"
    result, network = run(trap, tmp_path, args, **env)
    assert network == "", f"network access by `fhirpkg {' '.join(args)}`:\n{network}"
    assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output[-2000:]


def test_offline_install_of_a_missing_package_is_refused_without_npm(trap, tmp_path):
    result, network = run(trap, tmp_path, ["--offline", "packages", "install", "example.never.installed@1.0.0"],
                          FHIR_PACKAGE_CACHE=tmp_path / "cache")
    assert network == ""
    assert result.exit_code == 1 and "forbids network access" in result.output


def test_the_trap_catches_network_use(trap, tmp_path):
    """Controls: commands that do use the network are caught, so the silence above means something."""
    bundle = tmp_path / "tx.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Basic", "id": "b"}, "request": {"method": "PUT", "url": "Basic/b"}}]}))
    result, network = run(trap, tmp_path, ["push", str(bundle), "--server", "http://127.0.0.1:9/fhir",
                                           "--max-attempts", "1"])
    assert "127.0.0.1" in network and result.exit_code == 1, (network, result.output)
    result, network = run(trap, tmp_path, ["packages", "install", "example.never.installed@1.0.0"],
                          FHIR_PACKAGE_CACHE=tmp_path / "cache")
    assert network.startswith("npm pack example.never.installed@1.0.0"), network
    assert result.exit_code == 1
