"""A test run killed mid-test leaves its gateway behind: the next runs are not
disturbed (they take other footprints), a failing test and a SIGTERM still clean up,
and `orch gc` removes exactly the killed run's leftovers, never a live run's
(orchestrator/gc.py, orchestrator/testing.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_plugin import child_env, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.gateway]

KILLED_SUITE = """
import json, os, time
from pathlib import Path

def test_is_killed_while_it_runs(openclaw_gateway):
    info = {"container": openclaw_gateway.container_name, "footprint": openclaw_gateway.footprint}
    (Path(os.environ["SIGNALS"]) / "a-ready").write_text(json.dumps(info))
    time.sleep(600)
"""

FAILING_SUITE = """
def test_fails_with_its_gateway(openclaw_gateway):
    assert False, "deliberate failure"
"""

TERMINATED_SUITE = """
import json, os, time
from pathlib import Path

def test_is_terminated_while_it_runs(openclaw_gateway):
    info = {"container": openclaw_gateway.container_name, "footprint": openclaw_gateway.footprint}
    (Path(os.environ["SIGNALS"]) / "b-ready").write_text(json.dumps(info))
    time.sleep(600)
"""


def start_suite(tmp_path: Path, name: str, body: str, run_id: str) -> subprocess.Popen[str]:
    suite = tmp_path / name
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / f"test_{name}.py").write_text(textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", str(suite)],
        cwd=suite,
        env=child_env(ORCH_RUN_ID=run_id, SIGNALS=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_signal(path: Path, proc: subprocess.Popen[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {path.name} after {timeout:.0f} s")
        time.sleep(0.2)
    time.sleep(0.1)  # written whole: tiny JSON, one write
    return json.loads(path.read_text())


def orch_gc(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "gc", *args, "--json"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["data"]


def test_a_killed_runs_leftovers_disturb_nobody_and_orch_gc_removes_only_them(
    engine: Any, gateway_image: str, tmp_path: Path
) -> None:
    killed, nxt = f"it-a-{uuid.uuid4().hex[:8]}", f"it-b-{uuid.uuid4().hex[:8]}"
    run_a = start_suite(tmp_path, "killed", KILLED_SUITE, killed)
    try:
        a = wait_for_signal(tmp_path / "a-ready", run_a)
    finally:
        run_a.kill()  # SIGKILL: no finalizer, no atexit, nothing of pytest runs
        run_a.wait(timeout=30)
    left = leftovers(engine, killed)
    assert f"container {a['container']}" in left
    assert any(x.startswith("network ") for x in left)
    assert any(x.startswith("dir ") for x in left)
    assert any(x.startswith("ports ") for x in left)

    # The next runs, at once: one whose test fails, one cancelled (SIGTERM) mid-test.
    failing = start_suite(tmp_path, "failing", FAILING_SUITE, f"{nxt}-f")
    run_b = start_suite(tmp_path, "terminated", TERMINATED_SUITE, nxt)
    try:
        b = wait_for_signal(tmp_path / "b-ready", run_b)
        # The killed run's reservation is reclaimable, but its gateway still runs and
        # owns its footprint: the next run took another one.
        assert b["footprint"][0] > a["footprint"][1] or b["footprint"][1] < a["footprint"][0]
        output, _ = failing.communicate(timeout=240)
        assert failing.returncode == 1 and "deliberate failure" in output, output
        assert leftovers(engine, f"{nxt}-f") == []

        # gc while the next run lives: the killed run's things go, the live run's stay.
        data = orch_gc()
        # (Its port reservation was already reclaimed by the next runs' reservations.)
        removed = {x["kind"] for x in data["removed"] if x["run_id"] == killed}
        assert removed == {"container", "network", "dir"}
        assert [x for x in data["removed"] if x["run_id"] == nxt] == []
        kept = [x for x in data["kept"] if x["run_id"] == nxt]
        assert {x["kind"] for x in kept} == {"container", "network", "dir"}
        assert all("still running" in x["why"] for x in kept)
        assert leftovers(engine, killed) == []
        assert f"container {b['container']}" in leftovers(engine, nxt)
    finally:
        if failing.poll() is None:
            failing.kill()
        run_b.send_signal(signal.SIGTERM)  # a cancelled CI job
        output, _ = run_b.communicate(timeout=120)
    assert run_b.returncode == 2, output  # pytest: interrupted
    assert leftovers(engine, nxt) == []
