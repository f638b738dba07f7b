"""Converge desired specs with live containers: one action per profile, with a reason.

Pure, like Compose's plan of operations: `orch up --dry-run` prints it as is,
and the engine only executes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .live import LiveContainer
from .spec import ContainerSpec


class Kind(StrEnum):
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    NOOP = "noop"
    REMOVE = "remove"


@dataclass(frozen=True)
class Action:
    kind: Kind
    profile: str
    reason: str
    spec: ContainerSpec | None = None
    container: LiveContainer | None = None

    def to_json(self) -> dict:
        return {
            "action": self.kind.value,
            "profile": self.profile,
            "reason": self.reason,
            "container": self.container.name if self.container else None,
            "spec_hash": self.spec.spec_hash if self.spec else None,
        }


def plan_up(specs: list[ContainerSpec], live: dict[str, LiveContainer]) -> list[Action]:
    return [_converge(spec, live.get(spec.profile)) for spec in specs]


def _converge(spec: ContainerSpec, current: LiveContainer | None) -> Action:
    if current is None:
        return Action(Kind.CREATE, spec.profile, "no container yet", spec)
    if current.spec_hash != spec.spec_hash:
        reason = f"spec changed ({current.spec_hash or 'no hash'} -> {spec.spec_hash})"
        return Action(Kind.RECREATE, spec.profile, reason, spec, current)
    if current.state in ("running", "restarting"):
        return Action(Kind.NOOP, spec.profile, "up to date and running", spec, current)
    return Action(Kind.START, spec.profile, f"up to date but {current.state}", spec, current)


def plan_down(names: list[str], live: dict[str, LiveContainer]) -> list[Action]:
    actions = []
    for name in names:
        current = live.get(name)
        if current is None:
            actions.append(Action(Kind.NOOP, name, "no container"))
        else:
            actions.append(
                Action(Kind.REMOVE, name, f"container is {current.state}", None, current)
            )
    return actions
