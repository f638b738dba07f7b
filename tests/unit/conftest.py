"""Fixtures of the unit tests: pure Python, no Docker.

Every test gets its own ORCH_HOME under tmp_path (autouse), so no test can
touch the real orch home of the machine running it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The orch home of this test; it does not exist until orch creates it."""
    path = tmp_path / "orch-home"
    monkeypatch.setenv("ORCH_HOME", str(path))
    return path
