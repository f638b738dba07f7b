"""Starting dockerd after a dockerd was killed: stale pid files must not block it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.docker import daemon as dockerd


def test_pid_files_of_dead_zombie_or_recycled_pids_are_cleared_and_a_live_dockerds_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: the pid no longer exists
    zombie = subprocess.Popen(["true"])  # not reaped yet: exists as a zombie
    deadline = time.monotonic() + 5
    while not dockerd._is_zombie(zombie.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    fake = tmp_path / "dockerd"  # a live process whose name is dockerd
    shutil.copy("/bin/sleep", fake)
    live = subprocess.Popen([str(fake), "30"])
    names = ("dead", "zombie", "recycled", "live")
    files = {name: tmp_path / f"{name}.pid" for name in names}
    files["dead"].write_text(f"{finished.pid}\n")
    files["zombie"].write_text(f"{zombie.pid}\n")
    files["recycled"].write_text(f"{os.getpid()}\n")  # alive, but not a dockerd
    files["live"].write_text(f"{live.pid}\n")
    monkeypatch.setattr(dockerd, "STALE_PIDFILES", tuple(files.values()))
    try:
        dockerd._clear_stale_pidfiles()
    finally:
        zombie.wait()
        live.kill()
        live.wait()
    assert [n for n in names if files[n].exists()] == ["live"]
