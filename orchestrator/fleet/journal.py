"""The journal of an upgrade or rollback in flight: what it is doing and how far it got.

An upgrade changes four things that cannot change at once: the profile's container,
its state, the upgrade history and the image in the fleet file. A kill (SIGKILL, a
power cut) between two of them would leave them disagreeing, e.g. the new image in
the fleet file and no history entry to roll back. So before anything changes, the
journal `$ORCH_HOME/journal/NAME.json` is written (atomically, 0600), and again after
each step; it is removed only when every step is done. Whoever finds one (`orch up`,
`orch upgrade`, `orch rollback`) finishes or undoes the operation from it: finished
when the new container answered /readyz before the kill, undone otherwise.

STEPS are the boundaries in order. KILL_ENV is a test-only fault-injection hook:
`ORCH_TEST_KILL_AT=upgrade:new-created` makes orch SIGKILL itself right after that
step is journaled, so the tests can stop it at each boundary deterministically.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, ValidationError
from pydantic.dataclasses import dataclass

from orchestrator.base.atomic import atomic_write
from orchestrator.core.model import NAME_RE
from orchestrator.core.paths import journal_dir
from orchestrator.errors import JournalError

STEPS = (
    "begun",  # nothing changed yet
    "backed-up",  # the snapshot of the state an undo restores is written
    "old-stopped",  # the running gateway was stopped
    "old-set-aside",  # ... and renamed NAME-replaced-ID (a rollback then swaps the dirs)
    "new-created",  # the new container was created and started
    "ready",  # it answered /readyz (or no gateway ran): from here on, finish
    "history-written",  # the upgrade history has the entry (or lost it: rollback)
    "fleet-written",  # the fleet file names the new image
    "old-removed",  # the old container is gone; next: the journal goes
)
READY = STEPS.index("ready")
KILL_ENV = "ORCH_TEST_KILL_AT"

Text = Annotated[str, StringConstraints(max_length=4096)]


@dataclass(config=ConfigDict(strict=True, extra="forbid"))
class Journal:
    op: Literal["upgrade", "rollback"]
    profile: Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]
    from_image: Text
    to_image: Text
    running: bool  # a gateway ran when it began: a container is replaced
    old_id: Text | None = None  # the container replaced
    old_name: Text | None = None
    state_archive: Text | None = None  # rollback: the snapshot whose state it brings back
    archive: Text | None = None  # the backup taken first: what an undo restores
    new_id: Text | None = None
    restore_state: bool = False  # an undo began that must put the state back
    step: Literal[STEPS] = "begun"  # type: ignore[valid-type]
    started: Annotated[float, Field(ge=0)] = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)

    @property
    def past_ready(self) -> bool:
        return STEPS.index(self.step) >= READY

    def at_least(self, step: str) -> bool:
        return STEPS.index(self.step) >= STEPS.index(step)

    def save(self, home: Path) -> None:
        atomic_write(journal_path(home, self.profile), json.dumps(asdict(self), indent=1), 0o600)

    def reached(self, home: Path, step: str, **changes: Any) -> None:
        """Record `step` (and what it learnt, e.g. new_id) before going on."""
        for key, value in changes.items():
            setattr(self, key, value)
        self.step = step
        self.save(home)
        _kill_point(f"{self.op}:{step}")

    def clear(self, home: Path) -> None:
        journal_path(home, self.profile).unlink(missing_ok=True)


def _kill_point(where: str) -> None:
    """Test-only: SIGKILL this process at the boundary named in $ORCH_TEST_KILL_AT."""
    if os.environ.get(KILL_ENV) == where:
        os.kill(os.getpid(), signal.SIGKILL)


def journal_path(home: Path, name: str) -> Path:
    return journal_dir(home) / f"{name}.json"


def begin(home: Path, journal: Journal) -> Journal:
    """Write the journal before anything changes; refuse when one is there already
    (it must be finished or undone first)."""
    path = journal_path(home, journal.profile)
    if path.exists():
        raise JournalError(
            f"an interrupted {read(path).op} of '{journal.profile}' is still journaled in {path}",
            hint="`orch up NAME` finishes or undoes it first",
        )
    journal.save(home)
    _kill_point(f"{journal.op}:begun")
    return journal


def read(path: Path) -> Journal:
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise JournalError(
            f"{path}: not a journal of orch's (not JSON: {exc})", hint=_DAMAGED
        ) from None
    if not isinstance(doc, dict):
        raise JournalError(f"{path}: not a journal of orch's (not a JSON object)", hint=_DAMAGED)
    try:
        journal = Journal(**{str(k): v for k, v in doc.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise JournalError(
            f"{path}: a damaged journal ({where}: {first['msg']})", hint=_DAMAGED
        ) from None
    if path.name != f"{journal.profile}.json":
        raise JournalError(f"{path}: the journal of '{journal.profile}' under another name")
    return journal


_DAMAGED = (
    "check the profile with `orch status NAME` and its image in fleet.yaml,"
    " then remove the file; `orch up NAME` then converges"
)


def pending(home: Path, names: list[str] | None = None) -> list[Journal]:
    """The journals of `names` (all when None), oldest first."""
    folder = journal_dir(home)
    if not folder.is_dir():
        return []
    wanted = set(names) if names else None
    found = []
    for path in sorted(folder.glob("*.json")):
        if wanted is None or path.stem in wanted:
            found.append(read(path))
    return sorted(found, key=lambda j: j.started)
