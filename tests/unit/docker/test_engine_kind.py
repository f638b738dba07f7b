"""Docker or Podman behind DOCKER_HOST (backends.base picks the backend by it), told
by the engine's answer to a ping (Podman names its Libpod API in a header; Docker
does not), against stdlib servers that answer with the headers each engine sent here
(Docker 20.10.24, Podman 4.3.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import ThreadingUnixStreamServer

import pytest

from orchestrator.backends.base import _podman_answers
from orchestrator.docker.daemon import pinged_podman

DOCKER_PING = {"Api-Version": "1.41", "Server": "Docker/20.10.24+dfsg1 (linux)"}
PODMAN_PING = {
    "Api-Version": "1.41",
    "Libpod-Api-Version": "4.3.1",
    "Server": "Libpod/4.3.1 (linux)",
}


def _engine(ping_headers: dict[str, str], asked: list[str]) -> type[BaseHTTPRequestHandler]:
    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            asked.append(self.path)
            if self.path.endswith("/_ping"):
                body, headers = b"OK", ping_headers
            else:  # /version and the like: what the ping made needless
                body, headers = json.dumps({"Version": "?"}).encode(), {}
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:  # a unix peer has no host to log
            return "unix"

        def log_message(self, *_: object) -> None:
            pass

    return Engine


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    servers = []

    def start(ping_headers: dict[str, str]) -> list[str]:
        asked: list[str] = []
        path = tmp_path / f"engine-{len(servers)}.sock"
        server = ThreadingUnixStreamServer(str(path), _engine(ping_headers, asked))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        return asked

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_docker_is_told_by_its_ping_without_asking_its_version(serve) -> None:
    asked = serve(DOCKER_PING)
    assert pinged_podman() is False
    assert _podman_answers() is False
    assert asked == ["/_ping"]  # one ping serves every question of the process


def test_a_podman_is_told_by_its_ping(serve) -> None:
    asked = serve(PODMAN_PING)
    assert _podman_answers() is True
    assert asked == ["/_ping"]


def test_an_engine_that_does_not_answer_is_neither(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    assert pinged_podman() is None


def test_an_engine_only_the_cli_reaches_is_not_pinged(monkeypatch) -> None:
    """ssh:// and TLS hosts are probed through `docker version`, which has no headers:
    asked nothing here, so the caller asks /version once instead of the CLI each time."""
    import orchestrator.docker.daemon as daemon

    asked = []
    monkeypatch.setattr(daemon, "_cli_answers", lambda timeout: asked.append(timeout) or True)
    monkeypatch.setenv("DOCKER_HOST", "ssh://nobody@127.0.0.1")
    assert pinged_podman() is None
    assert asked == []
