"""The package cache: install from a .tgz, refuse hostile archives, index once."""
import io
import json
import tarfile

import pytest

from fhirpkg.fhir import packages as pk


def make_tgz(path, members, manifest=None):
    """Write a .tgz with (name, bytes | tarfile.TarInfo-modifier) members."""
    with tarfile.open(path, "w:gz") as tar:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("package/package.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in members:
            if isinstance(data, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(data(tarfile.TarInfo(name)))
    return path


MANIFEST = {"name": "example.test.pkg", "version": "1.0.0", "dependencies": {"hl7.fhir.r5.core": "5.0.0"}}
PATIENT = json.dumps({"resourceType": "Patient", "id": "p1"}).encode()


def test_install_from_tgz_builds_index(tmp_path):
    tgz = make_tgz(tmp_path / "p.tgz", [("package/Patient-p1.json", PATIENT)], MANIFEST)
    cache = tmp_path / "cache"
    pkg = pk.install(pk.PackageRef("example.test.pkg", "1.0.0"), from_file=tgz, cache=cache)
    assert pkg.folder == cache / "example.test.pkg#1.0.0" / "package"
    index = json.loads((pkg.folder / ".index.json").read_text())
    assert index["index-version"] == 2
    assert index["files"] == [{"filename": "Patient-p1.json", "resourceType": "Patient", "id": "p1"}]
    assert pk.list_installed(cache) == [pk.PackageRef("example.test.pkg", "1.0.0")]
    assert not [p for p in cache.iterdir() if p.name.startswith(".fhirpkg-install")]


def symlink(info):
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


def hardlink(info):
    info.type = tarfile.LNKTYPE
    info.linkname = "package/package.json"
    return info


def fifo(info):
    info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize("name,data,why", [
    ("package/../../evil.json", PATIENT, "escapes"),
    ("/tmp/evil.json", PATIENT, "escapes"),
    ("package/link.json", symlink, "link"),
    ("package/hard.json", hardlink, "link"),
    ("package/pipe", fifo, "not a regular file"),
])
def test_hostile_archives_are_refused(tmp_path, name, data, why):
    tgz = make_tgz(tmp_path / "bad.tgz", [(name, data)], MANIFEST)
    with pytest.raises(pk.PackageError, match=why):
        pk.install(pk.PackageRef("example.test.pkg", "1.0.0"), from_file=tgz, cache=tmp_path / "cache")
    assert not (tmp_path / "evil.json").exists() and not (tmp_path / "cache" / "example.test.pkg#1.0.0").exists()


def test_decompression_bomb_is_refused(tmp_path):
    tgz = make_tgz(tmp_path / "bomb.tgz", [("package/zeros.json", b"\0" * (64 * 2**20))], MANIFEST)
    assert tgz.stat().st_size < 2**20
    with pytest.raises(pk.PackageError, match="decompression bomb"):
        pk.install(pk.PackageRef("example.test.pkg", "1.0.0"), from_file=tgz, cache=tmp_path / "cache")


def test_wrong_package_in_archive(tmp_path):
    tgz = make_tgz(tmp_path / "p.tgz", [], dict(MANIFEST, version="2.0.0"))
    with pytest.raises(pk.PackageError, match="holds example.test.pkg#2.0.0"):
        pk.install(pk.PackageRef("example.test.pkg", "1.0.0"), from_file=tgz, cache=tmp_path / "cache")


def test_not_a_tgz(tmp_path):
    bad = tmp_path / "x.tgz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(pk.PackageError, match="not a readable .tgz"):
        pk.install(pk.PackageRef("example.test.pkg", "1.0.0"), from_file=bad, cache=tmp_path / "cache")


def test_offline_refuses_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv(pk.OFFLINE_ENV, "1")
    with pytest.raises(pk.PackageError, match="forbids network access"):
        pk.install(pk.PackageRef("example.never.installed", "1.0.0"), cache=tmp_path / "cache")


@pytest.mark.parametrize("text", ["hl7.fhir.r5.core", "Bad.Name@1.0.0", "a.b@../x", "nodots@1.0.0"])
def test_bad_package_specs(text):
    with pytest.raises(pk.PackageError):
        pk.PackageRef.parse(text)


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv(pk.CACHE_ENV, str(tmp_path))
    assert pk.cache_dir() == tmp_path
