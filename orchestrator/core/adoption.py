"""Which host dirs a profile may use, and whether the gateway's user can write one.

Pure: the caller gathers the facts of the host (every user's home, orch's home, a
dir's owner, mode and ACL) and passes them in, so each decision is a plain function
over resolved paths and numbers, tested without touching the host. A dir orch
mounts read-write into a container and may mark, back up or chown must never be
a system tree, a home or orch's own files: a mistake there locks users out of
the host or hands its secrets to a container.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

# Trees of the operating system: refused themselves and everything below them.
# The top-level library dirs count as well.
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/run")
LIB_DIRS = frozenset({"/lib", "/lib32", "/lib64", "/libx32"})

# Dirs refused themselves: what is below them may well be a user's or a service's
# own dir (/srv/openclaw, /var/lib/openclaw), these never are.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/home",
        "/root",
        "/tmp",
        "/opt",
        "/srv",
        "/mnt",
        "/media",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/var/spool",
        "/var/tmp",
    }
)

# Below orch's home, profile dirs may only live in profiles/NAME/...: the rest holds
# the fleet file, every token, backups and the registry of what orch made.
PROFILES_DIR = "profiles"


class HostRoots(NamedTuple):
    """What of this host no profile dir may be: resolved paths, gathered by the caller.

    `homes` maps every user's home dir to who lives there ("alice", "root").
    """

    orch_home: str
    homes: Mapping[str, str] = MappingProxyType({})


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _contains(path: str, other: str) -> bool:
    """`other` is strictly below `path`."""
    return other != path and _inside(other, path)


def forbidden_reason(path: str, roots: HostRoots) -> str | None:
    """Why `path` (absolute, symlinks and `..` resolved) can never be a profile dir,
    as the end of a sentence; None when it may be one."""
    if path == "/":
        return "the root of the filesystem"
    top = "/" + path.split("/")[1]
    trees = [*SYSTEM_TREES, top] if top in LIB_DIRS else SYSTEM_TREES
    for tree in trees:
        if _inside(path, tree):
            return f"the system tree {tree}" if path == tree else f"inside the system tree {tree}"
    home = roots.orch_home
    if path == home:
        return "orch's own home"
    if path in roots.homes:
        return f"the home dir of {roots.homes[path]}"
    if _contains(path, home):
        return f"a dir that contains orch's home {home}"
    if _contains(home, path):
        parts = path[len(home) + 1 :].split("/")
        if parts[0] != PROFILES_DIR or len(parts) < 3:
            return (
                f"inside orch's home {home} but not in {PROFILES_DIR}/NAME/"
                " (orch's own files: the fleet file, tokens, backups)"
            )
    for user_home, who in roots.homes.items():
        if _contains(path, user_home):
            return f"a dir that contains the home dir of {who} ({user_home})"
    return "a system dir" if path in SYSTEM_DIRS else None


# --- who may write a dir ------------------------------------------------------------------

RWX = 0o7

# Tags of a POSIX.1e access ACL entry (linux/posix_acl.h).
ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20

# One ACL entry: (tag, perm bits rwx as 0..7, uid or gid for ACL_USER / ACL_GROUP).
AclEntry = tuple[int, int, int]


def allows(
    uid: int,
    gid: int,
    owner: tuple[int, int],
    mode: int,
    acl: Iterable[AclEntry] = (),
    want: int = RWX,
) -> bool:
    """Whether user uid (primary group gid) has the `want` bits on an inode of that
    owner, mode and access ACL, checked in the kernel's order: owner, named users,
    groups, others. Root gets no pass: the gateway runs with every capability
    dropped, so even uid 0 there has no CAP_DAC_OVERRIDE."""
    entries = list(acl)
    owner_uid, owner_gid = owner
    if uid == owner_uid:
        return (mode >> 6) & want == want
    if not entries:
        bits = (mode >> 3) & RWX if gid == owner_gid else mode & RWX
        return bits & want == want
    mask = next((perm for tag, perm, _ in entries if tag == ACL_MASK), RWX)
    for tag, perm, who in entries:
        if tag == ACL_USER and who == uid:
            return perm & mask & want == want
    groups = [
        perm
        for tag, perm, who in entries
        if (tag == ACL_GROUP_OBJ and gid == owner_gid) or (tag == ACL_GROUP and who == gid)
    ]
    if groups:
        return any(perm & mask & want == want for perm in groups)
    other = next((perm for tag, perm, _ in entries if tag == ACL_OTHER), mode & RWX)
    return other & want == want
