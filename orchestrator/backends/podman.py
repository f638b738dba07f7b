"""Podman as an engine (`--engine podman`, or DOCKER_HOST pointing at a Podman
socket): the local engine's backend over Podman's Docker-compatible API, with only
what differs handled.

Everything of `LocalEngine` runs as it is: the API is the same for what orch asks
(create, start, stop, rename, remove, networks with labels, list, inspect, events,
logs, exec, archives). What differs, and where it is handled:
- rootless, the gateway runs with `keep-id` (docker/containers.py asks podman_api);
- limits the engine cannot enforce (rootless on cgroup v1: memory, pids, CPU) are
  accepted by the API and dropped without a word: `up` says so here, `check` too;
- its list of containers carries no health, and without systemd its healthchecks
  never run: `status` runs each running gateway's healthcheck (here);
- it has no daemon: a container keeps running when the API service stops, and
  nothing restarts `unless-stopped` containers at boot (podman-restart.service
  does, where systemd runs).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from orchestrator.backends.base import ProfileStatus, UpOptions, UpResult
from orchestrator.backends.local import LocalEngine
from orchestrator.backends.project import Project
from orchestrator.core.check import Unenforced, unenforced_limits
from orchestrator.docker.podman_api import PodmanFacts, podman_facts, run_healthcheck


def limit_warnings(project: Project, names: list[str] | None) -> list[Unenforced]:
    """The limits of `names` (all profiles when None) the engine behind DOCKER_HOST
    would drop: none on Docker or on a Podman with the controllers."""
    facts = podman_facts()
    if facts is None:
        return []
    return unenforced_limits(project.specs(names), facts.controllers, _engine_words(facts))


def _engine_words(facts: PodmanFacts) -> str:
    mode = "rootless" if facts.rootless else "rootful"
    return f"{mode} Podman {facts.version} on cgroup {facts.cgroup_version}"


class PodmanEngine(LocalEngine):
    """This host's Podman, through its Docker-compatible API: one container per profile."""

    name = "podman"
    runs_here = True

    def up(self, project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
        warnings = limit_warnings(project, names)
        if warnings and options.progress:
            for w in warnings:
                options.progress(w.profile, f"warning: {w.detail}")
        result = super().up(project, names, options)
        result.warnings = [w.to_json() for w in warnings]
        with_health(result.status)
        return result

    def status(self, project: Project, names: list[str] | None = None) -> list[ProfileStatus]:
        return with_health(super().status(project, names))


def with_health(rows: list[ProfileStatus]) -> list[ProfileStatus]:
    """The rows, each running gateway's health filled in by running its healthcheck
    once (in parallel): Podman's container list carries no health, and without
    systemd its healthchecks never run."""
    running = [r for r in rows if r.container and r.state == "running" and not r.orphan]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(run_healthcheck, [r.container for r in running]))
    for row, health in zip(running, found, strict=True):
        row.health = health or row.health
    return rows
