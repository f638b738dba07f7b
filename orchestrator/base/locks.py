"""The one file-lock helper: fleet writes, the host registry, engine start, image builds.

flock, because the kernel drops it when the holder dies: a killed orch never
leaves a stale lock behind. Re-entrant within one thread, because a command that
holds a lock (setup holds the fleet and the registry) calls helpers that take it
again, and a second flock on a new descriptor of the same file would wait forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

_held: dict[tuple[str, int], int] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def exclusive(path: Path, mode: int = 0o600) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created with `mode` if missing)."""
    key = (os.path.abspath(path), threading.get_ident())
    with _guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    fd = _locked_fd(path, mode)
    try:
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_in(dir_: Path, name: str, mode: int = 0o600) -> Iterator[None]:
    """`exclusive` on `dir_/name`, making `dir_` (and its parents) when missing. Dirs
    made here that hold nothing but the lock when the holder is done (a failed first
    command in a fresh home or registry) are removed again: bad input leaves no trace."""
    made = _missing(dir_)
    with exclusive(dir_ / name, mode):
        try:
            yield
        finally:
            if made:
                _unmake(dir_, name, made)


def _missing(path: Path) -> list[Path]:
    """`path` and its parents that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path.parent != path:
        out.append(path)
        path = path.parent
    return out


def _unmake(dir_: Path, name: str, made: list[Path]) -> None:
    """Remove `made` when `dir_` holds only empty lock files (its own, or another lock
    taken in the same dir, e.g. a registry dir that is also the home)."""
    with contextlib.suppress(OSError):
        entries = list(dir_.iterdir())
        if not all(_is_lock_file(p) for p in entries) or name not in [p.name for p in entries]:
            return
        for entry in entries:
            entry.unlink()
        for path in made:
            path.rmdir()  # stops at the first that is not empty


def _is_lock_file(path: Path) -> bool:
    st = path.lstat()
    return path.name.endswith(".lock") and stat.S_ISREG(st.st_mode) and st.st_size == 0


def _locked_fd(path: Path, mode: int) -> int:
    """A descriptor of `path` holding its flock. The holder before us may have removed
    the file (store.locked removes a home it made for nothing): a lock on that
    unlinked file excludes no one, so take the file that is there now, making its dir
    again when that went too."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        except (FileNotFoundError, FileExistsError):
            if path.parent.exists() and not path.parent.is_dir():
                raise  # a file where the dir belongs: not a race
            continue  # that holder removed the dir while we made or opened it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, there = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
