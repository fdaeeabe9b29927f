"""Reading untrusted package archives (.tgz): the one reader, with one set of limits.

Validation (``inputs.read_package``), release comparison (``publish.diff``) and
installation (``packages.safe_extract``) all read archives that came from elsewhere.
They all go through ``Archive`` here, so a member that escapes its folder, a link,
a device, an oversized member, too many members or a decompression bomb is judged
the same way everywhere; each caller only decides whether a bad member is skipped
(and reported) or refuses the whole archive.  Sizes are counted while reading,
never taken from the headers alone.
"""
from __future__ import annotations

import re
import tarfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from fhirpkg.errors import PackageError

#: At most this many members (HL7's core packages hold about 4,000; hl7.fhir.r4.examples 5,307).
MAX_MEMBERS = 60_000
#: No member larger than this (the largest in HL7's packages is 42 MB: Bundle-resources.json
#: of hl7.fhir.r5.examples); the in-memory readers hold one member at a time.
MAX_MEMBER_BYTES = 128 * 2**20
#: No more than this unpacked in all ...
MAX_TOTAL_BYTES = 2 * 2**30
#: ... nor more than this many times the archive's own size (HL7's packages: about 10x);
#: beyond it the archive is a decompression bomb.
MAX_RATIO = 200

#: Why a member must not be read (``Member.problem``).
ESCAPES = "escapes the package folder"
LINK = "is a link; links are refused"
SPECIAL = "is not a regular file"
#: The tail of the message for a member over MAX_MEMBER_BYTES.
TOO_LARGE = f"is larger than {MAX_MEMBER_BYTES // 2**20} MB"

_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


class ArchiveError(PackageError):
    """The archive as a whole cannot be read safely: unreadable, damaged, or over a limit.

    ``str()`` is ``"<archive>: <reason>"``; ``reason`` alone is for reports that name the file already.
    """

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def describe_error(exc: BaseException) -> str:
    """One line for a tarfile/gzip failure (``tarfile.open`` lists every method it tried, one per line)."""
    text = str(exc)
    if "could not be opened successfully" in text:
        return "not a gzip, bzip2, xz or tar archive"
    text = " ".join(text.split())
    return text or type(exc).__name__


@dataclass(frozen=True)
class Member:
    """One archive member and the verdict on it."""

    info: tarfile.TarInfo
    parts: tuple[str, ...]  # its path, normalised: ``\\`` as ``/``, empty and ``.`` parts dropped
    problem: str | None  # ESCAPES, LINK or SPECIAL; None when it is a plain file or folder

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_file(self) -> bool:
        return self.problem is None and self.info.isfile()

    @property
    def too_large(self) -> bool:
        return self.info.size > MAX_MEMBER_BYTES

    def under(self, folder: str = "package") -> tuple[str, ...] | None:
        """Its path inside ``folder`` (a top-level folder), or None when it is elsewhere."""
        return self.parts[1:] if self.parts[:1] == (folder,) else None


def judge(info: tarfile.TarInfo) -> Member:
    """The member with its normalised path and, if it must not be read, why."""
    name = info.name.replace("\\", "/")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        problem = ESCAPES
    elif info.issym() or info.islnk():
        problem = LINK
    elif not (info.isfile() or info.isdir()):
        problem = SPECIAL
    else:
        problem = None
    return Member(info, parts, problem)


class Archive:
    """An open .tgz read member by member, within the limits above.

    ``members()`` raises ArchiveError past MAX_MEMBERS or when the archive is damaged;
    ``read``/``copy`` raise it for a member over MAX_MEMBER_BYTES or once everything read
    passes the total budget (MAX_TOTAL_BYTES, or MAX_RATIO times the archive's size).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            compressed = max(self.path.stat().st_size, 1)
            self._tar = tarfile.open(self.path, "r:*")
        except _ERRORS as e:
            raise ArchiveError(path, f"not a readable .tgz package ({describe_error(e)})") from None
        self.budget = min(MAX_TOTAL_BYTES, compressed * MAX_RATIO + 2**20)
        self.total = 0

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self._tar.close()

    @contextmanager
    def _reading(self):
        try:
            yield
        except _ERRORS as e:
            raise ArchiveError(self.path, f"damaged .tgz package ({describe_error(e)})") from None

    def members(self) -> Iterator[Member]:
        count = 0
        it = iter(self._tar)
        while True:
            with self._reading():
                info = next(it, None)
            if info is None:
                return
            count += 1
            if count > MAX_MEMBERS:
                raise ArchiveError(self.path, f"more than {MAX_MEMBERS} members")
            yield judge(info)

    def copy(self, member: Member, out: IO[bytes]) -> None:
        """Write a file member's bytes to ``out``, counting them against the limits."""
        if not member.is_file:
            raise ValueError(f"{member.name}: not a file member")
        if member.too_large:
            raise ArchiveError(self.path, f"member '{member.name}' {TOO_LARGE}")
        with self._reading():
            src = self._tar.extractfile(member.info)
            size = 0
            while chunk := src.read(1 << 20):
                size += len(chunk)
                self.total += len(chunk)
                if size > MAX_MEMBER_BYTES:
                    raise ArchiveError(self.path, f"member '{member.name}' {TOO_LARGE}")
                if self.total > self.budget:
                    raise ArchiveError(self.path, f"unpacks to more than {self.budget // 2**20} MB "
                                                  f"({MAX_RATIO}x its size): refused as a decompression bomb")
                out.write(chunk)

    def read(self, member: Member) -> bytes:
        """A file member's bytes, counted against the limits."""
        import io
        buf = io.BytesIO()
        self.copy(member, buf)
        return buf.getvalue()


def read_file(path: Path | str, name: str) -> bytes | None:
    """One member's bytes by its normalised path (e.g. ``package/package.json``), or None if absent."""
    want = tuple(name.split("/"))
    with Archive(path) as archive:
        for member in archive.members():
            if member.parts == want and member.is_file:
                return archive.read(member)
    return None
