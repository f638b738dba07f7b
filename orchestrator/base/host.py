"""Where this host keeps what orch reads: its default home, the proc dir."""

from __future__ import annotations

import os
from pathlib import Path

HOST_PROC_ENV = "ORCH_HOST_PROC"  # another proc dir: the host's in a container, a test's


def default_home() -> Path:
    """The platform's user data dir (e.g. ~/.local/share/orch)."""
    import platformdirs  # only commands without $ORCH_HOME pay for it

    return Path(platformdirs.user_data_dir("orch", appauthor=False))


def proc_dir() -> str:
    """The proc dir to read host facts from: $ORCH_HOST_PROC, else /proc."""
    return os.environ.get(HOST_PROC_ENV, "/proc")
