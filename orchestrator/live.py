"""What the live host already uses: orch's containers, other containers'
published ports, and sockets listening on the host.

Gathered once per command (one container list call plus /proc reads), then
handed to the pure check and plan functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import docker_http
from .check import Problem
from .ports import format_range, hosts_intersect
from .spec import LABEL_HASH, LABEL_MANAGED, LABEL_PROFILE, LABEL_PROJECT, ContainerSpec


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


@dataclass
class Snapshot:
    """Everything on the host that orch did not put there for this fleet, plus ours."""

    ours: dict[str, LiveContainer] = field(default_factory=dict)  # profile -> container
    others: list[LiveContainer] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)


def list_containers() -> list[LiveContainer]:
    return [LiveContainer.from_api(c) for c in docker_http.containers()]


def take_snapshot(project: str, with_listeners: bool = True) -> Snapshot:
    snap = Snapshot()
    for container in list_containers():
        labels = container.labels
        if labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_PROJECT) == project:
            if container.profile:
                snap.ours[container.profile] = container
        else:
            snap.others.append(container)
    if with_listeners:
        from .swarm import service_publishers

        snap.listeners = host_listeners()
        snap.others.extend(service_publishers())
    return snap


def host_listeners() -> list[Listener]:
    """TCP sockets in LISTEN state on the host, from /proc/net/tcp and tcp6."""
    out = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            addr, port = cols[1].split(":")
            out.append(Listener(_decode_ip(addr, v6), int(port, 16), int(cols[9])))
    return out


def _decode_ip(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


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
    problems = []
    proxied: dict[tuple[str, int], str] = {}
    for container in [*snap.others, *snap.ours.values()]:
        for ip, port, _ in container.ports:
            proxied[(ip, port)] = f"{container.kind} {container.name}"
    for spec in specs:
        mine = snap.ours.get(spec.profile)
        own_ports = {(ip, port) for ip, port, _ in mine.ports} if mine else set()
        for binding in spec.ports:
            for port in range(binding.host_port, binding.host_end + 1):
                owner = _holder(binding.host_ip, port, snap, proxied, own_ports)
                if owner:
                    problems.append(_taken(spec, binding.role, binding.host_ip, port, owner))
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
