"""Adding, changing and removing profiles: the fleet file plus each profile's dirs.

Everything is decided before anything is written: the new fleet is checked,
dir ownership is verified, and only then are dirs, token, config and fleet
file written. If a write fails, what this call created is removed again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.core.check import check_fleet, fleet_reservations, problems_for
from orchestrator.core.model import Dirs, Fleet, Profile, validate_ip
from orchestrator.core.paths import MARKER_FILE, ProfileDirs, profile_dirs, profile_root
from orchestrator.core.ports import DEFAULT_BASE, MAX_BASE, Reservation, nearest_free_base
from orchestrator.errors import CheckFailed, OrchError, UsageError
from orchestrator.fleet import registry
from orchestrator.fleet.openclaw_config import ensure_token, planned_config, write_config
from orchestrator.fleet.store import atomic_write, load_fleet, locked, save_fleet

if TYPE_CHECKING:
    pass


CONTAINER_UID = 1000
PORT_START_ENV = "ORCH_PORT_START"


@dataclass(frozen=True)
class SetupRequest:
    """What the user asked for; None means "keep what the profile has, else default"."""

    name: str
    port: int | str | None = None  # an int, "auto" or None
    bind_ip: str | None = None
    image: str | None = None
    config_dir: Path | None = None
    state_dir: Path | None = None
    workspace_dir: Path | None = None
    publish: tuple[str, ...] | None = None
    rescues: str | None = None
    allow_privileged_ports: bool | None = None
    browser: bool | None = None
    cpus: float | None = None
    read_only_root: bool | None = None


@dataclass
class SetupResult:
    profile: Profile
    dirs: ProfileDirs
    action: str  # created | updated | unchanged
    changes: list[str] = field(default_factory=list)
    config_backup: Path | None = None


def default_user() -> str:
    """The invoking user where it is not root, else the official image's uid 1000."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        return f"{CONTAINER_UID}:{CONTAINER_UID}"
    return f"{uid}:{gid}"


# What the live host holds, for `--port auto`: (address, first, last) intervals, all
# containers but the named profile's own. Given by the caller (the Docker layer knows
# how to look); without it, auto picks around the host registry and native profiles.
LiveView = Callable[[Path, str], list[tuple[str, int, int]]]


def setup(
    home: Path, request: SetupRequest, force: bool = False, live: LiveView | None = None
) -> SetupResult:
    # The registry lock too: a base picked here must be recorded before another
    # fleet of the host picks its own (orchestrator.registry).
    with locked(home), registry.locked():
        fleet = load_fleet(home)
        existing = fleet.profiles.get(request.name)
        foreign = registry.foreign_reservations(home)
        profile = _build_profile(fleet, existing, request, home, foreign, live)
        changes = _differences(existing, profile)
        if existing and changes and not force:
            raise UsageError(
                f"profile '{request.name}' already exists with other settings: "
                + "; ".join(changes),
                hint="repeat with --force to change it, or pick another name",
            )
        candidate = fleet.with_profile(profile)
        problems = problems_for(check_fleet(candidate, home, foreign), [profile.name])
        if problems:
            raise CheckFailed(
                f"profile '{profile.name}' would collide with the fleet; nothing was changed",
                problems,
                hint=problems[0].hint,
            )
        dirs = profile_dirs(profile, home)
        _check_ownership(dirs, profile.name, candidate, force)
        wanted, config_changed = planned_config(profile, dirs)
        if existing == profile and not config_changed and _dirs_ready(dirs, profile):
            return SetupResult(profile, dirs, "unchanged")
        backup = _materialise(home, candidate, profile, dirs, wanted, config_changed)
        action = "updated" if existing else "created"
        return SetupResult(profile, dirs, action, changes, backup)


def _build_profile(
    fleet: Fleet,
    existing: Profile | None,
    req: SetupRequest,
    home: Path,
    foreign: list[Reservation],
    live: LiveView | None = None,
) -> Profile:
    base: dict[str, Any] = existing.model_dump() if existing else {"user": default_user()}
    base["name"] = req.name
    given = {
        "bind_ip": req.bind_ip,
        "image": req.image,
        "publish": req.publish,
        "rescues": req.rescues,
        "allow_privileged_ports": req.allow_privileged_ports,
        "browser": req.browser,
        "cpus": req.cpus,
        "read_only_root": req.read_only_root,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    if req.bind_ip is not None:
        # Before --port auto compares it with the fleet's addresses (and normalised:
        # "::0" is "::").
        try:
            base["bind_ip"] = validate_ip(req.bind_ip)
        except ValueError as exc:
            raise UsageError(f"bind_ip: {exc}", hint="see `orch setup --help`") from None
    dirs = dict(base.get("dirs") or {})
    for kind, value in (
        ("config", req.config_dir),
        ("state", req.state_dir),
        ("workspace", req.workspace_dir),
    ):
        if value is not None:
            dirs[kind] = Path(value).expanduser().absolute()
    base["dirs"] = Dirs(**dirs)
    if isinstance(req.port, int):
        base["port"] = req.port
    elif req.port == "auto" or "port" not in base:
        bind_ip = base.get("bind_ip") or "127.0.0.1"
        adopting = [Path(d) for d in dirs.values() if d is not None]
        held = live(home, req.name) if live else []
        host = _host_taken(fleet, home, foreign, adopting, held)
        base["port"] = _auto_port(fleet, req.name, bind_ip, host)
    try:
        return Profile.model_validate(base)
    except ValueError as exc:
        raise UsageError(_first_error(exc), hint="see `orch setup --help`") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg'].removeprefix('Value error, ')}"
    return str(exc)


def auto_port_start() -> int:
    """Where `--port auto` starts looking: $ORCH_PORT_START, else OpenClaw's 18789."""
    value = os.environ.get(PORT_START_ENV, "")
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_BASE else DEFAULT_BASE


def _host_taken(
    fleet: Fleet,
    home: Path,
    foreign: list[Reservation],
    adopting: list[Path],
    held: list[tuple[str, int, int]],
) -> list[Reservation]:
    """What else on the host a new base must avoid: other fleets and test runs (the
    registry), native OpenClaw profiles, and what the live host holds (`held`)."""
    adopted = [d for p in fleet.profiles.values() for _, d in profile_dirs(p, home).items()]
    taken = [*foreign, *registry.native_reservations(skip=[*adopted, *adopting])]
    taken += [Reservation(lo, hi, "the host", "in use", ip, True) for ip, lo, hi in held]
    return taken


def _auto_port(fleet: Fleet, name: str, bind_ip: str, host: Iterable[Reservation] = ()) -> int:
    """The lowest base at or above the start (18789) whose whole footprint is free:
    of the fleet, of what `host` says the rest of the host holds, and of the kernel's
    ephemeral ports."""
    own = [r for r in fleet_reservations(fleet.without(name))]
    taken = registry.taken_intervals([*own, *host], bind_ip) + registry.ephemeral_intervals()
    start = auto_port_start()
    base = nearest_free_base(taken, near=start, at_or_above=True)
    if base is None:
        raise UsageError(
            f"no free port footprint left at or above {start} on {bind_ip}",
            hint="pass --port N with a lower base, or another --bind-ip",
        )
    return base


def _differences(old: Profile | None, new: Profile) -> list[str]:
    if old is None:
        return []
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]


def _check_ownership(dirs: ProfileDirs, name: str, fleet: Fleet, force: bool) -> None:
    """Refuse a dir that another profile marked as its own, unless forced."""
    for kind, path in dirs.items():
        owner = _marker(path)
        if owner and owner != name and not force:
            state = "in the fleet" if owner in fleet.profiles else "removed from the fleet"
            raise UsageError(
                f"{kind} dir {path} belongs to profile '{owner}' ({state}); nothing was changed",
                hint=f"choose another --{kind}-dir, or pass --force to adopt it for '{name}'",
            )


def _marker(path: Path) -> str | None:
    try:
        return (path / MARKER_FILE).read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _dirs_ready(dirs: ProfileDirs, profile: Profile) -> bool:
    """Everything `orch check` asks of a profile's files is there (else setup repairs it)."""
    if not all(_marker(p) == profile.name for _, p in dirs.items()):
        return False
    try:
        st = dirs.token_file.stat()
    except OSError:
        return False
    owner_ok = os.geteuid() != 0 or st.st_uid == profile.uid
    return stat.S_IMODE(st.st_mode) == 0o600 and owner_ok and dirs.config_file.is_file()


def _materialise(
    home: Path,
    fleet: Fleet,
    profile: Profile,
    dirs: ProfileDirs,
    wanted: dict[str, Any],
    config_changed: bool,
) -> Path | None:
    """Create dirs, token, config and fleet entry; undo what was created on failure."""
    created: list[Path] = []
    # An adopted openclaw.json that orch rewrites: its bytes, put back on failure.
    original: bytes | None = None
    try:
        for _, path in dirs.items():
            _make_dir(path, profile, created)
            marker = path / MARKER_FILE
            if not marker.exists():
                marker.write_text(profile.name + "\n", encoding="utf-8")
                created.append(marker)
        _make_dir(dirs.secrets, profile, created)
        if ensure_token(profile, dirs):
            created.append(dirs.token_file)
        backup = None
        if config_changed:
            if dirs.config_file.exists():
                original = dirs.config_file.read_bytes()
            else:
                created.append(dirs.config_file)
            backup = write_config(profile, dirs, wanted)
            if backup:
                created.append(backup)
        save_fleet(home, fleet)
        return backup
    except OSError as exc:
        _undo(created, dirs.config_file, original)
        detail = f"{exc.strerror}: {exc.filename}" if exc.filename else (exc.strerror or str(exc))
        raise OrchError(
            f"cannot prepare profile '{profile.name}': {detail}",
            hint="check the permissions of that path; nothing was changed",
        ) from None
    except BaseException:
        _undo(created, dirs.config_file, original)
        raise


def _make_dir(path: Path, profile: Profile, created: list[Path]) -> None:
    """mkdir -p, recording each new level; the dir itself 0700, owned by the container user.

    An adopted dir whose owner is not the container user is handed over whole
    (as root), or the non-root gateway would hit EACCES on its first write.
    """
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for level in reversed(missing):
        level.mkdir(mode=0o700)
        created.append(level)
    os.chmod(path, 0o700)
    if os.geteuid() == 0 and os.stat(path).st_uid != profile.uid:
        _chown_tree(path, profile.uid, profile.gid)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirnames, filenames in os.walk(path):
        for entry in dirnames + filenames:
            os.chown(os.path.join(root, entry), uid, gid, follow_symlinks=False)


def _undo(created: list[Path], config_file: Path, original: bytes | None) -> None:
    """Remove what was created, newest first, and put back a rewritten openclaw.json."""
    if original is not None:
        with contextlib.suppress(OSError):
            atomic_write(config_file, original, mode=0o600)
    for path in reversed(created):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        except OSError:
            pass


@dataclass
class RemoveResult:
    profile: Profile
    purged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def remove(home: Path, name: str, purge: bool = False) -> RemoveResult:
    with locked(home):
        fleet = load_fleet(home)
        profile = fleet.get(name)
        rescuers = [p.name for p in fleet.profiles.values() if p.rescues == name]
        if rescuers:
            raise UsageError(
                f"profile '{name}' is rescued by {', '.join(rescuers)}; nothing was changed",
                hint=f"remove or change {rescuers[0]} first",
            )
        save_fleet(home, fleet.without(name))
        result = RemoveResult(profile)
        if purge:
            result.purged, result.kept = purge_dirs(profile, home)
        else:
            result.kept = [p for _, p in profile_dirs(profile, home).items() if p.exists()]
        return result


def purge_dirs(profile: Profile, home: Path) -> tuple[list[Path], list[Path]]:
    """Delete the profile's dirs that orch marked as its own, and its token.

    A dir without this profile's marker (adopted and since re-marked, or never
    ours) is kept and reported: purging must never delete someone else's files.
    """
    dirs = profile_dirs(profile, home)
    purged, kept = [], []
    for _, path in dirs.items():
        if _marker(path) == profile.name:
            shutil.rmtree(path)
            purged.append(path)
        elif path.exists():
            kept.append(path)
    if dirs.secrets.exists():
        shutil.rmtree(dirs.secrets)
        purged.append(dirs.secrets)
    root = profile_root(home, profile.name)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return purged, kept


def purge_profiles(home: Path, names: list[str]) -> list[str]:
    """`down --purge`: the dirs and tokens of these profiles, once their containers are gone."""
    with locked(home):
        fleet = load_fleet(home)
        deleted: list[str] = []
        for name in names:
            if name in fleet.profiles:
                purged, _ = purge_dirs(fleet.profiles[name], home)
                deleted += [str(p) for p in purged]
        return deleted


def purge_targets(home: Path, name: str) -> list[Path]:
    """What `remove(purge=True)` would delete, for the CLI's confirmation."""
    profile = load_fleet(home).get(name)
    dirs = profile_dirs(profile, home)
    paths = [p for _, p in dirs.items() if _marker(p) == name]
    return paths + ([dirs.secrets] if dirs.secrets.exists() else [])
