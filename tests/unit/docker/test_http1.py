"""docker/http1.py: one HTTP/1.0 request over a unix socket (the engine's) or TCP (a
gateway's /readyz), against real stdlib servers on this host."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingUnixStreamServer

import pytest

from orchestrator.docker.http1 import BadAnswer, tcp_status, unix_request


class _Api(BaseHTTPRequestHandler):
    """Answers as the engine does: JSON with a Content-Length, an empty 204, a long
    body with no length (HTTP/1.0: it ends when the connection closes), and the
    request body echoed back."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/cut-short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            return
        if self.path == "/no-length":
            self.send_response(200)
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x" * 1000)
            return
        body = json.dumps({"path": self.path, "version": self.request_version}).encode()
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:  # noqa: N802
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


class _UnixApi(_Api):
    def address_string(self) -> str:  # a unix peer has no host to log
        return "unix"


class _UnixServer(ThreadingUnixStreamServer):
    daemon_threads = True


@pytest.fixture
def api_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "api.sock")
    server = _UnixServer(path, _UnixApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


def test_a_json_answer_is_read_to_its_length(api_socket: str) -> None:
    status, body = unix_request(api_socket, "GET", "/containers/json?all=1")
    assert status == 200
    assert json.loads(body) == {"path": "/containers/json?all=1", "version": "HTTP/1.0"}


def test_an_error_status_comes_back_with_its_body(api_socket: str) -> None:
    status, body = unix_request(api_socket, "GET", "/missing/x")
    assert status == 404 and json.loads(body)["path"] == "/missing/x"


def test_a_body_without_a_length_is_read_until_the_server_closes(api_socket: str) -> None:
    status, body = unix_request(api_socket, "GET", "/no-length")
    assert status == 200 and body == b"x" * 100_000


def test_an_answer_cut_short_of_its_length_is_a_bad_answer(api_socket: str) -> None:
    with pytest.raises(BadAnswer, match="10 of its 100 bytes"):
        unix_request(api_socket, "GET", "/cut-short")


def test_a_request_body_is_sent_with_its_length(api_socket: str) -> None:
    sent = json.dumps({"Name": "n", "Labels": {"a": "b"}}).encode()
    headers = {"Content-Type": "application/json"}
    assert unix_request(api_socket, "POST", "/networks/create", sent, headers) == (201, sent)


def test_an_empty_answer_is_empty(api_socket: str) -> None:
    assert unix_request(api_socket, "DELETE", "/networks/x") == (204, b"")


def _one_shot_unix(tmp_path: Path, handle: Callable[[socket.socket], None]) -> str:
    path = str(tmp_path / "odd.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    return path


def test_a_peer_that_does_not_speak_http_is_a_bad_answer(tmp_path: Path) -> None:
    path = _one_shot_unix(tmp_path, lambda conn: conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n"))
    with pytest.raises(BadAnswer, match="not an HTTP answer"):
        unix_request(path, "GET", "/_ping")


def test_a_peer_that_closes_at_once_is_a_bad_answer(tmp_path: Path) -> None:
    path = _one_shot_unix(tmp_path, lambda _conn: None)
    with pytest.raises(BadAnswer, match="closed before"):
        unix_request(path, "GET", "/_ping")


def test_no_server_on_the_socket_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        unix_request(str(tmp_path / "none.sock"), "GET", "/_ping")


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_gateway_port_answers_its_status(http_port: int) -> None:
    assert tcp_status("127.0.0.1", http_port, "/readyz", 1.0) == 200
    assert tcp_status("localhost", http_port, "/missing", 1.0) == 404


def test_a_closed_port_has_no_status() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert tcp_status("127.0.0.1", port, "/readyz", 0.5) is None


def test_talking_to_the_engine_imports_neither_ssl_nor_idna() -> None:
    """What the module is for: `orch status` pays for neither (about 5 ms of start-up)."""
    code = (
        "import sys; from orchestrator.docker import api, containers;"
        "containers.http_status('localhost', 9, '/readyz', 0.2);"
        "print(sorted(m for m in ('ssl', 'http.client', 'encodings.idna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
