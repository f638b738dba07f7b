"""Which engine answers behind the Docker API, and what Podman's own API adds: the
facts of a Podman (rootless, cgroups) and running a healthcheck. Only API calls, so
containers.py can ask it (podman.py, which installs and starts Podman, sits higher).
"""

from __future__ import annotations

from typing import NamedTuple

from orchestrator.docker import api as docker_http
from orchestrator.errors import OrchError

#: libpod's own endpoints (rootless, cgroups, healthcheck) need a libpod API version
#: in the path; 4.0.0 is the oldest Podman 4 serves.
LIBPOD = "/v4.0.0/libpod"


class PodmanFacts(NamedTuple):
    """The Podman that answers on the engine socket."""

    version: str
    rootless: bool
    cgroup_version: str  # "v1" or "v2"
    controllers: tuple[str, ...]  # the cgroup controllers its containers may use

    @property
    def userns(self) -> str | None:
        """Rootless: `keep-id`, so the gateway's uid (the user's) is the user on the host
        and its bind-mounted dirs stay writable without a chown."""
        return "keep-id" if self.rootless else None

    @property
    def label(self) -> str:
        mode = "rootless" if self.rootless else "rootful"
        return f"Podman {self.version} ({mode}, cgroup {self.cgroup_version})"


_facts: dict[str, PodmanFacts | None] = {}


def podman_facts() -> PodmanFacts | None:
    """The Podman behind DOCKER_HOST, or None when another engine (Docker) answers
    there; asked once per address and process. EngineUnavailable when none answers."""
    key = repr(docker_http.engine_address())
    if key not in _facts:
        _facts[key] = _ask_facts()
    return _facts[key]


def _ask_facts() -> PodmanFacts | None:
    version = docker_http.get("/version", timeout=5.0)
    names = {c.get("Name"): c for c in version.get("Components") or []}
    if "Podman Engine" not in names:
        return None
    try:
        host = docker_http.get(f"{LIBPOD}/info", timeout=10.0)["host"]
    except (OrchError, KeyError, TypeError):  # a Podman without libpod's API: say less
        return PodmanFacts(version.get("Version", "?"), False, "?", ())
    return PodmanFacts(
        version=str(names["Podman Engine"].get("Version") or version.get("Version", "?")),
        rootless=bool((host.get("security") or {}).get("rootless")),
        cgroup_version=str(host.get("cgroupVersion", "?")),
        controllers=tuple(host.get("cgroupControllers") or ()),
    )


def run_healthcheck(container_id: str) -> str | None:
    """Run the container's healthcheck once (Podman's own healthcheck endpoint) and
    return its health ("healthy", "unhealthy", "starting"); None when it cannot."""
    try:
        answer = docker_http.get(f"{LIBPOD}/containers/{container_id}/healthcheck", timeout=30.0)
    except OrchError:
        return None
    return (answer or {}).get("Status") or None
