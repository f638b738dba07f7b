"""An engine reached over tcp:// (DOCKER_HOST): orch's stdlib calls for up, down and
status are for the unix socket; over anything else each goes through the Docker
SDK. A real gateway is created, started, probed and removed that way."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from support import free_base

pytestmark = pytest.mark.docker

ENGINE_SOCKET = "/var/run/docker.sock"


class _ToUnixSocket(socketserver.BaseRequestHandler):
    """Relays one TCP connection to the engine's unix socket, both ways."""

    def handle(self) -> None:
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect(ENGINE_SOCKET)
        pump = threading.Thread(target=_copy, args=(engine, self.request), daemon=True)
        pump.start()
        _copy(self.request, engine)
        pump.join(timeout=5)
        engine.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def tcp_engine(engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ToUnixSocket)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("DOCKER_HOST", address)
    yield address
    server.shutdown()
    server.server_close()


def test_up_status_and_down_work_on_an_engine_reached_over_tcp(orch, engine, tcp_engine):
    orch.run("setup", "main", "--port", str(free_base()))
    up = orch.json("up")
    assert up["ok"] is True
    assert [o["ready"] for o in up["data"]["outcomes"]] == [True]
    (row,) = orch.json("status")["data"]["profiles"]
    assert (row["state"], row["ready"]) == ("running", True)
    assert any(p["answering"] for p in row["ports"])
    again = orch.json("up")
    assert [a["action"] for a in again["data"]["plan"]] == ["noop"]
    orch.run("down")
    label = f"orch.project={orch.project}"
    assert engine.containers.list(all=True, filters={"label": label}) == []
    assert engine.networks.list(filters={"label": label}) == []
