"""Which swarm node each profile runs on, and what placement makes impossible.

A profile names its node by hostname (`node:` in the fleet file, `orch setup NAME
--node HOSTNAME`). An unplaced profile runs on the manager orch talks to: that is
the one node where `orch setup` made its dirs and token, so it is the only node
where it is known to have them (Swarm's "any node" would start it where its dirs
are missing, and move it there again after a failure).

Footprints are per node: two profiles on different nodes may use the same ports,
because Swarm publishes them in host mode on the node that runs the task. While
the manager's hostname is not known (no engine asked), an unplaced profile is
checked against the profiles of every node: wherever the manager is, it is safe.
Dirs are still checked as if on one filesystem: orch names, makes and backs up a
profile's dirs by the same path whatever its node, so two profiles never share one.

Pure: the live node list comes in as `SwarmNode`s, read by docker/swarm_nodes.py.
The problems placement makes are check.py's (placement_problems), with the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from orchestrator.core.model import Fleet, Profile
from orchestrator.core.ports import Overlap, Reservation, sweep
from orchestrator.errors import UsageError


class SwarmNode(NamedTuple):
    """One node of the swarm as the manager sees it."""

    id: str
    hostname: str
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    address: str
    manager: bool
    current: bool = False  # the node whose engine orch talks to

    @property
    def usable(self) -> bool:
        return self.state == "ready" and self.availability == "active"


def manager_of(nodes: Sequence[SwarmNode] | None) -> str | None:
    """The hostname of the node orch talks to, where unplaced profiles run."""
    return next((n.hostname for n in nodes or () if n.current), None)


def node_of(profile: Profile, manager: str | None) -> str | None:
    """The node a profile runs on; None: the manager, whose name is not known here."""
    return profile.node or manager


def placed_overlaps(
    reservations: list[Reservation], fleet: Fleet, manager: str | None = None
) -> list[Overlap]:
    """The port overlaps of the fleet's own reservations that can happen: between
    profiles on one node, and between an unplaced profile and any other when the
    manager's hostname is not known. One sweep per node, as check.sweep is."""
    groups: dict[str | None, list[Reservation]] = defaultdict(list)
    for res in reservations:
        profile = fleet.profiles.get(res.owner)
        groups[node_of(profile, manager) if profile else None].append(res)
    anywhere = groups.pop(None, [])
    if not groups:
        return sweep(anywhere)
    found = sweep(anywhere)
    for placed in groups.values():
        owners = {r.owner for r in placed}
        found += [
            ov
            for ov in sweep([*placed, *anywhere])
            if ov.first.owner in owners or ov.second.owner in owners
        ]
    return sorted(found, key=lambda ov: (ov.start, ov.first.owner, ov.second.owner))


def on_this_host(fleet: Fleet, manager: str | None = None) -> set[str]:
    """Profiles that run on the host orch runs on: the unplaced ones and those placed
    on the manager. Only their ports can clash with other fleets of this host."""
    return {p.name for p in fleet.profiles.values() if p.node is None or p.node == manager}


def check_evacuation(
    name: str,
    current: str | None,
    old: SwarmNode | None,
    target: str,
    nodes: Sequence[SwarmNode],
) -> None:
    """Whether `name` may be brought back on node `target` from an archive while its
    node `current` (`old`: that node as the swarm sees it, None when the swarm no
    longer has it) is gone. Refused, with a UsageError saying why and what to do:
    a profile not placed on a node; its node still ready (it answers: two gateways
    on one state, and what it wrote since the archive would be thrown away); a target
    that is the same node, unknown, down, drained or paused."""
    names = ", ".join(sorted(n.hostname for n in nodes)) or "none"
    if current is None:
        raise UsageError(
            f"--node moves a profile placed on a swarm node; '{name}' runs on the manager",
            hint=f"restore it here without --node: `orch restore {name} --latest --from URL`",
        )
    if target == current:
        raise UsageError(
            f"'{name}' is placed on {target} already; --node names the node to move it to",
            hint=f"restore it where it is without --node: `orch restore {name} ...`",
        )
    if old is not None and old.state == "ready":
        raise UsageError(
            f"node {current} of '{name}' still answers (state ready): nothing was changed."
            f" Moving it from an archive would run two gateways on one state and lose what"
            f" it wrote since the archive",
            hint=f"this is for a node that is gone (`docker node ls` shows {current} Down);"
            f" while it runs, back it up and restore it there (`orch restore {name} ...`)",
        )
    node = next((n for n in nodes if n.hostname == target), None)
    if node is None:
        raise UsageError(
            f"--node: this swarm has no node {target!r} (nodes: {names}); nothing was changed",
            hint="`docker node ls` lists the nodes",
        )
    if not node.usable:
        raise UsageError(
            f"--node: node {target} is {node.state}, {node.availability}: it cannot run"
            f" '{name}' now; nothing was changed",
            hint="pick a node `docker node ls` shows Ready and Active",
        )
