"""The verbs of a fleet on one engine: up, down, status, restart.

Each follows the same pipeline: load the fleet, check it (and the live host),
render specs, plan against live containers, and only then touch the engine.
The fleet lock is held throughout, so two `orch up` at once run one after the
other and both see the end state of the first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import check_fleet, problems_for
from .engine import Outcome, Progress, apply_down, apply_up, gateway_address, tcp_answers
from .errors import CheckFailed, OrchError, UsageError
from .live import LiveContainer, Snapshot, live_problems, take_snapshot
from .plan import Action, Kind, plan_down, plan_up
from .profile import Fleet
from .registry import foreign_reservations, publish_fleet
from .spec import LABEL_HASH, ContainerSpec, render
from .store import load_fleet, locked

DEFAULT_TIMEOUT = 120.0


@dataclass
class UpResult:
    actions: list[Action]
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False


def _specs(home: Path, names: list[str] | None) -> tuple[Any, list[ContainerSpec]]:
    fleet = load_fleet(home)
    specs = checked_specs(fleet, home, names)
    _require_files(fleet.select(names), home)
    return fleet, specs


def _require_files(profiles: list[Any], home: Path) -> None:
    """A purged or hand-deleted profile would start a gateway that exits at once."""
    from .paths import profile_dirs

    for profile in profiles:
        dirs = profile_dirs(profile, home)
        for path in (dirs.token_file, dirs.config_file, dirs.state, dirs.workspace):
            if not path.exists():
                raise UsageError(
                    f"profile '{profile.name}' is missing {path}; nothing was changed",
                    hint=f"recreate its files with `orch setup {profile.name}`",
                )


def checked_specs(fleet: Fleet, home: Path, names: list[str] | None) -> list[ContainerSpec]:
    """The specs of `names` (all when None), refused when `orch check` finds a problem
    involving any of them: the one gate of every backend (engine, compose, swarm)."""
    if not fleet.profiles:
        raise UsageError("the fleet has no profiles yet", hint="add one with `orch setup main`")
    selected = fleet.select(names)
    found = check_fleet(fleet, home, foreign_reservations(home))
    problems = problems_for(found, [p.name for p in selected])
    if problems:
        raise CheckFailed(
            f"the fleet has {len(problems)} problem(s); nothing was changed",
            problems,
            hint="run `orch check` for the full list and fixes",
        )
    return [render(p, fleet, home) for p in selected]


def up(
    home: Path,
    names: list[str] | None = None,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    keep_failed: bool = False,
    progress: Progress | None = None,
) -> UpResult:
    with locked(home):
        fleet, specs = _specs(home, names)
        publish_fleet(home, fleet)
        snap = take_snapshot(fleet.project, home)
        actions = plan_up(specs, snap.ours)
        changing = [a.spec for a in actions if a.kind != Kind.NOOP and a.spec]
        problems = live_problems(changing, snap)
        if problems:
            raise CheckFailed(
                f"{len(problems)} published port(s) are already in use; nothing was created",
                problems,
                hint=problems[0].hint,
            )
        if dry_run:
            return UpResult(actions, dry_run=True)
        return UpResult(actions, apply_up(actions, timeout, keep_failed, progress))


def down(home: Path, names: list[str] | None = None, progress: Progress | None = None):
    with locked(home):
        fleet = load_fleet(home)
        wanted = [p.name for p in fleet.select(names)] if names else None
        snap = take_snapshot(fleet.project, home, with_listeners=False)
        # Without names, also take down containers of profiles removed from the fleet.
        targets = wanted if wanted is not None else sorted(set(fleet.profiles) | set(snap.ours))
        return apply_down(plan_down(targets, snap.ours), progress)


@dataclass
class PortState:
    role: str
    host_ip: str
    ports: str
    answering: bool | None  # None: not probed
    note: str = ""


@dataclass
class ProfileStatus:
    profile: str
    container: str | None
    state: str
    health: str
    ready: bool
    uptime_s: float | None
    image: str | None
    drift: str | None
    url: str
    ports: list[PortState]

    def to_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["ports"] = [p.__dict__ for p in self.ports]
        return data


NOT_ANSWERING_WHY = {
    "browser": "browser control starts on demand (first browser use)",
    "browser-cdp": "no Chrome runs in the gateway image",
    "extension": "the extension relay starts with a browser extension",
    "cdp": "no managed Chrome runs in the gateway image",
}


def status(home: Path, names: list[str] | None = None, probe: bool = True) -> list[ProfileStatus]:
    """Status of each profile; without `probe`, ports are not dialled and uptime
    is not inspected (what `orch up` shows right after it checked /readyz)."""
    fleet = load_fleet(home)
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    return [_status_of(render(p, fleet, home), snap, probe) for p in fleet.select(names)]


def _status_of(spec: ContainerSpec, snap: Snapshot, probe: bool) -> ProfileStatus:
    from .engine import http_status

    current = snap.ours.get(spec.profile)
    running = current is not None and current.state == "running"
    host, port = gateway_address(spec)
    if host:
        ready = bool(running and http_status(host, port, "/readyz", 1.0) == 200)
    else:  # gateway not published: the image's own healthcheck is what can tell
        ready = bool(running and current and current.health == "healthy")
    ports = []
    for binding in spec.ports:
        span = (
            str(binding.host_port)
            if binding.count == 1
            else f"{binding.host_port}-{binding.host_end}"
        )
        answering = (running and tcp_answers(binding.host_ip, binding.host_port)) if probe else None
        note = "" if answering or not probe else NOT_ANSWERING_WHY.get(binding.role, "")
        ports.append(PortState(binding.role, binding.host_ip, span, answering, note))
    return ProfileStatus(
        profile=spec.profile,
        container=current.name if current else None,
        state=current.state if current else "absent",
        health=current.health if current else "none",
        ready=ready,
        uptime_s=_uptime(current) if probe and running and current else None,
        image=current.image if current else None,
        drift=_drift(spec, current),
        url=spec.url(),
        ports=ports,
    )


def _uptime(container: LiveContainer) -> float | None:
    from . import docker_http

    started = docker_http.get(f"/containers/{container.id}/json")["State"].get("StartedAt")
    if not started:
        return None
    from datetime import datetime

    when = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    return round(time.time() - when.timestamp(), 1)


def _drift(spec: ContainerSpec, current: LiveContainer | None) -> str | None:
    if current is None:
        return None
    if current.labels.get(LABEL_HASH) != spec.spec_hash:
        return f"container runs spec {current.spec_hash}, fleet wants {spec.spec_hash}"
    return None


def container_of(home: Path, name: str) -> LiveContainer | None:
    fleet = load_fleet(home)
    fleet.get(name)
    return take_snapshot(fleet.project, home, with_listeners=False).ours.get(name)


def find_container(home: Path, name: str) -> tuple[ContainerSpec, LiveContainer]:
    fleet = load_fleet(home)
    spec = render(fleet.get(name), fleet, home)
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    current = snap.ours.get(name)
    if current is None or current.state not in ("running", "restarting"):
        raise OrchError(
            f"profile '{name}' has no running container", hint=f"start it with `orch up {name}`"
        )
    return spec, current
