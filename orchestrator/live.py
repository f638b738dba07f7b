"""What the live host already uses: orch's containers, other containers'
published ports, and sockets listening on the host.

Gathered once per command (one container list call plus /proc reads), then
handed to the pure check and plan functions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import docker_http
from .check import Problem
from .errors import EngineUnavailable
from .ports import footprint_bounds, format_range, hosts_intersect
from .registry import Held
from .spec import (
    LABEL_HASH,
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_PROFILE,
    LABEL_PROJECT,
    ContainerSpec,
    container_name,
)

HOST_PROC_ENV = "ORCH_HOST_PROC"


@dataclass(frozen=True)
class LiveContainer:
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


@dataclass(frozen=True)
class Listener:
    host_ip: str
    port: int
    inode: int


@dataclass(frozen=True)
class LiveNetwork:
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


def list_containers() -> list[LiveContainer]:
    return [LiveContainer.from_api(c) for c in docker_http.containers()]


def owned_by(labels: dict[str, str], project: str, home: Path) -> bool | None:
    """True: this fleet's; False: the same project of another fleet; None: not orch's
    of this project at all."""
    if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_PROJECT) != project:
        return None
    return labels.get(LABEL_HOME) == str(home)


def take_snapshot(project: str, home: Path, with_listeners: bool = True) -> Snapshot:
    snap = Snapshot()
    for container in list_containers():
        mine = owned_by(container.labels, project, home)
        if mine and container.profile:
            if container.name == container_name(project, container.profile):
                snap.ours[container.profile] = container
            else:
                snap.aside.setdefault(container.profile, []).append(container)
            continue
        if mine is False:
            snap.foreign.append(container)
        snap.others.append(container)
    for raw in docker_http.get("/networks") or []:
        net = LiveNetwork(raw["Id"], raw["Name"], raw.get("Labels") or {})
        mine = owned_by(net.labels, project, home)
        if mine:
            snap.networks[net.name] = net
        elif mine is False:
            snap.foreign_networks[net.name] = net
    if with_listeners:
        from .swarm import service_publishers

        snap.listeners = host_listeners()
        snap.others.extend(service_publishers())
    return snap


def host_listeners() -> list[Listener]:
    """TCP sockets in LISTEN state on the host, from /proc/net/tcp and tcp6.

    $ORCH_HOST_PROC names another proc dir (the host's, mounted into a container;
    an empty dir for hermetic unit tests)."""
    proc = os.environ.get(HOST_PROC_ENV, "/proc")
    out = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = Path(f"{proc}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            addr, port = cols[1].split(":")
            out.append(Listener(_decode_ip(addr, v6), int(port, 16), int(cols[9])))
    return out


def held_ports(skip: Callable[[LiveContainer], bool] = lambda _c: False) -> list[Held]:
    """Port intervals held on the host now: listening sockets, ports published by
    containers (no socket when the engine runs without docker-proxy), and the whole
    footprint of every running orch gateway (a leftover of a killed run, a fleet not
    in the registry yet): its unpublished ports are still its own. Containers for
    which `skip` is true are left out (a profile's own container)."""
    held = [(lst.host_ip, lst.port, lst.port) for lst in host_listeners()]
    with contextlib.suppress(EngineUnavailable):
        for raw in docker_http.containers():
            container = LiveContainer.from_api(raw)
            if skip(container):
                continue
            held += [(ip, port, port) for ip, port, _ in container.ports]
            if container.labels.get(LABEL_MANAGED) == "true" and container.state == "running":
                held += _footprint_of(container)
    return held


def _footprint_of(container: LiveContainer) -> list[Held]:
    """The footprint of a running orch gateway, from its OPENCLAW_GATEWAY_PORT."""
    try:
        info = docker_http.get(f"/containers/{container.id}/json")
    except EngineUnavailable:  # gone since it was listed
        return []
    env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
    base = env.get("OPENCLAW_GATEWAY_PORT", "")
    if not base.isdigit():
        return []
    start, end = footprint_bounds(int(base))
    return [(ip, start, end) for ip in {ip for ip, _, _ in container.ports} or {"0.0.0.0"}]


def _decode_ip(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def exit_events(ids: list[str], since: int) -> dict[str, list[dict[str, Any]]]:
    """Die and OOM events of these containers since `since` (unix time), by id: the
    engine remembers them, while a container's state forgets an exit code or an OOM
    kill once its restart policy started it again. One call for all of them."""
    import json
    import time

    if not ids:
        return {}
    filters = {"type": ["container"], "event": ["die", "oom"], "container": ids}
    params = {
        "since": str(since),
        "until": str(int(time.time()) + 1),
        "filters": json.dumps(filters),
    }
    try:
        events = docker_http.events(params)
    except (EngineUnavailable, ValueError):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event.get("id", ""), []).append(event)
    return out


def last_exit_code(events: list[dict[str, Any]]) -> int | None:
    dies = [e for e in events if e.get("Action") == "die"]
    if not dies:
        return None
    last = max(dies, key=lambda e: e.get("timeNano", 0))
    return int((last.get("Actor") or {}).get("Attributes", {}).get("exitCode", 0))


def port_holder(port: int) -> str | None:
    """'pid N (comm)' of a process with a TCP socket on local `port` in any state
    (bound but not listening too: what the engine refuses and a listener scan misses)."""
    proc = os.environ.get(HOST_PROC_ENV, "/proc")
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"{proc}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) >= 10 and int(cols[1].split(":")[1], 16) == port and cols[9] != "0":
                owner = socket_owner(int(cols[9]))
                if owner:
                    return owner
    return None


def socket_owner(inode: int) -> str | None:
    """'pid N (comm)' of the process holding a socket inode, when we may look."""
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"pid {pid} ({comm})"
        except OSError:
            continue
    return None


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
                    problems.append(_taken(spec, binding.role, binding.host_ip, port, owner))
    return problems


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
            return socket_owner(listener.inode) or "a process on the host"
    return None


def _taken(spec: ContainerSpec, role: str, ip: str, port: int, owner: str) -> Problem:
    return Problem(
        code="port-in-use",
        message=(
            f"{spec.profile} {role} port {format_range(port, port)} on {ip} is already"
            f" in use by {owner}"
        ),
        owners=(spec.profile,),
        hint=f"stop {owner}, or move {spec.profile}: orch setup {spec.profile} --port auto --force",
        ports=(port, port),
    )
