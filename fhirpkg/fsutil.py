"""Files written so that a reader never sees half of one: a temporary sibling, then a rename."""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_writer(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file for ``path``, written as a temporary sibling and renamed over ``path`` when
    the block ends without an exception (else removed): ``path`` is whole or as it was.

    A path that names something other than a regular file (``-o /dev/null``, ``/dev/stdout``, a
    FIFO) is written in place: renaming over it would replace the device with a file."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        special = not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)
    except OSError:  # not there yet (or unreadable: the rename below reports that)
        special = False
    if special:
        with open(path, "wb") as f:
            yield f
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    return rc == 0


def swap_in_directory(staged: Path, target: Path) -> None:
    """Make ``staged`` become ``target`` so that a reader sees the old or the new
    folder, never a mix: an atomic exchange where the OS offers one, otherwise
    two renames with the old folder kept until the new one is in place."""
    import shutil
    staged, target = Path(staged), Path(target)
    if not target.exists():
        os.replace(staged, target)
        return
    if _renameat2_exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the previous build
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing) while the block runs.

    The kernel drops the lock when its holder dies, so another process can tell a
    live holder from a killed one by trying the lock without blocking.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd = None

    def __enter__(self):
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self._fd)  # closing the descriptor releases the lock
        return False


class DirectoryLock(FileLock):
    """An exclusive lock next to a folder, so two builds never write it at once."""

    def __init__(self, target: Path | str):
        super().__init__(Path(target).with_name(f".{Path(target).name}.lock"))


def cache_root() -> Path:
    """fhirpkg's cache folder (compiled definitions, FHIRPath parse trees): ``$FHIRPKG_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/fhirpkg``, else ``~/.cache/fhirpkg``."""
    env = os.environ.get("FHIRPKG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "fhirpkg"
