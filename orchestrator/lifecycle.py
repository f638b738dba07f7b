"""The verbs of a fleet on one engine: up, down, status, restart.

Each follows the same pipeline: load the fleet, check it (and the live host),
render specs, plan against live containers, and only then touch the engine.
The fleet lock is held throughout, so two `orch up` at once run one after the
other and both see the end state of the first.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import Problem, check_fleet, file_problems, problems_for
from .engine import Outcome, Progress, apply_down, apply_up, gateway_address, tcp_answers
from .errors import CheckFailed, EngineUnavailable, OrchError, UsageError
from .exits import exit_meaning, last_error_line
from .live import (
    LiveContainer,
    Snapshot,
    exit_events,
    last_exit_code,
    live_problems,
    take_snapshot,
)
from .plan import Action, Kind, plan_down, plan_up
from .profile import Fleet
from .registry import foreign_reservations, publish_fleet
from .spec import LABEL_HASH, LABEL_PROFILE, ContainerSpec, render
from .store import LAST_GOOD_FILE, last_good_fleet, load_fleet, locked

DEFAULT_TIMEOUT = 120.0


@dataclass
class UpResult:
    actions: list[Action]
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False
    orphans: list[str] = field(default_factory=list)  # reported, kept (or removed, if asked)


def _specs(home: Path, names: list[str] | None) -> tuple[Any, list[ContainerSpec]]:
    fleet = load_fleet(home)
    return fleet, checked_specs(fleet, home, names, files=True)


def checked_specs(
    fleet: Fleet, home: Path, names: list[str] | None, files: bool = False
) -> list[ContainerSpec]:
    """The specs of `names` (all when None), refused when `orch check` finds a problem
    involving any of them: the one gate of every backend (engine, compose, swarm).
    `files`: also each profile's dirs and token on this host (what runs here needs;
    an export may run where they are made)."""
    if not fleet.profiles:
        raise UsageError("the fleet has no profiles yet", hint="add one with `orch setup main`")
    selected = fleet.select(names)
    found = check_fleet(fleet, home, foreign_reservations(home))
    if files:
        found += file_problems(fleet, home)
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
    remove_orphans: bool = False,
) -> UpResult:
    with locked(home):
        fleet, specs = _specs(home, names)
        publish_fleet(home, fleet)
        snap = take_snapshot(fleet.project, home)
        actions = plan_up(specs, snap.ours, snap.aside, _restarts_of_unhealthy(snap))
        changing = [a.spec for a in actions if a.kind != Kind.NOOP and a.spec]
        problems = live_problems(changing, snap)
        if problems:
            raise CheckFailed(
                f"{len(problems)} problem(s) on the live host; nothing was created",
                problems,
                hint=problems[0].hint,
            )
        orphans = sorted(snap.orphans(fleet.profiles)) if names is None else []
        if dry_run:
            return UpResult(actions, dry_run=True, orphans=orphans)
        outcomes = apply_up(actions, timeout, keep_failed, progress)
        if remove_orphans and orphans:
            outcomes += apply_down(plan_down(orphans, snap.orphans(fleet.profiles)), progress)
        return UpResult(actions, outcomes, orphans=orphans)


def _restarts_of_unhealthy(snap: Snapshot) -> dict[str, int]:
    """Restart counts of this fleet's containers that are not healthy: one inspect
    each, and none in the common case (everything healthy)."""
    from . import docker_http

    out = {}
    for profile, container in snap.ours.items():
        if container.state in ("running", "restarting") and container.health != "healthy":
            with contextlib.suppress(EngineUnavailable):
                info = docker_http.get(f"/containers/{container.id}/json")
                out[profile] = int(info.get("RestartCount") or 0)
    return out


def down(
    home: Path,
    names: list[str] | None = None,
    progress: Progress | None = None,
    remove_orphans: bool = False,
) -> list[Outcome]:
    """Take down the named profiles (all of the fleet's when none), each with every
    container it has (set-aside ones too) and its networks. Containers of this fleet
    whose profile is not in the fleet file (orphans: a file cut short, a hand edit)
    are kept and reported unless `remove_orphans`."""
    with locked(home):
        fleet = load_fleet(home)
        wanted = [p.name for p in fleet.select(names)]
        snap = take_snapshot(fleet.project, home, with_listeners=False)
        orphans = snap.orphans(fleet.profiles) if names is None else {}
        targets = wanted + (sorted(orphans) if remove_orphans else [])
        containers = {name: snap.all_of(name) for name in targets}
        networks = _networks_by_profile(snap)
        outcomes = apply_down(plan_down(targets, containers, networks), progress)
        if not remove_orphans:
            outcomes += [_kept_orphan(home, name, cs) for name, cs in orphans.items()]
        return outcomes


def _networks_by_profile(snap: Snapshot) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for net in snap.networks.values():
        profile = net.labels.get(LABEL_PROFILE)
        if profile:
            out.setdefault(profile, []).append(net.id)
    return {k: tuple(v) for k, v in out.items()}


def _kept_orphan(home: Path, name: str, containers: list[LiveContainer]) -> Outcome:
    return Outcome(name, "kept", containers[0].id, False, 0.0, note=orphan_note(home, name))


def orphan_problems(home: Path, fleet: Fleet) -> list[Problem]:
    """This fleet's containers whose profile the fleet file does not have (for `orch
    check`): a file cut short by an editor or a full disk shows up here first."""
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    return [
        Problem(
            code="orphan",
            message=f"container {cs[0].name} ({cs[0].state}) has no profile in the fleet file",
            owners=(name,),
            hint=orphan_note(home, name).removeprefix(f"orphan: '{name}' "),
        )
        for name, cs in snap.orphans(fleet.profiles).items()
    ]


def orphan_note(home: Path, name: str) -> str:
    """Why a container of this fleet has no profile, and what to do about it."""
    good = last_good_fleet(home)
    if good is not None and name in good.profiles:
        return (
            f"orphan: '{name}' is not in {home}/fleet.yaml but is in the last good copy"
            f" {home}/{LAST_GOOD_FILE}: was the file cut short? Restore it with"
            f" `cp {home}/{LAST_GOOD_FILE} {home}/fleet.yaml`, or remove the container"
            " with `orch down --remove-orphans`"
        )
    return (
        f"orphan: '{name}' is not in {home}/fleet.yaml; kept. `orch setup {name}` adopts it"
        " again, `orch down --remove-orphans` removes it"
    )


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
    url: str | None
    ports: list[PortState]
    # Why it is (not) ready, in a few words: "answers /readyz", "crash-looping ..."
    ready_reason: str = ""
    restarts: int = 0
    last_exit: dict[str, Any] | None = None  # {code, meaning, oom_killed, at}
    last_error: str | None = None  # the gateway's last error-like log line
    oom_kills: int = 0
    orphan: bool = False
    note: str = ""

    @property
    def should_run(self) -> bool:
        """It has a container (orch up made one): then not being ready is a failure."""
        return self.container is not None and not self.orphan

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
    """Status of each profile (and of this fleet's orphan containers when no names are
    given); without `probe`, ports are not dialled and containers not inspected (what
    `orch up` shows right after it checked /readyz). Profiles are probed in parallel."""
    fleet = load_fleet(home)
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    specs = [render(p, fleet, home) for p in fleet.select(names)]
    history = _exit_history(snap, specs) if probe else {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
        rows = list(pool.map(lambda s: _status_of(s, snap, probe, history), specs))
    if names is None:
        for name, containers in snap.orphans(fleet.profiles).items():
            rows.append(_orphan_status(home, name, containers[0]))
    return rows


def _exit_history(snap: Snapshot, specs: list[ContainerSpec]) -> dict[str, list[dict]]:
    current = [snap.ours[s.profile] for s in specs if s.profile in snap.ours]
    since = min((c.created for c in current), default=0)
    return exit_events([c.id for c in current], since)


def _status_of(
    spec: ContainerSpec,
    snap: Snapshot,
    probe: bool,
    history: dict[str, list[dict]] | None = None,
) -> ProfileStatus:
    from . import docker_http
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
    row = ProfileStatus(
        profile=spec.profile,
        container=current.name if current else None,
        state=current.state if current else "absent",
        health=current.health if current else "none",
        ready=ready,
        uptime_s=None,
        image=current.image if current else None,
        drift=_drift(spec, current),
        url=spec.url(),
        ports=ports,
    )
    if current is None:
        row.ready_reason = f"no container: `orch up {spec.profile}` creates it"
        return row
    if probe:
        try:
            info = docker_http.get(f"/containers/{current.id}/json")
        except EngineUnavailable:
            info = None
        if info:
            _add_history(row, info, (history or {}).get(current.id, []))
    row.ready_reason = _ready_reason(row, host is not None)
    return row


def _add_history(row: ProfileStatus, info: dict[str, Any], events: list[dict]) -> None:
    state = info.get("State") or {}
    row.restarts = int(info.get("RestartCount") or 0)
    started = state.get("StartedAt") or ""
    if state.get("Status") == "running" and started and not started.startswith("0001"):
        row.uptime_s = _age(started)
    row.oom_kills = sum(1 for e in events if e.get("Action") == "oom")
    code, at = last_exit_code(events), None
    if code is not None:
        at = max(e.get("time", 0) for e in events if e.get("Action") == "die")
    elif state.get("Status") in ("exited", "dead", "restarting") or state.get("FinishedAt", "")[
        :4
    ] not in ("", "0001"):
        code, at = int(state.get("ExitCode") or 0), state.get("FinishedAt")
    if code is not None:
        oom = bool(state.get("OOMKilled")) or (row.oom_kills > 0 and code == 137)
        row.last_exit = {
            "code": code,
            "meaning": exit_meaning(code, oom),
            "oom_killed": oom,
            "at": at,
        }
    if row.restarts or row.state != "running":  # while it starts, its log is not news
        from .engine import log_tail

        row.last_error = last_error_line(log_tail(info["Id"], 40))


def _ready_reason(row: ProfileStatus, published: bool) -> str:
    exit_text = ""
    if row.last_exit:
        exit_text = f"last exit {row.last_exit['code']}: {row.last_exit['meaning']}"
    if row.ready:
        reason = "answers /readyz" if published else "healthy (gateway port not published)"
        if row.restarts:
            reason += f"; restarted {row.restarts} time(s), {exit_text}"
        return reason
    if row.state == "restarting":
        return f"crash-looping: {row.restarts} restart(s), {exit_text}; `orch logs {row.profile}`"
    if row.state in ("exited", "dead", "created"):
        return (
            f"{row.state}, {exit_text or 'never started'}: not restarted by its policy"
            f" (the engine stopped, or docker stop); `orch up {row.profile}` starts it"
        )
    if row.health == "starting":
        return "starting: the gateway is not ready yet"
    return "running but not answering /readyz" + (f"; {exit_text}" if exit_text else "")


def _orphan_status(home: Path, name: str, container: LiveContainer) -> ProfileStatus:
    return ProfileStatus(
        profile=name,
        container=container.name,
        state=container.state,
        health=container.health,
        ready=False,
        uptime_s=None,
        image=container.image,
        drift=None,
        url=None,
        ports=[],
        ready_reason="orphan: not in the fleet file",
        orphan=True,
        note=orphan_note(home, name),
    )


def _age(iso: str) -> float:
    from datetime import datetime

    when = datetime.fromisoformat(iso[:26].rstrip("Z") + "+00:00")
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
