"""The one archive reader: every hostile member is judged once, and the three readers
(validate, diff, install) each act on that verdict within the same limits."""
import io
import json
import tarfile

import pytest

from fhirpkg.errors import PackageError
from fhirpkg.fhir import archive as A
from fhirpkg.fhir import packages as pk
from fhirpkg.fhir.inputs import Source, read_package
from fhirpkg.publish.diff import DiffError, load_side
from streams import Repeat

MANIFEST = json.dumps({"name": "example.test.pkg", "version": "1.0.0"}).encode()
PATIENT = json.dumps({"resourceType": "Patient", "id": "p1"}).encode()
REF = pk.PackageRef("example.test.pkg", "1.0.0")


def make_tgz(path, members):
    """members: (name, bytes) for files, (name, int) for a file of that many spaces, (name, callable) to shape
    a header-only member."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif isinstance(data, int):
                info.size = data
                tar.addfile(info, io.BufferedReader(Repeat(b" ", data)))
            else:
                tar.addfile(data(info))
    return path


def symlink(info):
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


def base(*extra):
    return [("package/package.json", MANIFEST), ("package/Patient-p1.json", PATIENT), *extra]


def verdicts(path):
    with A.Archive(path) as archive:
        return {m.name: m.problem for m in archive.members()}


def validate_messages(path):
    return [(doc.file, i.message) for doc in read_package(Source(str(path), path)) for i in doc.issues]


def test_zip_slip_member_is_judged_once_and_refused_or_skipped_by_every_reader(tmp_path):
    tgz = make_tgz(tmp_path / "slip.tgz", base(("package/../../evil.json", PATIENT), ("C:/evil.json", PATIENT),
                                               ("package\\..\\..\\win.json", PATIENT)))
    assert verdicts(tgz) == {"package/package.json": None, "package/Patient-p1.json": None,
                             "package/../../evil.json": A.ESCAPES, "C:/evil.json": A.ESCAPES,
                             "package\\..\\..\\win.json": A.ESCAPES}
    assert (f"{tgz}!package/../../evil.json", "Archive member outside package/: skipped") in validate_messages(tgz)
    with pytest.raises(DiffError, match=r"slip\.tgz!package/\.\./\.\./evil\.json: archive member outside package/"):
        load_side(tgz)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(PackageError, match="escapes the package folder"):
        pk.safe_extract(tgz, dest)
    assert not (tmp_path / "evil.json").exists() and not (tmp_path.parent / "evil.json").exists()


def test_symlink_member_is_never_followed(tmp_path):
    tgz = make_tgz(tmp_path / "link.tgz", base(("package/Patient-x.json", symlink)))
    assert verdicts(tgz)["package/Patient-x.json"] == A.LINK
    assert (f"{tgz}!package/Patient-x.json", "Archive member is a link or special file: skipped") \
        in validate_messages(tgz)
    with pytest.raises(DiffError, match=r"link\.tgz!package/Patient-x\.json: archive member is a link or special file"):
        load_side(tgz)
    with pytest.raises(PackageError, match="'package/Patient-x.json' is a link; links are refused"):
        pk.safe_extract(tgz, tmp_path)
    assert not (tmp_path / "package").exists() or not any(p.is_symlink() for p in (tmp_path / "package").iterdir())


def test_too_many_members(tmp_path):
    tgz = make_tgz(tmp_path / "many.tgz", base(*[(f"package/d{n}", lambda i: _dir(i)) for n in range(A.MAX_MEMBERS)]))
    with A.Archive(tgz) as archive, pytest.raises(A.ArchiveError, match=f"more than {A.MAX_MEMBERS} members"):
        for _ in archive.members():
            pass
    assert validate_messages(tgz)[-1] == (str(tgz), f"More than {A.MAX_MEMBERS} members")
    with pytest.raises(DiffError, match=f"more than {A.MAX_MEMBERS} members"):
        load_side(tgz)
    with pytest.raises(PackageError, match=f"more than {A.MAX_MEMBERS} members"):
        pk.safe_extract(tgz, tmp_path)


def _dir(info):
    info.type = tarfile.DIRTYPE
    return info


def test_oversized_member_is_refused_by_its_header_and_never_read(tmp_path):
    tgz = make_tgz(tmp_path / "big.tgz", base(("package/Binary-big.json", A.MAX_MEMBER_BYTES + 1)))
    with A.Archive(tgz) as archive:
        big = [m for m in archive.members() if m.name == "package/Binary-big.json"][0]
        assert big.too_large and big.problem is None
        with pytest.raises(A.ArchiveError, match=f"is larger than {A.MAX_MEMBER_BYTES // 2**20} MB"):
            archive.read(big)
        assert archive.total == 0
    assert (f"{tgz}!package/Binary-big.json", f"Archive member larger than {A.MAX_MEMBER_BYTES // 2**20} MB: skipped") \
        in validate_messages(tgz)
    with pytest.raises(DiffError, match=f"Binary-big.json: archive member larger than {A.MAX_MEMBER_BYTES // 2**20} MB"):
        load_side(tgz)
    with pytest.raises(PackageError, match="is larger than"):
        pk.safe_extract(tgz, tmp_path)


def test_decompression_bomb_is_refused_by_every_reader(tmp_path):
    """64 MB of spaces packs into about 300 KB: far past MAX_RATIO times the archive's size."""
    tgz = make_tgz(tmp_path / "bomb.tgz", base(("package/Binary-zeros.json", 64 * 2**20)))
    assert tgz.stat().st_size * A.MAX_RATIO < 64 * 2**20
    why = "refused as a decompression bomb"
    assert any(why in message for _, message in validate_messages(tgz))
    with pytest.raises(DiffError, match=why):
        load_side(tgz)
    with pytest.raises(PackageError, match=why):
        pk.safe_extract(tgz, tmp_path / "dest")


def test_damaged_and_unreadable_archives_are_one_line(tmp_path):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(A.ArchiveError) as e:
        A.Archive(junk)
    assert e.value.reason == "not a readable .tgz package (not a gzip, bzip2, xz or tar archive)"
    good = make_tgz(tmp_path / "good.tgz", base())
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with pytest.raises(A.ArchiveError, match="damaged .tgz package") as e:
        with A.Archive(cut) as archive:
            for m in archive.members():
                if m.is_file:
                    archive.read(m)
    assert "\n" not in str(e.value)


def test_read_file_and_manifest(tmp_path):
    tgz = make_tgz(tmp_path / "p.tgz", base())
    assert A.read_file(tgz, "package/Patient-p1.json") == PATIENT
    assert A.read_file(tgz, "package/nothing.json") is None
    assert pk.read_tgz_manifest(tgz) == {"name": "example.test.pkg", "version": "1.0.0"}
    bare = make_tgz(tmp_path / "bare.tgz", [("package/Patient-p1.json", PATIENT)])
    with pytest.raises(PackageError, match="no package/package.json"):
        pk.read_tgz_manifest(bare)
