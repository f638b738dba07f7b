"""main and rescue as real OpenClaw gateways, brought up by `orch up`.

The session's pair serves the whole module (conftest.py `shared_pair`: a cold
gateway needs 10-20 s and ~0.8 GiB); tests that change it are defined last (pytest
keeps file order) and put it back, and after every test `pair` checks it is the pair
it was made as and makes it again when not, so no test depends on another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_base, gateway_lease, http_get, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


@pytest.fixture
def pair(shared_pair, engine):
    yield shared_pair.fleet
    shared_pair.restore(engine)


def test_a_cpu_limit_the_engine_cannot_give_is_refused_before_anything_is_created(orch, engine):
    cpus = engine.info()["NCPU"]
    orch.run("setup", "main", "--port", str(free_base()), "--cpus", str(cpus + 1))
    proc = orch.run("up", ok=False)
    assert proc.returncode == 1, proc.stderr
    assert (
        f"main asks for cpus {cpus + 1}, more than the {cpus} CPU(s) of this engine" in proc.stderr
    )
    assert f"orch setup main --cpus {cpus} --force" in proc.stderr
    assert engine.containers.list(all=True, filters={"label": f"orch.project={orch.project}"}) == []


def ports_of(fleet) -> dict[str, int]:
    listing = fleet.json("ls")["data"]["profiles"]
    return {p["name"]: p["port"] for p in listing}


def test_main_and_rescue_answer_readyz_on_their_own_ports(pair):
    ports = ports_of(pair)
    assert ports["main"] != ports["rescue"]
    assert abs(ports["main"] - ports["rescue"]) >= 111  # whole footprints apart
    for port in ports.values():
        status, body = http_get(port, "/readyz")
        assert status == 200 and '"ready":true' in body


def test_up_output_reports_both_profiles_ready(pair):
    status = pair.json("status")["data"]["profiles"]
    assert {s["profile"]: s["ready"] for s in status} == {"main": True, "rescue": True}
    for row in status:
        gateway = next(p for p in row["ports"] if p["role"] == "gateway")
        assert gateway["answering"] is True
        assert row["drift"] is None and row["state"] == "running"


def test_main_token_is_refused_by_rescue(pair):
    rescue_port = ports_of(pair)["rescue"]
    url = f"ws://127.0.0.1:{rescue_port}"
    wrong = pair.run(
        "exec", "rescue", "--", "openclaw", "gateway", "call", "health",
        "--url", url, "--token", pair.token("main"), ok=False,
    )  # fmt: skip
    assert "token mismatch" in wrong.stdout + wrong.stderr
    right = pair.run(
        "exec", "rescue", "--", "openclaw", "gateway", "call", "health",
        "--url", url, "--token", pair.token("rescue"),
    )  # fmt: skip
    assert '"ok": true' in right.stdout
    assert pair.token("main") != pair.token("rescue")


def test_file_in_main_workspace_is_invisible_to_rescue(pair):
    (pair.workspace_dir("main") / "only-main.txt").write_text("main's note\n")
    seen_by_main = pair.run("exec", "main", "--", "ls", "/openclaw/workspace").stdout
    seen_by_rescue = pair.run("exec", "rescue", "--", "ls", "-R", "/openclaw").stdout
    assert "only-main.txt" in seen_by_main
    assert "only-main.txt" not in seen_by_rescue


def test_each_state_dir_holds_only_its_own_gateways_lease(pair):
    ports = ports_of(pair)
    for name in ("main", "rescue"):
        lease = gateway_lease(pair.state_dir(name))
        assert lease["owner"]["host"] == f"{pair.project}-{name}"
        assert lease["port"] == ports[name]


def test_rescue_sees_mains_config_dir_and_nothing_else_of_main(pair, engine):
    mounts = pair.container(engine, "rescue").attrs["Mounts"]
    main_root = str(pair.home / "profiles" / "main")
    from_main = [m for m in mounts if m["Source"].startswith(main_root)]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in from_main] == [
        (f"{main_root}/config", "/openclaw/rescue/main/config", True)
    ]
    listing = pair.run("exec", "rescue", "--", "ls", "/openclaw/rescue/main/config").stdout
    assert "openclaw.json" in listing


def test_token_is_not_in_docker_inspect(pair, engine):
    for name in ("main", "rescue"):
        attrs = str(pair.container(engine, name).attrs)
        assert pair.token(name) not in attrs


def test_container_runs_non_root_without_capabilities(pair, engine):
    host_config = pair.container(engine, "main").attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"]
    assert any("no-new-privileges" in opt for opt in host_config["SecurityOpt"])
    assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
    uid = pair.run("exec", "main", "--", "id", "-u").stdout.strip()
    assert uid != "0"
    bindings = host_config["PortBindings"]
    assert {b["HostIp"] for v in bindings.values() for b in v} == {"127.0.0.1"}


def test_exec_runs_openclaw_status_inside(pair):
    proc = pair.run("exec", "rescue", "--", "openclaw", "--version")
    assert "2026.9.6" in proc.stdout
    # The gateway's own CLI on a read-only root: it reaches its gateway with the token.
    status = pair.run("exec", "rescue", "--", "openclaw", "status").stdout
    assert "reachable" in status and "unreachable" not in status, status


def test_the_root_is_read_only_with_a_tmpfs_tmp_and_one_cpu(pair, engine):
    host = pair.container(engine, "main").attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=256m,mode=1777"}
    denied = pair.run("exec", "main", "--", "touch", "/usr/local/orch-probe", ok=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr + denied.stdout
    mounts = pair.run("exec", "main", "--", "grep", " /tmp ", "/proc/mounts").stdout
    assert mounts.startswith("tmpfs /tmp tmpfs") and "noexec" in mounts
    # What the gateway wrote outside its dirs since it started, all of it in the tmpfs:
    written = pair.run("exec", "main", "--", "ls", "/tmp").stdout.split()
    assert {"node-compile-cache", "openclaw"} <= set(written)


def test_seccomp_and_apparmor_are_the_engines_defaults_never_unconfined(pair, engine):
    attrs = pair.container(engine, "main").attrs
    assert not [o for o in attrs["HostConfig"]["SecurityOpt"] if "unconfined" in o]
    status = pair.run("exec", "main", "--", "grep", "Seccomp:", "/proc/1/status").stdout
    assert status.split() == ["Seccomp:", "2"]  # 2: a seccomp filter is in force
    engine_has = " ".join(engine.info()["SecurityOptions"])
    if "apparmor" in engine_has:
        assert attrs["AppArmorProfile"] == "docker-default"
    else:  # this host's kernel has no AppArmor: the engine applies none
        assert attrs["AppArmorProfile"] == ""


def test_second_up_keeps_the_same_container_ids(pair, engine):
    before = {n: pair.container(engine, n).id for n in ("main", "rescue")}
    result = pair.json("up")
    assert [a["action"] for a in result["data"]["plan"]] == ["noop", "noop"]
    assert {n: pair.container(engine, n).id for n in ("main", "rescue")} == before


def main_job(fleet, action: str, record) -> subprocess.CompletedProcess:
    """CI's check of the main job (.ci/main_job.py), pointed at this fleet's home."""
    script = Path(__file__).resolve().parents[2] / ".ci" / "main_job.py"
    orch = Path(sys.executable).with_name("orch")
    return subprocess.run(
        [sys.executable, str(script), action, "--orch", str(orch), "--file", str(record)],
        env={**os.environ, "ORCH_HOME": str(fleet.home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_killed_gateway_process_comes_back_by_itself_up_leaves_it_alone_and_ci_sees_it(
    pair, engine, tmp_path
):
    """The engine's restart policy brings a killed gateway back; `orch up` then has
    nothing to do; and CI's check of the main job (.ci/main_job.py) passes before the
    kill and names exactly that restart after it."""
    record = tmp_path / "main-job.json"
    assert main_job(pair, "record", record).returncode == 0
    ok = main_job(pair, "check", record)
    assert ok.returncode == 0, ok.stderr
    assert "main, rescue: same containers, never restarted, ready" in ok.stdout
    container = pair.container(engine, "main")
    restarts = container.attrs["RestartCount"]
    port = ports_of(pair)["main"]
    pair.run("exec", "main", "--", "pkill", "-KILL", "-f", "openclaw", ok=False)
    wait_for(lambda: http_get(port, "/readyz")[0] != 200, 30, "the gateway to go down")
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 120, "the gateway to come back")
    container.reload()
    assert container.attrs["RestartCount"] == restarts + 1
    # Its health may read `starting` for 5 s more: one crash, recovered, not a loop.
    plan = pair.json("up", "--dry-run")["data"]["plan"]
    assert {a["profile"]: a["action"] for a in plan} == {"main": "noop", "rescue": "noop"}
    changed = main_job(pair, "check", record)
    assert changed.returncode == 1
    assert "main-job: main: restarted (started " in changed.stderr
    assert "rescue" not in changed.stderr


def test_down_then_up_preserves_state_and_token(pair, engine):
    token = pair.token("main")
    state = pair.state_dir("main")
    key = (state / "config-journal-fingerprint.key").read_bytes()
    files_before = {p.relative_to(state) for p in state.rglob("*") if p.is_file()}
    down = pair.json("down")
    assert {o["profile"] for o in down["data"]["outcomes"]} == {"main", "rescue"}
    assert not engine.containers.list(all=True, filters={"label": f"orch.project={pair.project}"})
    assert state.is_dir() and pair.workspace_dir("main").is_dir()
    pair.json("up")
    assert pair.token("main") == token
    assert (state / "config-journal-fingerprint.key").read_bytes() == key
    files_after = {p.relative_to(state) for p in state.rglob("*") if p.is_file()}
    # Scratch the gateway may drop between runs: its tmp dirs and the sqlite worker's
    # work files under HOME/.cache (left half-written when `down` comes mid-start).
    scratch = {p for p in files_before if "tmp" in p.parts or ".cache" in p.parts}
    assert files_before - files_after <= scratch
    url = f"ws://127.0.0.1:{ports_of(pair)['main']}"
    right = pair.run(
        "exec", "main", "--", "openclaw", "gateway", "call", "health", "--url", url,
        "--token", token,
    )  # fmt: skip
    assert '"ok": true' in right.stdout


def test_rm_of_a_profile_with_a_container_is_refused_and_changes_nothing(pair):
    fleet_before = (pair.home / "fleet.yaml").read_bytes()
    proc = pair.run("rm", "rescue", ok=False)
    assert proc.returncode == 2
    assert f"still has a container ({pair.project}-rescue, running)" in proc.stderr
    assert "orch down rescue" in proc.stderr
    assert (pair.home / "fleet.yaml").read_bytes() == fleet_before
