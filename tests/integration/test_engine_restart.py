"""dockerd restarted under running gateways: they come back ready, with their state.

Restarts the engine that orch started (its pid file says so); an engine run by
systemd or another tool is not orch's to restart, and the test says so.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support import free_base, gateway_lease, http_get, require_quiet_engine, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway, pytest.mark.engine_restart]

PIDFILE = Path("/var/run/orch-dockerd.pid")


def test_gateway_comes_back_ready_with_its_state_after_dockerd_restarts(
    orch, engine, gateway_image
):
    from orchestrator.docker.daemon import engine_answers, ensure_engine

    if not PIDFILE.exists():
        pytest.skip("the engine was not started by orch; not restarting someone else's dockerd")
    require_quiet_engine(engine)
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    orch.json("up")
    token = orch.token("main")
    key = (orch.state_dir("main") / "config-journal-fingerprint.key").read_bytes()
    container_id = orch.container(engine, "main").id

    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not engine_answers(), 60, "dockerd to stop answering")
    ensure_engine()  # may find the old dockerd still shutting down: it must cope
    wait_for(lambda: http_get(base, "/readyz")[0] == 200, 180, "the gateway after the restart")

    assert orch.container(engine, "main").id == container_id
    assert orch.token("main") == token
    assert (orch.state_dir("main") / "config-journal-fingerprint.key").read_bytes() == key
    assert gateway_lease(orch.state_dir("main"))["port"] == base
