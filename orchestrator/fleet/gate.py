"""The one gate of every backend: specs are rendered only for a fleet that passes
`orch check` (and, for what runs here, has its files).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.check import (
    check_fleet,
    file_problems,
    local_engine_problems,
    problems_for,
)
from orchestrator.core.model import Fleet
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.errors import CheckFailed, UsageError
from orchestrator.fleet.adopt import host_roots
from orchestrator.fleet.config_check import SchemaOf, SpecOf, config_problems
from orchestrator.fleet.registry import foreign_reservations


def checked_specs(
    fleet: Fleet,
    home: Path,
    names: list[str] | None,
    files: bool = False,
    schema_of: SchemaOf | None = None,
) -> list[ContainerSpec]:
    """`require_passes`, then the specs of `names` (all when None): what an export
    renders."""
    require_passes(fleet, home, names, files, schema_of)
    return [render(p, fleet, home) for p in fleet.select(names)]


def require_passes(
    fleet: Fleet,
    home: Path,
    names: list[str] | None,
    files: bool = False,
    schema_of: SchemaOf | None = None,
    spec_of: SpecOf | None = None,
) -> None:
    """Refuse `names` (all when None) when `orch check` finds a problem
    involving any of them (a dir in a system tree or a home included): the one gate
    of every backend (engine, compose, swarm).
    `files`: it runs here, on the local engine: profiles placed on a swarm node are
    refused (core/placement.py says why); also each profile's dirs and token on this
    host (what runs here needs; an export may run where they are made), and each
    profile's openclaw.json: the gateway's schema (`schema_of`: image -> its schema),
    orch's keys, no credential held by two profiles. So a running, ready gateway is
    never replaced by one whose config would not start."""
    if not fleet.profiles:
        raise UsageError("the fleet has no profiles yet", hint="add one with `orch setup main`")
    selected = fleet.select(names)
    found = check_fleet(fleet, home, foreign_reservations(home), host_roots(home))
    if files:
        found += local_engine_problems(selected)
        found += file_problems(fleet, home)
        found += config_problems(fleet, home, schema_of, spec_of)
    problems = problems_for(found, [p.name for p in selected])
    if problems:
        raise CheckFailed(
            f"the fleet has {len(problems)} problem(s); nothing was changed",
            problems,
            hint="run `orch check` for the full list and fixes",
        )
