"""What changes when orch itself runs in a container and drives the host's engine.

A CI job often runs orch (or a test suite using orch's pytest plugin) inside a
container, with the host's Docker socket mounted. Two things then silently go
wrong unless they are checked:

- bind-mount sources are resolved by the engine on the HOST: a dir that orch
  created inside its own container is not there, or is another dir;
- ports published on 127.0.0.1 are the host's loopback, which the container only
  shares with `--network host`: /readyz would never answer.

Both are checked from the engine's own view of the container orch runs in (its
mounts and network mode), found through /proc/self/mountinfo. Not through
/.dockerenv: some machines have that file although they are no container.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.core.spec import ContainerSpec
from orchestrator.docker import api as docker_http
from orchestrator.errors import EngineUnavailable, UsageError

# Docker bind-mounts /etc/hostname from /var/lib/docker/containers/<id>/hostname (the
# data root may differ). Only the mount AT /etc/hostname counts: the host's own
# mountinfo lists containers' shm mounts under the same dir.
_HOSTNAME_ROOT = re.compile(r"/containers/([0-9a-f]{64})/hostname$")
SAME_PATH_HINT = (
    "mount a host dir at the same path inside the container and keep orch's files in it,"
    " e.g. docker run -v /srv/orch:/srv/orch -e ORCH_HOME=/srv/orch"
    " (for the pytest plugin: -e ORCH_TEST_DIR=/srv/orch)"
)


def own_container_id(mountinfo: str | None = None) -> str | None:
    """The id of the Docker container this process runs in; None on a host."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
        except OSError:
            return None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/etc/hostname":
            match = _HOSTNAME_ROOT.search(fields[3])
            if match:
                return match.group(1)
    return None


class ContainerView(NamedTuple):
    """What the engine says about the container orch runs in."""

    name: str
    mounts: tuple[tuple[str, str], ...]  # (source on the host, destination inside)
    network_mode: str

    @classmethod
    def from_inspect(cls, info: dict[str, Any]) -> ContainerView:
        mounts = tuple(
            (m["Source"], m["Destination"])
            for m in info.get("Mounts") or []
            if m.get("Source") and m.get("Destination")
        )
        mode = (info.get("HostConfig") or {}).get("NetworkMode", "")
        return cls(info.get("Name", "").lstrip("/"), mounts, mode)


def current_view() -> ContainerView | None:
    """The engine's view of our own container; None on a host, or when this engine
    does not run us (Docker-in-Docker, a remote engine): then nothing can be checked."""
    container_id = own_container_id()
    if container_id is None:
        return None
    try:
        return ContainerView.from_inspect(docker_http.get(f"/containers/{container_id}/json"))
    except EngineUnavailable:
        return None


def path_problems(paths: Iterable[str], view: ContainerView) -> list[str]:
    """Why each path would name a different (or no) dir on the engine's host. Pure."""
    problems = []
    for path in dict.fromkeys(paths):
        covering = [
            (src, dst) for src, dst in view.mounts if path == dst or path.startswith(dst + "/")
        ]
        if not covering:
            problems.append(f"{path} exists only inside container {view.name}")
            continue
        src, dst = max(covering, key=lambda m: len(m[1]))
        if src != dst:
            problems.append(f"{path} is {src}{path[len(dst) :]} on the host, not the same path")
    return problems


def require_host_view(paths: Iterable[str], loopback_ports: bool) -> None:
    """Refuse, with the fix, what the engine would resolve differently from orch.

    `paths` are the bind-mount sources about to be used; `loopback_ports` says
    whether any port is published on 127.0.0.1 and must answer to orch.
    """
    view = current_view()
    if view is None:
        return
    problems = path_problems(paths, view)
    if problems:
        raise UsageError(
            f"orch runs in container {view.name}, and the engine resolves bind mounts on its"
            " host:\n  " + "\n  ".join(problems),
            hint=SAME_PATH_HINT,
        )
    if loopback_ports and view.network_mode != "host":
        raise UsageError(
            f"orch runs in container {view.name} (network {view.network_mode or 'default'}):"
            " the gateways' ports on 127.0.0.1 of the host cannot be reached from it",
            hint="run the orch container with --network host",
        )


def require_host_view_of(specs: Sequence[ContainerSpec]) -> None:
    """When orch runs in a container: the fleet's bind sources must be host paths and
    its 127.0.0.1 ports reachable (require_host_view); nothing to check otherwise."""
    if own_container_id() is None:
        return
    loopback = any(p.host_ip.startswith("127.") for s in specs for p in s.ports)
    require_host_view([m.source for s in specs for m in s.mounts], loopback)
