"""`orch doctor`: what this host has and lacks for running gateways.

Each check says what it found and, when something is missing, the one command
that fixes it. Nothing here changes the host.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from orchestrator.core.check import check_fleet
from orchestrator.docker import api as docker_http
from orchestrator.docker.podman_api import podman_facts
from orchestrator.errors import OrchError
from orchestrator.fleet.adopt import host_roots
from orchestrator.fleet.store import load_fleet
from orchestrator.host.images import fleet_wants_browser, image_status


def _item(name: str, ok: bool, detail: str, fix: str = "") -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": fix}


def diagnose(home: Path) -> dict[str, Any]:
    checks = [_docker_cli()]
    engine = _engine()
    checks.append(engine)
    if engine["ok"]:
        checks.extend(_images(home))
        checks.append(_disk("engine disk", Path(engine.get("root", "/var/lib/docker"))))
    checks.append(_disk("orch home disk", home if home.exists() else home.parent))
    checks.append(_fleet(home))
    return {"ok": all(c["ok"] for c in checks), "home": str(home), "checks": checks}


def _docker_cli() -> dict[str, Any]:
    path = shutil.which("docker")
    return _item(
        "docker CLI",
        path is not None,
        path or "not found (only needed for `docker` commands; orch uses the API)",
        "apt-get install docker.io",
    )


def _engine() -> dict[str, Any]:
    """The engine behind DOCKER_HOST: Docker, or Podman (named, with its mode)."""
    try:
        version = docker_http.get("/version", timeout=3.0)
        info = docker_http.get("/info", timeout=5.0)
        podman = podman_facts()
    except OrchError as exc:
        return _item(
            "engine",
            False,
            exc.message,
            "orch engine start (Docker), or orch engine start --podman and orch doctor --podman",
        )
    swarm = info.get("Swarm", {}).get("LocalNodeState")
    if podman is not None:  # no swarm there; whether it is rootless, and its cgroups
        where = docker_http.socket_path() or "DOCKER_HOST"
        detail = (
            f"{podman.label} (Docker API {version.get('ApiVersion')}) on {where},"
            f" {info.get('Containers', 0)} containers"
        )
        if podman.rootless and not {"memory", "pids"} <= set(podman.controllers):
            detail += "; memory/pids limits not enforced (no cgroup controllers)"
        item = _item("engine", True, detail)
    else:
        item = _item(
            "engine",
            True,
            f"Docker {version.get('Version')} (API {version.get('ApiVersion')}),"
            f" {info.get('Containers', 0)} containers, swarm {swarm}",
        )
    item["root"] = info.get("DockerRootDir", "/var/lib/docker")
    return item


def _images(home: Path) -> list[dict[str, Any]]:

    out = []
    for image in image_status(browser=fleet_wants_browser(home)):
        ok = bool(image.get("present")) and image.get("current", True)
        detail = "present" if image.get("present") else "missing"
        if image.get("present") and not image.get("current", True):
            detail = "stale (its build context changed)"
        out.append(_item(f"image {image.get('tag')}", ok, detail, "orch images build"))
    return out


def _disk(name: str, path: Path) -> dict[str, Any]:
    try:
        free = shutil.disk_usage(path).free
    except OSError as exc:
        return _item(name, False, f"{path}: {exc.strerror}")
    gib = free / 2**30
    # A gateway image is about 0.8 GB and each profile's state about 60 MB at first.
    return _item(name, gib >= 2, f"{gib:.1f} GiB free at {path}", "free some disk space")


def _fleet(home: Path) -> dict[str, Any]:

    try:
        fleet = load_fleet(home)
    except OrchError as exc:
        return _item("fleet file", False, exc.message, exc.hint)
    problems = check_fleet(fleet, home, roots=host_roots(home))
    detail = f"{len(fleet.profiles)} profiles, {len(problems)} problems"
    return _item("fleet file", not problems, detail, "orch check")
