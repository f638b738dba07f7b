"""Fixtures of the unit tests: pure Python, no Docker, nothing of the host.

Every test gets its own ORCH_HOME, host registry and HOME of its own, an empty
proc dir (no listening sockets) and a Docker socket that does not exist (autouse),
so no unit test can see or touch the machine's engine, fleets or ports, and a
gateway running on the host never changes a result.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI (`.ci/run` sets ORCH_HYPOTHESIS=ci) replays the same generated inputs every run, so a
# landing never depends on luck; a developer's run explores new ones each time (and
# hypothesis keeps what failed in .hypothesis/ to replay it first). No deadline in CI:
# a per-example time limit is a timed assertion, failing on a busy host, not on a bug.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("ORCH_HYPOTHESIS") == "ci":
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def hermetic_host(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tmp_path_factory.mktemp("host")
    (host / "proc").mkdir()
    (host / "home").mkdir()
    monkeypatch.setenv("ORCH_REGISTRY_DIR", str(host / "registry"))
    monkeypatch.setenv("ORCH_HOST_PROC", str(host / "proc"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{host / 'no-engine.sock'}")
    monkeypatch.setenv("HOME", str(host / "home"))
    monkeypatch.delenv("ORCH_PORT_START", raising=False)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The orch home of this test; it does not exist until orch creates it."""
    path = tmp_path / "orch-home"
    monkeypatch.setenv("ORCH_HOME", str(path))
    return path
