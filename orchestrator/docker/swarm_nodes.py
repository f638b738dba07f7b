"""The swarm's nodes as the manager orch talks to sees them (GET /nodes).

Read through the stdlib client (docker/api.py): `orch check` and `up --engine swarm`
read the list once, and the pure core decides what it means (core/placement.py).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.placement import SwarmNode
from orchestrator.docker import api as docker_http
from orchestrator.docker.snapshot import swarm_info
from orchestrator.errors import SwarmUnavailable


def swarm_nodes() -> list[SwarmNode] | None:
    """Every node of the swarm, or None when this engine cannot list them (not in a
    swarm, or a worker: only managers know the nodes)."""
    info = swarm_info()
    if info.state != "active" or not info.manager:
        return None
    return [node_from_api(raw, info.node_id) for raw in docker_http.get("/nodes") or []]


def require_nodes() -> list[SwarmNode]:
    """The node list, or a clear refusal saying why there is none."""
    nodes = swarm_nodes()
    if nodes is None:
        raise SwarmUnavailable(
            "this Docker engine is not a swarm manager, so it cannot tell which nodes"
            " the swarm has; nothing was changed",
            hint="run orch on a manager (`docker node ls` works there), or `docker swarm init`",
        )
    return nodes


def node_named(nodes: list[SwarmNode], hostname: str) -> SwarmNode | None:
    return next((n for n in nodes if n.hostname == hostname), None)


def node_from_api(raw: dict[str, Any], current_id: str = "") -> SwarmNode:
    """One node of GET /nodes; `current`: its ID is `current_id`."""
    spec = raw.get("Spec") or {}
    status = raw.get("Status") or {}
    manager = raw.get("ManagerStatus") or {}
    address = status.get("Addr") or ""
    if address in ("", "0.0.0.0") and manager.get("Addr"):
        # A manager's Status.Addr can be 0.0.0.0; its raft address has the host part.
        address = manager["Addr"].rsplit(":", 1)[0]
    return SwarmNode(
        id=raw["ID"],
        hostname=(raw.get("Description") or {}).get("Hostname") or raw["ID"][:12],
        state=status.get("State") or "unknown",
        availability=spec.get("Availability") or "unknown",
        address=address,
        manager=spec.get("Role") == "manager",
        current=raw["ID"] == current_id,
    )
