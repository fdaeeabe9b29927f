"""The build's per-resource cache: work done for one resource is reused while nothing it used changed.

Rebuilding after one edited resource should redo that resource's work, not the whole package's.
Each piece of work (validating a resource, laying it out, converting it to R4B or R4, writing its
JSON, checking a generated narrative) is stored under a digest of what it is a function of:

- the resource's own source text (and file, since issues name it);
- the *context*: fhirpkg's code, the loaded definitions, the project's manifest and its own
  conformance resources (a changed profile or value set may change every resource's verdict);
- the other resources it *read* while running (a reference it resolved, a Citation whose text it
  copied): recorded as (lookup, digest of what was found) and checked again before the work is reused.

The output is the same bytes as a clean build (tests/publish/test_incremental.py checks it).  The cache
is one pickle per project folder under ``fsutil.cache_root()/build``, written atomically at the end of
a build and holding only what that build used; a damaged, foreign or outdated file is ignored.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from fhirpkg.fsutil import cache_root

#: Bump when what is stored changes shape.
FORMAT = 3


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode("utf-8", "surrogatepass") if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The digest of all fhirpkg's Python sources (its version among them): new code never reuses
    old results."""
    root = Path(__file__).resolve().parent.parent
    parts: list[str | bytes] = []
    for src in sorted(root.rglob("*.py")):
        parts += [str(src.relative_to(root)), src.read_bytes()]
    return digest(*parts)


@dataclass
class Entry:
    reads: tuple[tuple[str, str | None], ...]  # (lookup, digest of what it found, None: nothing)
    blob: bytes | None = None  # the pickled value, as stored (None: not pickled yet)
    value: object = None


class BuildCache:
    """Entries of the previous build, and those of this one (what :meth:`save` writes).

    Values stay pickled until asked for, so loading the cache, and saving what was reused, costs
    little more than reading and writing the file.
    """

    def __init__(self, path: Path | None = None, context: str = ""):
        self.path = path
        self.context = context
        self._old: dict[tuple[str, str], Entry] = {}
        self._new: dict[tuple[str, str], Entry] = {}
        self.reused: Counter = Counter()
        self.done: Counter = Counter()

    @classmethod
    def for_project(cls, root: str | Path, folder: Path | None = None) -> "BuildCache":
        """The cache of the project at ``root`` (``folder``: where caches live), holding its last
        build's entries until :meth:`bind` says whether they still apply."""
        where = (folder or cache_root() / "build") / f"{digest(str(Path(root).resolve()))[:24]}.pickle"
        cache = cls(where)
        try:
            with open(where, "rb") as f:
                data = pickle.load(f)
            if data.get("format") == FORMAT:
                cache.context = data["context"]
                cache._old = {k: Entry(reads, blob) for k, (reads, blob) in data["entries"].items()}
        except Exception:  # noqa: BLE001 - no cache, or one we cannot trust: build from scratch
            cache._old = {}
        return cache

    def bind(self, defs, project) -> None:
        """Set what every entry depends on: fhirpkg's code, the definitions, the project's manifest
        and its conformance resources (profiles, value sets, code systems).  Entries stored under
        another context are dropped."""
        conformance = [r for r in project.resources if r.type in ("StructureDefinition", "ValueSet", "CodeSystem")]
        manifest = project.manifest.path
        context = digest(code_fingerprint(), getattr(defs, "cache_key", None) or repr(list(defs.packages)),
                         manifest.read_bytes() if manifest.is_file() else b"",
                         *(part for r in conformance for part in (str(r.path), r.doc.text)))
        if context != self.context:
            self._old = {}
        self.context = context

    def get(self, kind: str, key: str, current: Callable[[str], str | None] | None = None):
        """The stored value, or None when there is none or something it read has changed since."""
        entry = self._new.get((kind, key)) or self._old.get((kind, key))
        if entry is None or (entry.reads and (current is None or any(current(l) != d for l, d in entry.reads))):
            return None
        if entry.value is None:
            try:
                entry.value = pickle.loads(entry.blob)
            except Exception:  # noqa: BLE001 - a damaged entry is work to redo, not an error
                return None
        self._new[(kind, key)] = entry
        self.reused[kind] += 1
        return entry.value

    def recall(self, kind: str, key: str, compute: Callable[[], tuple[object, Iterable[str]]],
               current: Callable[[str], str | None] | None = None) -> tuple[object, bool]:
        """(value, reused): the stored value while still good (see :meth:`get`), else ``compute()``'s,
        stored with what it looked up (``compute`` gives the value and its noted lookups, which
        ``current`` turns into digests)."""
        found = self.get(kind, key, current)
        if found is not None:
            return found, True
        value, reads = compute()
        self.put(kind, key, value, [(read, current(read)) for read in reads] if current is not None else ())
        return value, False

    def put(self, kind: str, key: str, value, reads: Iterable[tuple[str, str | None]] = ()) -> None:
        self._new[(kind, key)] = Entry(tuple(sorted(reads, key=lambda r: (r[0], r[1] or ""))), None, value)
        self.done[kind] += 1

    def save(self) -> None:
        """Write this build's entries (atomically: a reader sees the old file or the new one)."""
        if self.path is None:
            return
        entries = {}
        for k, e in self._new.items():
            try:
                entries[k] = (e.reads, e.blob if e.blob is not None else pickle.dumps(e.value, pickle.HIGHEST_PROTOCOL))
            except Exception:  # noqa: BLE001 - a value that cannot be stored is work to redo next time
                continue
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".build-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    pickle.dump({"format": FORMAT, "context": self.context, "entries": entries}, f,
                                protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass  # a read-only cache folder costs speed, never the build

    def summary(self) -> str:
        kinds = sorted(set(self.reused) | set(self.done))
        parts = [f"{kind} {self.reused[kind]}/{self.reused[kind] + self.done[kind]}" for kind in kinds]
        return "cache: reused " + (", ".join(parts) if parts else "nothing")


def now_finding(looked_up: Callable[[str], object], digests: dict[int, str]) -> Callable[[str], str | None]:
    """What a noted lookup finds today, as a digest (``digests``: id of each project resource object ->
    its digest; None: nothing): what :meth:`BuildCache.get` compares with the digests stored."""
    def now(read: str) -> str | None:
        found = looked_up(read)
        return None if found is None else digests.get(id(found), "?")
    return now


class Texts:
    """The JSON text of cached resources, handed to and collected from ``serialize.dumps``'s cache.

    ``dumps(..., cache=texts.table)`` writes each resource object once; objects registered here
    under a key get their text of the last build put in that table first, and give the text this
    build wrote back to the build cache.
    """

    KIND = "json"

    def __init__(self, cache: BuildCache | None):
        self.cache = cache
        self.table: dict = {}
        self._keys: dict[int, tuple[str, str | None]] = {}  # id(resource) -> (key, text read); resources outlive it

    def register(self, resource: dict, key: str, reuse: bool = True) -> None:
        """Serialise ``resource`` under ``key``; ``reuse=False`` when the resource was just recomputed
        (its stored text may be an older version's)."""
        if self.cache is None:
            return
        text = self.cache.get(self.KIND, key) if reuse else None
        self._keys[id(resource)] = (key, text)
        if text is not None:
            self.table[(id(resource), 0)] = (text, resource)

    def store(self) -> None:
        if self.cache is None:
            return
        for oid, (key, read) in self._keys.items():
            hit = self.table.get((oid, 0))
            if hit is not None and hit[0] != read:
                self.cache.put(self.KIND, key, hit[0])
