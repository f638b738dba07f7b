"""What a snapshot of the live host holds (containers, networks, listening sockets), seen
from one fleet, and the pure checks on it: which objects are this fleet's, which
published ports or names something else already holds. The Docker layer fills it in
(docker/snapshot.py); plans and checks only read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.core.ports import format_range, hosts_intersect
from orchestrator.core.problem import Problem
from orchestrator.core.spec import (
    LABEL_HASH,
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_PROFILE,
    LABEL_PROJECT,
    ContainerSpec,
)


class LiveContainer(NamedTuple):
    """One container as `docker ps -a` reports it."""

    id: str
    name: str
    state: str  # running, exited, created, restarting, paused, dead
    status: str  # e.g. "Up 3 minutes (healthy)"
    labels: dict[str, str]
    ports: tuple[tuple[str, int, str], ...]  # (host ip, host port, proto) published
    image: str = ""
    created: int = 0
    kind: str = "container"  # or "swarm service": what port conflicts name it as

    @property
    def profile(self) -> str | None:
        return self.labels.get(LABEL_PROFILE)

    @property
    def spec_hash(self) -> str | None:
        return self.labels.get(LABEL_HASH)

    @property
    def health(self) -> str:
        for word in ("healthy", "unhealthy", "health: starting"):
            if f"({word})" in self.status:
                return word.removeprefix("health: ")
        return "none"

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> LiveContainer:
        ports = tuple(
            (p.get("IP", "0.0.0.0"), int(p["PublicPort"]), p.get("Type", "tcp"))
            for p in raw.get("Ports") or []
            if p.get("PublicPort")
        )
        return cls(
            id=raw["Id"],
            name=(raw.get("Names") or ["/"])[0].lstrip("/"),
            state=raw.get("State", ""),
            status=raw.get("Status", ""),
            labels=raw.get("Labels") or {},
            ports=ports,
            image=raw.get("Image", ""),
            created=int(raw.get("Created", 0)),
        )


class Listener(NamedTuple):
    host_ip: str
    port: int
    inode: int


class LiveNetwork(NamedTuple):
    id: str
    name: str
    labels: dict[str, str]


@dataclass
class Snapshot:
    """What runs on the host, seen from one fleet (one home and project).

    `ours` holds only what this fleet created (its project AND its home in the
    labels). `foreign` holds orch objects of the same project made by another
    fleet (another home): never adopted, stopped or shown, but named when they
    block a name. Everything else that publishes ports is in `others`.
    """

    ours: dict[str, LiveContainer] = field(default_factory=dict)  # profile -> container
    others: list[LiveContainer] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    foreign: list[LiveContainer] = field(default_factory=list)
    # This fleet's containers that do not carry their profile's name: set aside by a
    # recreate that was interrupted (`NAME-replaced-ID`), to be removed.
    aside: dict[str, list[LiveContainer]] = field(default_factory=dict)
    # Who holds a listening socket (by inode): the snapshot taker knows how to look.
    owner_of: Callable[[int], str | None] = lambda _inode: None
    networks: dict[str, LiveNetwork] = field(default_factory=dict)  # ours, by name
    foreign_networks: dict[str, LiveNetwork] = field(default_factory=dict)

    def holder_of(self, name: str) -> LiveContainer | None:
        """Another fleet's container that has this name."""
        return next((c for c in self.foreign if c.name == name), None)

    def all_of(self, profile: str) -> list[LiveContainer]:
        """Every container of this fleet for `profile`: its own and any set aside."""
        current = self.ours.get(profile)
        return ([current] if current else []) + self.aside.get(profile, [])

    def orphans(self, profiles: Iterable[str]) -> dict[str, list[LiveContainer]]:
        """This fleet's containers whose profile is not in `profiles` (the fleet file)."""
        known = set(profiles)
        names = (set(self.ours) | set(self.aside)) - known
        return {name: self.all_of(name) for name in sorted(names)}


def owned_by(labels: dict[str, str], project: str, home: Path) -> bool | None:
    """True: this fleet's; False: the same project of another fleet; None: not orch's
    of this project at all."""
    if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_PROJECT) != project:
        return None
    return labels.get(LABEL_HOME) == str(home)


def legacy_network_of(labels: dict[str, str], project: str, default_home: bool) -> bool:
    """A network orch made before networks carried their home: it has the project but
    no home label. Only the default home's fleet (project `orch` by default, as all
    fleets were then) may take it as its own."""
    return (
        default_home
        and labels.get(LABEL_MANAGED) == "true"
        and labels.get(LABEL_PROJECT) == project
        and LABEL_HOME not in labels
    )


def live_problems(specs: list[ContainerSpec], snap: Snapshot) -> list[Problem]:
    """Published ports of `specs` that something else on the host already holds.

    Ports held by the profile's own current container are fine (it is being kept
    or replaced). Ports held through docker-proxy by another container are named
    by that container, not by the proxy process.
    """
    problems = name_problems(specs, snap)
    proxied: dict[tuple[str, int], str] = {}
    aside = [c for cs in snap.aside.values() for c in cs]
    for container in [*snap.others, *snap.ours.values(), *aside]:
        for ip, port, _ in container.ports:
            proxied[(ip, port)] = describe(container)
    for spec in specs:
        own_ports = {(ip, port) for c in snap.all_of(spec.profile) for ip, port, _ in c.ports}
        for binding in spec.ports:
            for port in range(binding.host_port, binding.host_end + 1):
                owner = _holder(binding.host_ip, port, snap, proxied, own_ports)
                if owner:
                    problems.append(port_taken(spec, binding.role, binding.host_ip, port, owner))
    return problems


def cpu_problems(specs: list[ContainerSpec], host_cpus: int) -> list[Problem]:
    """CPU limits above the engine's CPU count: Docker refuses to create those
    containers, so `up` says so before it creates any."""
    return [
        Problem(
            code="cpus-over-host",
            message=(
                f"{spec.profile} asks for cpus {spec.cpus:g}, more than the {host_cpus}"
                " CPU(s) of this engine; Docker refuses such a limit"
            ),
            owners=(spec.profile,),
            hint=f"orch setup {spec.profile} --cpus {host_cpus} --force (or --cpus 0: no limit)",
        )
        for spec in specs
        if spec.cpus > host_cpus
    ]


def describe(container: LiveContainer) -> str:
    """How a port conflict names a container: with its fleet when it is orch's."""
    home = container.labels.get(LABEL_HOME)
    where = f" of the fleet in {home}" if home and container.labels.get(LABEL_MANAGED) else ""
    return f"{container.kind} {container.name}{where}"


def name_problems(specs: list[ContainerSpec], snap: Snapshot) -> list[Problem]:
    """Container or network names another fleet (same project, other home) already has."""
    problems = []
    for spec in specs:
        holder = snap.holder_of(spec.name)
        network = snap.foreign_networks.get(spec.network)
        if holder is None and network is None:
            continue
        labels = holder.labels if holder else network.labels  # type: ignore[union-attr]
        what = f"container {spec.name}" if holder else f"network {spec.network}"
        problems.append(
            Problem(
                code="name-taken",
                message=(
                    f"{spec.profile}: {what} belongs to the fleet in"
                    f" {labels.get(LABEL_HOME, '(unknown home)')} (project"
                    f" {labels.get(LABEL_PROJECT)}); orch never adopts another fleet's objects"
                ),
                owners=(spec.profile,),
                hint=(
                    "give this fleet a project of its own: set `project: NEW_NAME` in"
                    f" {spec.labels.get(LABEL_HOME, '$ORCH_HOME')}/fleet.yaml"
                ),
            )
        )
    return problems


def _holder(
    ip: str,
    port: int,
    snap: Snapshot,
    proxied: dict[tuple[str, int], str],
    own: set[tuple[str, int]],
) -> str | None:
    for (cip, cport), name in proxied.items():
        if cport == port and hosts_intersect(cip, ip) and (cip, cport) not in own:
            return name
    for listener in snap.listeners:
        if listener.port == port and hosts_intersect(listener.host_ip, ip):
            if any(op == port and hosts_intersect(oip, ip) for oip, op in own):
                continue
            if any(cport == port for (_, cport) in proxied):
                continue  # docker-proxy of a container already named above or ours
            return snap.owner_of(listener.inode) or "a process on the host"
    return None


def port_taken(
    spec: ContainerSpec,
    role: str,
    ip: str,
    port: int,
    owner: str,
    how: str = "is already in use by",
) -> Problem:
    """A published port of `spec` that `owner` holds: the one form of that problem, for
    the live check before anything starts and for a port the engine refused later."""
    return Problem(
        code="port-in-use",
        message=f"{spec.profile} {role} port {format_range(port, port)} on {ip} {how} {owner}",
        owners=(spec.profile,),
        hint=f"stop {owner}, or move {spec.profile}: orch setup {spec.profile} --port auto --force",
        ports=(port, port),
    )
