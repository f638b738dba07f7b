"""Orphans: containers of this fleet whose profile the fleet file does not have (a file
cut short by an editor or a full disk, a hand edit). They are never removed unless
asked (`--remove-orphans`); this says so, and names the last good fleet file when it
still has them. Light on imports: `orch check` uses it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.check import Problem
from orchestrator.core.model import Fleet
from orchestrator.docker.snapshot import take_snapshot
from orchestrator.fleet.store import LAST_GOOD_FILE, last_good_fleet


def orphan_problems(home: Path, fleet: Fleet) -> list[Problem]:
    """This fleet's containers whose profile the fleet file does not have (for `orch
    check`): a file cut short by an editor or a full disk shows up here first."""
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    return [
        Problem(
            code="orphan",
            message=f"container {cs[0].name} ({cs[0].state}) has no profile in the fleet file",
            owners=(name,),
            hint=orphan_note(home, name).removeprefix(f"orphan: '{name}' "),
        )
        for name, cs in snap.orphans(fleet.profiles).items()
    ]


def orphan_note(home: Path, name: str) -> str:
    """Why a container of this fleet has no profile, and what to do about it."""
    good = last_good_fleet(home)
    if good is not None and name in good.profiles:
        return (
            f"orphan: '{name}' is not in {home}/fleet.yaml but is in the last good copy"
            f" {home}/{LAST_GOOD_FILE}: was the file cut short? Restore it with"
            f" `cp {home}/{LAST_GOOD_FILE} {home}/fleet.yaml`, or remove the container"
            " with `orch down --remove-orphans`"
        )
    return (
        f"orphan: '{name}' is not in {home}/fleet.yaml; kept. `orch setup {name}` adopts it"
        " again, `orch down --remove-orphans` removes it"
    )
