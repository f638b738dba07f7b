"""Apply a plan to the Docker engine (docker.api for create, start, stop, remove;
the Docker SDK for logs and exec).

Independent profiles are handled in parallel. A gateway that does not become
ready is shown with its log tail and removed again (or, when it replaced an
older container, the older one is put back), so a failed `orch up` leaves the
host as it found it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.base.host import default_home
from orchestrator.base.parallel import at_once
from orchestrator.core.exits import last_exit_code
from orchestrator.core.observed import LiveContainer, legacy_network_of, port_taken
from orchestrator.core.spec import (
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_PROJECT,
    ContainerSpec,
    gateway_address,
    memory_bytes,
    nano_cpus,
    resource_labels,
)
from orchestrator.docker import api as docker_http
from orchestrator.docker.http1 import connect_tcp, tcp_status
from orchestrator.docker.podman_api import podman_facts, run_healthcheck
from orchestrator.docker.sdk import client
from orchestrator.docker.snapshot import exit_events, port_holder
from orchestrator.errors import (
    Cancelled,
    CheckFailed,
    EngineRefused,
    ImageError,
    NotFound,
    NotReady,
    OrchError,
    PortRefused,
)

READY_POLL_S = 0.25


# The labels that say which fleet made an object: only that fleet may reuse or remove it.
FLEET_KEYS = (LABEL_MANAGED, LABEL_PROJECT, LABEL_HOME)
LOG_TAIL = 40


def missing_images(images: list[str]) -> list[str]:
    """The images of `images` the engine does not have, sorted, each once."""
    missing = []
    for image in sorted(set(images)):
        try:
            docker_http.get(f"/images/{image}/json")
        except NotFound:
            missing.append(image)
    return missing


def engine_cpus() -> int:
    """The engine's CPU count, the highest CPU limit it accepts."""
    return int(docker_http.get("/info")["NCPU"])


def require_images(
    specs: list[ContainerSpec],
    where: str = "this engine; nothing was created",
    hint: str = "build it with `orch images build` (or `make images`)",
) -> None:
    """Refuse before creating anything when an image is missing: there is no
    registry to pull it from, so a create would only fail later, half done."""
    missing = missing_images([s.image for s in specs])
    if missing:
        if any(m.endswith("-browser") for m in missing):
            hint = "build it with `orch images build` (profiles with browser: true need it)"
        raise ImageError(f"image {', '.join(missing)} is not on {where}", hint=hint)


def _remove_container(container_id: str, stop_timeout: int = 30) -> None:
    """Stop gracefully (the gateway needs about 2 s), then remove; gone already is fine."""
    try:
        docker_http.stop(container_id, timeout=stop_timeout)
        docker_http.remove_container(container_id, force=True)
    except NotFound:
        pass


def _create_and_start(spec: ContainerSpec) -> str:
    _ensure_network(spec)
    podman = podman_facts()
    body = create_body(spec, userns=podman.userns if podman else None)
    try:
        container_id = docker_http.create_container(body, spec.name)
    except (EngineRefused, NotFound) as exc:
        raise EngineRefused(f"{spec.profile}: cannot create container {spec.name}: {exc}") from None
    try:
        docker_http.start(container_id)
    except (EngineRefused, NotFound) as exc:
        _discard(container_id, spec)
        refused = port_refusal(spec, str(exc))
        if refused:
            raise refused from None
        hint = _start_hint(str(exc))
        fix = f"\n  fix: {hint}" if hint else ""  # the outcome of `up` keeps the message only
        raise EngineRefused(
            f"{spec.profile}: cannot start container {spec.name}: {exc}{fix}", hint=hint
        ) from None
    return container_id


def _start_hint(message: str) -> str:
    """Podman's runc asks for rlimits above what this host allows a process: its
    containers.conf must set default_ulimits (the one `orch engine start --podman`
    starts the service with does)."""
    if "error setting rlimit" in message:
        return (
            "this Podman's default rlimits exceed the host's: start its API with"
            " `orch engine start --podman` (orch's containers.conf sets default_ulimits),"
            ' or set default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"] in'
            " containers.conf"
        )
    return ""


_PORT_IN_MESSAGE = re.compile(
    r"(?:Bind for |listen tcp[46]? )\[?([0-9a-fA-F.:]+?)\]?:(\d+)"
    r"(?: failed: port is already allocated|: bind: address already in use)"
)


def port_refusal(spec: ContainerSpec, message: str) -> PortRefused | None:
    """The engine's "port is already allocated" / "address already in use" as a check
    failure: role, port, address and, when it can be found, who holds it."""

    match = _PORT_IN_MESSAGE.search(message)
    if not match:
        return None
    ip, port = match.group(1), int(match.group(2))
    role = next((b.role for b in spec.ports if b.host_port <= port <= b.host_end), "published")
    holder = port_holder(port) or "something that took it after the check"
    how = (
        "was refused by the engine (taken after orch checked it, or bound without"
        " listening): it is held by"
    )
    problem = port_taken(spec, role, ip, port, holder, how)
    return PortRefused(f"{spec.profile}: port {port} refused; nothing was left", [problem])


def create_body(spec: ContainerSpec, userns: str | None = None) -> dict[str, Any]:
    """The spec as the Engine API's container create body: ports on their host
    address, bind mounts (the token read-only), user, caps, no-new-privileges,
    limits (memory, pids, CPU), the read-only root and its tmpfs, healthcheck. The
    one translation of a spec to a container: `orch up` and the pytest plugin send
    it; compose export mirrors it. No seccomp or AppArmor option: the engine's
    default profiles apply (orch never asks for unconfined). `userns`: rootless
    Podman's `keep-id` (podman.PodmanFacts.userns), the one engine difference in it."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for binding in spec.ports:
        for cport, hport in binding.expand():
            bindings.setdefault(f"{cport}/{binding.proto}", []).append(
                {"HostIp": binding.host_ip, "HostPort": str(hport)}
            )
    hc = spec.healthcheck
    body: dict[str, Any] = {
        "Hostname": spec.hostname,
        "ExposedPorts": {key: {} for key in bindings},
        "User": spec.user,
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        "Image": spec.image,
        "HostConfig": {
            "Memory": memory_bytes(spec.mem_limit),
            "NetworkMode": spec.network,
            "RestartPolicy": {"Name": spec.restart},
            "CapDrop": list(spec.cap_drop),
            "SecurityOpt": list(spec.security_opt),
            "PortBindings": bindings,
            "PidsLimit": spec.pids_limit,
            "ReadonlyRootfs": spec.read_only,
            "Mounts": [
                {"Target": m.target, "Source": m.source, "Type": "bind", "ReadOnly": m.read_only}
                for m in spec.mounts
            ],
        },
        "Labels": dict(spec.labels),
        "Healthcheck": {
            "Test": list(hc.test),
            "Interval": hc.interval_s * 1_000_000_000,
            "Timeout": hc.timeout_s * 1_000_000_000,
            "Retries": hc.retries,
            "StartPeriod": hc.start_period_s * 1_000_000_000,
        },
        "StopTimeout": spec.stop_timeout_s,
    }
    if userns:
        body["HostConfig"]["UsernsMode"] = userns
    if spec.cpus:
        body["HostConfig"]["NanoCpus"] = nano_cpus(spec.cpus)
    if spec.tmpfs:
        body["HostConfig"]["Tmpfs"] = {t.target: t.options for t in spec.tmpfs}
    if spec.command:
        body["Cmd"] = list(spec.command)
    return body


def _ensure_network(spec: ContainerSpec) -> None:
    """The profile's own network: reused only when this fleet made it (the name filter
    of the API matches substrings, and a same-named network of another fleet would
    join the two fleets' gateways)."""
    wanted = resource_labels(spec)
    for net in docker_http.networks(spec.network):
        if net["Name"] != spec.network:
            continue
        labels = net.get("Labels") or {}
        if all(labels.get(k) == wanted[k] for k in FLEET_KEYS):
            return
        legacy = Path(wanted[LABEL_HOME]) == default_home()
        if legacy_network_of(labels, wanted[LABEL_PROJECT], legacy):
            return
        raise CheckFailed(
            f"{spec.profile}: network {spec.network} exists and is not this fleet's"
            f" (home {labels.get(LABEL_HOME, 'none')}); nothing was created",
            [],
            hint="give this fleet a project of its own: set `project: NEW_NAME` in fleet.yaml",
        )
    docker_http.create_network(spec.network, wanted)


def _discard(container_id: str, spec: ContainerSpec | None) -> None:
    """Remove a container that never became ready (and its network, if unused)."""
    with contextlib.suppress(OrchError):  # best effort; the error shown is the original one
        _remove_container(container_id, stop_timeout=10)
    if spec is not None:
        remove_network(spec.network, spec.labels)


def remove_network(name: str, fleet_labels: dict[str, str]) -> None:
    """Remove the network `name` if the fleet of `fleet_labels` (home, project) made it."""
    for net in docker_http.networks(name):
        labels = net.get("Labels") or {}
        if net["Name"] == name and all(labels.get(k) == fleet_labels.get(k) for k in FLEET_KEYS):
            # Still in use by a container: keep it.
            with contextlib.suppress(OrchError):
                docker_http.remove_network(net["Id"])


def wait_ready(
    spec: ContainerSpec,
    container_id: str | None,
    timeout: float,
    cancel: threading.Event | None = None,
    fresh: bool = True,
) -> None:
    """Poll /readyz on the published gateway port; fail fast if the container exits
    (or, when `fresh`, restarts); raise Cancelled as soon as `cancel` is set."""
    gateway = starting(spec, container_id, fresh)
    for _, error in await_ready([gateway], timeout, cancel):
        if error:
            raise NotReady(error)


@dataclass(frozen=True)
class Starting:
    """A gateway `await_ready` waits for: its container, whether it was just (re)started
    (then a restart by its policy is a failure), and its restart count at that start."""

    spec: ContainerSpec
    container_id: str | None
    fresh: bool = True
    restarts: int = 0
    began: float = field(default_factory=time.monotonic)


def starting(spec: ContainerSpec, container_id: str | None, fresh: bool = True) -> Starting:
    """What `await_ready` needs of a gateway just started: its restart count now (only
    when `fresh`: a restart is a failure only then, so a converged `up` asks the
    engine nothing for the gateways it leaves alone)."""
    return Starting(spec, container_id, fresh, _restart_count(container_id) if fresh else 0)


def await_ready(
    gateways: list[Starting], timeout: float, cancel: threading.Event | None = None
) -> Iterator[tuple[Starting, str | None]]:
    """One poller for many starting gateways, yielding (gateway, None) as each answers
    /readyz and (gateway, error) as soon as one fails (exits, restarts, or `timeout`
    after it started). The caller may append to `gateways` between yields (it starts
    more as others settle): they are polled from the next round on.

    Why one poller and not one waiting thread per gateway: the starts then never wait
    for each other (a pool of waiting threads staggers the gateways behind its size),
    and the probing costs one round of probes every READY_POLL_S for the whole fleet.
    The probes of a round run at once, one plain thread each (base.parallel: a starved
    gateway may hold its probe for the 1 s timeout, and waves would queue the others
    behind it; no pool, so a converged `up` loads no concurrent.futures); the engine is
    asked about each container once a second. Raises Cancelled as soon as `cancel` is
    set.
    """
    since = int(time.time() - timeout - 60)  # exit events of these starts, not older
    settled: set[int] = set()
    next_state_check = 0.0
    while pending := [g for g in gateways if id(g) not in settled]:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{', '.join(g.spec.profile for g in pending)}: interrupted")
        answers = at_once(*(partial(_answers_ready, g) for g in pending))
        for gateway in [g for g, ok in zip(pending, answers, strict=True) if ok]:
            settled.add(id(gateway))
            yield gateway, None
        pending = [g for g in pending if id(g) not in settled]
        now = time.monotonic()
        if pending and now >= next_state_check:
            failures = at_once(*(partial(_failure, g, since) for g in pending))
            for gateway, error in zip(pending, failures, strict=True):
                if error is not None:
                    settled.add(id(gateway))
                    yield gateway, error
            next_state_check = now + 1.0
        for gateway in [g for g in pending if id(g) not in settled]:
            if now - gateway.began >= timeout:
                settled.add(id(gateway))
                why = f"not ready after {timeout:.0f} s"
                yield gateway, _not_ready(gateway.spec, gateway.container_id, why)
        if any(id(g) not in settled for g in gateways):
            time.sleep(READY_POLL_S)


def _answers_ready(gateway: Starting) -> bool:
    host, port = gateway_address(gateway.spec)
    return bool(host) and http_status(host, port, "/readyz", 1.0) == 200


def _failure(gateway: Starting, since: int) -> str | None:
    """Why the container cannot get ready (exited, or restarted by its policy when
    fresh), as NotReady's message; None while it may still. A gateway whose port is
    not published is ready when its healthcheck says healthy: the empty string."""
    spec, container_id = gateway.spec, gateway.container_id
    if not container_id:
        return None
    info = docker_http.get(f"/containers/{container_id}/json")
    state = info["State"]
    if not gateway_address(spec)[0] and _health(container_id, state) == "healthy":
        return ""
    # With restart=unless-stopped a crashing gateway shows up as "restarting",
    # never "exited": a restart during the first wait is a failure too.
    restarted = gateway.fresh and info.get("RestartCount", 0) > gateway.restarts
    if state["Status"] not in ("exited", "dead") and not restarted:
        return None
    code = state["ExitCode"]
    if restarted:  # running again: its state no longer has the exit code
        code = last_exit_code(exit_events([container_id], since).get(container_id, []))
    why = f"exited with code {code}" + (" (restarted by its policy)" if restarted else "")
    return _not_ready(spec, container_id, why)


def _health(container_id: str, state: dict[str, Any]) -> str | None:
    """The container's health; on Podman, whose healthchecks run from systemd timers
    (never, without systemd), the check is run here when it is not healthy yet."""
    health = (state.get("Health") or {}).get("Status")
    if health != "healthy" and podman_facts() is not None:
        health = run_healthcheck(container_id) or health
    return health


def _restart_count(container_id: str | None) -> int:
    if not container_id:
        return 0
    return int(docker_http.get(f"/containers/{container_id}/json").get("RestartCount", 0))


def _not_ready(spec: ContainerSpec, container_id: str | None, why: str) -> str:
    tail = log_tail(container_id, LOG_TAIL) if container_id else ""
    indented = "\n".join(f"    {line}" for line in tail.splitlines())
    return f"{spec.profile}: gateway {why}; last log lines:\n{indented}"


def http_status(host: str, port: int, path: str, timeout: float) -> int | None:
    return tcp_status(host, port, path, timeout)


#: What a port probe asks for: any answer counts, so the cheapest route the gateway
#: serves (its liveness check: a few bytes of JSON), not / (its Control UI page,
#: 2-5x the gateway's time per probe, which `orch status` pays for every published
#: port at once: the canvas port relays to the gateway). Other servers behind a
#: port (browser control, Chrome's DevTools) answer an unknown path with a 404.
PORT_PROBE_PATH = "/healthz"


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something serves this published port. The engine's relay accepts every
    connection and closes it when nothing listens behind it, so a connect proves
    nothing: ask HTTP (what every gateway port speaks) and take any answer; a
    server that holds the connection without answering counts as there too.
    The path asked is PORT_PROBE_PATH, not /."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    request = f"HEAD {PORT_PROBE_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    try:
        with connect_tcp(host, port, timeout) as sock:
            # HTTP/1.1 with a Host: Chrome's DevTools server drops HTTP/1.0 requests.
            sock.sendall(request.encode())
            sock.settimeout(0.25)
            try:
                return sock.recv(1, socket.MSG_PEEK) != b""
            except TimeoutError:
                return True
    except OSError:
        return False


def log_tail(container_id: str, lines: int) -> str:
    try:
        raw = client().api.logs(container_id, tail=lines, stdout=True, stderr=True)
    except Exception as exc:  # noqa: BLE001
        return f"(no logs: {exc})"
    return raw.decode("utf-8", "replace").rstrip()


def exec_in(
    container: LiveContainer,
    command: list[str],
    write: Callable[[bytes], None],
    env: dict[str, str] | None = None,
    write_err: Callable[[bytes], None] | None = None,
) -> int:
    """Run a command inside the container (with `env` added), streaming its output
    (stderr to `write_err` when given); its exit code. An engine that refuses the
    exec is EngineRefused."""
    import docker.errors  # the SDK's exceptions: client() imports them anyway

    api = client().api
    try:
        created = api.exec_create(container.id, command, stdout=True, stderr=True, environment=env)
        exec_id = created["Id"]
        for chunk in api.exec_start(exec_id, stream=True, demux=write_err is not None):
            if write_err is None:
                write(chunk)
                continue
            out, err = chunk
            if out:
                write(out)
            if err:
                write_err(err)
        return int(api.exec_inspect(exec_id)["ExitCode"] or 0)
    except docker.errors.APIError as exc:
        raise EngineRefused(f"the engine refused the exec: {exc}") from None


def service_logs(service: str, tail: int, follow: bool, write: Callable[[bytes], None]) -> None:
    """A swarm service's log (every task's), as `docker service logs`. NotFound when
    there is no such service."""
    import docker.errors  # the SDK's exceptions: client() has imported it already

    try:
        found = client().services.get(service)
    except docker.errors.NotFound:
        raise NotFound(f"no service {service} on the swarm") from None
    for chunk in found.logs(stdout=True, stderr=True, tail=tail, follow=follow):
        write(chunk)


def stream_logs(container: LiveContainer, tail: int, follow: bool, write: Callable[[bytes], None]):
    api = client().api
    for chunk in api.logs(container.id, stream=True, follow=follow, tail=tail):
        write(chunk)
