"""Apply a plan to the Docker engine through the Docker SDK.

Independent profiles are handled in parallel. A gateway that does not become
ready is shown with its log tail and removed again (or, when it replaced an
older container, the older one is put back), so a failed `orch up` leaves the
host as it found it.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.core.exits import last_exit_code
from orchestrator.core.observed import LiveContainer, legacy_network_of, port_taken
from orchestrator.core.spec import (
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_PROJECT,
    ContainerSpec,
    gateway_address,
    resource_labels,
)
from orchestrator.docker import api as docker_http
from orchestrator.docker.snapshot import exit_events
from orchestrator.errors import (
    Cancelled,
    CheckFailed,
    EngineRefused,
    ImageError,
    NotReady,
    PortRefused,
)
from orchestrator.fleet.store import default_home

READY_POLL_S = 0.1


# The labels that say which fleet made an object: only that fleet may reuse or remove it.
FLEET_KEYS = (LABEL_MANAGED, LABEL_PROJECT, LABEL_HOME)
LOG_TAIL = 40


def _client():
    from orchestrator.docker.daemon import docker_client

    return docker_client()


_local = threading.local()


def client():
    """One SDK client per thread: the SDK's HTTP session is not made for sharing."""
    if getattr(_local, "client", None) is None:
        _local.client = _client()
    return _local.client


def require_images(
    specs: list[ContainerSpec],
    where: str = "this engine; nothing was created",
    hint: str = "build it with `orch images build` (or `make images`)",
) -> None:
    """Refuse before creating anything when an image is missing: there is no
    registry to pull it from, so a create would only fail later, half done."""
    if not specs:
        return
    import docker.errors

    missing = []
    for image in sorted({s.image for s in specs}):
        try:
            client().images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        if any(m.endswith("-browser") for m in missing):
            hint = "build it with `orch images build --browser` (profiles with browser: true)"
        raise ImageError(f"image {', '.join(missing)} is not on {where}", hint=hint)


def _remove_container(container_id: str) -> None:
    """Stop gracefully (the gateway needs about 2 s), then remove; gone already is fine."""
    import docker.errors

    api = client().api
    try:
        api.stop(container_id, timeout=30)
        api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass


def _create_and_start(spec: ContainerSpec) -> str:
    api = client().api
    _ensure_network(spec)
    try:
        created = api.create_container(**create_kwargs(spec, api))
    except Exception as exc:  # the SDK raises APIError subclasses
        raise EngineRefused(f"{spec.profile}: cannot create container {spec.name}: {exc}") from None
    container_id = created["Id"]
    try:
        api.start(container_id)
    except Exception as exc:
        _discard(container_id, spec)
        refused = port_refusal(spec, str(exc))
        if refused:
            raise refused from None
        raise EngineRefused(f"{spec.profile}: cannot start container {spec.name}: {exc}") from None
    return container_id


_PORT_IN_MESSAGE = re.compile(
    r"(?:Bind for |listen tcp[46]? )\[?([0-9a-fA-F.:]+?)\]?:(\d+)"
    r"(?: failed: port is already allocated|: bind: address already in use)"
)


def port_refusal(spec: ContainerSpec, message: str) -> PortRefused | None:
    """The engine's "port is already allocated" / "address already in use" as a check
    failure: role, port, address and, when it can be found, who holds it."""
    from orchestrator.docker.snapshot import port_holder

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


def create_kwargs(spec: ContainerSpec, api: Any) -> dict[str, Any]:
    """The low-level create call for a spec (ports, mounts, limits, security)."""
    from docker.types import Mount

    # Keys as ints (tcp) or "port/proto" in the bindings, but (port, proto) tuples in
    # `ports`: the SDK mangles "port/proto" strings there and nothing gets published.
    port_bindings: dict[Any, list[tuple[str, int]]] = {}
    exposed: list[tuple[int, str]] = []
    for binding in spec.ports:
        for cport, hport in binding.expand():
            key = f"{cport}/{binding.proto}"
            if key not in port_bindings:
                exposed.append((cport, binding.proto))
            port_bindings.setdefault(key, []).append((binding.host_ip, hport))
    host_config = api.create_host_config(
        port_bindings=port_bindings,
        mounts=[
            Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
            for m in spec.mounts
        ],
        restart_policy={"Name": spec.restart},
        cap_drop=list(spec.cap_drop),
        security_opt=list(spec.security_opt),
        mem_limit=spec.mem_limit,
        pids_limit=spec.pids_limit,
        network_mode=spec.network,
    )
    hc = spec.healthcheck
    return {
        "image": spec.image,
        "command": list(spec.command) or None,
        "name": spec.name,
        "hostname": spec.hostname,
        "user": spec.user,
        "environment": dict(spec.env),
        "labels": dict(spec.labels),
        "ports": exposed,
        "host_config": host_config,
        "stop_timeout": spec.stop_timeout_s,
        "healthcheck": {
            "test": list(hc.test),
            "interval": hc.interval_s * 1_000_000_000,
            "timeout": hc.timeout_s * 1_000_000_000,
            "retries": hc.retries,
            "start_period": hc.start_period_s * 1_000_000_000,
        },
    }


def _ensure_network(spec: ContainerSpec) -> None:
    """The profile's own network: reused only when this fleet made it (the name filter
    of the API matches substrings, and a same-named network of another fleet would
    join the two fleets' gateways)."""
    api = client().api
    wanted = resource_labels(spec)
    for net in api.networks(names=[spec.network]):
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
    api.create_network(spec.network, driver="bridge", labels=wanted)


def _discard(container_id: str, spec: ContainerSpec | None) -> None:
    """Remove a container that never became ready (and its network, if unused)."""
    api = client().api
    try:
        api.stop(container_id, timeout=10)
        api.remove_container(container_id, force=True)
    except Exception:  # noqa: BLE001 - best effort; the error shown is the original one
        pass
    if spec is not None:
        remove_network(spec.network, spec.labels)


def remove_network(name: str, fleet_labels: dict[str, str]) -> None:
    """Remove the network `name` if the fleet of `fleet_labels` (home, project) made it."""
    api = client().api
    for net in api.networks(names=[name]):
        labels = net.get("Labels") or {}
        if net["Name"] == name and all(labels.get(k) == fleet_labels.get(k) for k in FLEET_KEYS):
            # Still in use by a container: keep it.
            with contextlib.suppress(Exception):
                api.remove_network(net["Id"])


def wait_ready(
    spec: ContainerSpec,
    container_id: str | None,
    timeout: float,
    cancel: threading.Event | None = None,
    fresh: bool = True,
) -> None:
    """Poll /readyz on the published gateway port; fail fast if the container exits
    (or, when `fresh`, restarts); raise Cancelled as soon as `cancel` is set."""
    deadline = time.monotonic() + timeout
    host, port = gateway_address(spec)
    next_state_check = 0.0
    restarts = _restart_count(container_id)
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{spec.profile}: interrupted")
        if host and http_status(host, port, "/readyz", 1.0) == 200:
            return
        now = time.monotonic()
        if container_id and now >= next_state_check:
            info = docker_http.get(f"/containers/{container_id}/json")
            state = info["State"]
            if not host and state.get("Health", {}).get("Status") == "healthy":
                return
            # With restart=unless-stopped a crashing gateway shows up as "restarting",
            # never "exited": a restart during the first wait is a failure too.
            restarted = fresh and info.get("RestartCount", 0) > restarts
            if state["Status"] in ("exited", "dead") or restarted:
                code = state["ExitCode"]
                if restarted:  # running again: its state no longer has the exit code
                    created = int(time.time() - timeout - 60)
                    code = last_exit_code(
                        exit_events([container_id], created).get(container_id, [])
                    )
                why = f"exited with code {code}" + (
                    " (restarted by its policy)" if restarted else ""
                )
                raise NotReady(_not_ready(spec, container_id, why))
            next_state_check = now + 1.0
        if now >= deadline:
            raise NotReady(_not_ready(spec, container_id, f"not ready after {timeout:.0f} s"))
        time.sleep(READY_POLL_S)


def _restart_count(container_id: str | None) -> int:
    if not container_id:
        return 0
    return int(docker_http.get(f"/containers/{container_id}/json").get("RestartCount", 0))


def _not_ready(spec: ContainerSpec, container_id: str | None, why: str) -> str:
    tail = log_tail(container_id, LOG_TAIL) if container_id else ""
    indented = "\n".join(f"    {line}" for line in tail.splitlines())
    return f"{spec.profile}: gateway {why}; last log lines:\n{indented}"


def http_status(host: str, port: int, path: str, timeout: float) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(0.1)
            try:
                # The relay accepts and then closes at once when nothing listens behind it.
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


def exec_in(container: LiveContainer, command: list[str], write: Callable[[bytes], None]) -> int:
    """Run a command inside the container, streaming its output; its exit code."""
    api = client().api
    exec_id = api.exec_create(container.id, command, stdout=True, stderr=True)["Id"]
    for chunk in api.exec_start(exec_id, stream=True):
        write(chunk)
    return int(api.exec_inspect(exec_id)["ExitCode"] or 0)


def stream_logs(container: LiveContainer, tail: int, follow: bool, write: Callable[[bytes], None]):
    api = client().api
    for chunk in api.logs(container.id, stream=True, follow=follow, tail=tail):
        write(chunk)
