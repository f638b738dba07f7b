"""Small helpers shared by the unit tests."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from orchestrator.core.model import Fleet, Profile
from orchestrator.fleet.store import LOCK_FILE


def fleet_of(*profiles: Profile) -> Fleet:
    return Fleet(profiles={p.name: p for p in profiles})


def save_with_files(home: Path, fleet: Fleet) -> Fleet:
    """Save `fleet` and give each profile the files `orch check` asks for (dirs, an
    openclaw.json, a 0600 token), as `orch setup` would, without its other checks."""
    import json

    from orchestrator.core.paths import profile_dirs
    from orchestrator.fleet.openclaw_config import managed_config
    from orchestrator.fleet.store import save_fleet

    save_fleet(home, fleet)
    for profile in fleet.profiles.values():
        dirs = profile_dirs(profile, home)
        for _, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
        dirs.config_file.write_text(json.dumps(managed_config(profile)) + "\n")
        dirs.secrets.mkdir(parents=True, exist_ok=True)
        dirs.token_file.write_text("t0ken\n")
        dirs.token_file.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(dirs.token_file, profile.uid, profile.gid)
    return fleet


def gateway_dir(path: Path, files: dict[str, str] | None = None) -> Path:
    """A user's existing dir that the gateway's user can write, as `orch setup` wants
    an adopted dir: made here with `files` (name -> text) in it and, as root, owned
    by uid 1000 (the container user)."""
    path.mkdir(parents=True)
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)
    return path


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


# (mode, uid, gid, sha256 of the content, or of a symlink's target) of one path.
Entry = tuple[int, int, int, str]


def tree_state(root: Path) -> dict[str, Entry]:
    """Every path under `root`, `root` itself included, as `Entry`, following no
    symlink: what a test compares before and after to prove nothing changed, or
    exactly what did (owner, mode or bytes)."""

    def entry(path: str) -> Entry:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            data = Path(path).read_bytes()
        else:
            data = b""
        return st.st_mode, st.st_uid, st.st_gid, hashlib.sha256(data).hexdigest()

    out = {".": entry(str(root))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = entry(path)
    return out
