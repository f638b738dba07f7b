"""What `orch status --engine swarm` decides from what it read (no engine), what a
placed profile's plan says when it was left at 0 replicas, and the shell of the jobs
that back up and restore a profile on its node (run here on a directory standing in
for the node's filesystem)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from orchestrator.backends.swarm import ServiceStatus, _decide, plan_stack
from orchestrator.cli.views import show_swarm_status
from orchestrator.core.model import Profile
from orchestrator.core.plan import Kind
from orchestrator.core.spec import LABEL_HASH, render
from orchestrator.workflows import node_backup
from orchestrator.workflows.node_backup import (
    OnNode,
    backup_script,
    discard_script,
    stage_script,
    swap_script,
    unswap_script,
)

from ..helpers import fleet_of
from .test_swarm_placement import node


def row(**changes) -> ServiceStatus:
    base = ServiceStatus(
        "t2", "p_t2", "running", "1/1", False, None, "http://10.0.0.2:19000", [],
        node="n2", node_state="ready", desired="running",
    )  # fmt: skip
    base.__dict__.update(changes)
    return base


def test_a_running_task_on_a_ready_node_that_answers_readyz_is_ready() -> None:
    ready = row()
    _decide(ready, answers=True)
    assert (ready.ready, ready.ready_reason) == (True, "answers /readyz on n2")
    starting = row(state="starting")  # Swarm waits for the first healthcheck
    _decide(starting, answers=True)
    assert starting.ready


def test_a_profile_on_a_down_node_is_not_ready_even_when_its_old_container_answers() -> None:
    down = row(node_state="down", state="pending")
    _decide(down, answers=True)
    assert not down.ready
    assert down.ready_reason.startswith("node n2 is down: its task cannot run")
    assert "on no other node" in down.ready_reason
    assert down.ready_reason.endswith("the old container still answers there, unmanaged")


def test_a_pending_or_failed_task_says_its_state_and_error() -> None:
    pending = row(state="pending", error="no suitable node")
    _decide(pending, answers=False)
    assert pending.ready_reason == "task pending (desired running): no suitable node"
    silent = row()
    _decide(silent, answers=False)
    assert silent.ready_reason == "task running on n2, /readyz does not answer yet"
    assert not pending.ready and not silent.ready


def test_a_service_left_at_0_replicas_says_how_to_bring_it_back() -> None:
    left = row(replicas="0/0", state="shutdown", desired="shutdown")
    _decide(left, answers=False)
    assert not left.ready
    assert left.ready_reason == (
        "scaled to 0 (a backup or restore on its node was interrupted):"
        " `orch up --engine swarm t2` deploys it again"
    )


def test_the_status_text_names_the_node_its_state_the_task_and_the_ports(capsys) -> None:
    from orchestrator.backends.base import PortState

    down = row(node_state="down", state="pending")
    down.ports = [PortState("gateway", "10.0.0.2", "19000", False)]
    _decide(down, answers=False)
    show_swarm_status([down.to_json()])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("t2: service p_t2 on n2 (down), task pending (desired running),")
    assert "not ready" in out[0]
    assert out[1] == "  ports from the manager: gateway 10.0.0.2:19000 silent"
    assert out[2].startswith("  node n2 is down")


def service(spec, replicas: int) -> dict:
    return {
        "ID": "s1",
        "Spec": {
            "Name": "p_t2",
            "Labels": {"orch.profile": spec.profile, LABEL_HASH: spec.spec_hash},
            "Mode": {"Replicated": {"Replicas": replicas}},
        },
    }


def test_a_service_left_at_0_replicas_is_deployed_again_by_up(home) -> None:
    fleet = fleet_of(Profile(name="t2", port=19000, node="n2"))
    spec = render(fleet.profiles["t2"], fleet, home)
    (left,) = plan_stack([spec], [service(spec, 0)])
    assert (left.kind, left.reason) == (
        Kind.START,
        "scaled to 0 (a backup or restore was interrupted); deployed again",
    )
    (fine,) = plan_stack([spec], [service(spec, 1)])
    assert fine.kind == Kind.NOOP


@pytest.mark.skipif(os.geteuid() != 0, reason="the restore keeps numeric owners, as root does")
def test_the_node_jobs_archive_the_dirs_and_swap_a_restore_in_and_back(
    home, tmp_path, monkeypatch
) -> None:
    """The scripts the jobs run, here, on a dir standing in for the node's root."""
    root = tmp_path / "node"
    monkeypatch.setattr(node_backup, "HOST_ROOT", str(root))
    monkeypatch.setattr(node_backup, "SOURCE_ROOT", str(tmp_path / "src"))
    fleet = fleet_of(Profile(name="t2", port=19000, node="n2"))
    where = OnNode(render(fleet.profiles["t2"], fleet, home), node("n2"), None)
    for kind in ("config", "state", "workspace"):
        # The dir on the node, and the same dir as the backup job mounts it (read-only).
        for made in (root / where.dir_of(kind).lstrip("/"), tmp_path / "src" / kind):
            made.mkdir(parents=True)
            (made / f"{kind}.txt").write_text("before")
            os.chown(made, 1000, 1000)
            made.chmod(0o700)
    out = home / "backups" / "t2"
    path = out / "t2-x.node.tar.gz"
    done = subprocess.run(["sh", "-c", backup_script(out, path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    size, digest = re.fullmatch(r"orch-archive (\d+) ([0-9a-f]{64})\n", done.stdout).groups()
    archive = root / str(path).lstrip("/")
    assert (archive.stat().st_size, archive.stat().st_mode & 0o777) == (int(size), 0o600)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest
    assert (
        archive.parent / "t2-x.node.tar.gz.sha256"
    ).read_text() == f"{digest}  t2-x.node.tar.gz\n"
    with tarfile.open(archive) as tar:
        assert "workspace/workspace.txt" in tar.getnames()

    workspace = root / where.dir_of("workspace").lstrip("/")
    (workspace / "workspace.txt").write_text("after")
    wrong = stage_script(where, str(path), "0" * 64, "s1")
    refused = subprocess.run(["sh", "-c", wrong], capture_output=True, text=True)
    assert (refused.returncode, refused.stderr) == (4, "the archive does not match its sha256\n")
    for script in (stage_script(where, str(path), None, "s2"), swap_script(where, "s2")):
        subprocess.run(["sh", "-c", script], check=True)
    assert (workspace / "workspace.txt").read_text() == "before"
    assert (workspace.stat().st_uid, workspace.stat().st_mode & 0o777) == (1000, 0o700)
    subprocess.run(["sh", "-c", unswap_script(where, "s2")], check=True)
    assert (workspace / "workspace.txt").read_text() == "after"  # the previous dirs are back
    failed = Path(f"{workspace}.orch-failed-s2")
    subprocess.run(["sh", "-c", discard_script([str(failed)[len(str(root)) :]])], check=True)
    assert not failed.exists()
