"""Two `orch up` at the same moment: the fleet lock makes one wait for the other."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import free_base, http_get

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


def test_two_ups_at_once_end_with_one_ready_container_per_profile(orch, engine, gateway_image):
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    env = {**os.environ, "ORCH_HOME": str(orch.home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "up", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    actions = sorted(
        __import__("json").loads(out)["data"]["plan"][0]["action"] for out, _ in outputs
    )
    assert actions == ["create", "noop"]  # the second saw the first one's result
    containers = engine.containers.list(all=True, filters={"label": f"orch.project={orch.project}"})
    assert len(containers) == 1
    assert http_get(base, "/readyz")[0] == 200
