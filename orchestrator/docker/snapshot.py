"""What the live host already uses: orch's containers, other containers'
published ports, and sockets listening on the host.

Gathered once per command (one container list call plus /proc reads), then
handed to the pure check and plan functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.base.host import default_home, proc_dir
from orchestrator.base.parallel import at_once
from orchestrator.core.observed import (
    Listener,
    LiveContainer,
    LiveNetwork,
    Snapshot,
    legacy_network_of,
    owned_by,
)
from orchestrator.core.ports import Held, footprint_bounds
from orchestrator.core.spec import (
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_PROJECT,
    container_name,
)
from orchestrator.docker import api as docker_http
from orchestrator.errors import EngineRefused, EngineUnavailable, NotFound


def list_containers(filters: dict[str, list[str]] | None = None) -> list[LiveContainer]:
    return [LiveContainer.from_api(c) for c in docker_http.containers(filters)]


def take_snapshot(project: str, home: Path, whole_host: bool = True) -> Snapshot:
    """What the engine runs, asked for all at once. `whole_host`: every container and
    network, the host's listening sockets and swarm services' ports (what `up` checks
    ports and names against); else only the containers and networks labelled with
    this fleet's project (a label filter: the engine sends nothing else), which is
    all that status, down, check, logs and the workflows read (`ours`, `aside`,
    orphans, `networks`; `foreign`: the project's of another home)."""
    mine = None if whole_host else _project_filter(project)
    calls = [lambda: list_containers(mine), lambda: _listed("/networks", mine)]
    if whole_host:
        calls += [host_listeners, service_publishers]
    containers, networks, *host = at_once(*calls)
    return _snapshot_of(project, home, containers, networks, *(host or ([], [])))


def refresh_own(snap: Snapshot, project: str, home: Path) -> Snapshot:
    """`snap` with this fleet's containers (`ours`, `aside`) as the engine has them
    now, from one list call filtered to the project; the rest of the host as `snap`
    saw it. What a command that changed its own containers (`up`) shows next."""
    containers = list_containers(_project_filter(project))
    fresh = _snapshot_of(project, home, containers, [], [], [])
    return dataclasses.replace(snap, ours=fresh.ours, aside=fresh.aside)


def _project_filter(project: str) -> dict[str, list[str]]:
    """The engine's filter for what orch made for `project` (any home: owned_by sorts)."""
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_PROJECT}={project}"]}


def _snapshot_of(
    project: str,
    home: Path,
    containers: list[LiveContainer],
    networks: list[dict[str, Any]],
    listeners: list[Listener],
    services: list[LiveContainer],
) -> Snapshot:
    snap = Snapshot(owner_of=socket_owner)
    for container in containers:
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
    legacy = home == default_home()
    for raw in networks:
        net = LiveNetwork(raw["Id"], raw["Name"], raw.get("Labels") or {})
        mine = owned_by(net.labels, project, home) or legacy_network_of(net.labels, project, legacy)
        if mine:
            snap.networks[net.name] = net
        elif mine is False:
            snap.foreign_networks[net.name] = net
    snap.listeners = listeners
    snap.others.extend(services)
    return snap


def host_listeners() -> list[Listener]:
    """TCP sockets in LISTEN state on the host: from the kernel's sock_diag netlink,
    else (no netlink, or $ORCH_HOST_PROC naming another proc dir: the host's, mounted
    into a container; an empty dir for hermetic unit tests) /proc/net/tcp and tcp6."""
    proc = proc_dir()
    if proc == "/proc":
        with contextlib.suppress(OSError):
            return _diag_listeners()
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


# sock_diag (linux/sock_diag.h, inet_diag.h): one dump request per address family for
# the sockets in TCP_LISTEN. The kernel walks only its listening table for it, where
# reading /proc/net/tcp walks every socket bucket (8 ms of CPU a `orch up` on a
# 24 GiB host, against 0.2 ms).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, seq, pid
_DIAG_REQUEST = struct.Struct("=BBBxI48x")  # family, protocol, ext, states, sockid (any)


def _diag_listeners() -> list[Listener]:
    """The host's TCP listeners (both families) from sock_diag; OSError when the
    kernel (or a seccomp profile) refuses."""
    out: list[Listener] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            body = _DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
            size = _NLMSG_HEADER.size + len(body)
            sock.send(
                _NLMSG_HEADER.pack(size, _SOCK_DIAG_BY_FAMILY, _NLM_F_DUMP_REQUEST, seq, 0) + body
            )
            while _read_diag(sock.recv(1 << 16), out):
                pass
    return out


def _read_diag(data: bytes, out: list[Listener]) -> bool:
    """Add the listeners of one netlink read to `out`; False once the dump is done."""
    pos = 0
    while pos + _NLMSG_HEADER.size <= len(data):
        length, kind = struct.unpack_from("=IH", data, pos)
        if kind == _NLMSG_DONE:
            return False
        if kind == _NLMSG_ERROR or length < _NLMSG_HEADER.size:
            raise OSError("sock_diag refused the dump")
        # inet_diag_msg: family, state, timer, retrans, then the socket id (source
        # port big-endian, destination port, source address, ...) and at 68 the inode.
        msg = pos + _NLMSG_HEADER.size
        family, port = data[msg], int.from_bytes(data[msg + 4 : msg + 6], "big")
        if family == socket.AF_INET:
            host = socket.inet_ntop(socket.AF_INET, data[msg + 8 : msg + 12])
        else:
            host = _v6_text(data[msg + 8 : msg + 24])
        out.append(Listener(host, port, struct.unpack_from("=I", data, msg + 68)[0]))
        pos += (length + 3) & ~3
    return True


def _v6_text(raw: bytes) -> str:
    """An IPv6 address as /proc's reading gives it: v4-mapped ones as IPv4."""
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


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


def held_except(home: Path, profile: str) -> list[Held]:
    """held_ports without the given profile's own containers (provision.LiveView)."""

    def own(container: LiveContainer) -> bool:
        return container.labels.get(LABEL_HOME) == str(home) and container.profile == profile

    return held_ports(skip=own)


def foreign_projects(home: Path) -> set[str]:
    """The projects of orch's containers and networks on this engine that are not
    `home`'s (another fleet's, or a network orch made before it labelled homes): the
    names a new fleet must not take (provision.ProjectsView); none when no engine answers."""
    label = {"label": [f"{LABEL_MANAGED}=true"]}
    try:
        found = docker_http.containers(label)
        found += docker_http.get("/networks", {"filters": json.dumps(label)}) or []
    except (EngineUnavailable, EngineRefused):
        return set()
    return {
        labels[LABEL_PROJECT]
        for labels in ((item.get("Labels") or {}) for item in found)
        if labels.get(LABEL_PROJECT) and labels.get(LABEL_HOME) != str(home)
    }


def _footprint_of(container: LiveContainer) -> list[Held]:
    """The footprint of a running orch gateway, from its OPENCLAW_GATEWAY_PORT."""
    try:
        info = docker_http.get(f"/containers/{container.id}/json")
    except NotFound:  # gone since it was listed
        return []
    env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
    base = env.get("OPENCLAW_GATEWAY_PORT", "")
    if not base.isdigit():
        return []
    start, end = footprint_bounds(int(base))
    return [(ip, start, end) for ip in {ip for ip, _, _ in container.ports} or {"0.0.0.0"}]


def _decode_ip(hexaddr: str, v6: bool) -> str:

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    return _v6_text(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def exit_events(ids: list[str], since: int) -> dict[str, list[dict[str, Any]]]:
    """Die and OOM events of these containers since `since` (unix time), by id: the
    engine remembers them, while a container's state forgets an exit code or an OOM
    kill once its restart policy started it again. One call for all of them."""
    if not ids:
        return {}
    filters = {"type": ["container"], "event": ["die", "oom"], "container": ids}
    params = {
        "since": str(since),
        # now, to the microsecond: a whole second ahead made the engine hold the
        # answer open until then (0.4 s a status on average)
        "until": f"{time.time():.6f}",
        "filters": json.dumps(filters),
    }
    try:
        events = docker_http.events(params)
    except (EngineUnavailable, EngineRefused, ValueError):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event.get("id", ""), []).append(event)
    return out


def port_holder(port: int) -> str | None:
    """'pid N (comm)' of a process with a TCP socket on local `port` in any state
    (bound but not listening too: what the engine refuses and a listener scan misses)."""
    proc = proc_dir()
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


SERVICE_KIND = "swarm service"


def _listed(path: str, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    params = {"filters": json.dumps(filters)} if filters else None
    return docker_http.get(path, params) or []


class SwarmInfo(NamedTuple):
    state: str  # inactive, pending, active, error, locked
    node_id: str
    manager: bool


def swarm_info() -> SwarmInfo:
    swarm = docker_http.get("/info").get("Swarm") or {}
    return SwarmInfo(
        state=swarm.get("LocalNodeState") or "inactive",
        node_id=swarm.get("NodeID") or "",
        manager=bool(swarm.get("ControlAvailable")),
    )


def service_publishers() -> list[LiveContainer]:
    """Ports published by existing swarm services, as pseudo containers for the port
    checks of `orch up`. Ingress ports are taken on every node and host-mode ports
    on the nodes that run a task; both count, since the task may move. Empty on an
    engine that is not a swarm manager (a worker cannot list services: 503)."""
    try:
        services = _listed("/services")
    except EngineRefused:
        return []
    out = []
    for service in services:
        spec = service.get("Spec") or {}
        ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
        published = tuple(
            ("0.0.0.0", int(p["PublishedPort"]), p.get("Protocol", "tcp"))
            for p in ports
            if p.get("PublishedPort")
        )
        if published:
            out.append(
                LiveContainer(
                    id=service["ID"],
                    name=spec.get("Name", service["ID"][:12]),
                    state="running",
                    status="",
                    labels=spec.get("Labels") or {},
                    ports=published,
                    kind=SERVICE_KIND,
                )
            )
    return out
