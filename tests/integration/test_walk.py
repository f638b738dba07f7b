"""The walk of a command goes down the layers once: one fleet load, one render pass
(every profile at once) and at most one engine snapshot for `up` (the one that
creates too), `status`, `check` and `down` (the fleet handle, backends/project.py).
Counted in the real CLI, on the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import Orch, free_base, new_home, remove_fleet

COUNTER = Path(__file__).with_name("walk_counter.py")


def counted(fleet: Orch, *args: str) -> dict[str, int]:
    """What `orch ARGS` loaded, rendered and snapshotted (walk_counter.py)."""
    env = {**os.environ, "ORCH_HOME": str(fleet.home)}
    proc = subprocess.run(
        [sys.executable, str(COUNTER), *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"orch {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("COUNTS ")][-1]
    return json.loads(line.removeprefix("COUNTS "))


def test_up_status_check_down_load_once_render_once_and_snapshot_at_most_once(
    tmp_path, engine, gateway_image
):
    fleet = new_home(tmp_path / "home")
    try:
        fleet.run("setup", "a", "--port", str(free_base()))
        fleet.run("setup", "b", "--port", "auto")
        first_up = counted(fleet, "up", "--timeout", "300")  # cold starts on a busy host
        again = {cmd: counted(fleet, cmd) for cmd in ("up", "status", "check", "down")}
    finally:
        remove_fleet(engine, fleet)
    once = {"loads": 1, "renders": 1, "snapshots": 1}  # two profiles, one render pass
    # A first `up` changes the engine: it asks for its own containers again (one list
    # call), not for a second snapshot of the host.
    assert first_up == once
    assert again["up"] == once  # nothing to change: the plan's snapshot is the status's
    assert again["status"] == once
    # check looks for orphans only when the engine answers within 0.5 s: 0 or 1 snapshot
    assert again["check"]["loads"] == 1 and again["check"]["renders"] == 1
    assert again["check"]["snapshots"] <= 1
    assert again["down"] == {"loads": 1, "renders": 0, "snapshots": 1}  # by label, no spec
