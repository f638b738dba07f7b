"""Results for machines: one versioned JSON envelope for every command.

`{"schema": "orch/v1", "command": ..., "ok": true, "data": ...}` on success and
`{"schema": "orch/v1", "command": ..., "ok": false, "error": {...}}` on failure,
always on stdout, so CI scripts parse one shape. Fields are only ever added
within a schema version.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from orchestrator.errors import CheckFailed, OrchError, UnsafeDir

SCHEMA = "orch/v1"


def envelope(command: str, data: Any, ok: bool = True) -> dict[str, Any]:
    return {"schema": SCHEMA, "command": command, "ok": ok, "data": data}


def error_envelope(command: str, exc: OrchError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
        "exit_code": exc.exit_code,
    }
    if isinstance(exc, (CheckFailed, UnsafeDir)):
        error["problems"] = [p.to_json() for p in exc.problems]
    return {"schema": SCHEMA, "command": command, "ok": False, "error": error}


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
