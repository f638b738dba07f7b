"""orch on rootful Podman (Debian's podman 4.3.1) through its Docker-compatible API,
on the real gateway image: the lifecycle (setup, up to ready, status, a no-op up,
restart, logs, exec, down), a second fleet beside the first, and an online backup
restored, driven through the real CLI as a user drives it.

How the engine is had, as a user has it: Podman is installed from Debian
(docker/podman.py `ensure_podman`; the module is skipped only when that fails, with
a warning CI prints), and `orch engine start --podman` starts its API service on
this module's own socket (CONTAINER_HOST), stopped by its pid at the end. Both ways
of choosing it are used: lifecycle commands with `--engine podman` (which finds the
socket through CONTAINER_HOST), the others with DOCKER_HOST pointing at the socket
(which orch detects: `orch doctor` names Podman).

The image is MOVED from the Docker engine into Podman's store (`docker save |
podman load`, docker/podman.py `move_image`), not built by Podman: it keeps the
image id, so this module runs the very image every Docker test runs (and a schema
cached by that id stays right), and it costs 35-70 s once per machine (skipped when
Podman has that id) where a second build of the same Dockerfile through Podman
would cost minutes of CPU on two cores and give another image. The schema cache is
this module's own, so the gateway's 2.4 MB schema is read through Podman's API
(which cut it at 12-13 kB before orch read the log of the exited container).

One fleet of two (main, rescue) serves the module, plus one single-profile fleet
for the side-by-side test: three cold gateways at most. The tests run in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Orch, free_base, http_get, new_home, require_podman, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


class PodmanFleet(Orch):
    """The real CLI with the module's Podman socket in its environment."""

    def __init__(self, fleet: Orch, env: dict[str, str]) -> None:
        super().__init__(fleet.home, fleet.project)
        self.env = env

    def run(self, *args: str, ok: bool = True, timeout: float = 600, env=None):
        return super().run(*args, ok=ok, timeout=timeout, env={**self.env, **(env or {})})

    def json(self, *args: str, ok: bool = True, timeout: float = 600, env=None):
        return json.loads(self.run(*args, "--json", ok=ok, timeout=timeout, env=env).stdout)


@pytest.fixture(scope="module")
def podman_socket(tmp_path_factory, gateway_image):
    """`orch engine start --podman` on a socket of this module's; the image moved in."""
    require_podman()
    from orchestrator.docker.podman import ORCH_DIR, containers_conf, move_image

    run_dir = tmp_path_factory.mktemp("podman")
    sock = run_dir / "podman.sock"
    env = {**os.environ, "CONTAINER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_HOST", None)
    started = subprocess.run(
        [sys.executable, "-m", "orchestrator", "engine", "start", "--podman", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int((run_dir / ORCH_DIR / "service.pid").read_text())
    try:
        move_image(gateway_image, containers_conf(run_dir / ORCH_DIR))
        yield sock
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 30, "podman exit")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def podman_env(sock: Path, cache: Path) -> dict[str, str]:
    return {"CONTAINER_HOST": f"unix://{sock}", "ORCH_CACHE_DIR": str(cache)}


def remote(sock: Path, *args: str) -> str:
    """Podman's own CLI as a client of the module's service."""
    env = {k: v for k, v in os.environ.items() if k != "CONTAINER_HOST"}
    return subprocess.run(
        ["podman", "--url", f"unix://{sock}", *args],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def podman_ps(sock: Path, label: str) -> list[dict]:
    """Containers on the module's Podman carrying `label`."""
    out = remote(sock, "ps", "-a", "--format", "json", "--filter", f"label={label}")
    return json.loads(out or "[]")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, podman_socket):
    """main + rescue on Podman, set up and not yet up; taken down at the end."""
    base = tmp_path_factory.mktemp("podman-fleet")
    f = PodmanFleet(new_home(base / "home"), podman_env(podman_socket, base / "cache"))
    f.run("setup", "main", "--port", str(free_base()))
    f.run("setup", "rescue", "--port", str(free_base()), "--rescues", "main")
    yield f
    f.run("down", "--engine", "podman", ok=False)


def ready(port: int) -> bool:
    status, body = http_get(port, "/readyz")
    return status == 200 and '"ready":true' in body


def ports(f: Orch) -> dict[str, int]:
    return {p["name"]: p["port"] for p in f.json("ls")["data"]["profiles"]}


def test_doctor_names_podman_behind_docker_host(fleet, podman_socket):
    env = {"DOCKER_HOST": f"unix://{podman_socket}"}
    engine = next(
        c for c in fleet.json("doctor", env=env)["data"]["checks"] if c["name"] == "engine"
    )
    assert engine["ok"] and engine["detail"].startswith("Podman 4."), engine
    assert "rootful" in engine["detail"] and "Docker 4." not in engine["detail"]


def test_up_on_podman_reads_the_schema_through_its_api_and_gets_ready(fleet):
    started = time.monotonic()
    data = fleet.json("up", "--engine", "podman", "--timeout", "300")["data"]
    print(f"podman: up of main + rescue to ready in {time.monotonic() - started:.1f} s")
    assert data["engine"] == "podman"
    assert {o["profile"]: o["ready"] for o in data["outcomes"]} == {"main": True, "rescue": True}
    assert data["warnings"] == []  # rootful: memory, pids and CPU limits are enforced
    for port in ports(fleet).values():
        assert ready(port)
    schemas = list((Path(fleet.env["ORCH_CACHE_DIR"]) / "gateway-schemas").glob("*.json"))
    assert len(schemas) == 1 and "properties" in json.loads(schemas[0].read_text())


def test_containers_are_podmans_with_the_fleet_labels_and_limits(fleet, podman_socket):
    found = podman_ps(podman_socket, f"orch.project={fleet.project}")
    assert sorted(c["Names"][0] for c in found) == [
        f"{fleet.project}-main",
        f"{fleet.project}-rescue",
    ]
    host = json.loads(remote(podman_socket, "inspect", f"{fleet.project}-main"))[0]["HostConfig"]
    assert host["Memory"] == 1280 * 2**20 and host["PidsLimit"] == 512
    assert host["ReadonlyRootfs"] and "no-new-privileges" in host["SecurityOpt"]


def test_status_runs_the_healthcheck_podman_never_runs_without_systemd(fleet):
    data = fleet.json("status", "--engine", "podman")["data"]
    assert data["engine"] == "podman" and data["failing"] == []
    for row in data["profiles"]:
        assert row["ready"] and row["state"] == "running"
        assert row["health"] == "healthy", row  # Podman's own state says "starting"
        gateway = next(p for p in row["ports"] if p["role"] == "gateway")
        assert gateway["answering"] is True


def test_a_second_up_changes_nothing(fleet):
    before = {c["profile"]: c["container_id"] for c in fleet.json("up", "--engine", "podman")[
        "data"]["outcomes"]}  # fmt: skip
    again = fleet.json("up", "--engine", "podman")["data"]
    assert [a["action"] for a in again["plan"]] == ["noop", "noop"]
    assert {o["profile"]: o["container_id"] for o in again["outcomes"]} == before


def test_logs_and_exec_reach_the_gateway(fleet):
    logs = fleet.run("logs", "main", "--tail", "200", "--engine", "podman").stdout
    assert "ready" in logs
    out = fleet.run("exec", "--engine", "podman", "main", "--", "id", "-u").stdout.strip()
    assert out == "1000"


def test_restart_gets_ready_again_and_leaves_rescue_alone(fleet):
    status = fleet.json("status", "--engine", "podman")["data"]["profiles"]
    before = {r["profile"]: r["uptime_s"] for r in status}
    fleet.run("restart", "main", "--engine", "podman", "--timeout", "300")
    rows = {r["profile"]: r for r in fleet.json("status", "--engine", "podman")["data"]["profiles"]}
    assert rows["main"]["ready"] and rows["main"]["uptime_s"] < before["main"]
    assert rows["rescue"]["ready"] and rows["rescue"]["uptime_s"] >= before["rescue"]


def test_a_second_fleet_runs_beside_the_first_and_each_sees_only_its_own(fleet, tmp_path_factory):
    base = tmp_path_factory.mktemp("podman-second")
    other = PodmanFleet(new_home(base / "home"), fleet.env)
    other.run("setup", "solo", "--port", str(free_base()))
    try:
        up = other.json("up", "--engine", "podman", "--timeout", "300")["data"]
        assert [o["ready"] for o in up["outcomes"]] == [True]
        mine = [r["profile"] for r in fleet.json("status", "--engine", "podman")["data"][
            "profiles"]]  # fmt: skip
        theirs = [r["profile"] for r in other.json("status", "--engine", "podman")["data"][
            "profiles"]]  # fmt: skip
        assert mine == ["main", "rescue"] and theirs == ["solo"]
    finally:
        other.run("down", "--engine", "podman")
    assert all(ready(p) for p in ports(fleet).values())  # the first fleet ran through it


def test_online_backup_then_restore_brings_back_the_state(fleet, podman_socket):
    env = {"DOCKER_HOST": f"unix://{podman_socket}"}  # detected: no --engine on backup
    before = fleet.json("status", env=env)["data"]["profiles"][0]
    row = fleet.json("backup", "main", env=env)["data"]["backups"][0]
    archive = row["archive"]
    assert row["mode"] == "online"
    after = fleet.json("status", env=env)["data"]["profiles"][0]
    assert after["container"] == before["container"] and after["ready"]  # online
    marker = fleet.workspace_dir("main") / "after-backup.txt"
    marker.write_text("written after the backup\n")
    fleet.run("restore", "main", archive, "--yes", "--timeout", "300", env=env)
    assert not marker.exists()
    assert ready(ports(fleet)["main"])


def test_down_leaves_nothing_of_the_fleet_on_podman(fleet, podman_socket):
    fleet.run("down", "--engine", "podman")
    assert podman_ps(podman_socket, f"orch.project={fleet.project}") == []
    label = f"label=orch.project={fleet.project}"
    nets = remote(podman_socket, "network", "ls", "--format", "json", "--filter", label)
    assert json.loads(nets or "[]") == []
