"""Small helpers shared by the unit tests."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.profile import Fleet, Profile
from orchestrator.store import LOCK_FILE


def fleet_of(*profiles: Profile) -> Fleet:
    return Fleet(profiles={p.name: p for p in profiles})


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every path under `root` but the lock file: content and mtime of files, mode of all.

    A dir's mtime is left out: it moves whenever an entry is added and removed again.
    """
    out: dict[str, tuple[bytes | None, int, int]] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if name == LOCK_FILE:
                continue
            st = path.lstat()
            if path.is_dir():
                out[str(path.relative_to(root))] = (None, st.st_mode, 0)
            else:
                out[str(path.relative_to(root))] = (path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return out
