"""The `orch` command line: the typer app (app.py) and one module per command group.

Importing this package registers every command; each command imports the core it
needs inside its body, so `orch --version` and `orch --help` stay cheap.
"""

from orchestrator.cli import (  # noqa: F401 (registers)
    backup,
    exports,
    gc,
    host,
    lifecycle,
    profiles,
    rescue,
)
from orchestrator.cli.app import app, main

__all__ = ["app", "main"]
