"""The Docker API calls of up, down and status, over the engine's unix socket with
the stdlib (docker/http1.py: one HTTP/1.0 request per call, no http.client).

Importing the Docker SDK costs about 0.15 s (requests, urllib3), more than the
calls a converged `orch up`, an `orch status` or the create/start/stop/remove of a
gateway make. Those go through here; the rest (exec, logs, archives, image
builds, swarm) through the SDK. Non-unix DOCKER_HOSTs (tcp, ssh, TLS) fall back
to the SDK's low-level client for every call.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode, urlparse

from orchestrator.docker.http1 import unix_request
from orchestrator.docker.sdk import client
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


def get(path: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """GET an API path and return the decoded JSON body."""
    return request("GET", path, params, timeout=timeout)


def request(
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float = 10.0,
) -> Any:
    """One API call; the decoded JSON answer (None when empty). 404 is NotFound,
    other errors EngineRefused with the engine's own message."""
    sock = socket_path()
    if sock is None:
        return _via_sdk(method, path, params, body)
    status, answer = _request(sock, path, params, timeout, method, body)
    _raise_for(status, f"{method} {path}", answer)
    return json.loads(answer) if answer else None


def _raise_for(status: int, what: str, body: bytes) -> None:
    """An answer is never "no engine": 404 is NotFound, any other error EngineRefused."""
    if status < 400:
        return
    try:
        message = json.loads(body).get("message") or ""
    except (ValueError, AttributeError):
        message = body[:500].decode("utf-8", "replace")
    if status == 404:
        raise NotFound(f"Docker API {what}: not found ({message})")
    raise EngineRefused(f"Docker API {what} failed: {status} {message}")


def _request(
    sock: str,
    path: str,
    params: dict[str, Any] | None,
    timeout: float,
    method: str = "GET",
    body: Any = None,
) -> tuple[int, bytes]:
    query = f"?{urlencode(params)}" if params else ""
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {} if data is None else {"Content-Type": "application/json"}
    try:
        return unix_request(sock, method, path + query, data, headers, timeout)
    except OSError as exc:
        raise EngineUnavailable(
            f"no Docker engine answers on {sock}: {exc.strerror or exc or exc.__class__.__name__}",
            hint="run `orch engine start` (or `make engine`) to install and start one",
        ) from None


# --- the writes of up and down (names and meaning as the SDK's APIClient) ------------


#: A create (or first start, or removal) on rootless Podman's vfs storage copies (or
#: deletes) the whole image: 800 MB, 10-40 s on a busy host.
CREATE_TIMEOUT = 300.0


def create_container(body: dict[str, Any], name: str) -> str:
    """POST /containers/create with a body from containers.create_body; its id."""
    return request("POST", "/containers/create", {"name": name}, body, CREATE_TIMEOUT)["Id"]


def start(container_id: str) -> None:
    request("POST", f"/containers/{container_id}/start", timeout=CREATE_TIMEOUT)


def stop(container_id: str, timeout: int) -> None:
    """Graceful: SIGTERM, then SIGKILL after `timeout` s (the HTTP wait is longer)."""
    request("POST", f"/containers/{container_id}/stop", {"t": timeout}, timeout=timeout + 30)


def restart(container_id: str, timeout: int) -> None:
    request("POST", f"/containers/{container_id}/restart", {"t": timeout}, timeout=timeout + 30)


def rename(container_id: str, name: str) -> None:
    request("POST", f"/containers/{container_id}/rename", {"name": name})


def remove_container(container_id: str, force: bool = False) -> None:
    """Removal on rootless Podman's vfs storage deletes the container's image copy."""
    params = {"force": "1" if force else "0"}
    request("DELETE", f"/containers/{container_id}", params, timeout=CREATE_TIMEOUT)


def networks(name: str) -> list[dict[str, Any]]:
    """Networks whose name contains `name` (the API's filter is a substring match)."""
    return get("/networks", {"filters": json.dumps({"name": [name]})}) or []


def create_network(name: str, labels: dict[str, str]) -> str:
    body = {"Name": name, "Driver": "bridge", "Labels": labels, "CheckDuplicate": True}
    return request("POST", "/networks/create", body=body)["Id"]


def remove_network(network_id: str) -> None:
    request("DELETE", f"/networks/{network_id}")


def events(params: dict[str, Any], timeout: float = 5.0) -> list[dict[str, Any]]:
    """Past engine events (GET /events with `until`): the API streams one JSON object
    per event and ends the stream at `until`."""
    sock = socket_path()
    if sock is None:
        return list(client().api.events(decode=True, **_sdk_event_args(params)))
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


def _via_sdk(method: str, path: str, params: dict[str, Any] | None, body: Any) -> Any:
    """The same call through the SDK's HTTP session (a requests.Session that knows the
    engine's address, TLS and negotiated API version): its public session methods."""
    api = client().api
    url = f"{api.base_url}/v{api.api_version}{path}"
    if isinstance(body, dict):  # as the SDK posts: an old engine cannot read a JSON null
        body = {k: v for k, v in body.items() if v is not None}
    response = api.request(method, url, params=params, json=body, timeout=api.timeout)
    if response.status_code >= 400:
        _raise_for(response.status_code, f"{method} {path}", response.content)
    return response.json() if response.content else None


def remove_service(service_id: str) -> None:
    request("DELETE", f"/services/{service_id}")


def scale_service(service_id: str, replicas: int) -> None:
    """Set a replicated service's replicas (0: Swarm stops its task gracefully, within
    its stop grace period); the rest of its spec stays as it is."""
    service = get(f"/services/{service_id}")
    spec = service["Spec"]
    spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    version = {"version": service["Version"]["Index"]}
    request("POST", f"/services/{service_id}/update", version, body=spec)


def remove_secret(secret_id: str) -> None:
    request("DELETE", f"/secrets/{secret_id}")


def remove_config(config_id: str) -> None:
    request("DELETE", f"/configs/{config_id}")


def containers(filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """`docker ps -a` as the API returns it (labels, state, status, ports): one call."""
    params: dict[str, Any] = {"all": "1"}
    if filters:
        params["filters"] = json.dumps(filters)
    return get("/containers/json", params)
