"""What every backend returns: outcomes of actions, the result of `up`, the status of a
profile, and the interface a backend implements. One set of types for the local
engine and the swarm, so the CLI renders them one way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.core.check import Problem
from orchestrator.core.plan import Action

Progress = Callable[[str, str], None]


def seconds_since(start: float) -> float:
    """Seconds since a time.monotonic() reading, as outcomes report them."""
    import time

    return round(time.monotonic() - start, 3)


@dataclass
class Outcome:
    profile: str
    action: str
    container_id: str | None
    ready: bool
    seconds: float
    error: str | None = None
    # What an interrupted or failed action left: "rolled back: ...", "kept: ready".
    note: str = ""
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data.pop("problems")
        return data


@dataclass
class UpResult:
    actions: list[Action]
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False
    orphans: list[str] = field(default_factory=list)  # reported, kept (or removed, if asked)
    status: list[ProfileStatus] = field(default_factory=list)  # after a real run
    # Images it built because they were missing ({tag, action, seconds}); on a dry
    # run, those it would build (action "build").
    images: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PortState:
    role: str
    host_ip: str
    ports: str
    answering: bool | None  # None: not probed
    note: str = ""


@dataclass
class ProfileStatus:
    profile: str
    container: str | None
    state: str
    health: str
    ready: bool
    uptime_s: float | None
    image: str | None
    drift: str | None
    url: str | None
    ports: list[PortState]
    # Why it is (not) ready, in a few words: "answers /readyz", "crash-looping ..."
    ready_reason: str = ""
    restarts: int = 0
    last_exit: dict[str, Any] | None = None  # {code, meaning, oom_killed, at}
    last_error: str | None = None  # the gateway's last error-like log line
    oom_kills: int = 0
    orphan: bool = False
    note: str = ""
    token_file: str | None = None  # the path of the profile's token (never the token)

    @property
    def should_run(self) -> bool:
        """It has a container (orch up made one): then not being ready is a failure."""
        return self.container is not None and not self.orphan

    def to_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["ports"] = [p.__dict__ for p in self.ports]
        return data


class Backend(Protocol):
    """What a backend offers the CLI: the local engine (backends.local) and a swarm
    (backends.swarm) both implement it as module functions, with these result types."""

    def up(self, home: Path, names: list[str] | None = None, **options: Any) -> UpResult: ...

    def down(
        self, home: Path, names: list[str] | None = None, progress: Progress | None = None
    ) -> list[Outcome]: ...

    def status(self, home: Path, names: list[str] | None = None) -> list[Any]: ...


def select(engine: str) -> Backend:
    """The backend of `--engine`: docker (this host) or swarm."""
    import importlib

    module = {"docker": "orchestrator.backends.local", "swarm": "orchestrator.backends.swarm"}
    return importlib.import_module(module[engine])  # type: ignore[return-value]
