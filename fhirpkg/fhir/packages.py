"""The FHIR package cache: resolve, install (npm pack or a local .tgz) and load.

The layout is the one every FHIR tool shares, ``<cache>/<id>#<version>/package/``
(``~/.fhir/packages`` unless ``FHIR_PACKAGE_CACHE`` says otherwise), so packages
installed here serve the HL7 validator, SUSHI and HAPI too.  Packages are
installed only from the npm registry (``npm pack``) or from a file; nothing here
talks to packages.fhir.org, which many build machines cannot reach.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import orjson

from fhirpkg.errors import PackageError
from fhirpkg.fhir.archive import Archive, ArchiveError, read_file
from fhirpkg.fsutil import atomic_write_bytes, swap_in_directory

CACHE_ENV = "FHIR_PACKAGE_CACHE"
OFFLINE_ENV = "FHIRPKG_OFFLINE"

#: The packages the validator needs, pinned to the one version the npm registry serves.
R5_CORE = ("hl7.fhir.r5.core", "5.0.0")
R5_DEFAULT_PACKAGES = (
    R5_CORE,
    ("hl7.terminology.r5", "7.0.1"),
    ("hl7.fhir.uv.extensions.r5", "5.3.0-ballot-tc1"),
)
R4B_CORE = ("hl7.fhir.r4b.core", "4.3.0")
#: R4B exports are checked against R4B core plus the R4 editions of the extension and terminology
#: packages (the npm registry has no R4B editions; R4 and R4B share these definitions).
R4B_DEFAULT_PACKAGES = (
    R4B_CORE,
    ("hl7.terminology.r4", "7.0.1"),
    ("hl7.fhir.uv.extensions.r4", "5.3.0-ballot-tc1"),
)
R5_EXAMPLES = ("hl7.fhir.r5.examples", "5.0.0")
R4_CORE = ("hl7.fhir.r4.core", "4.0.1")
#: R4 exports are checked against R4 core (built from the examples package, see DERIVED) and the
#: same R4 editions of the terminology and extension packages as R4B.
R4_DEFAULT_PACKAGES = (
    R4_CORE,
    ("hl7.terminology.r4", "7.0.1"),
    ("hl7.fhir.uv.extensions.r4", "5.3.0-ballot-tc1"),
)
#: The default package set for each FHIR version fhirpkg validates.
DEFAULT_PACKAGES = {"5.0.0": R5_DEFAULT_PACKAGES, "4.3.0": R4B_DEFAULT_PACKAGES, "4.0.1": R4_DEFAULT_PACKAGES}

_NAME_RE = re.compile(r"^[a-z][a-zA-Z0-9\-]*(\.[a-z][a-zA-Z0-9\-]*)+$")
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-+]*$")


@dataclass(frozen=True)
class DerivedPackage:
    """A package the npm registry does not serve, built from an official one it does.

    ``hl7.fhir.r4.core`` has an empty npm record, but ``hl7.fhir.r4.examples`` (published by HL7
    with the R4 specification) holds every R4 conformance resource as JSON.  The core package is
    those resources of the ``types`` below (the resource types a core package holds: the ones in
    ``hl7.fhir.r4b.core#4.3.0``), under the manifest HL7's core packages carry.
    """

    source: "PackageRef"
    types: frozenset
    manifest: dict


CORE_RESOURCE_TYPES = frozenset({
    "CapabilityStatement", "CodeSystem", "CompartmentDefinition", "ConceptMap", "GraphDefinition",
    "ImplementationGuide", "MessageDefinition", "OperationDefinition", "SearchParameter",
    "StructureDefinition", "StructureMap", "TerminologyCapabilities", "ValueSet",
})
SOURCE_NOTE = "fhirpkg-source.txt"  # written next to package.json in a derived package


def cache_dir() -> Path:
    """The package cache folder: ``$FHIR_PACKAGE_CACHE`` or ``~/.fhir/packages``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".fhir" / "packages"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0", "false")


@dataclass(frozen=True, order=True)
class PackageRef:
    id: str
    version: str

    @classmethod
    def parse(cls, text: str) -> "PackageRef":
        """Parse ``id@version`` (npm style) or ``id#version`` (FHIR style)."""
        for sep in ("#", "@"):
            if sep in text:
                pid, _, ver = text.partition(sep)
                break
        else:
            raise PackageError(f"'{text}': give a version, as in hl7.fhir.r5.core@5.0.0")
        if not _NAME_RE.match(pid):
            raise PackageError(f"'{pid}' is not a FHIR package name (lowercase, dot-separated)")
        if not _VERSION_RE.match(ver) or ".." in ver:
            raise PackageError(f"'{ver}' is not a package version")
        return cls(pid, ver)

    def __str__(self) -> str:
        return f"{self.id}#{self.version}"


@dataclass
class Package:
    """One installed package: its manifest and an index of its resources."""

    ref: PackageRef
    folder: Path  # the ``package/`` folder

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.folder / "package.json").read_text(encoding="utf-8-sig"))

    @cached_property
    def index(self) -> list[dict]:
        """The ``.index.json`` files list, built and saved on first use if absent."""
        path = self.folder / ".index.json"
        if path.exists():
            try:
                data = orjson.loads(path.read_bytes())
                if data.get("index-version") == 2:
                    return data["files"]
            except (orjson.JSONDecodeError, KeyError, AttributeError):
                pass
        data = build_index(self.folder)
        atomic_write_bytes(path, json.dumps(data, indent=1).encode())
        return data["files"]

    @property
    def dependencies(self) -> list[PackageRef]:
        return [PackageRef(k, v) for k, v in (self.manifest.get("dependencies") or {}).items()]

    def resources(self, types: set[str] | None = None) -> Iterator[dict]:
        """Yield the package's resources, optionally only those of some types."""
        for entry in self.index:
            if types is None or entry.get("resourceType") in types:
                yield orjson.loads((self.folder / entry["filename"]).read_bytes())


INDEXED_PROPS = ("url", "version", "kind", "type", "supplements", "content", "valueSet", "derivation")


def resource_files(folder: Path) -> list[Path]:
    """The JSON files of a package folder that hold resources, by name: all but
    ``package.json`` and hidden files such as ``.index.json``."""
    return sorted(p for p in folder.glob("*.json") if p.name != "package.json" and not p.name.startswith("."))


def build_index(folder: Path) -> dict:
    """Build an ``.index.json`` (index-version 2) for the JSON resources in a folder."""
    files = []
    for path in resource_files(folder):
        try:
            res = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(res, dict) or "resourceType" not in res:
            continue
        files.append(index_entry(path.name, res))
    return {"index-version": 2, "files": files}


def index_entry(filename: str, res: dict) -> dict:
    """One ``.index.json`` entry: the string properties the FHIR package spec indexes."""
    entry = {"filename": filename, "resourceType": res["resourceType"], "id": res.get("id")}
    for prop in INDEXED_PROPS:
        if isinstance(res.get(prop), str):
            entry[prop] = res[prop]
    return entry


DERIVED: dict[PackageRef, DerivedPackage] = {
    PackageRef(*R4_CORE): DerivedPackage(
        PackageRef("hl7.fhir.r4.examples", "4.0.1"), CORE_RESOURCE_TYPES,
        {"name": "hl7.fhir.r4.core", "version": "4.0.1", "tools-version": 3, "type": "Core",
         "license": "CC0-1.0", "canonical": "http://hl7.org/fhir", "url": "http://hl7.org/fhir/R4",
         "homepage": "http://hl7.org/fhir/R4", "title": "FHIR Core package",
         "description": "FHIR R4 core definitions: the conformance resources of the official "
                        "hl7.fhir.r4.examples#4.0.1 package (built by fhirpkg)",
         "author": "HL7 Inc", "fhirVersions": ["4.0.1"], "dependencies": {}}),
}


def derive(spec: DerivedPackage, folder: Path, archive: Path) -> None:
    """Turn the unpacked source package in ``folder`` into the derived package, in place.

    Keeps the resources of the wanted types, writes the manifest (with ``x-fhirpkg-source``:
    the source package and the SHA-512 of its archive, in npm's integrity notation) and a
    plain-text note saying the same, and builds ``.index.json``.
    """
    import base64
    import hashlib
    kept = 0
    for path in list(folder.iterdir()):
        if path.is_dir():
            shutil.rmtree(path)
            continue
        if path.name == "package.json" or path.suffix != ".json":
            path.unlink()
            continue
        try:
            rt = orjson.loads(path.read_bytes()).get("resourceType")
        except (orjson.JSONDecodeError, AttributeError):
            rt = None
        if rt in spec.types:
            kept += 1
        else:
            path.unlink()
    digest = hashlib.sha512(archive.read_bytes()).digest()
    integrity = "sha512-" + base64.b64encode(digest).decode()
    source = {"package": str(spec.source), "archive": archive.name, "integrity": integrity,
              "resources": kept, "types": sorted(spec.types),
              "builder": "fhirpkg packages install (fhirpkg.fhir.packages.derive)"}
    manifest = dict(spec.manifest, **{"x-fhirpkg-source": source})
    atomic_write_bytes(folder / "package.json", json.dumps(manifest, indent=2).encode())
    atomic_write_bytes(folder / SOURCE_NOTE, (
        f"{manifest['name']}#{manifest['version']} was built by fhirpkg, not published by HL7 as such.\n"
        f"npm serves no {manifest['name']} package; this one holds the {kept} resources of types\n"
        f"{', '.join(sorted(spec.types))}\n"
        f"taken unchanged from the official package {spec.source} ({archive.name},\n"
        f"npm integrity {integrity}).\n"
        f"Replace it with an official archive where one exists:\n"
        f"  fhirpkg packages install {manifest['name']}@{manifest['version']} --from FILE.tgz\n").encode())
    atomic_write_bytes(folder / ".index.json", json.dumps(build_index(folder), indent=1).encode())


def installed(ref: PackageRef, cache: Path | None = None) -> Package | None:
    folder = (cache or cache_dir()) / str(ref) / "package"
    return Package(ref, folder) if (folder / "package.json").is_file() else None


def list_installed(cache: Path | None = None) -> list[PackageRef]:
    root = cache or cache_dir()
    if not root.is_dir():
        return []
    refs = []
    for child in sorted(root.iterdir()):
        pid, sep, ver = child.name.partition("#")
        # other tools' folders and leftovers (temporary folders, odd names) are not packages
        if sep and _NAME_RE.match(pid) and _VERSION_RE.match(ver) and (child / "package" / "package.json").is_file():
            refs.append(PackageRef(pid, ver))
    return refs


def install(ref: PackageRef, from_file: Path | None = None, cache: Path | None = None,
            log=None) -> Package:
    """Install a package into the cache unless it is there; return it.

    The archive comes from ``from_file`` or from ``npm pack`` (the npm registry).
    It is unpacked into a temporary folder inside the cache and renamed into
    place, so an interrupted install never leaves a half-written package.
    """
    root = cache or cache_dir()
    if from_file is None and (pkg := installed(ref, root)):
        return pkg
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    # the lock inside the temporary folder tells other installs that this one is alive
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=root) as tmp, _owned(Path(tmp)):
        tmp_path = Path(tmp)
        if from_file is None:
            if offline():
                raise PackageError(
                    f"{ref} is not in the package cache {root} and {OFFLINE_ENV} forbids network "
                    f"access; install it with: fhirpkg packages install {ref.id}@{ref.version} --from FILE.tgz")
            source = DERIVED[ref].source if ref in DERIVED else ref
            if log:
                built = f" (built from {source}, which holds its definitions)" if source != ref else ""
                log(f"Installing {ref} from the npm registry into {root}{built} ...")
            archive = _npm_pack(source, tmp_path)
        else:
            archive = Path(from_file)
            if not archive.is_file():
                raise PackageError(f"{archive}: no such file")
        staging = tmp_path / "staging"
        staging.mkdir()
        safe_extract(archive, staging)
        folder = staging / "package"
        manifest_path = folder / "package.json"
        if not manifest_path.is_file():
            raise PackageError(f"{archive}: not a FHIR package (no package/package.json)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as e:
            raise PackageError(f"{archive}: package/package.json is not valid JSON ({e})") from None
        held = (manifest.get("name"), manifest.get("version"))
        if ref in DERIVED and held == (DERIVED[ref].source.id, DERIVED[ref].source.version):
            derive(DERIVED[ref], folder, archive)
        elif held != (ref.id, ref.version):
            also = f" or {DERIVED[ref].source}" if ref in DERIVED else ""
            raise PackageError(f"{archive}: holds {held[0]}#{held[1]}, not {ref}{also}")
        if not (folder / ".index.json").exists():
            atomic_write_bytes(folder / ".index.json", json.dumps(build_index(folder), indent=1).encode())
        target = root / str(ref)
        if not _place(staging, target):
            if from_file is None and (pkg := installed(ref, root)):
                return pkg  # another process installed it meanwhile
            # replace the installed copy in one step: a reader sees the old or the new package, never none
            swap_in_directory(staging, target)
    if log:
        log(f"Installed {ref}")
    return Package(ref, target / "package")


TMP_PREFIX = ".fhirpkg-install-"
ABANDONED_AFTER = 3600  # seconds: a temporary folder without a live owner older than this is removed


@contextlib.contextmanager
def _owned(folder: Path):
    """Hold ``folder/.lock`` from the moment it exists: the lock file is created and locked under a
    temporary name, then renamed into place (the lock follows the open file).  Created in place, it
    would exist unlocked for an instant, and a concurrent install's clean-up could take it for an
    abandoned folder and delete it under this one."""
    import fcntl
    pending = folder / ".lock.pending"
    fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(pending, folder / ".lock")
        yield
    finally:
        os.close(fd)


def _place(staging: Path, target: Path) -> bool:
    """Rename the unpacked package into place; False if a package folder is already there."""
    try:
        os.rename(staging, target)  # atomic; fails on a non-empty folder instead of merging into it
        return True
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise


def _remove_abandoned(root: Path) -> None:
    """Delete the temporary folders of installs that were killed (no process holds their lock)."""
    import fcntl
    import time
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)]
    except OSError:
        return
    for folder in candidates:
        try:
            fd = os.open(folder / ".lock", os.O_RDWR)
        except FileNotFoundError:
            # not locked yet (just created) or from an older fhirpkg: remove only when clearly old
            try:
                if time.time() - folder.stat().st_mtime > ABANDONED_AFTER:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live install holds it
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def ensure(refs, log=None) -> list[Package]:
    """Return the packages, installing missing ones from npm with a visible message."""
    out = []
    for ref in refs:
        ref = ref if isinstance(ref, PackageRef) else PackageRef(*ref)
        pkg = installed(ref)
        if pkg is None:
            pkg = install(ref, log=log or log_to_stderr)
        out.append(pkg)
    return out


def log_to_stderr(msg: str) -> None:
    """The default progress log: a line on standard error, flushed (stdout may carry a report)."""
    print(msg, file=sys.stderr, flush=True)


def _npm_pack(ref: PackageRef, dest: Path) -> Path:
    npm = shutil.which("npm")
    if not npm:
        raise PackageError(
            f"cannot fetch {ref}: npm is not installed; download the .tgz elsewhere and run "
            f"fhirpkg packages install {ref.id}@{ref.version} --from FILE.tgz")
    try:
        proc = subprocess.run(
            [npm, "pack", f"{ref.id}@{ref.version}", "--pack-destination", str(dest), "--json",
             "--ignore-scripts"],
            capture_output=True, text=True, timeout=600, cwd=dest)
    except subprocess.TimeoutExpired:
        raise PackageError(f"npm pack {ref.id}@{ref.version} timed out after 600 s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PackageError(f"npm pack {ref.id}@{ref.version} failed: {tail}")
    tgzs = sorted(dest.glob("*.tgz"))
    if len(tgzs) != 1:
        raise PackageError(f"npm pack {ref.id}@{ref.version} produced no archive")
    return tgzs[0]


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a package archive, refusing anything that could escape or exhaust ``dest``.

    The whole archive is refused (``archive.ArchiveError``, a PackageError) for a member
    that escapes the folder, a link, a device, or anything over the limits of
    ``fhirpkg.fhir.archive`` (members, member size, total size, decompression ratio).
    """
    with Archive(archive) as tar:
        for member in tar.members():
            if member.problem is not None:
                raise ArchiveError(archive, f"member '{member.name}' {member.problem}")
            if not member.is_file or not member.parts:
                continue
            target = dest.joinpath(*member.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                tar.copy(member, out)


def read_tgz_manifest(archive: Path) -> dict:
    """Read package/package.json from an archive without unpacking the rest."""
    data = read_file(archive, "package/package.json")
    if data is None:
        raise PackageError(f"{archive}: not a FHIR package (no package/package.json)")
    return json.loads(data.decode("utf-8-sig"))
