"""Read-only Docker API calls over the engine's unix socket, with the stdlib.

Importing the Docker SDK costs about 0.1 s (requests, urllib3); a converged
`orch up` or `orch status` needs only one or two GETs. Reads go through here;
everything that changes the engine goes through the SDK (engine.py). Non-unix
DOCKER_HOSTs (tcp, ssh, TLS) fall back to the SDK's low-level client.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import urlencode, urlparse

from orchestrator.errors import EngineRefused, EngineUnavailable, NotFound

DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_address() -> tuple[str, str | tuple[str, int]]:
    """Return ("unix", path) or ("tcp", (host, port)) from DOCKER_HOST, as the CLI does."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if not host:
        return "unix", DEFAULT_SOCKET
    url = urlparse(host)
    if url.scheme == "unix":
        return "unix", url.path or DEFAULT_SOCKET
    if url.scheme in ("tcp", "http") and url.hostname:
        return "tcp", (url.hostname, url.port or 2375)
    return "other", host  # ssh://, npipe://, https (TLS): not probed here


def socket_path() -> str | None:
    """The engine's unix socket, or None when DOCKER_HOST points elsewhere."""
    kind, where = engine_address()
    return str(where) if kind == "unix" else None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def get(path: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """GET an API path and return the decoded JSON body."""
    sock = socket_path()
    if sock is None:
        return _get_via_sdk(path, params)
    status, body = _request(sock, path, params, timeout)
    _raise_for(status, path, body)
    return json.loads(body) if body else None


def _raise_for(status: int, path: str, body: bytes) -> None:
    """An answer is never "no engine": 404 is NotFound, any other error EngineRefused."""
    if status == 404:
        raise NotFound(f"Docker API GET {path}: not found")
    if status >= 400:
        raise EngineRefused(f"Docker API GET {path} failed: {status} {body[:200]!r}")


def _request(
    sock: str, path: str, params: dict[str, Any] | None, timeout: float
) -> tuple[int, bytes]:
    query = f"?{urlencode(params)}" if params else ""
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", path + query)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError as exc:
        raise EngineUnavailable(
            f"no Docker engine answers on {sock}: {exc.strerror or exc.__class__.__name__}",
            hint="run `orch engine start` (or `make engine`) to install and start one",
        ) from None
    finally:
        conn.close()


def events(params: dict[str, Any], timeout: float = 5.0) -> list[dict[str, Any]]:
    """Past engine events (GET /events with `until`): the API streams one JSON object
    per event and ends the stream at `until`."""
    sock = socket_path()
    if sock is None:
        from orchestrator.docker.daemon import docker_client

        return list(docker_client().api.events(decode=True, **_sdk_event_args(params)))
    status, body = _request(sock, "/events", params, timeout)
    _raise_for(status, "/events", body)
    decoder = json.JSONDecoder()
    text, pos, out = body.decode("utf-8", "replace"), 0, []
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def _sdk_event_args(params: dict[str, Any]) -> dict[str, Any]:
    filters = json.loads(params["filters"]) if "filters" in params else None
    return {"since": params.get("since"), "until": params.get("until"), "filters": filters}


def _get_via_sdk(path: str, params: dict[str, Any] | None) -> Any:
    from orchestrator.docker.daemon import docker_client

    api = docker_client().api
    response = api._get(api._url(path), params=params)
    return api._result(response, json=True)


def containers(filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """`docker ps -a` as the API returns it (labels, state, status, ports): one call."""
    params: dict[str, Any] = {"all": "1"}
    if filters:
        params["filters"] = json.dumps(filters)
    return get("/containers/json", params)
