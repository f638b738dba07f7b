"""The spec -> container translation and the port probe, without an engine."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.core.model import Profile
from orchestrator.core.spec import ContainerSpec, memory_bytes, render
from orchestrator.docker.containers import create_body, tcp_answers

from ..helpers import fleet_of


def _spec(home: Path, **fields: object) -> ContainerSpec:
    fleet = fleet_of(Profile(name="main", port=20000, **fields))
    return render(fleet.profiles["main"], fleet, home)


def _sdk_body(spec: ContainerSpec) -> dict:
    """What the Docker SDK's own create_container would send for the spec: the oracle
    the hand-written body must match (the SDK builds it without an engine)."""
    import docker
    from docker.types import Mount

    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    bindings: dict[str, list[tuple[str, int]]] = {}
    exposed = []
    for b in spec.ports:
        for cport, hport in b.expand():
            if f"{cport}/{b.proto}" not in bindings:
                exposed.append((cport, b.proto))
            bindings.setdefault(f"{cport}/{b.proto}", []).append((b.host_ip, hport))
    host_config = api.create_host_config(
        port_bindings=bindings,
        mounts=[Mount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts],
        restart_policy={"Name": spec.restart},
        cap_drop=list(spec.cap_drop),
        security_opt=list(spec.security_opt),
        mem_limit=spec.mem_limit,
        pids_limit=spec.pids_limit,
        network_mode=spec.network,
        nano_cpus=round(spec.cpus * 10**9),
        read_only=spec.read_only,
        tmpfs=[f"{t.target}:{t.options}" for t in spec.tmpfs],
    )
    hc = spec.healthcheck
    config = api.create_container_config(
        image=spec.image,
        command=list(spec.command) or None,
        hostname=spec.hostname,
        user=spec.user,
        environment=dict(spec.env),
        labels=dict(spec.labels),
        ports=exposed,
        host_config=host_config,
        stop_timeout=spec.stop_timeout_s,
        healthcheck={
            "test": list(hc.test),
            "interval": hc.interval_s * 10**9,
            "timeout": hc.timeout_s * 10**9,
            "retries": hc.retries,
            "start_period": hc.start_period_s * 10**9,
        },
    )
    defaults = (None, False)
    return {
        k: v
        for k, v in config.items()
        if v not in defaults and k not in ("AttachStdout", "AttachStderr")
    }


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"publish": ("gateway", "browser", "cdp")},
        {"memory": "2g", "bind_ip": "127.0.0.2"},
        {"browser": True},
        {"cpus": 1.5, "read_only_root": False},
        {"cpus": 0},
    ],
)
def test_the_create_body_is_what_the_docker_sdk_would_send(home: Path, fields: dict) -> None:
    spec = _spec(home, **fields)
    assert create_body(spec) == _sdk_body(spec)


def test_the_create_body_keeps_the_token_read_only_and_the_limits(home: Path) -> None:
    body = create_body(_spec(home, memory="1280m"))
    host = body["HostConfig"]
    assert host["Memory"] == 1280 * 1024 * 1024
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    token = [m for m in host["Mounts"] if m["Target"].startswith("/run/secrets/")]
    assert token and all(m["ReadOnly"] for m in token)
    assert all(b["HostIp"] == "127.0.0.1" for bs in host["PortBindings"].values() for b in bs)


def test_the_create_body_has_a_read_only_root_a_tmpfs_tmp_and_a_cpu_limit(home: Path) -> None:
    host = create_body(_spec(home))["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=256m,mode=1777"}


def test_a_writable_root_and_no_cpu_limit_leave_the_engine_defaults(home: Path) -> None:
    host = create_body(_spec(home, cpus=0, read_only_root=False))["HostConfig"]
    assert host["ReadonlyRootfs"] is False
    assert "NanoCpus" not in host and "Tmpfs" not in host


@pytest.mark.parametrize("fields", [{}, {"browser": True}, {"cpus": 0, "read_only_root": False}])
def test_seccomp_and_apparmor_are_never_unconfined(home: Path, fields: dict) -> None:
    """The engine's default seccomp and AppArmor profiles apply: orch sets neither,
    and nothing it sends switches them off."""
    options = create_body(_spec(home, **fields))["HostConfig"]["SecurityOpt"]
    assert options == ["no-new-privileges"]
    assert not [o for o in options if o.startswith(("seccomp", "apparmor"))]


@pytest.mark.parametrize(
    ("limit", "expected"), [("512", 512), ("64k", 65536), ("768m", 768 << 20), ("2g", 2 << 30)]
)
def test_memory_limits_read_as_docker_reads_them(limit: str, expected: int) -> None:
    assert memory_bytes(limit) == expected


# --- tcp_answers: a published port the engine relays, with or without a server -----


class _Quiet(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def _server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback port whose every connection is given to `handle`, then closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def relay_without_backend() -> Iterator[int]:
    """Accepts and closes at once: what the engine's relay does when nothing listens
    behind a published port."""
    with _server(lambda _conn: None) as port:
        yield port


def test_a_port_with_a_server_answers(http_port: int) -> None:
    assert tcp_answers("127.0.0.1", http_port) is True


def test_a_relay_with_nothing_behind_it_is_silent(relay_without_backend: int) -> None:
    assert tcp_answers("127.0.0.1", relay_without_backend) is False


def test_a_closed_port_is_silent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert tcp_answers("127.0.0.1", port) is False


def _answer_http_1_1_only(conn: socket.socket) -> None:
    if b"HTTP/1.1" in conn.recv(1024).split(b"\r\n", 1)[0]:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def drops_http_1_0() -> Iterator[int]:
    """Like Chrome's DevTools server: an HTTP/1.0 request is dropped unanswered."""
    with _server(_answer_http_1_1_only) as port:
        yield port


def test_a_server_that_drops_http_1_0_still_answers(drops_http_1_0: int) -> None:
    assert tcp_answers("127.0.0.1", drops_http_1_0) is True


def test_a_port_probe_asks_the_gateways_liveness_path_not_its_control_ui() -> None:
    asked: list[bytes] = []

    def record(conn: socket.socket) -> None:
        asked.append(conn.recv(1024).split(b"\r\n", 1)[0])
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with _server(record) as port:
        assert tcp_answers("127.0.0.1", port) is True
    assert asked == [b"HEAD /healthz HTTP/1.1"]


def test_rootless_podman_runs_the_gateway_as_the_user_through_keep_id(home: Path) -> None:
    spec = _spec(home)
    assert create_body(spec, userns="keep-id")["HostConfig"]["UsernsMode"] == "keep-id"
    assert "UsernsMode" not in create_body(spec)["HostConfig"]  # Docker, rootful Podman
    without = create_body(spec, userns="keep-id")
    del without["HostConfig"]["UsernsMode"]
    assert without == create_body(spec)  # the one difference


def test_podmans_rlimit_refusal_names_the_containers_conf_fix() -> None:
    from orchestrator.docker.containers import _start_hint

    refused = "runc create failed: error setting rlimits for ready process: rlimit type 7"
    assert "default_ulimits" in _start_hint(refused)
    assert "orch engine start --podman" in _start_hint(refused)
    assert _start_hint("port is already allocated") == ""
