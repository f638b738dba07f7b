"""The fleet handle: what one command knows about its fleet, gathered once.

A command builds one `Project` from its home; every verb below the CLI takes it
instead of a bare home. It loads the fleet file once, renders the fleet's specs in
one pass (all profiles at once: a few ms, and the gate, the plan and the status all
read the same specs), takes at most one snapshot of the engine, and holds the
backend of the engine the command asked for. `loads`, `renders` and `snapshots` count what it
did, so a test (and bench) can hold the walk of a command to 1, 1, <= 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.core.model import Fleet
from orchestrator.core.paths import ProfileDirs, profile_dirs
from orchestrator.core.spec import ContainerSpec, render_fleet

if TYPE_CHECKING:  # annotations only: backends/base.py imports this module
    from orchestrator.backends.base import Backend
    from orchestrator.core.observed import Snapshot


@dataclass
class Project:
    """One fleet, for one command: its home, its fleet, its specs, its snapshot."""

    home: Path
    engine: str = "docker"
    loads: int = 0
    renders: int = 0
    snapshots: int = 0
    _backend: Backend | None = field(default=None, repr=False)
    _fleet: Fleet | None = field(default=None, repr=False)
    _specs: dict[str, ContainerSpec] | None = field(default=None, repr=False)
    _snap: Snapshot | None = field(default=None, repr=False)
    _snap_whole: bool = field(default=False, repr=False)
    _own_changed: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, home: Path, engine: str = "docker") -> Project:
        """The handle of the fleet in `home`, driven by the backend of `engine`."""
        return cls(home, engine)

    @classmethod
    def on(cls, home: Path, fleet: Fleet, engine: str = "docker") -> Project:
        """The handle of a fleet the caller has loaded already (a workflow that holds
        the home's lock, or one that just switched the fleet it wrote): not read again."""
        return cls(home, engine, _fleet=fleet)

    @property
    def backend(self) -> Backend:
        """The backend of the engine, imported on first use: `orch check` needs none."""
        if self._backend is None:
            from orchestrator.backends.base import select  # base.py imports this module

            self._backend = select(self.engine)
        return self._backend

    @property
    def fleet(self) -> Fleet:
        """The fleet file, read on first use."""
        if self._fleet is None:
            from orchestrator.fleet.store import load_fleet  # pydantic: only when asked

            self._fleet = load_fleet(self.home)
            self.loads += 1
        return self._fleet

    @property
    def project(self) -> str:
        return self.fleet.project

    def reload(self) -> None:
        """Forget what the fleet file said (and all derived from it): the command just
        wrote it (`up --port auto`, an upgrade switching images)."""
        self._fleet = None
        self._specs = None

    def spec(self, name: str) -> ContainerSpec:
        """The rendered spec of one profile (an unknown name is a clear error)."""
        self.fleet.get(name)
        if self._specs is None:
            self._specs = {s.profile: s for s in render_fleet(self.fleet, self.home)}
            self.renders += 1
        return self._specs[name]

    def specs(self, names: list[str] | None = None) -> list[ContainerSpec]:
        """The rendered specs of `names` (all when None), in the fleet's order."""
        return [self.spec(p.name) for p in self.fleet.select(names)]

    def checked_specs(self, names: list[str] | None = None) -> list[ContainerSpec]:
        """`specs`, refused when `orch check` (files and configs included) finds a
        problem involving any of them: the gate of everything that runs here."""
        from orchestrator.fleet.gate import require_passes  # start-up: status never gates
        from orchestrator.host.gateway_schema import schema_for  # start-up: as the gate

        require_passes(self.fleet, self.home, names, True, schema_for, lambda p: self.spec(p.name))
        return self.specs(names)

    def dirs(self, name: str) -> ProfileDirs:
        return profile_dirs(self.fleet.get(name), self.home)

    def snapshot(self, whole_host: bool = False) -> Snapshot:
        """What the engine runs of this fleet, taken on first use; `whole_host`: every
        container and network and the host's listening sockets too, which planning
        needs (docker.snapshot.take_snapshot). After `changed`, this fleet's own
        containers are asked for again."""
        if self._snap is None or (whole_host and not self._snap_whole):
            from orchestrator.docker.snapshot import take_snapshot  # start-up: check may not

            self._snap = take_snapshot(self.project, self.home, whole_host)
            self._snap_whole = whole_host
            self._own_changed = False
            self.snapshots += 1
        elif self._own_changed:
            from orchestrator.docker.snapshot import refresh_own  # only after a change

            self._snap = refresh_own(self._snap, self.project, self.home)
            self._own_changed = False
        return self._snap

    def changed(self) -> None:
        """The command created, replaced or removed this fleet's containers: the next
        `snapshot` asks the engine for them again (one list call for this fleet's
        containers, not a second snapshot of the host; the rest of the host is as
        the snapshot saw it, which is all that a status after `up` reads)."""
        self._own_changed = True

    def counts(self) -> dict[str, int]:
        return {"loads": self.loads, "renders": self.renders, "snapshots": self.snapshots}
