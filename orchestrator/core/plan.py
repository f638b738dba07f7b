"""Converge desired specs with live containers: one action per profile, with a reason.

Pure, like Compose's plan of operations: `orch up --dry-run` prints it as is,
and the engine only executes it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from orchestrator.core.observed import LiveContainer
from orchestrator.core.spec import ContainerSpec


class Kind(StrEnum):
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    RESTART = "restart"
    NOOP = "noop"
    REMOVE = "remove"


ASIDE_REASON = "left by an interrupted recreate"


class Action(NamedTuple):
    kind: Kind
    profile: str
    reason: str
    spec: ContainerSpec | None = None
    container: LiveContainer | None = None
    # Containers of the profile set aside by an interrupted recreate: removed too,
    # so the newest one (the profile's own name) wins and nothing is left stuck.
    cleanup: tuple[LiveContainer, ...] = ()
    # `down`: ids of the profile's networks (this fleet's), removed with or without a container.
    networks: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "action": self.kind.value,
            "profile": self.profile,
            "reason": self.reason,
            "container": self.container.name if self.container else None,
            "spec_hash": self.spec.spec_hash if self.spec else None,
            "cleanup": [c.name for c in self.cleanup],
        }


def plan_up(
    specs: list[ContainerSpec],
    live: dict[str, LiveContainer],
    aside: dict[str, list[LiveContainer]] | None = None,
    restarts: dict[str, int] | None = None,
) -> list[Action]:
    """`restarts`: restart counts of containers that look crash-looping (see
    `looping_restarts`; a loop is `running` for a few seconds between two restarts)."""
    aside, restarts = aside or {}, restarts or {}
    return [
        _converge(spec, live.get(spec.profile), aside.get(spec.profile, []), restarts)
        for spec in specs
    ]


def _converge(
    spec: ContainerSpec,
    current: LiveContainer | None,
    aside: list[LiveContainer],
    restarts: dict[str, int],
) -> Action:
    cleanup = tuple(aside)
    note = f"; removes {len(aside)} container(s) {ASIDE_REASON}" if aside else ""
    if current is None:
        return Action(Kind.CREATE, spec.profile, f"no container yet{note}", spec, None, cleanup)
    if current.spec_hash != spec.spec_hash:
        reason = f"spec changed ({current.spec_hash or 'no hash'} -> {spec.spec_hash}){note}"
        return Action(Kind.RECREATE, spec.profile, reason, spec, current, cleanup)
    count = restarts.get(spec.profile, 0)
    if current.state == "restarting" or (count and current.health != "healthy"):
        reason = (
            f"crash-looping ({count} restarts, {current.status}): restart it now, not after"
            " Docker's back-off"
        )
        return Action(Kind.RESTART, spec.profile, reason + note, spec, current, cleanup)
    if current.state == "running":
        return Action(
            Kind.NOOP, spec.profile, f"up to date and running{note}", spec, current, cleanup
        )
    reason = f"up to date but {current.state}{note}"
    return Action(Kind.START, spec.profile, reason, spec, current, cleanup)


def looping_restarts(inspect: dict[str, Any]) -> int:
    """The restart count of a container (its `docker inspect`) that looks crash-looping,
    else 0.

    Docker restarts a crashed gateway by itself, and its health reads `starting` again
    until the first probe of the new run, while the probe log keeps the runs before.
    A run that was healthy when it crashed was one crash, recovering now: restarting
    it would only cost another start. The runs of a loop never get healthy (a refused
    config exits within a second) or end unhealthy.
    """
    count = int(inspect.get("RestartCount") or 0)
    state = inspect.get("State") or {}
    health = state.get("Health") or {}
    running = state.get("Status") == "running"
    if running and health.get("Status") == "healthy":
        return 0
    recovering = running and health.get("Status") == "starting"
    if recovering and _healthy_before(health.get("Log") or [], state.get("StartedAt") or ""):
        return 0
    return count


def _healthy_before(log: list[dict[str, Any]], started: str) -> bool:
    """Did the last health probe before `started` (this run's start) pass?"""
    try:
        start = datetime.fromisoformat(started)  # RFC 3339 with ns: read to the µs
        probes = sorted((datetime.fromisoformat(e["Start"]), e.get("ExitCode")) for e in log)
    except (KeyError, TypeError, ValueError):
        return False
    before = [code for at, code in probes if at < start]
    return bool(before) and before[-1] == 0


def plan_down(
    names: list[str],
    live: dict[str, list[LiveContainer]],
    networks: dict[str, tuple[str, ...]] | None = None,
) -> list[Action]:
    """Remove every container of each profile (its own and any set aside) and its
    networks, also when no container is left (a command killed before it made one)."""
    networks = networks or {}
    actions = []
    for name in names:
        containers = live.get(name) or []
        nets = networks.get(name, ())
        if not containers:
            reason = "no container" + (f"; removes {len(nets)} network(s)" if nets else "")
            kind = Kind.REMOVE if nets else Kind.NOOP
            actions.append(Action(kind, name, reason, networks=nets))
            continue
        current, rest = containers[0], tuple(containers[1:])
        reason = f"container is {current.state}"
        actions.append(Action(Kind.REMOVE, name, reason, None, current, rest, nets))
    return actions
