"""The one lock helper (orchestrator/base/locks.py): what its holders can rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.base.locks import exclusive


def test_a_lock_file_its_holder_removed_is_not_what_the_next_holder_holds(tmp_path: Path) -> None:
    """store.locked removes a home it made for nothing, lock file included: a process
    that waited on that file must take the one at the path, or two would hold "it"."""
    import contextlib
    import fcntl
    import threading

    path = tmp_path / "home" / ".fleet.lock"
    waiting, held = threading.Event(), threading.Event()
    inodes: list[int] = []

    def next_holder() -> None:
        waiting.set()
        with exclusive(path):
            inodes.append(path.stat().st_ino)
            held.set()
            release.wait(10)

    release = threading.Event()
    with exclusive(path):
        first = path.stat().st_ino
        thread = threading.Thread(target=next_holder)
        thread.start()
        waiting.wait(10)
        path.unlink()
        with contextlib.suppress(OSError):  # as locks._unmake: the waiter may have made it again
            path.parent.rmdir()
    assert held.wait(10)
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the file there now is really held
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        release.set()
        thread.join(10)
    assert len(inodes) == 1 and first  # held after its wait, on the file at the path
