"""`.ci/main_job.py`'s comparison of the main job before and after `make test`, on
records as `record` writes them (the real record/check run is in
tests/integration/test_gateways.py)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / ".ci" / "main_job.py"


@pytest.fixture(scope="module")
def main_job():
    spec = importlib.util.spec_from_file_location("main_job", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.READY_WAIT_S = 0.0
    return module


@pytest.fixture
def silent_url() -> str:
    """A loopback URL where nothing answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def row(container_id: str, url: str, started: str = "2026-12-02T01:00:00Z") -> dict:
    return {"container": "orch-main", "url": url, "id": container_id, "started": started}


def test_a_new_container_id_is_named_with_both_ids(main_job, silent_url: str) -> None:
    problems = main_job.differences(
        {"main": row("a" * 64, silent_url)}, {"main": row("b" * 64, silent_url)}
    )
    assert f"main: orch-main was {'a' * 64}, is now {'b' * 64}" in problems


def test_a_restart_of_the_same_container_is_named(main_job, silent_url: str) -> None:
    later = row("a" * 64, silent_url, started="2026-12-02T02:00:00Z")
    problems = main_job.differences({"main": row("a" * 64, silent_url)}, {"main": later})
    assert problems[0].startswith("main: restarted (started 2026-12-02T01:00:00Z")


def test_a_gone_profile_and_a_silent_readyz_are_both_reported(main_job, silent_url: str) -> None:
    before = {"main": row("a" * 64, silent_url), "rescue": row("c" * 64, silent_url)}
    problems = main_job.differences(before, {"main": row("a" * 64, silent_url)})
    assert problems[0] == "profiles were ['main', 'rescue'], now ['main']"
    assert problems[1] == f"main: /readyz on {silent_url} answered None (want 200)"
