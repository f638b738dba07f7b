"""Orphans: containers of this fleet whose profile the fleet file does not have (a file
cut short by an editor or a full disk, a hand edit). They are never removed unless
asked (`--remove-orphans`); this says so, and names the last good fleet file when it
still has them (fleet.store.orphan_note). Light on imports: `orch check` uses it.
"""

from __future__ import annotations

from orchestrator.backends.project import Project
from orchestrator.core.problem import Problem
from orchestrator.fleet.store import orphan_note


def orphan_problems(project: Project) -> list[Problem]:
    """This fleet's containers whose profile the fleet file does not have (for `orch
    check`): a file cut short by an editor or a full disk shows up here first."""
    home, snap = project.home, project.snapshot()
    return [
        Problem(
            code="orphan",
            message=f"container {cs[0].name} ({cs[0].state}) has no profile in the fleet file",
            owners=(name,),
            hint=orphan_note(home, name).removeprefix(f"orphan: '{name}' "),
        )
        for name, cs in snap.orphans(project.fleet.profiles).items()
    ]
