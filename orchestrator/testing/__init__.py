"""Real, isolated OpenClaw gateways for test suites: the pytest plugin (plugin.py,
stdlib only until a test asks for a gateway), the testcontainers container and the
factory the fixtures use (factory.py), run records (runs.py) and `orch gc` (gc.py).

The public names are imported on first use, so that the plugin and `orch gc` never
load testcontainers or the Docker SDK.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "OpenClawGatewayContainer": "orchestrator.testing.factory",
    "GatewayFactory": "orchestrator.testing.factory",
    "Gateway": "orchestrator.testing.factory",
    "PortRegistry": "orchestrator.fleet.registry",
    "Owner": "orchestrator.base.owner",
    "run_labels": "orchestrator.testing.runs",
    "current_run_id": "orchestrator.testing.runs",
    "runs_root": "orchestrator.testing.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orchestrator.testing' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
