"""Finding and reading input files: files, folders (recursive), NDJSON and stdin.

Folders are walked without following symbolic links (so a link loop cannot trap
the walk); special files (FIFOs, devices, sockets) and unreadable files become
issues instead of hangs or tracebacks.  A folder with nothing to validate in it
(empty, no JSON, only unreadable links) is an ``InputError``: the CLI exits 2.
"""
from __future__ import annotations

import codecs
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from fhirpkg.errors import InputError
from fhirpkg.fhir.archive import ESCAPES, MAX_MEMBER_BYTES, Archive, ArchiveError
from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import BOM_WARNING, Document, ndjson_documents, read_documents

JSON_SUFFIXES = (".json",)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
PACKAGE_SUFFIXES = (".tgz",)
#: A file name can state an older FHIR version: "x.r4b.json" is R4B (4.3.0), "x.r4.json" R4 (4.0.1).
VERSION_SUFFIXES = {".r4b.json": "4.3.0", ".r4b.ndjson": "4.3.0", ".r4.json": "4.0.1", ".r4.ndjson": "4.0.1"}
#: The files of a package that are not resources: its manifest and its index.
SKIP_NAMES = ("package.json", ".index.json")
MAX_FILE_BYTES = 512 * 2**20  # refuse to read more than this into memory (NDJSON is streamed instead)
#: The UTF-8 check reads an NDJSON file in blocks this size: each block decoded into a str of
#: 1 MB or more left glibc's heap as large as the file (97 MB RSS on a 97 MB file), 64 KiB
#: blocks stay under its mmap threshold and keep RSS flat (16 MB).
STREAM_BLOCK = 2**16


@dataclass
class Source:
    """One input: a path (or "-" for stdin), or a problem found while looking for inputs."""

    name: str
    path: Path | None = None
    problem: Issue | None = None
    in_folder: bool = False  # found by walking a folder (not named on the command line)

    @property
    def ndjson(self) -> bool:
        return self.name.endswith(NDJSON_SUFFIXES)

    @property
    def is_package(self) -> bool:
        return self.name.endswith(PACKAGE_SUFFIXES)

    @property
    def fhir_version(self) -> str:
        for suffix, version in VERSION_SUFFIXES.items():
            if self.name.endswith(suffix):
                return version
        return "5.0.0"


def find_sources(paths: list[str]) -> Iterator[Source]:
    """Expand the command-line paths into sources, in a stable order.

    Raises ``InputError`` for a folder with nothing to validate (as eslint does for a
    pattern that matches no file): an exit 0 there would pass a CI job that checked nothing.
    """
    for arg in paths:
        if arg == "-":
            yield Source("-")
            continue
        p = Path(arg)
        arg = display_name(arg)
        try:
            st = os.stat(p)
        except FileNotFoundError:
            yield Source(arg, p, _problem(arg, "No such file or folder"))
            continue
        except OSError as e:
            yield Source(arg, p, _problem(arg, f"Cannot read: {e.strerror or e}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            found = list(_walk(p))
            if not found:
                raise InputError(f"{arg}: nothing to validate (no .json, .ndjson or .tgz files in this folder)")
            if all(src.problem is not None for src in found):
                first = found[0]
                raise InputError(f"{arg}: nothing to validate ({len(found)} file{'s' if len(found) != 1 else ''} "
                                 f"found, none readable; {first.name}: {first.problem.message})")
            yield from found
        elif stat.S_ISREG(st.st_mode):
            yield Source(arg, p)
        else:
            yield Source(arg, p, _problem(arg, "Not a regular file (a FIFO, device or socket): skipped"))


def _walk(root: Path) -> Iterator[Source]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith(".") or not fn.endswith(JSON_SUFFIXES + NDJSON_SUFFIXES + PACKAGE_SUFFIXES):
                continue
            full = Path(dirpath) / fn
            name = display_name(str(full))
            try:
                st = os.stat(full)  # follows a file link; a dangling or looping link fails here
            except OSError as e:
                found.append(Source(name, full, _problem(name, f"Cannot read: {e.strerror or e}", Severity.WARNING)))
                continue
            if not stat.S_ISREG(st.st_mode):
                found.append(Source(name, full, _problem(name, "Not a regular file: skipped", Severity.WARNING)))
                continue
            found.append(Source(name, full, in_folder=True))
    yield from sorted(found, key=lambda s: s.name)


def display_name(name: str) -> str:
    """A file name fit for reports: bytes that are not UTF-8 (kept by Python as lone surrogates,
    which no report can encode) are shown as ``\\xff`` escapes.  Files are still opened by their path."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _problem(name: str, message: str, severity: Severity = Severity.FATAL) -> Issue:
    return Issue(severity, "processing", message, "input", file=name)


def read_source(src: Source, allow_comments: bool = False) -> Iterator[Document]:
    """The documents in one source (one, or one per NDJSON line); ``allow_comments`` reads
    // and /* */ comments in a JSON file as whitespace."""
    if src.problem is not None:
        yield Document(file=src.name, text="", issues=[src.problem])
        return
    if src.is_package:
        yield from read_package(src)
        return
    try:
        if src.name == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            # O_NONBLOCK: if the path became a FIFO since it was found, opening it must not wait for a writer
            fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
            with open(fd, "rb") as f:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    yield Document(file=src.name, text="", issues=[_problem(
                        src.name, "Not a regular file (a FIFO, device or socket): skipped")])
                    return
                if src.ndjson:
                    stream = ndjson_stream(f, src.name)
                    if stream is not None:  # a clean UTF-8 NDJSON file: read line by line, any size
                        yield from ndjson_documents(stream[1], src.name, stream[0])
                        return
                # a regular file states its size: a huge one is refused without being read into memory
                data = None if st.st_size > MAX_FILE_BYTES else f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        yield Document(file=src.name, text="", issues=[_problem(src.name, f"Cannot read: {e.strerror or e}")])
        return
    if data is None or len(data) > MAX_FILE_BYTES:
        yield Document(file=src.name, text="", issues=[_problem(
            src.name, f"The file is larger than {MAX_FILE_BYTES // 2**20} MB; split it (NDJSON) to validate it")])
        return
    ndjson = src.ndjson or (src.name == "-" and _looks_ndjson(data))
    yield from read_documents(data, src.name, ndjson=ndjson, allow_comments=allow_comments)


def _looks_ndjson(data: bytes) -> bool:
    lines = [ln for ln in data.strip().split(b"\n") if ln.strip()]
    return len(lines) > 1 and all(ln.strip().startswith(b"{") and ln.strip().endswith(b"}") for ln in lines)


def read_package(src: Source) -> Iterator[Document]:
    """The resources in a FHIR NPM package (.tgz), each named ``archive!package/File.json``.

    Members are read without unpacking, through ``fhirpkg.fhir.archive`` and its limits:
    links, paths outside ``package/`` and oversized members are reported and skipped,
    never followed or loaded; an unreadable, damaged or oversized archive is one issue.
    """
    count = 0
    try:
        with Archive(src.path) as archive:
            for m in archive.members():
                where = f"{src.name}!{display_name(m.name)}"
                if m.problem == ESCAPES or m.under("package") is None:
                    if m.parts != ("package",):
                        yield Document(file=where, text="", issues=[_problem(
                            where, "Archive member outside package/: skipped", Severity.ERROR)])
                    continue
                if m.problem is not None:
                    yield Document(file=where, text="", issues=[_problem(
                        where, "Archive member is a link or special file: skipped", Severity.ERROR)])
                    continue
                rel = m.under("package")
                if not m.is_file or len(rel) != 1 or not rel[0].endswith(".json") or rel[0] in SKIP_NAMES:
                    continue
                if m.too_large:
                    yield Document(file=where, text="", issues=[_problem(
                        where, f"Archive member larger than {MAX_MEMBER_BYTES // 2**20} MB: skipped")])
                    continue
                data = archive.read(m)
                count += 1
                yield from read_documents(data, where)
    except ArchiveError as e:
        yield Document(file=src.name, text="", issues=[_problem(src.name, e.reason[:1].upper() + e.reason[1:])])
        return
    if count == 0:
        yield Document(file=src.name, text="", issues=[_problem(src.name, "The package holds no resources",
                                                                 Severity.WARNING)])


def open_regular(src: Source):
    """The source's file opened for reading, or None if it is not a readable regular file
    (the whole-file reader then reports why)."""
    if src.path is None or src.problem is not None or src.name == "-":
        return None
    try:
        fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    f = open(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        return None
    return f


def ndjson_ranges(src: Source, range_bytes: int) -> tuple[list[Issue], Iterator[tuple[int, int, int]]] | None:
    """A clean NDJSON file cut into byte ranges of whole lines, so that workers (processes, Spark
    executors) read their own lines and nothing but offsets crosses between processes:
    (the file's reading issues, an iterator of (start, end, first 0-based line number)).

    Each range ends at the first line end at or after ``range_bytes``; None when the file must be
    read whole (not UTF-8, a NUL, empty...: ``ndjson_stream``'s first pass decides).
    """
    f = open_regular(src)
    if f is None:
        return None
    stream = ndjson_stream(f, src.name)
    if stream is None:
        f.close()
        return None

    def cuts() -> Iterator[tuple[int, int, int]]:
        with f:
            pos = 3 if stream[0] else 0  # a BOM, reported by the reader and skipped
            f.seek(pos)
            line = 0
            while block := f.read(range_bytes):
                if not block.endswith(b"\n"):
                    block += f.readline()  # to the end of the line the block stopped in
                yield pos, pos + len(block), line
                pos += len(block)
                line += block.count(b"\n")

    return stream[0], cuts()


def range_lines(path: Path, start: int, end: int, first_line: int) -> list[tuple[int, str]]:
    """The non-blank lines of bytes [start, end) of an NDJSON file with their 0-based numbers,
    as ``ndjson_stream`` gives them (lines end at b"\\n" only)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return list(_non_blank(data.split(b"\n"), first_line))


def _non_blank(raw_lines: Iterable[bytes], first: int) -> Iterator[tuple[int, str]]:
    """(number, text) of each line that is not blank, counting from ``first``: an NDJSON line as
    every reader of one sees it (its b"\\n" dropped, any other whitespace kept)."""
    for n, raw in enumerate(raw_lines, first):
        line = raw.decode("utf-8").removesuffix("\n")
        if line.strip():
            yield n, line


def ndjson_stream(f, name: str) -> tuple[list[Issue], Iterator[tuple[int, str]]] | None:
    """An NDJSON file read line by line, so memory stays flat whatever its size:
    (the file's reading issues, an iterator of (0-based line number, non-blank line)).

    A first pass checks the whole file as ``jsonsource.decode`` would (UTF-8, no NUL,
    not empty); a file that fails any check gives None and is read whole, so that it
    is reported exactly as before.
    """
    head = f.read(4)
    if (head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            or (len(head) >= 2 and (head[0] == 0 or head[1] == 0)) or (len(head) >= 4 and head[1:4] == b"\0\0\0")):
        f.seek(0)
        return None
    bom = head.startswith(codecs.BOM_UTF8)
    f.seek(3 if bom else 0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    content = False
    try:
        while block := f.read(STREAM_BLOCK):
            if b"\0" in block:
                raise ValueError("NUL")
            decoder.decode(block)
            content = content or bool(block.strip())
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, ValueError):
        content = False
    f.seek(0)
    if not content:
        return None
    issues = [BOM_WARNING.at(file=name) if name else BOM_WARNING] if bom else []

    def lines() -> Iterator[tuple[int, str]]:
        f.seek(3 if bom else 0)
        yield from _non_blank(f, 0)  # binary lines end at b"\n" only, as str.split("\n") does

    return issues, lines()
