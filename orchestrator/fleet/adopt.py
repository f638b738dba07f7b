"""Host dirs a profile uses: which orch created, which it adopted, and what it may
change in them.

orch chowns and deletes only what it created. A dir that was there before (the
user's `~/.openclaw-rescue`, a workspace) is adopted: orch writes its marker and
manages `openclaw.json` in it, and changes its owner or mode only when asked with
`--chown`, walking the tree without following symlinks or crossing into another
filesystem. The rules are pure, in orchestrator.core.adoption; this module reads
the host for them and acts.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from orchestrator.core.adoption import AclEntry, HostRoots, allows
from orchestrator.core.model import Profile
from orchestrator.core.paths import (
    ADOPTED,
    CREATED,
    MARKER_FILE,
    created_by_orch,
    default_dir,
    parse_marker,
)
from orchestrator.core.problem import Problem
from orchestrator.errors import OrchError

ACL_XATTR = "system.posix_acl_access"
DIR_MODE = 0o700


def host_roots(home: Path) -> HostRoots:
    """Every user's home (the passwd database, and $HOME) and orch's home, resolved."""
    who: dict[str, list[str]] = {}
    for entry in pwd.getpwall():
        if entry.pw_dir.startswith("/"):
            who.setdefault(os.path.realpath(entry.pw_dir), []).append(entry.pw_name)
    homes = {path: "user " + ", ".join(names) for path, names in who.items()}
    homes.setdefault(os.path.realpath(os.path.expanduser("~")), "you ($HOME)")
    return HostRoots(orch_home=os.path.realpath(home), homes=homes)


def read_marker(path: Path) -> tuple[str | None, str | None]:
    """(profile, origin) of the marker in `path`; (None, None) when there is none."""
    try:
        return parse_marker((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None, None


def orch_created(path: Path, name: str, kind: str, home: Path) -> bool:
    """Whether orch created this dir for profile `name` (so may chown or delete it)."""
    marked, origin = read_marker(path)
    return marked == name and created_by_orch(origin, path, default_dir(home, name, kind))


class DirPlan(NamedTuple):
    """What setup will do with one profile dir, decided before anything is written."""

    kind: str
    path: Path
    origin: str  # CREATED (new, or orch's own already) or ADOPTED
    take_over: bool = False  # --chown: hand the adopted tree to the gateway's user


def plan_dirs(
    profile: Profile, dirs: list[tuple[str, Path]], home: Path, chown: bool
) -> tuple[list[DirPlan], list[Problem]]:
    """Each dir's plan, and every reason to refuse one (all at once, nothing written):
    a file where a dir should be; an adopted dir owned by another user, or one the
    gateway's user cannot write, unless `chown`."""
    plans, problems = [], []
    for kind, path in dirs:
        if not path.exists():
            plans.append(DirPlan(kind, path, CREATED))
        elif not path.is_dir():
            problems.append(
                _problem(
                    "dir-not-a-dir",
                    profile,
                    kind,
                    path,
                    "is not a dir",
                    f"give orch setup {profile.name} --{kind}-dir a dir, or remove the file",
                )
            )
        elif orch_created(path, profile.name, kind, home):
            plans.append(DirPlan(kind, path, CREATED))
        else:
            given = getattr(profile.dirs, kind)
            problems += _adoption_problems(profile, kind, given, path, chown)
            plans.append(DirPlan(kind, path, ADOPTED, take_over=chown))
    return plans, problems


def _you() -> set[int]:
    """The uids a dir may belong to without being another user's: root and whoever
    runs orch (also the user behind sudo)."""
    uids = {0, os.geteuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if sudo.isdigit():
        uids.add(int(sudo))
    return uids


def _adoption_problems(
    profile: Profile, kind: str, given: Path | None, path: Path, chown: bool
) -> list[Problem]:
    st = os.stat(path)
    uid, gid = profile.uid, profile.gid
    quoted = shlex.quote(str(path))
    chown_cmd = f"chown -R {uid}:{gid} {quoted}"
    if chown:
        if given is not None and os.path.abspath(os.path.expanduser(given)) != str(path):
            return [
                _problem(
                    "dir-chown-symlink",
                    profile,
                    kind,
                    path,
                    f"is reached through a symlink ({given}): --chown changes owners only"
                    " of a dir named as it is",
                    f"name the dir itself: orch setup {profile.name} --{kind}-dir {quoted}"
                    " --chown --force",
                )
            ]
        if os.geteuid() != 0 and st.st_uid != uid:
            return [
                _problem(
                    "dir-chown-needs-root",
                    profile,
                    kind,
                    path,
                    f"is owned by uid {st.st_uid}: only root can give it to uid {uid}",
                    f"run the same orch setup as root, or `sudo {chown_cmd}` first",
                )
            ]
        return []
    if st.st_uid not in _you() | {uid}:
        return [
            _problem(
                "dir-other-user",
                profile,
                kind,
                path,
                f"belongs to {_user(st.st_uid)}, not to you, root or the gateway's user {uid}:"
                " orch does not take over another user's dir",
                f"if it is meant for this gateway: add --chown (gives it and all in it to"
                f" {uid}:{gid}, symlinks not followed), or run `{chown_cmd}` yourself",
            )
        ]
    if allows(uid, gid, (st.st_uid, st.st_gid), st.st_mode, read_acl(path)):
        return []
    if st.st_uid == uid:
        fix = f"`chmod u+rwx {quoted}`, or add --chown (sets its mode to 0700)"
    else:
        fix = (
            f"`{chown_cmd}`, or `setfacl -R -m u:{uid}:rwX {quoted}` (Debian's acl package),"
            " or add --chown to let orch do the first (symlinks not followed)"
        )
    mode = stat.S_IMODE(st.st_mode)
    return [
        _problem(
            "dir-not-writable",
            profile,
            kind,
            path,
            f"(owner {st.st_uid}:{st.st_gid}, mode {mode:04o}) is not writable by the"
            f" gateway's user {uid}:{gid}",
            fix,
        )
    ]


def _problem(code: str, profile: Profile, kind: str, path: Path, what: str, hint: str) -> Problem:
    return Problem(
        code=code,
        message=f"{profile.name} {kind} dir {path} {what}",
        owners=(profile.name,),
        hint=hint,
        paths=(str(path),),
    )


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def read_acl(path: Path) -> list[AclEntry]:
    """The access ACL of `path` as (tag, perm, id) entries; [] when it has none."""
    try:
        raw = os.getxattr(path, ACL_XATTR, follow_symlinks=False)
    except OSError:
        return []
    # A 4-byte version header, then 8-byte entries: u16 tag, u16 perm, u32 id.
    return [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]


# --- changing owners and modes -------------------------------------------------------------


@dataclass
class Journal:
    """Owners and modes changed so far, to put back if a later step of setup fails."""

    owners: list[tuple[str, int, int]] = field(default_factory=list)
    modes: list[tuple[str, int]] = field(default_factory=list)

    def undo(self) -> None:
        for path, mode in reversed(self.modes):
            with contextlib.suppress(OSError):
                os.chmod(path, mode)
        for path, uid, gid in reversed(self.owners):
            with contextlib.suppress(OSError):
                os.lchown(path, uid, gid)


class HostChange(NamedTuple):
    """A change `--chown` made to an adopted dir, said exactly in the output."""

    path: str
    what: str  # owner | mode
    before: tuple[str, ...]
    after: str
    entries: int = 1

    def describe(self) -> str:
        if self.what == "mode":
            return f"mode of {self.path}: {self.before[0]} -> {self.after}"
        return (
            f"owner of {self.entries} entries in {self.path}: {', '.join(self.before)}"
            f" -> {self.after} (symlinks not followed)"
        )

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "what": self.what,
            "before": list(self.before),
            "after": self.after,
            "entries": self.entries,
        }


def hand_over(path: Path, uid: int, gid: int, journal: Journal) -> HostChange | None:
    """lchown every entry of the tree at `path` that uid:gid does not own yet, without
    following a symlink or entering another filesystem (a mount inside is left alone).
    orch's own marker keeps its owner: the gateway has no business changing it."""
    top = os.lstat(path)
    if stat.S_ISLNK(top.st_mode):
        raise OrchError(f"{path} is a symlink: orch changes no owner through one")
    marker = os.path.join(path, MARKER_FILE)
    before: set[str] = set()
    entries = 0
    for entry, st in _walk(str(path), top.st_dev):
        if entry != marker and (st.st_uid, st.st_gid) != (uid, gid):
            os.lchown(entry, uid, gid)
            journal.owners.append((entry, st.st_uid, st.st_gid))
            before.add(f"{st.st_uid}:{st.st_gid}")
            entries += 1
    if not entries:
        return None
    return HostChange(str(path), "owner", tuple(sorted(before)), f"{uid}:{gid}", entries)


def _walk(top: str, device: int):
    """(path, lstat) of `top` and everything below it on the same filesystem; a
    symlink is yielded as itself and never followed."""
    yield top, os.lstat(top)

    def fail(exc: OSError) -> None:
        raise exc

    for root, dirnames, filenames in os.walk(top, onerror=fail):
        below = []
        for name in dirnames + filenames:
            entry = os.path.join(root, name)
            st = os.lstat(entry)
            if st.st_dev != device:
                continue
            yield entry, st
            if stat.S_ISDIR(st.st_mode):
                below.append(name)
        dirnames[:] = [d for d in dirnames if d in below]


def set_dir_mode(path: Path, journal: Journal) -> HostChange | None:
    """The dir itself (not what is in it) to 0700; None when it was already."""
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode) or mode == DIR_MODE:
        return None
    os.chmod(path, DIR_MODE)
    journal.modes.append((str(path), mode))
    return HostChange(str(path), "mode", (f"{mode:04o}",), f"{DIR_MODE:04o}")
