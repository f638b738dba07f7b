"""orch as an image (images/orch/): run in a container against this machine's engine
through its socket, it brings up a real gateway that answers on the host (moved off a
port the host holds by `up --port auto`), reports it in JSON and takes it down; with a
home that is not a host path, or without the host's network or socket, it refuses with
the fix (orchestrator/incontainer.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import free_base, http_get, new_home, remove_fleet

from orchestrator import __version__

pytestmark = [pytest.mark.docker, pytest.mark.gateway]

REPO = Path(__file__).resolve().parents[2]
IMAGE = f"orch/orch:{__version__}"
SOCKET = "/var/run/docker.sock:/var/run/docker.sock"


@pytest.fixture(scope="module")
def orch_image(engine: Any) -> str:
    proc = subprocess.run(
        [str(REPO / "images" / "orch" / "build.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return IMAGE


def in_container(*args: str, docker_args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", *docker_args, IMAGE, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def envelope(proc: subprocess.CompletedProcess[str], ok: bool = True) -> dict[str, Any]:
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "orch/v1" and doc["ok"] is ok
    return doc


def test_the_orch_image_runs_a_gateway_on_the_hosts_engine(
    engine: Any, gateway_image: str, orch_image: str, tmp_path: Path
) -> None:
    fleet = new_home(tmp_path / "home")  # a host path, mounted at the same path
    home = str(fleet.home)
    same_path = [
        "--network",
        "host",
        "-v",
        SOCKET,
        "-v",
        f"{home}:{home}",
        "-e",
        f"ORCH_HOME={home}",
    ]
    base = free_base()
    try:
        envelope(in_container("setup", "gw", "--port", str(base), "--json", docker_args=same_path))

        # Refused with the fix, before anything is created: not the same path, no host network.
        moved = ["--network", "host", "-v", SOCKET, "-v", f"{home}:/orch", "-e", "ORCH_HOME=/orch"]
        error = envelope(in_container("up", "--json", docker_args=moved), ok=False)["error"]
        assert error["exit_code"] == 2 and "not the same path" in error["message"]
        assert "-v /srv/orch:/srv/orch" in error["hint"]
        bridged = same_path[2:]
        error = envelope(in_container("up", "--json", docker_args=bridged), ok=False)["error"]
        assert "--network host" in error["hint"]
        assert (
            engine.containers.list(all=True, filters={"label": f"orch.project={fleet.project}"})
            == []
        )

        # Something on the host holds the profile's browser port: --port auto moves it.
        with socket.create_server(("127.0.0.1", base + 2)):
            up = envelope(in_container("up", "--port", "auto", "--json", docker_args=same_path))
        moved, (row,) = up["data"]["moved"], up["data"]["status"]
        assert [(m["profile"], m["old_port"]) for m in moved] == [("gw", base)]
        port = moved[0]["new_port"]
        assert not port <= base + 2 <= port + 110
        assert row["ready"] is True and row["url"] == f"http://127.0.0.1:{port}"
        assert row["token_file"] == f"{home}/secrets/gw/gateway_token"
        assert Path(row["token_file"]).read_text().strip() == fleet.token("gw")
        assert http_get(port, "/readyz") == (200, '{"ready":true}')  # from the host

        status = envelope(in_container("status", "--json", docker_args=same_path))["data"]
        (row,) = status["profiles"]
        assert row["ready"] is True and row["health"] in ("starting", "healthy")
        assert row["token_file"] == f"{home}/secrets/gw/gateway_token"
        assert fleet.token("gw") not in json.dumps(status)

        down = envelope(in_container("down", "--json", docker_args=same_path))["data"]
        assert [o["action"] for o in down["outcomes"]] == ["removed"]
        assert http_get(port, "/readyz")[0] is None
    finally:
        remove_fleet(engine, fleet)


def test_the_orch_image_without_the_socket_never_starts_an_engine(orch_image: str) -> None:
    error = envelope(in_container("status", "--json", docker_args=[]), ok=False)["error"]
    assert error["exit_code"] == 4
    assert "runs in a container" in error["message"] and "docker.sock" in error["hint"]
