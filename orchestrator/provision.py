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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import registry
from .check import check_fleet, fleet_reservations, problems_for
from .errors import CheckFailed, OrchError, UsageError
from .openclaw_config import ensure_token, planned_config, write_config
from .paths import MARKER_FILE, ProfileDirs, profile_dirs, profile_root
from .ports import DEFAULT_BASE, MAX_BASE, Reservation, nearest_free_base
from .profile import Dirs, Fleet, Profile, validate_ip
from .spec import LABEL_HOME
from .store import atomic_write, load_fleet, locked, save_fleet

if TYPE_CHECKING:
    from .live import Snapshot

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


def setup(home: Path, request: SetupRequest, force: bool = False) -> SetupResult:
    # The registry lock too: a base picked here must be recorded before another
    # fleet of the host picks its own (orchestrator.registry).
    with locked(home), registry.locked():
        fleet = load_fleet(home)
        existing = fleet.profiles.get(request.name)
        foreign = registry.foreign_reservations(home)
        profile = _build_profile(fleet, existing, request, home, foreign)
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
) -> Profile:
    base: dict[str, Any] = existing.model_dump() if existing else {"user": default_user()}
    base["name"] = req.name
    given = {
        "bind_ip": req.bind_ip,
        "image": req.image,
        "publish": req.publish,
        "rescues": req.rescues,
        "allow_privileged_ports": req.allow_privileged_ports,
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
        host = _host_taken(fleet, home, req.name, foreign, adopting)
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
    fleet: Fleet, home: Path, name: str, foreign: list[Reservation], adopting: list[Path]
) -> list[Reservation]:
    """What else on the host a new base must avoid: other fleets and test runs (the
    registry), native OpenClaw profiles, listening sockets and published ports (all
    containers but this profile's own)."""
    from .live import held_ports

    adopted = [d for p in fleet.profiles.values() for _, d in profile_dirs(p, home).items()]
    taken = [*foreign, *registry.native_reservations(skip=[*adopted, *adopting])]

    def own(container: Any) -> bool:
        return container.labels.get(LABEL_HOME) == str(home) and container.profile == name

    for ip, start, end in held_ports(skip=own):
        taken.append(Reservation(start, end, "the host", "in use", ip, True))
    return taken


def _auto_port(fleet: Fleet, name: str, bind_ip: str, host: Iterable[Reservation] = ()) -> int:
    """The lowest base at or above the start (18789) whose whole footprint is free:
    of the fleet, and of what `host` says the rest of the host holds."""
    own = [r for r in fleet_reservations(fleet.without(name))]
    taken = registry.taken_intervals([*own, *host], bind_ip)
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


def purge_targets(home: Path, name: str) -> list[Path]:
    """What `remove(purge=True)` would delete, for the CLI's confirmation."""
    profile = load_fleet(home).get(name)
    dirs = profile_dirs(profile, home)
    paths = [p for _, p in dirs.items() if _marker(p) == name]
    return paths + ([dirs.secrets] if dirs.secrets.exists() else [])


@dataclass(frozen=True)
class PortMove:
    """`orch up --port auto`: a profile moved off ports the live host already holds."""

    profile: str
    old_port: int
    new_port: int
    reason: str


def move_taken_ports(home: Path, names: list[str] | None, dry_run: bool) -> list[PortMove]:
    """`orch up --port auto`: for each selected profile whose ports something else on
    the host holds (a process, another container, another fleet's or a test run's
    footprint), the lowest base whose whole footprint avoids the fleet and the host,
    applied as `orch setup NAME --port N --force` does (config follows) unless
    `dry_run`. Profiles that are fine keep their ports, so a CI job can run
    `orch up --port auto` every time. Decided and applied under the fleet and the
    registry lock, so no other fleet picks the same base in between."""
    from .live import live_problems, take_snapshot
    from .spec import render

    with locked(home), registry.locked():
        fleet = load_fleet(home)
        snap = take_snapshot(fleet.project, home)
        foreign = registry.foreign_reservations(home)
        native = registry.native_reservations(
            skip=[d for p in fleet.profiles.values() for _, d in profile_dirs(p, home).items()]
        )
        moves = []
        for profile in fleet.select(names):
            problems = live_problems([render(profile, fleet, home)], snap)
            problems += problems_for(check_fleet(fleet, home, foreign), [profile.name])
            problems = [p for p in problems if p.code in ("port-in-use", "port-foreign")]
            if not problems:
                continue
            host = [*foreign, *native, *_live_taken(snap, profile)]
            new = _auto_port(fleet, profile.name, profile.bind_ip, host)
            moves.append(PortMove(profile.name, profile.port, new, problems[0].message))
            fleet = fleet.with_profile(profile.model_copy(update={"port": new}))
        if not dry_run:
            for move in moves:
                setup(home, SetupRequest(name=move.profile, port=move.new_port), force=True)
        return moves


def _live_taken(snap: Snapshot, profile: Profile) -> list[Reservation]:
    """Ports held on the host on addresses that meet the profile's, but by its own container."""
    own = snap.ours.get(profile.name)
    own_ports = {port for _, port, _ in own.ports} if own else set()
    held = [(lst.host_ip, lst.port) for lst in snap.listeners if lst.port not in own_ports]
    for name, container in [*((None, c) for c in snap.others), *snap.ours.items()]:
        if name != profile.name:
            held += [(ip, port) for ip, port, _ in container.ports]
    return [Reservation(port, port, "the host", "in use", ip, True) for ip, port in held]
