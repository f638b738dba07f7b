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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import docker_http
from .check import Problem
from .errors import CheckFailed, ImageError, Interrupted, NotReady, OrchError, Terminated
from .live import LiveContainer, exit_events, last_exit_code
from .plan import ASIDE_REASON, Action, Kind
from .spec import LABEL_HOME, LABEL_MANAGED, LABEL_PROJECT, ContainerSpec, resource_labels

Progress = Callable[[str, str], None]
READY_POLL_S = 0.1
# The labels that say which fleet made an object: only that fleet may reuse or remove it.
FLEET_KEYS = (LABEL_MANAGED, LABEL_PROJECT, LABEL_HOME)
LOG_TAIL = 40


@dataclass
class Outcome:
    profile: str
    action: str
    container_id: str | None
    ready: bool
    seconds: float
    error: str | None = None
    # What an interrupted or failed action left: "rolled back: ...", "kept: ready".
    note: str = ""
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data.pop("problems")
        return data


class Cancelled(OrchError):
    """Raised in a worker when the command was interrupted (Ctrl-C, SIGTERM)."""


class PortRefused(CheckFailed):
    """The engine refused a published port that the check found free: something took
    it in between (or holds it bound without listening)."""


def _client():
    from .dockerd import docker_client

    return docker_client()


_local = threading.local()


def client():
    """One SDK client per thread: the SDK's HTTP session is not made for sharing."""
    if getattr(_local, "client", None) is None:
        _local.client = _client()
    return _local.client


def apply_up(
    actions: list[Action],
    timeout: float,
    keep_failed: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Execute the actions in parallel; raise CheckFailed when the engine refused a
    port, NotReady when a gateway did not get ready, Interrupted on Ctrl-C/SIGTERM."""
    say = progress or (lambda _p, _m: None)
    needs_image = [a.spec for a in actions if a.kind in (Kind.CREATE, Kind.RECREATE) and a.spec]
    require_images(needs_image)
    outcomes = fan_out(
        actions, lambda a, cancel: _apply_one(a, timeout, keep_failed, say, cancel), "up"
    )
    failed = [o for o in outcomes if o.error]
    if failed and all(o.problems for o in failed):
        problems = [p for o in failed for p in o.problems]
        raise CheckFailed(
            f"{len(problems)} published port(s) were refused by the engine; nothing was"
            " left of the new containers",
            problems,
            hint=problems[0].hint,
        )
    if failed:
        raise NotReady(
            "\n\n".join(o.error or "" for o in failed),
            hint="fix the cause shown in the log lines above, then run `orch up` again",
        )
    return outcomes


def fan_out(
    actions: list[Action], one: Callable[[Action, threading.Event], Outcome], verb: str
) -> list[Outcome]:
    """Run `one` for every action in parallel. On Ctrl-C or SIGTERM (raised in this,
    the main thread) tell the workers to stop (they look at `cancel` between steps and
    while they wait), let each roll back or keep what it did, and raise Interrupted
    saying which, within a second or two."""
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(actions))))
    futures = [pool.submit(one, action, cancel) for action in actions]
    try:
        return [f.result() for f in futures]
    except (KeyboardInterrupt, Terminated) as exc:
        cancel.set()
        signum = Terminated.signum if isinstance(exc, Terminated) else 2
        lines = []
        for action, future in zip(actions, futures, strict=True):
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - reported, not raised: we are stopping
                lines.append(f"{action.profile}: {err}")
                continue
            lines.append(f"{action.profile}: {_what_happened(outcome)}")
        raise Interrupted(
            f"orch {verb} interrupted; per profile:\n" + "\n".join(f"  {x}" for x in lines),
            hint=f"run `orch {verb}` again: it converges from here",
            signum=signum,
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _what_happened(outcome: Outcome) -> str:
    if outcome.note:
        return outcome.note
    if outcome.ready:
        return "ready"
    return outcome.error or outcome.action


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
        raise ImageError(f"image {', '.join(missing)} is not on {where}", hint=hint)


def _apply_one(
    action: Action, timeout: float, keep_failed: bool, say: Progress, cancel: threading.Event
) -> Outcome:
    start = time.monotonic()
    spec = action.spec
    assert spec is not None
    container_id = action.container.id if action.container else None
    if cancel.is_set():
        return Outcome(spec.profile, action.kind, container_id, False, 0.0, note="not started")
    try:
        for leftover in action.cleanup:
            say(spec.profile, f"removing {leftover.name} ({ASIDE_REASON})")
            _remove_container(leftover.id)
        if action.kind == Kind.CREATE:
            say(spec.profile, "creating")
            container_id = _create_and_start(spec)
        elif action.kind == Kind.RECREATE:
            assert action.container is not None
            say(spec.profile, f"recreating: {action.reason}")
            container_id = _replace(spec, action.container, timeout, keep_failed, say, cancel)
            return Outcome(spec.profile, action.kind, container_id, True, _since(start))
        elif action.kind == Kind.START:
            say(spec.profile, "starting")
            client().api.start(container_id)
        elif action.kind == Kind.RESTART:
            say(spec.profile, "restarting (crash loop)")
            client().api.restart(container_id, timeout=spec.stop_timeout_s)
        if action.kind != Kind.NOOP:
            say(spec.profile, "waiting for /readyz")
        wait_ready(spec, container_id, timeout, cancel, fresh=action.kind != Kind.NOOP)
        if action.kind != Kind.NOOP:
            say(spec.profile, f"ready in {_since(start):.1f} s")
        return Outcome(spec.profile, action.kind, container_id, True, _since(start))
    except Cancelled:
        note = "interrupted before it was ready"
        if container_id and action.kind == Kind.CREATE:
            _discard(container_id, spec)
            note = "interrupted before it was ready: rolled back (its new container removed)"
        elif action.kind == Kind.RECREATE:
            note = "interrupted: rolled back (the new container removed, the old one put back)"
        elif action.kind in (Kind.START, Kind.RESTART):
            note = "interrupted while starting: kept (its container goes on starting)"
        return Outcome(spec.profile, action.kind, container_id, False, _since(start), note=note)
    except NotReady as exc:
        if container_id and action.kind == Kind.CREATE and not keep_failed:
            _discard(container_id, spec)
        return Outcome(spec.profile, action.kind, container_id, False, _since(start), exc.message)
    except CheckFailed as exc:
        return Outcome(
            spec.profile,
            action.kind,
            None,
            False,
            _since(start),
            exc.message,
            problems=exc.problems,
        )
    except OrchError as exc:
        return Outcome(spec.profile, action.kind, container_id, False, _since(start), exc.message)


def _replace(
    spec: ContainerSpec,
    old: LiveContainer,
    timeout: float,
    keep_failed: bool,
    say: Progress,
    cancel: threading.Event,
) -> str:
    """Stop and set aside the old container, start the new one, and only then
    remove the old; if the new one never gets ready (or the command is interrupted),
    put the old one back. A kill in between leaves the set-aside container, which
    the next `orch up` removes (plan.ASIDE_REASON)."""
    api = client().api
    was_running = old.state in ("running", "restarting")
    api.stop(old.id, timeout=spec.stop_timeout_s)
    aside = f"{old.name}-replaced-{old.id[:8]}"
    api.rename(old.id, aside)
    new_id = None
    try:
        new_id = _create_and_start(spec)
        say(spec.profile, "waiting for /readyz")
        wait_ready(spec, new_id, timeout, cancel)
    except OrchError as exc:
        rollback = isinstance(exc, Cancelled) or not keep_failed
        if new_id and rollback:
            _discard(new_id, None)
        if rollback:
            api.rename(old.id, old.name)
            if was_running:
                api.start(old.id)
        raise
    api.remove_container(old.id)
    return new_id


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
        raise OrchError(f"{spec.profile}: cannot create container {spec.name}: {exc}") from None
    container_id = created["Id"]
    try:
        api.start(container_id)
    except Exception as exc:
        _discard(container_id, spec)
        refused = port_refusal(spec, str(exc))
        if refused:
            raise refused from None
        raise OrchError(f"{spec.profile}: cannot start container {spec.name}: {exc}") from None
    return container_id


_PORT_IN_MESSAGE = re.compile(
    r"(?:Bind for |listen tcp[46]? )\[?([0-9a-fA-F.:]+?)\]?:(\d+)"
    r"(?: failed: port is already allocated|: bind: address already in use)"
)


def port_refusal(spec: ContainerSpec, message: str) -> PortRefused | None:
    """The engine's "port is already allocated" / "address already in use" as a check
    failure: role, port, address and, when it can be found, who holds it."""
    from .live import port_holder

    match = _PORT_IN_MESSAGE.search(message)
    if not match:
        return None
    ip, port = match.group(1), int(match.group(2))
    role = next((b.role for b in spec.ports if b.host_port <= port <= b.host_end), "published")
    holder = port_holder(port) or "something that took it after the check"
    problem = Problem(
        code="port-in-use",
        message=(
            f"{spec.profile} {role} port {port} on {ip} was refused by the engine: it is"
            f" held by {holder} (taken after orch checked it, or bound without listening)"
        ),
        owners=(spec.profile,),
        hint=(
            f"stop {holder}, or move {spec.profile}: orch setup {spec.profile} --port auto --force"
        ),
        ports=(port, port),
    )
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


def gateway_address(spec: ContainerSpec) -> tuple[str | None, int]:
    for binding in spec.ports:
        if binding.role == "gateway":
            host = binding.host_ip
            return ("127.0.0.1" if host in ("0.0.0.0", "::") else host), binding.host_port
    return None, spec.base_port


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


def apply_down(actions: list[Action], say: Progress | None = None) -> list[Outcome]:
    """Stop gracefully (the gateway needs about 2 s), remove containers, and each
    profile's network whether or not a container was left."""
    import docker.errors

    say = say or (lambda _p, _m: None)

    def one(action: Action, cancel: threading.Event) -> Outcome:
        start = time.monotonic()
        if cancel.is_set():
            return Outcome(action.profile, "kept", None, False, 0.0, note="not stopped")
        containers = ([action.container] if action.container else []) + list(action.cleanup)
        for container in containers:
            say(action.profile, f"stopping {container.name}")
            _remove_container(container.id)
        api = client().api
        for network_id in action.networks:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(network_id)
        if not containers:
            if not action.networks:
                return Outcome(action.profile, "noop", None, False, 0.0)
            note = f"removed {len(action.networks)} network(s) left without a container"
            return Outcome(action.profile, "removed", None, False, _since(start), note=note)
        first = containers[0].id
        return Outcome(action.profile, "removed", first, False, _since(start), note="removed")

    return fan_out(actions, one, "down")


def restart(container: LiveContainer, spec: ContainerSpec, timeout: float) -> None:
    """Graceful restart, then wait until ready; Ctrl-C while waiting keeps it starting."""
    try:
        client().api.restart(container.id, timeout=spec.stop_timeout_s)
        wait_ready(spec, container.id, timeout)
    except (KeyboardInterrupt, Terminated) as exc:
        signum = Terminated.signum if isinstance(exc, Terminated) else 2
        raise Interrupted(
            f"{spec.profile}: interrupted; its container was restarted and goes on starting",
            hint=f"`orch status {spec.profile}` shows when it is ready",
            signum=signum,
        ) from None


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


def _since(start: float) -> float:
    return round(time.monotonic() - start, 3)
