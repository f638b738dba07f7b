"""The dirs orch keeps things in, as the environment names them, checked before a
command reads or writes anything: its home (ORCH_HOME, else XDG_DATA_HOME or HOME
through platformdirs), the host registry (ORCH_REGISTRY_DIR) and the schema cache
(ORCH_CACHE_DIR, else XDG_CACHE_HOME or HOME).

A variable pointing at a regular file, at the kernel's proc or sys trees, or at a
dir the user may not read (or write, for a command that writes) is bad input: one
clear error naming the variable, its value and the fix, before anything is made,
instead of a traceback from the first mkdir or lock.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path

from orchestrator.base.host import default_home
from orchestrator.errors import UsageError
from orchestrator.fleet.registry import DEFAULT_REGISTRY, REGISTRY_ENV, registry_dir
from orchestrator.fleet.store import orch_home

HOME_ENV = "ORCH_HOME"
CACHE_ENV = "ORCH_CACHE_DIR"

#: Filesystems the kernel makes up (what /proc/self/mountinfo calls them): a path on
#: one is never a place for files, whatever its permissions say.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
    }
)


def checked_places(writes: bool = True) -> Path:
    """orch's home, after checking it, the host registry and the cache dir; `writes`:
    the command may write (its home and the registry must be writable then)."""
    home_var = _source(HOME_ENV, "XDG_DATA_HOME")
    home_fix = (
        f"set {HOME_ENV} to a dir of your own (made when missing), or unset it for the"
        f" default {default_home()}"
        if home_var == HOME_ENV
        else f"point {home_var} at a dir, or set {HOME_ENV} to one"
    )
    home = checked_dir(orch_home(), "orch's home", home_var, home_fix, writes)
    checked_registry(writes)
    cache_var = _source(CACHE_ENV, "XDG_CACHE_HOME")
    fix = f"point {cache_var} at a dir, or unset it"
    # Only a cache: one orch may not write costs time, never a command.
    checked_dir(cache_dir(), "orch's cache", cache_var, fix, writes=False)
    return home


def checked_registry(writes: bool = True) -> Path:
    var = REGISTRY_ENV if os.environ.get(REGISTRY_ENV) else None
    fix = (
        f"set {REGISTRY_ENV} to a dir every user of orch may write (made when missing;"
        f" {DEFAULT_REGISTRY} by default)"
    )
    return checked_dir(registry_dir(), "the host registry", var, fix, writes)


def cache_dir() -> Path:
    """`$ORCH_CACHE_DIR`, else the user's cache dir (`~/.cache/orch` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().absolute()
    from platformdirs import user_cache_dir  # platformdirs: only when no $XDG_CACHE_HOME says where

    return Path(user_cache_dir("orch"))


def _source(own: str, xdg: str) -> str:
    """The variable a dir came from, for messages: orch's own, else the XDG one (which
    platformdirs, as the XDG spec says, ignores unless absolute), else HOME."""
    if os.environ.get(own):
        return own
    return xdg if os.path.isabs(os.environ.get(xdg, "")) else "HOME"


def checked_dir(path: Path, what: str, var: str | None, fix: str, writes: bool) -> Path:
    """`path` if it is, or can be made, a dir orch may use; else UsageError naming
    `what` it is, the variable `var` it came from (None: a built-in default) and `fix`."""
    where = f"{what} {path}" + (f" (from {var}={os.environ.get(var, '')})" if var else "")
    try:
        real = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"{where}: cannot be resolved: {exc}", hint=fix) from None
    existing, st = _nearest_existing(real, where, fix)
    if not stat.S_ISDIR(st.st_mode):
        kind = _kind(st.st_mode)
        if existing == real:
            message = f"{where} is a {kind}, not a dir"
        else:
            message = f"{where}: {existing} is a {kind}, so no dir can be made under it"
        raise UsageError(message, hint=fix)
    fs = _filesystem(str(existing))
    if fs in PSEUDO_FILESYSTEMS:
        raise UsageError(
            f"{where} is on the kernel's {fs} filesystem, where no files can be kept",
            hint=fix,
        )
    if existing == real and not os.access(existing, os.R_OK | os.X_OK):
        raise UsageError(f"{where} is not readable by you ({_who(st)})", hint=fix)
    if writes and not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == real else f" ({existing}, where it would be made)"
        raise UsageError(f"{where} is not writable by you{made} ({_who(st)})", hint=fix)
    return path


def _nearest_existing(real: Path, where: str, fix: str) -> tuple[Path, os.stat_result]:
    """The deepest existing path of `real` and its stat (the dir itself, else the
    parent it would be made in)."""
    current = real
    while True:
        try:
            return current, os.stat(current)
        except (FileNotFoundError, NotADirectoryError):
            if current.parent == current:
                raise UsageError(f"{where}: no part of it exists", hint=fix) from None
            current = current.parent
        except OSError as exc:
            message = f"{where}: cannot look at {current}: {exc.strerror}"
            raise UsageError(message, hint=fix) from None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _who(st: os.stat_result) -> str:
    mode = stat.S_IMODE(st.st_mode)
    return f"you are uid {os.geteuid()}; it is uid {st.st_uid}'s, mode {mode:04o}"


def _filesystem(path: str) -> str | None:
    """The type of the filesystem `path` is on: that of the deepest mount point above it."""
    best, kind = "", None
    for point, fstype in _mounts():
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # later lines cover earlier ones
            best, kind = point, fstype
    return kind


@functools.cache
def _mounts() -> tuple[tuple[str, str], ...]:
    """(mount point, filesystem type) of this process's mounts; none when unreadable."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ()
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and right:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            out.append((point, right.split()[0]))
    return tuple(out)
