"""Faults and bad input against the real engine and gateway: every interrupted or
refused command leaves a state the next command converges from, nothing stuck,
nothing lost, every failure explained. Each case asserts the end state
(containers, networks, files, readiness), not only the exit code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Orch, free_base, http_get, require_quiet_engine, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


def objects(engine, fleet: Orch) -> tuple[list[str], list[str]]:
    labels = {"label": [f"orch.project={fleet.project}", f"orch.home={fleet.home}"]}
    containers = sorted(c.name for c in engine.containers.list(all=True, filters=labels))
    networks = sorted(n.name for n in engine.networks.list(filters=labels))
    return containers, networks


def start_up(fleet: Orch, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "up", *args],
        env={**os.environ, "ORCH_HOME": str(fleet.home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )


def ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action, as for a terminal's foreground job: a test run started
    in the background (`make test &`, a CI launcher) ignores SIGINT, its children
    inherit that, and an ignored SIGINT rightly stops nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_line(proc: subprocess.Popen, words: str, timeout: float = 60) -> list[str]:
    """Read the command's progress (stderr) until a line has `words`."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError(f"orch up ended before '{words}':\n{''.join(seen)}")
        seen.append(line)
        if words in line:
            return seen
    raise AssertionError(f"no '{words}' within {timeout} s:\n{''.join(seen)}")


def ready(port: int) -> bool:
    return http_get(port, "/readyz")[0] == 200


def test_sigkill_during_a_recreate_then_up_converges_with_one_ready_container(orch, engine):
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    orch.json("up")
    orch.run("setup", "main", "--publish", "gateway,canvas", "--force")
    proc = start_up(orch)
    wait_for_line(proc, "waiting for /readyz")
    proc.kill()  # SIGKILL while the new container starts: the old one is set aside
    proc.wait(timeout=30)
    containers, _ = objects(engine, orch)
    assert f"{orch.project}-main" in containers
    assert any("-replaced-" in c for c in containers), containers
    result = orch.json("up")
    (action,) = result["data"]["plan"]
    assert action["cleanup"] and "interrupted recreate" in action["reason"]
    containers, networks = objects(engine, orch)
    assert containers == [f"{orch.project}-main"] and networks == [f"{orch.project}-main"]
    row = orch.json("status")["data"]["profiles"][0]
    assert (
        row["ready"]
        and row["drift"] is None
        and [p["role"] for p in row["ports"]]
        == [
            "gateway",
            "canvas",
        ]
    )


def test_a_network_left_by_a_kill_before_the_container_is_removed_by_down(orch, engine):
    from orchestrator.core.spec import render
    from orchestrator.docker.containers import _ensure_network
    from orchestrator.fleet.store import load_fleet

    orch.run("setup", "main", "--port", str(free_base()))
    fleet = load_fleet(orch.home)
    _ensure_network(render(fleet.profiles["main"], fleet, orch.home))  # as `up` does first
    assert objects(engine, orch) == ([], [f"{orch.project}-main"])
    down = orch.json("down")["data"]["outcomes"]
    assert down[0]["action"] == "removed" and "network" in down[0]["note"]
    assert objects(engine, orch) == ([], [])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_up_stops_within_seconds_and_rolls_back(orch, engine, sig, code):
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    proc = start_up(orch)
    wait_for_line(proc, "waiting for /readyz")
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == code, err
    assert took < 5, f"took {took:.1f} s to stop"  # not the 120 s of --timeout
    assert "interrupted" in err and "rolled back" in err and "orch up" in err
    assert objects(engine, orch) == ([], [])  # the half-made container and its network
    if sig == signal.SIGTERM:  # and the next up converges from there (one start proves it)
        assert orch.json("up")["ok"] and ready(base)


def test_a_port_taken_after_the_check_is_reported_like_a_check_failure(orch, engine):
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    with socket.socket() as squatter:  # bound, never listening: no listener scan sees it
        squatter.bind(("127.0.0.1", base + 2))
        result = orch.json("up", ok=False)
    assert result["error"]["exit_code"] == 1 and result["error"]["type"] == "CheckFailed"
    (problem,) = result["error"]["problems"]
    assert problem["code"] == "port-in-use" and problem["ports"] == [base + 2, base + 2]
    assert "browser port" in problem["message"] and "refused by the engine" in problem["message"]
    assert objects(engine, orch) == ([], [])


def test_a_truncated_fleet_file_never_removes_the_running_gateway(shared_pair, engine):
    """On the session's running pair (conftest.py), its fleet file put back at the end."""
    pair, base = shared_pair.fleet, shared_pair.ports["main"]
    ids = {name: pair.container(engine, name).id for name in shared_pair.NAMES}
    fleet_file = pair.home / "fleet.yaml"
    good = fleet_file.read_text()
    try:
        fleet_file.write_text(good.replace(f"port: {base}", f"port: {str(base)[:2]}"))
        cut = pair.json("check", ok=False)
        assert cut["error"]["exit_code"] == 2 and "below 1024" in cut["error"]["message"]
        assert pair.json("up", ok=False)["error"]["exit_code"] == 2
        fleet_file.write_text(good[: good.index("profiles:")])  # cut after `project:`
        check = pair.json("check", ok=False)
        problems = check["data"]["problems"]
        assert [p["code"] for p in problems] == ["orphan"] * len(problems) and problems
        assert all(".fleet.last-good.yaml" in p["hint"] for p in problems)
        rows = pair.json("status")["data"]["profiles"]
        assert sorted((r["profile"], r["orphan"]) for r in rows) == [
            ("main", True),
            ("rescue", True),
        ]
        down = pair.json("down")["data"]["outcomes"]
        assert sorted((o["profile"], o["action"]) for o in down) == [
            ("main", "kept"),
            ("rescue", "kept"),
        ]
        assert pair.json("up", ok=False)["error"]["exit_code"] == 2  # no profiles: nothing to do
        assert {name: pair.container(engine, name).id for name in ids} == ids and ready(base)
        fleet_file.write_text((pair.home / ".fleet.last-good.yaml").read_text())
        assert pair.json("check")["data"]["ok"] is True
        assert [a["action"] for a in pair.json("up")["data"]["plan"]] == ["noop", "noop"]
    finally:
        shared_pair.restore(engine)


def test_an_unwritable_cache_and_an_open_token_file(orch, engine):
    base = free_base()
    cache = orch.home / ".fleet.cache.json"
    cache.mkdir()  # every write of the cache fails: it is only a cache
    assert orch.run("setup", "main", "--port", str(base)).returncode == 0
    token = orch.home / "secrets" / "main" / "gateway_token"
    token.chmod(0o644)
    check = orch.json("check", ok=False)["data"]["problems"]
    assert [p["code"] for p in check] == ["token-mode"]
    refused = orch.json("up", ok=False)
    assert refused["error"]["exit_code"] == 1 and objects(engine, orch) == ([], [])
    orch.run("setup", "main")  # repairs the mode, keeps the token
    assert token.stat().st_mode & 0o777 == 0o600
    assert orch.json("check")["data"]["ok"] is True


# A crash loop visible in status, its config refused: test_rescue.py, whose fleet
# crash-loops anyway (one gateway start fewer than a fleet of its own here).


def test_an_oom_kill_is_visible_in_status(orch, engine):
    orch.run("setup", "main", "--port", str(free_base()))
    fleet_file = orch.home / "fleet.yaml"
    fleet_file.write_text(
        fleet_file.read_text().replace("    port:", "    memory: 200m\n    port:")
    )
    orch.json("up", "--keep-failed", ok=False)
    wait_for(
        lambda: orch.container(engine, "main").attrs["RestartCount"] >= 1, 90, "an OOM restart"
    )
    (row,) = json.loads(orch.run("status", "--json", ok=False).stdout)["data"]["profiles"]
    assert row["oom_kills"] >= 1
    assert row["last_exit"]["code"] == 137 and row["last_exit"]["oom_killed"] is True
    assert "out of memory" in row["last_exit"]["meaning"]


@pytest.mark.engine_restart
def test_gateways_run_again_after_dockerd_is_killed(orch, engine):
    from orchestrator.docker.daemon import engine_answers

    pidfile = Path("/var/run/orch-dockerd.pid")
    if not pidfile.exists():
        pytest.skip("the engine was not started by orch; not killing someone else's dockerd")
    require_quiet_engine(engine)
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    orch.json("up")
    container_id = orch.container(engine, "main").id
    key = (orch.state_dir("main") / "config-journal-fingerprint.key").read_bytes()
    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
    wait_for(lambda: not engine_answers(), 30, "dockerd to be gone")
    start = orch.run("engine", "start")
    assert f"started {orch.project}-main again" in start.stdout
    wait_for(lambda: ready(base), 120, "the gateway after the engine came back")
    assert orch.container(engine, "main").id == container_id
    assert (orch.state_dir("main") / "config-journal-fingerprint.key").read_bytes() == key
