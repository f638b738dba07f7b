"""Real, isolated OpenClaw gateways for test suites.

- `OpenClawGatewayContainer`: a testcontainers container created from the same
  ContainerSpec `orch up` uses, by the same create body (docker.containers.create_body),
  ready when /readyz answers (engine.wait_ready: fails fast with the log tail).
- `GatewayFactory`: what the pytest fixtures use. Each call prepares a throwaway
  orch home with `orch setup`'s own code (dirs owned by the container user, token,
  openclaw.json), takes whole free port footprints, starts the gateways in
  parallel and hands back `Gateway` handles; `close()` removes everything.
- Ports: footprints reserved in the host registry (orchestrator.registry) across
  processes (pytest-xdist workers, two CI jobs, every fleet of the host), checked
  against ports in use on the host.
- Run records: every container, network and dir carries the run id and the owning
  process, so `orch gc` can remove what a killed run left and never a live run.

pytest loads orchestrator.pytest_plugin (stdlib only) for every run; this module
imports testcontainers and the Docker SDK and is only imported when a test asks
for a gateway.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy

from orchestrator.base.owner import Owner
from orchestrator.core.ports import Held, footprint_bounds
from orchestrator.core.spec import ContainerSpec, resource_labels
from orchestrator.errors import (
    EngineRefused,
    EngineUnavailable,
    ImageError,
    NotReady,
    OrchError,
    UsageError,
)
from orchestrator.fleet.registry import LABEL_RUN_ID, LABEL_RUN_OWNER, PortRegistry
from orchestrator.testing.runs import current_run_id, new_run_dir, run_labels, runs_root

ENV_PORT_START = "ORCH_TEST_PORT_START"
ENV_IMAGE = "ORCH_TEST_IMAGE"


# Below Linux's ephemeral range (32768+) and away from 18789, where `orch setup`
# puts a user's own fleet: a test run never takes the ports of a fleet that is down.
DEFAULT_PORT_START = 20000
DEFAULT_TIMEOUT = 120.0
PROJECT_PREFIX = "orchtest-"


def live_ports() -> list[Held]:
    """Port intervals held on the host now (orchestrator.live.held_ports)."""
    from orchestrator.docker.snapshot import held_ports

    return held_ports()


class _ReadyzWait(WaitStrategy):
    """engine.wait_ready as a testcontainers wait strategy: /readyz on the published
    gateway port, failing at once (with the log tail) when the gateway exits."""

    def __init__(self, spec: ContainerSpec, timeout: float) -> None:
        super().__init__()
        self.spec = spec
        self.with_startup_timeout(int(timeout))

    def wait_until_ready(self, container: Any) -> None:
        from orchestrator.docker.containers import wait_ready

        wait_ready(self.spec, container.get_container_id(), self._startup_timeout)


class OpenClawGatewayContainer(DockerContainer):
    """One gateway, created from a ContainerSpec exactly as `orch up` creates it.

    `start()` sends docker.containers.create_body (ports on their host address, bind mounts
    with the read-only token, user, cap_drop ALL, no-new-privileges, limits,
    healthcheck), so the spec has one translation to Docker, not two. Its network
    is created and removed with it. `stop()` is graceful: a gateway killed with
    `rm -f` holds its state dir's owner lease for minutes.

        with OpenClawGatewayContainer(spec) as gateway:
            code, output = gateway.exec(["openclaw", "--version"])
    """

    def __init__(self, spec: ContainerSpec, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(spec.image, name=spec.name, env=dict(spec.env))
        self.spec = spec
        # What is published, in testcontainers' terms (informative; creation uses the spec).
        self.ports = {
            f"{cport}/{b.proto}": hport for b in spec.ports for cport, hport in b.expand()
        }
        self._network_id: str | None = None
        self.waiting_for(_ReadyzWait(spec, timeout))

    def launch(self) -> OpenClawGatewayContainer:
        """Create the network and the container and start it, without waiting."""
        from docker.errors import APIError, ImageNotFound
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import Reaper
        from testcontainers.core.labels import create_labels

        from orchestrator.docker.containers import create_body

        if not testcontainers_config.ryuk_disabled:
            _start_reaper(Reaper)
        client = self.get_docker_client().client
        try:
            client.images.get(self.spec.image)
        except ImageNotFound:
            raise ImageError(
                f"image {self.spec.image} is not on this engine",
                hint="build it with `orch images build` (or `make images`)",
            ) from None
        self._network_id = client.api.create_network(
            self.spec.network, driver="bridge", labels=resource_labels(self.spec)
        )["Id"]
        body = create_body(self.spec)
        # testcontainers' session labels too: where its reaper can run, it reaps these.
        body["Labels"] = create_labels(self.spec.image, body["Labels"])
        try:
            created = client.api.create_container_from_config(body, self.spec.name)
            self._container = client.containers.get(created["Id"])
            client.api.start(created["Id"])
        except APIError as exc:
            raise EngineRefused(
                f"{self.spec.profile}: cannot start container {self.spec.name}:"
                f" {exc.explanation or exc}",
                hint="another process may have taken a port since it was reserved; run again",
            ) from None
        return self

    def wait_until_ready(self) -> None:
        if self._wait_strategy is not None:
            self._wait_strategy.wait_until_ready(self)

    def start(self) -> OpenClawGatewayContainer:
        try:
            self.launch()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Stop gracefully, then remove the container and its network."""
        from docker.errors import NotFound

        api = self.get_docker_client().client.api
        if self._container is not None:
            with contextlib.suppress(NotFound):
                api.stop(self._container.id, timeout=self.spec.stop_timeout_s)
            with contextlib.suppress(NotFound):
                api.remove_container(self._container.id, v=delete_volume, force=force)
            self._container = None
        if self._network_id is not None:
            with contextlib.suppress(NotFound):
                api.remove_network(self._network_id)
            self._network_id = None


def _start_reaper(reaper: Any) -> None:
    try:
        reaper.get_instance()
    except Exception as exc:  # noqa: BLE001 - the SDK's pull errors vary
        raise OrchError(
            f"testcontainers' reaper (Ryuk) cannot start: {exc}",
            hint="set TESTCONTAINERS_RYUK_DISABLED=true: orch removes its gateways itself,"
            " and `orch gc` removes what a killed run left",
        ) from None


@dataclass(frozen=True)
class GatewayDirs:
    config: Path
    state: Path
    workspace: Path


@dataclass
class Gateway:
    """A ready gateway, as a test sees it."""

    name: str
    url: str
    port: int
    token: str = field(repr=False)
    token_file: Path
    dirs: GatewayDirs
    footprint: tuple[int, int]
    container_name: str
    run_id: str
    container: OpenClawGatewayContainer = field(repr=False)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def exec(self, command: str | list[str]) -> tuple[int, str]:
        """Run a command in the gateway's container, e.g. ["openclaw", "health"]:
        (exit code, stdout and stderr). The image's `openclaw` wrapper reads the token
        file, so the gateway's own CLI authenticates with nothing on the command line."""
        code, output = self.container.exec(command)
        return int(code or 0), output.decode("utf-8", "replace")

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode("utf-8", "replace")


class _Group:
    """The gateways of one factory call: one orch home, one project, one run dir."""

    def __init__(self, root: Path, image: str, timeout: float, labels: dict[str, str]) -> None:
        self.root = root
        self.image = image
        self.timeout = timeout
        self.labels = labels
        self.owner = Owner.parse(labels[LABEL_RUN_OWNER]) or Owner.current()
        self.home: Path | None = None
        self.bases: list[int] = []
        self.containers: list[OpenClawGatewayContainer] = []
        self.gateways: list[Gateway] = []

    def prepare(
        self, names: list[str], rescues: dict[str, str], port_start: int
    ) -> list[ContainerSpec]:
        """Dirs, token and openclaw.json of each gateway with `orch setup`'s own code."""
        from orchestrator.core.model import DEFAULT_BIND_IP, Fleet
        from orchestrator.core.spec import render
        from orchestrator.docker.incontainer import require_host_view
        from orchestrator.fleet.provision import SetupRequest, setup
        from orchestrator.fleet.store import load_fleet, save_fleet

        self.home = new_run_dir(self.root, self.labels)
        require_host_view([str(self.home)], loopback_ports=True)
        self.bases = PortRegistry().reserve(
            len(names),
            DEFAULT_BIND_IP,
            self.labels,
            port_start,
            live_ports,
            home=self.home,
        )
        project = f"{PROJECT_PREFIX}{secrets.token_hex(5)}"
        save_fleet(self.home, Fleet(project=project))
        for name, base in zip(names, self.bases, strict=True):
            request = SetupRequest(
                name=name, port=base, image=self.image, rescues=rescues.get(name)
            )
            setup(self.home, request)
        fleet = load_fleet(self.home)
        specs = [render(fleet.profiles[n], fleet, self.home) for n in names]
        return [s.model_copy(update={"labels": {**s.labels, **self.labels}}) for s in specs]

    def start(self, specs: list[ContainerSpec]) -> list[Gateway]:
        """Create every container first (fast, in order), then wait for all at once."""
        for spec in specs:
            container = OpenClawGatewayContainer(spec, self.timeout)
            self.containers.append(container)
            container.launch()
        # Not `with`: on Ctrl-C its exit would wait for every wait to time out. The
        # finalizer removes the containers, and the waits then end at once.
        pool = ThreadPoolExecutor(max_workers=len(self.containers))
        try:
            errors = [e for e in pool.map(_ready_or_error, self.containers) if e is not None]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if errors:
            raise _one_error(errors)
        self.gateways = [self._handle(c) for c in self.containers]
        return self.gateways

    def _handle(self, container: OpenClawGatewayContainer) -> Gateway:
        from orchestrator.core.paths import profile_dirs
        from orchestrator.fleet.openclaw_config import read_token
        from orchestrator.fleet.store import load_fleet

        assert self.home is not None
        spec = container.spec
        dirs = profile_dirs(load_fleet(self.home).profiles[spec.profile], self.home)
        return Gateway(
            name=spec.profile,
            url=spec.url() or "",
            port=spec.base_port,
            token=read_token(dirs),
            token_file=dirs.token_file,
            dirs=GatewayDirs(dirs.config, dirs.state, dirs.workspace),
            footprint=footprint_bounds(spec.base_port),
            container_name=spec.name,
            run_id=self.labels[LABEL_RUN_ID],
            container=container,
        )

    def close(self) -> None:
        """Remove containers (gracefully, in parallel), networks, ports and dirs."""
        if self.containers:
            with ThreadPoolExecutor(max_workers=len(self.containers)) as pool:
                list(pool.map(_stop_quietly, self.containers))
            self.containers = []
        if self.bases:
            PortRegistry().release(self.bases, self.owner)
            self.bases = []
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


def _one_error(errors: list[BaseException]) -> BaseException:
    """Several gateways that never got ready are one NotReady with every log tail."""
    others = [e for e in errors if not isinstance(e, NotReady)]
    if others or len(errors) == 1:
        return (others or errors)[0]
    return NotReady(
        "\n\n".join(e.message for e in errors if isinstance(e, NotReady)),
        hint="fix the cause shown in the logs above",
    )


def _ready_or_error(container: OpenClawGatewayContainer) -> BaseException | None:
    try:
        container.wait_until_ready()
    except Exception as exc:  # noqa: BLE001 - reported by the caller, all at once
        return exc
    return None


def _stop_quietly(container: OpenClawGatewayContainer) -> None:
    # Best effort: one container that cannot be stopped must not keep the others.
    with contextlib.suppress(Exception):
        container.stop()


def default_names(n: int) -> list[str]:
    return ["gw"] if n == 1 else [f"gw{i}" for i in range(1, n + 1)]


def check_request(
    names: Sequence[str] | None, n: int | None, rescues: dict[str, str] | None
) -> tuple[list[str], dict[str, str]]:
    """The profile names and rescue pairs of a factory call, or a UsageError saying why not."""
    from orchestrator.core.model import name_problem

    if names is not None and n is not None:
        raise UsageError("give either names or n, not both", hint="e.g. gateways(n=3)")
    if isinstance(names, str):
        raise UsageError(
            f"names must be a list of names, not the string '{names}'", hint=f'["{names}"]'
        )
    if names is None:
        if n is not None and (not isinstance(n, int) or n < 1):
            raise UsageError(f"n must be a whole number of at least 1, not {n!r}")
        names = default_names(n or 1)
    names = list(names)
    if not names:
        raise UsageError("no gateway names given", hint='e.g. gateways(["main", "rescue"])')
    for name in names:
        problem = name_problem(name)
        if problem:
            raise UsageError(f"gateway name: {problem}", hint='e.g. gateways(["main", "rescue"])')
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise UsageError(f"gateway names given twice: {', '.join(twice)}")
    rescues = dict(rescues or {})
    for rescuer, target in rescues.items():
        for name in (rescuer, target):
            if name not in names:
                raise UsageError(
                    f"rescues: '{name}' is not one of the gateways ({', '.join(names)})",
                    hint='e.g. gateways(["main", "rescue"], rescues={"rescue": "main"})',
                )
    return names, rescues


class GatewayFactory:
    """Starts isolated gateways and removes them all on `close()`.

    factory(["main", "rescue"], rescues={"rescue": "main"}) or factory(n=3) returns
    ready `Gateway`s, in order; each call is its own orch home and project.
    """

    def __init__(
        self,
        image: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        root: Path | None = None,
        port_start: int | None = None,
    ) -> None:
        from orchestrator.core.versions import GATEWAY_IMAGE

        self.image = image or os.environ.get(ENV_IMAGE) or GATEWAY_IMAGE
        self.timeout = timeout
        self.root = root or runs_root()
        self.port_start = port_start or int(os.environ.get(ENV_PORT_START, DEFAULT_PORT_START))
        self._groups: list[_Group] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        names: Sequence[str] | None = None,
        *,
        n: int | None = None,
        rescues: dict[str, str] | None = None,
    ) -> list[Gateway]:
        names, rescues = check_request(names, n, rescues)
        _require_engine()
        _watch_for_interrupts()
        group = _Group(
            self.root, self.image, self.timeout, run_labels(current_run_id(), Owner.current())
        )
        with self._lock:
            self._groups.append(group)
            _OPEN.add(self)
        try:
            return group.start(group.prepare(names, rescues, self.port_start))
        except BaseException:
            self._discard(group)
            raise

    def _discard(self, group: _Group) -> None:
        group.close()
        with self._lock:
            if group in self._groups:
                self._groups.remove(group)

    def close(self) -> None:
        """Remove every gateway this factory started, newest first."""
        with self._lock:
            groups, self._groups = list(reversed(self._groups)), []
            _OPEN.discard(self)
        for group in groups:
            group.close()


def _require_engine() -> None:
    from orchestrator.docker.daemon import probe_engine

    answers, why = probe_engine()
    if not answers:
        raise EngineUnavailable(
            f"no Docker engine answers ({why}): the gateway fixtures need one",
            hint="start one (`sudo orch engine start`), or point DOCKER_HOST at one",
        )


_OPEN: set[GatewayFactory] = set()
_watching = False


def close_all() -> None:
    """Remove the gateways of every factory still open (atexit, interrupts)."""
    for factory in list(_OPEN):
        factory.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _watch_for_interrupts() -> None:
    """On first use: turn SIGTERM (a cancelled CI job) into KeyboardInterrupt, so
    pytest tears fixtures down as on Ctrl-C, and clean up at exit whatever is left.
    Not done at import: a suite that never starts a gateway keeps its handlers."""
    global _watching
    if _watching:
        return
    _watching = True
    atexit.register(close_all)
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)
