"""An upgrade (and a rollback) SIGKILLed at every step boundary, on the real engine with
the real gateway: the next `orch up`, `orch upgrade` or `orch rollback` finishes or
undoes it, and the profile ends ready, its container, fleet file and upgrade history
on one image, its state the one it should have, nothing left over.

orch stops itself at a boundary through the test-only hook ORCH_TEST_KILL_AT
(fleet.journal: SIGKILL right after that step is journaled). One gateway serves
every kill point in turn (a gateway takes 20-60 s to start here); "the new version"
is the gateway image with one label changed, so it has an id of its own.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml
from support import derived_image, free_base, http_get, new_home, remove_fleet

from orchestrator.fleet.journal import KILL_ENV, READY, STEPS

NAME = "main"
# (operation, the step it is killed after, the command that comes next)
KILLS = [
    ("upgrade", "begun", "up"),
    ("upgrade", "backed-up", "upgrade"),
    ("upgrade", "old-stopped", "up"),
    ("upgrade", "old-set-aside", "up"),
    ("upgrade", "new-created", "up"),
    ("upgrade", "ready", "up"),
    ("upgrade", "history-written", "rollback"),
    ("upgrade", "fleet-written", "up"),
    ("upgrade", "old-removed", "upgrade"),
    ("rollback", "new-created", "up"),
    ("rollback", "history-written", "up"),
]
assert {step for op, step, _ in KILLS if op == "upgrade"} == set(STEPS)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, engine, gateway_image):
    fleet = new_home(tmp_path_factory.mktemp("kills") / "home")
    second = f"orch/it-second:{uuid.uuid4().hex[:8]}"
    ctx = tmp_path_factory.mktemp("second")
    derived_image(ctx, gateway_image, second, f"LABEL orch.it.variant={second.split(':')[1]}")
    try:
        fleet.run("setup", NAME, "--port", str(free_base()))
        fleet.run("up", "--timeout", "300", timeout=400)
        # What state each pre-upgrade snapshot holds: the marker written before it.
        yield {"fleet": fleet, "images": (gateway_image, second), "snapshots": {}}
    finally:
        try:
            remove_fleet(engine, fleet)
        finally:
            subprocess.run(["docker", "rmi", "-f", second], capture_output=True)


def _fleet_image(fleet) -> str:
    """The profile's image as the fleet file says (a default image is not written)."""
    from orchestrator.core.versions import GATEWAY_IMAGE

    doc = yaml.safe_load((fleet.home / "fleet.yaml").read_text())
    return doc["profiles"][NAME].get("image", GATEWAY_IMAGE)


def _history(fleet) -> list[dict]:
    path = fleet.home / "backups" / NAME / "upgrades.json"
    return json.loads(path.read_text()) if path.exists() else []


def _markers(fleet) -> tuple[str, str]:
    return (
        (fleet.state_dir(NAME) / "kill-marker.txt").read_text(),
        (fleet.workspace_dir(NAME) / "kill-marker.md").read_text(),
    )


def _write_markers(fleet, value: str) -> None:
    (fleet.state_dir(NAME) / "kill-marker.txt").write_text(value)
    (fleet.workspace_dir(NAME) / "kill-marker.md").write_text(value)


def _containers(engine, fleet) -> list:
    labels = [f"orch.project={fleet.project}", f"orch.home={fleet.home}"]
    return engine.containers.list(all=True, filters={"label": labels})


def _port(fleet) -> int:
    return next(r for r in fleet.json("ls")["data"]["profiles"] if r["name"] == NAME)["port"]


def _leftovers(fleet) -> list[str]:
    root = fleet.home / "profiles" / NAME
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("op", "step", "then"), KILLS, ids=[f"{o}:{s}" for o, s, _ in KILLS])
def test_a_kill_at_each_step_is_finished_or_undone_by_the_next_command(
    gateway, engine, op: str, step: str, then: str
) -> None:
    fleet, images, snapshots = gateway["fleet"], gateway["images"], gateway["snapshots"]
    before = _fleet_image(fleet)
    history = _history(fleet)
    marker = f"{op}-{step}-{uuid.uuid4().hex[:6]}"
    _write_markers(fleet, marker)
    if op == "upgrade":
        target = images[1] if before == images[0] else images[0]
        args = ["upgrade", NAME, "--image", target]
    else:
        assert history, "a rollback needs an upgrade before it"
        target = history[-1]["from_image"]
        args = ["rollback", NAME, "--yes"]

    killed = fleet.run(*args, ok=False, timeout=600, env={KILL_ENV: f"{op}:{step}"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert (fleet.home / "journal" / f"{NAME}.json").exists()
    finished = STEPS.index(step) >= READY

    if then == "up":
        out = fleet.json("up", "--timeout", "300", timeout=600)["data"]
        expected_image = target if finished else before
    elif then == "upgrade":
        out = fleet.json("upgrade", NAME, "--image", target, "--timeout", "300", timeout=900)
        out = out["data"]
        expected_image = target
    else:
        out = fleet.json("rollback", NAME, "--yes", "--timeout", "300", timeout=900)["data"]
        expected_image = before
    resumed = out["resumed"]
    assert [(r["op"], r["step"], r["action"]) for r in resumed] == [
        (op, step, "finished" if finished else "undone")
    ], resumed
    assert resumed[0]["reason"] and resumed[0]["message"]

    # Ready, on one image everywhere, one container, nothing left beside the dirs.
    assert not (fleet.home / "journal" / f"{NAME}.json").exists()
    assert http_get(_port(fleet), "/readyz")[0] == 200
    containers = _containers(engine, fleet)
    assert [c.name for c in containers] == [f"{fleet.project}-{NAME}"]
    assert containers[0].attrs["Config"]["Image"] == expected_image
    assert _fleet_image(fleet) == expected_image
    after = _history(fleet)
    assert (after[-1]["to_image"] if after else images[0]) == expected_image, after
    assert _leftovers(fleet) == []

    # The state it should have: an upgrade keeps (or puts back) the state of just
    # before it; a rollback that finished brings back its snapshot's.
    if op == "upgrade" and after and after[-1]["archive"] not in snapshots:
        snapshots[after[-1]["archive"]] = marker
    if then == "rollback" or (op == "rollback" and finished):
        expected_marker = snapshots[history[-1]["archive"]] if op == "rollback" else marker
    else:
        expected_marker = marker
    assert _markers(fleet) == (expected_marker, expected_marker)


def test_a_sigterm_while_the_new_gateway_starts_undoes_the_upgrade(gateway, engine) -> None:
    """Not only a gateway that never gets ready: any error or interruption rolls back."""
    import os
    import signal
    import sys

    fleet, images = gateway["fleet"], gateway["images"]
    before = _fleet_image(fleet)
    history = _history(fleet)
    target = images[1] if before == images[0] else images[0]
    _write_markers(fleet, "sigterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "upgrade", NAME, "--image", target],
        env={**os.environ, "ORCH_HOME": str(fleet.home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "waiting for /readyz" in line:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=600)
    said = "".join(lines) + err
    assert proc.returncode == 143, out + said
    assert "upgrade interrupted; undone" in said
    assert not (fleet.home / "journal" / f"{NAME}.json").exists()
    assert http_get(_port(fleet), "/readyz")[0] == 200
    assert [c.attrs["Config"]["Image"] for c in _containers(engine, fleet)] == [before]
    assert _fleet_image(fleet) == before and _history(fleet) == history
    assert _markers(fleet) == ("sigterm", "sigterm") and _leftovers(fleet) == []


def test_rollback_works_after_the_kills(gateway, engine) -> None:
    fleet, images = gateway["fleet"], gateway["images"]
    history = _history(fleet)
    assert history
    done = fleet.json("rollback", NAME, "--yes", "--timeout", "300", timeout=900)["data"]
    assert done["ok"] and done["image"] == history[-1]["from_image"]
    assert _fleet_image(fleet) == history[-1]["from_image"]
    assert _history(fleet) == history[:-1]
    assert http_get(_port(fleet), "/readyz")[0] == 200
    assert [c.attrs["Config"]["Image"] for c in _containers(engine, fleet)] == [
        history[-1]["from_image"]
    ]
    assert images
