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
from typing import Any

from orchestrator.core.check import (
    Problem,
    check_fleet,
    fleet_reservations,
    forbidden_dir_problem,
    problems_for,
)
from orchestrator.core.model import Dirs, Fleet, Profile, validate_ip
from orchestrator.core.paths import (
    ADOPTED,
    CREATED,
    DIR_KINDS,
    MARKER_FILE,
    ProfileDirs,
    marker_text,
    profile_dirs,
    profile_root,
    resolve,
)
from orchestrator.core.ports import DEFAULT_BASE, MAX_BASE, Reservation, nearest_free_base
from orchestrator.errors import CheckFailed, OrchError, UnsafeDir, UsageError
from orchestrator.fleet import registry
from orchestrator.fleet.adopt import (
    DirPlan,
    HostChange,
    Journal,
    hand_over,
    host_roots,
    orch_created,
    plan_dirs,
    read_marker,
    set_dir_mode,
)
from orchestrator.fleet.openclaw_config import ensure_token, planned_config, write_config
from orchestrator.fleet.store import (
    atomic_write,
    fleet_path,
    free_project,
    load_fleet,
    locked,
    save_fleet,
)

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
    node: str | None = None  # a swarm node's hostname; "" drops the placement


@dataclass
class SetupResult:
    profile: Profile
    dirs: ProfileDirs
    action: str  # created | updated | unchanged
    changes: list[str] = field(default_factory=list)
    config_backup: Path | None = None
    # The dirs that were there before orch (kind -> path): never chowned, chmod'ed
    # or purged, unless --chown; and what --chown changed in them.
    adopted: dict[str, Path] = field(default_factory=dict)
    host_changes: list[HostChange] = field(default_factory=list)


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
# The projects of other fleets' containers and networks on the engine (the Docker
# layer knows how to look); without it, only the host registry's records count.
ProjectsView = Callable[[Path], Iterable[str]]


def setup(
    home: Path,
    request: SetupRequest,
    force: bool = False,
    live: LiveView | None = None,
    projects: ProjectsView | None = None,
    chown: bool = False,
) -> SetupResult:
    """Add or change a profile. `chown`: hand each adopted dir (and all in it) to the
    gateway's user and set its mode to 0700; without it an adopted dir's owner and
    mode are never changed, and one the gateway cannot use is refused."""
    _refuse_dirs(_forbidden_requested(request, home))
    # The registry lock too: a base (or a project) picked here must be recorded
    # before another fleet of the host picks its own (orchestrator.registry).
    with locked(home), registry.locked():
        fleet = load_fleet(home)
        if not fleet_path(home).exists():  # the first setup in this home
            taken = registry.other_projects(home) | set(projects(home) if projects else ())
            fleet = fleet.model_copy(update={"project": free_project(home, taken)})
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
        found = check_fleet(candidate, home, foreign, host_roots(home))
        problems = problems_for(found, [profile.name])
        _refuse_dirs([p for p in problems if p.code == "dir-forbidden"])
        if problems:
            raise CheckFailed(
                f"profile '{profile.name}' would collide with the fleet; nothing was changed",
                problems,
                hint=problems[0].hint,
            )
        dirs = profile_dirs(profile, home)
        _check_ownership(dirs, profile.name, candidate, force)
        plans, refused = plan_dirs(profile, dirs.items(), home, chown)
        _refuse_dirs(refused)
        wanted, config_changed = planned_config(profile, dirs)
        adopted = {p.kind: p.path for p in plans if p.origin == ADOPTED}
        same = existing == profile and not config_changed and _dirs_ready(dirs, profile)
        if same and not (chown and adopted):
            return SetupResult(profile, dirs, "unchanged", adopted=adopted)
        backup, host_changes = _materialise(
            home,
            candidate if existing != profile else None,
            profile,
            dirs,
            plans,
            wanted,
            config_changed,
        )
        action = "unchanged" if same and not host_changes else "updated" if existing else "created"
        return SetupResult(profile, dirs, action, changes, backup, adopted, host_changes)


def _forbidden_requested(request: SetupRequest, home: Path) -> list[Problem]:
    """The dirs of the command line that orch never uses, found before anything (the
    home and its lock included) is made; those of the fleet file are `check`'s."""
    roots = host_roots(home)
    found = []
    for kind, value in _requested_dirs(request):
        problem = forbidden_dir_problem(request.name, kind, str(value), str(resolve(value)), roots)
        if problem:
            found.append(problem)
    return found


def _requested_dirs(request: SetupRequest) -> list[tuple[str, Path]]:
    """(kind, absolute path as given) of the dirs named on the command line."""
    asked = [(kind, getattr(request, f"{kind}_dir")) for kind in DIR_KINDS]
    return [(kind, Path(v).expanduser().absolute()) for kind, v in asked if v is not None]


def _refuse_dirs(problems: list[Problem]) -> None:
    """Bad input, exit 2: dirs orch must not use, or not without --chown."""
    if problems:
        which = "this dir" if len(problems) == 1 else f"these {len(problems)} dirs"
        raise UnsafeDir(
            f"profile '{problems[0].owners[0]}' cannot use {which} as given; nothing was changed",
            problems,
            hint=problems[0].hint,
        )


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
    if req.node is not None:
        base["node"] = req.node or None
    if req.bind_ip is not None:
        # Before --port auto compares it with the fleet's addresses (and normalised:
        # "::0" is "::").
        try:
            base["bind_ip"] = validate_ip(req.bind_ip)
        except ValueError as exc:
            raise UsageError(f"bind_ip: {exc}", hint="see `orch setup --help`") from None
    dirs = {**(base.get("dirs") or {}), **dict(_requested_dirs(req))}
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
        message = first["msg"].removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(exc)


def auto_port_start() -> int:
    """Where `--port auto` starts looking: $ORCH_PORT_START, else OpenClaw's 18789."""
    value = os.environ.get(PORT_START_ENV, "").strip()
    if not value:
        return DEFAULT_BASE
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_BASE):
        raise UsageError(
            f"{PORT_START_ENV}={value[:40]!r} is not a port where --port auto may start",
            hint=f"set it to a number from 1 to {MAX_BASE} (e.g. 20000), or unset it for"
            f" {DEFAULT_BASE}",
        )
    return int(value)


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
        owner, _ = read_marker(path)
        if owner and owner != name and not force:
            state = "in the fleet" if owner in fleet.profiles else "removed from the fleet"
            raise UsageError(
                f"{kind} dir {path} belongs to profile '{owner}' ({state}); nothing was changed",
                hint=f"choose another --{kind}-dir, or pass --force to adopt it for '{name}'",
            )


def _dirs_ready(dirs: ProfileDirs, profile: Profile) -> bool:
    """Everything `orch check` asks of a profile's files is there (else setup repairs it)."""
    if not all(read_marker(p)[0] == profile.name for _, p in dirs.items()):
        return False
    try:
        st = dirs.token_file.stat()
    except OSError:
        return False
    owner_ok = os.geteuid() != 0 or st.st_uid == profile.uid
    return stat.S_IMODE(st.st_mode) == 0o600 and owner_ok and dirs.config_file.is_file()


def _materialise(
    home: Path,
    fleet: Fleet | None,
    profile: Profile,
    dirs: ProfileDirs,
    plans: list[DirPlan],
    wanted: dict[str, Any],
    config_changed: bool,
) -> tuple[Path | None, list[HostChange]]:
    """Create dirs, token, config and fleet entry (`fleet`, None when the profile in
    the file is already as wanted); undo what was created or changed on failure.
    Returns the config backup and what --chown changed in adopted dirs."""
    created: list[Path] = []
    journal = Journal()
    host_changes: list[HostChange] = []
    # An adopted openclaw.json that orch rewrites: its bytes, put back on failure.
    original: bytes | None = None
    try:
        for plan in plans:
            host_changes += _prepare_dir(plan, profile, created, journal, marked=True)
        _prepare_dir(DirPlan("secrets", dirs.secrets, CREATED), profile, created, journal)
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
        if fleet is not None:
            save_fleet(home, fleet)
        return backup, host_changes
    except OSError as exc:
        _undo(created, journal, dirs.config_file, original)
        detail = f"{exc.strerror}: {exc.filename}" if exc.filename else (exc.strerror or str(exc))
        raise OrchError(
            f"cannot prepare profile '{profile.name}': {detail}",
            hint="check the permissions of that path; nothing was changed",
        ) from None
    except BaseException:
        _undo(created, journal, dirs.config_file, original)
        raise


def _prepare_dir(
    plan: DirPlan, profile: Profile, created: list[Path], journal: Journal, marked: bool = False
) -> list[HostChange]:
    """A dir orch creates (mkdir -p, each new level recorded) or already created is
    its own: mode 0700, owned by the container user, as a whole, so the non-root
    gateway never hits EACCES. An adopted dir is left as it is but for the marker,
    unless --chown hands it over; that is the only change reported, the rest is
    orch's own. `marked`: write the profile's marker (name and origin) if missing."""
    path = plan.path
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for level in reversed(missing):
        level.mkdir(mode=0o700)
        created.append(level)
    changes: list[HostChange] = []
    if plan.origin == CREATED or plan.take_over:
        mode = set_dir_mode(path, journal)
        owner = None
        if os.geteuid() == 0 and (plan.take_over or os.stat(path).st_uid != profile.uid):
            owner = hand_over(path, profile.uid, profile.gid, journal)
        changes = [c for c in (owner, mode) if c] if plan.take_over else []
    marker = path / MARKER_FILE
    if marked and not marker.exists():
        marker.write_text(marker_text(profile.name, plan.origin), encoding="utf-8")
        created.append(marker)
    return changes


def _undo(created: list[Path], journal: Journal, config_file: Path, original: bytes | None) -> None:
    """Put back owners and modes changed, a rewritten openclaw.json, and remove what
    was created, newest first."""
    journal.undo()
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
    # With --purge: the kept dirs that orch adopted rather than created.
    adopted: list[Path] = field(default_factory=list)


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
            done = purge_dirs(profile, home)
            result.purged, result.kept, result.adopted = done.deleted, done.kept, done.adopted
        else:
            result.kept = [p for _, p in profile_dirs(profile, home).items() if p.exists()]
        return result


@dataclass
class Purge:
    """What `--purge` did to one profile's dirs."""

    deleted: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # every dir still there
    adopted: list[Path] = field(default_factory=list)  # of those, the ones orch adopted


def purge_dirs(profile: Profile, home: Path) -> Purge:
    """Delete the profile's dirs that orch created for it, and its token.

    A dir orch adopted (it was there before orch) is kept, only orch's marker is
    taken out of it; a dir marked by another profile is kept as it is. Purging
    never deletes files orch did not create.
    """
    dirs = profile_dirs(profile, home)
    result = Purge()
    for kind, path in dirs.items():
        if orch_created(path, profile.name, kind, home):
            shutil.rmtree(path)
            result.deleted.append(path)
        elif path.exists():
            if read_marker(path)[0] == profile.name:
                (path / MARKER_FILE).unlink()
                result.adopted.append(path)
            result.kept.append(path)
    if dirs.secrets.exists():
        shutil.rmtree(dirs.secrets)
        result.deleted.append(dirs.secrets)
    root = profile_root(home, profile.name)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return result


def purge_profiles(home: Path, names: list[str]) -> Purge:
    """`down --purge`: the dirs and tokens of these profiles, once their containers are gone."""
    with locked(home):
        fleet = load_fleet(home)
        total = Purge()
        for name in names:
            if name in fleet.profiles:
                one = purge_dirs(fleet.profiles[name], home)
                total.deleted += one.deleted
                total.kept += one.kept
                total.adopted += one.adopted
        return total


def purge_targets(home: Path, name: str) -> tuple[list[Path], list[Path]]:
    """What `remove(purge=True)` would delete, and the adopted dirs it would keep,
    for the CLI's confirmation."""
    profile = load_fleet(home).get(name)
    dirs = profile_dirs(profile, home)
    doomed = [p for kind, p in dirs.items() if orch_created(p, name, kind, home)]
    kept = [p for _, p in dirs.items() if p.exists() and p not in doomed]
    return doomed + ([dirs.secrets] if dirs.secrets.exists() else []), kept
