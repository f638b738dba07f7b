"""The Docker SDK's client: for what the stdlib client in api.py does not do (exec,
logs, archives, image builds, swarm, engines not on a unix socket).

Importing the SDK costs ~0.15 s (requests, urllib3): it is imported here, lazily,
and nowhere else.
"""

from __future__ import annotations

import threading
from typing import Any

from orchestrator.errors import EngineUnavailable


def docker_client(timeout: int = 60) -> Any:
    """A connected `docker.DockerClient` (the SDK is imported lazily, here).

    The API version is negotiated, never pinned: the Debian engine speaks 1.41
    and a pinned newer version fails with HTTP 400 "client version is too new".
    """
    try:
        import docker  # lazy on purpose, see the module docstring
        from docker.errors import DockerException  # the Docker SDK (~0.15 s): only on this path
    except ImportError as exc:
        raise EngineUnavailable(
            "the Docker SDK for Python is not installed",
            hint="install orch with its dependencies (`pip install docker`)",
        ) from exc
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(
            f"cannot connect to the Docker engine: {exc}",
            hint="run `sudo orch engine start`, or start Docker yourself, then run again",
        ) from exc
    return client


_local = threading.local()


def client() -> Any:
    """One SDK client per thread: the SDK's HTTP session is not made for sharing."""
    if getattr(_local, "client", None) is None:
        _local.client = docker_client()
    return _local.client
