"""The real entry point in-process (typer's CliRunner on orchestrator.cli.app), for the
tests that feed it many inputs: what it exits with, what it said, and what it wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from orchestrator.cli import app

LOCKS = {".fleet.lock", "registry.lock"}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    """Run `orch ARGS` in this process; never lets a traceback through unnoticed."""
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"orch {' '.join(args)} raised {result.exception!r}\n{result.output}"
        ) from result.exception
    assert "Traceback" not in result.output
    return result


def said(result: Any) -> str:
    """What a failed command told the user: the JSON error's message, else its stderr."""
    if result.stdout.lstrip().startswith("{"):
        doc = json.loads(result.stdout)
        if doc["ok"]:
            return ""
        if "error" in doc:
            return doc["error"]["message"]
        return "\n".join(p["message"] for p in doc["data"].get("problems", []))
    return result.stderr


def tree(root: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every path under `root` (lock files aside): kind, content of files, mode."""
    out: dict[str, tuple[str, bytes | None, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if name in LOCKS:
                continue
            st = path.lstat()
            kind = "dir" if path.is_dir() and not path.is_symlink() else "other"
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            out[str(path.relative_to(root))] = (kind, content, st.st_mode)
    return out
