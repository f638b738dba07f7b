"""The interface every engine implements (`Backend`) and what it returns: outcomes
of actions, the result of `up`, the status of a profile. One set of types for the
local engine and the swarm, so the CLI renders them one way.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: project.py imports this module for select()
    from orchestrator.backends.project import Project
    from orchestrator.core.plan import Action  # (and a status needs no plan)
    from orchestrator.core.problem import Problem

Progress = Callable[[str, str], None]


def seconds_since(start: float) -> float:
    """Seconds since a time.monotonic() reading, as outcomes report them."""
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
    # Limits the engine accepts and does not enforce (core.check.Unenforced.to_json):
    # said, never refused.
    warnings: list[dict[str, Any]] = field(default_factory=list)


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


class StatusRow(Protocol):
    """A profile's row in `orch status`, whatever the engine (ProfileStatus, and the
    swarm's ServiceStatus)."""

    profile: str
    ready: bool

    @property
    def should_run(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class UpOptions:
    """How `up` goes, on every engine (`all_addresses` and `build` mean something on
    one of them only; the other ignores them)."""

    dry_run: bool = False
    timeout: float = 120.0
    keep_failed: bool = False
    remove_orphans: bool = False
    build: bool = True
    all_addresses: bool = False
    # swarm: a registry (HOST:PORT) every node pulls the image from, pinned by digest
    registry: str | None = None
    progress: Progress | None = None


Write = Callable[[bytes], Any]


class Backend(ABC):
    """What every verb asks of an engine. The local engine (backends/local.py) and a
    swarm (backends/swarm.py) implement it with the same result types, so the CLI
    has no engine branches and every engine answers with the same exit codes."""

    name: str
    # Its gateways run on this host's engine: orch may start that engine, finishes
    # the upgrades a kill interrupted there, and checks the host's view of dirs.
    runs_here: bool

    def plan(self, project: Project, names: list[str] | None = None) -> list[Action]:
        """What `up` would do, doing nothing."""
        return self.up(project, names, UpOptions(dry_run=True)).actions

    @abstractmethod
    def up(self, project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
        """Check, plan, create or update, wait ready."""

    @abstractmethod
    def down(
        self,
        project: Project,
        names: list[str] | None = None,
        progress: Progress | None = None,
        remove_orphans: bool = False,
    ) -> list[Outcome]:
        """Stop gracefully and remove; dirs and tokens stay."""

    @abstractmethod
    def status(self, project: Project, names: list[str] | None = None) -> list[StatusRow]:
        """One row per profile (and per orphan of the fleet, when no names)."""

    @abstractmethod
    def restart(self, project: Project, name: str, timeout: float, any_state: bool = False) -> None:
        """Restart one gateway gracefully and wait until it is ready again. `any_state`:
        also one that is stopped or crash-looping (`orch rescue --restart`): restarted
        at once, without the graceful wait for one that is not healthy."""

    @abstractmethod
    def stop(self, project: Project, name: str) -> str | None:
        """Stop one gateway gracefully and keep it (an offline backup copies its dirs,
        a restore swaps them, then `start`): what `start` needs to start it again,
        None when it was not running."""

    @abstractmethod
    def start(self, project: Project, name: str, stopped: str, timeout: float) -> None:
        """Start the gateway `stop` stopped (`stopped`: what it returned) and wait
        until it is ready."""

    @abstractmethod
    def logs(self, project: Project, name: str, tail: int, follow: bool, write: Write) -> None:
        """A gateway's log, its last `tail` lines, then more while `follow`."""

    @abstractmethod
    def exec(
        self,
        project: Project,
        name: str,
        command: list[str],
        write: Write,
        env: dict[str, str] | None = None,
        write_err: Write | None = None,
    ) -> int:
        """Run `command` in a gateway (with `env` added); its exit code. Its output goes
        to `write`; its stderr to `write_err` when given, else to `write` too."""


def failing(rows: list[StatusRow]) -> list[str]:
    """The profiles that should run and are not ready: `orch status` exits 5 for them."""
    return [r.profile for r in rows if r.should_run and not r.ready]


ENGINES = {
    "docker": ("orchestrator.backends.local", "LocalEngine"),
    "podman": ("orchestrator.backends.podman", "PodmanEngine"),
    "swarm": ("orchestrator.backends.swarm", "Swarm"),
}


def select(engine: str) -> Backend:
    """The backend of `--engine`: docker (this host), podman or swarm; docker when
    DOCKER_HOST points at a Podman is podman (detected). Imported on demand: a
    command pays only for the engine it uses."""
    if engine == "docker" and _podman_answers():
        engine = "podman"
    module, name = ENGINES[engine]
    return getattr(importlib.import_module(module), name)()


def _podman_answers() -> bool:
    """Is the engine behind DOCKER_HOST a Podman? Its answer to a ping says (the ping
    `require_engine` made serves); only an engine orch cannot ping itself (ssh, TLS)
    is asked for its /version. No engine answering is not (the command then says that
    no engine answers, as on Docker)."""
    from orchestrator.docker.daemon import pinged_podman  # on use: `check` needs no engine
    from orchestrator.docker.podman_api import podman_facts
    from orchestrator.errors import OrchError

    pinged = pinged_podman()
    if pinged is not None:
        return pinged
    try:
        return podman_facts() is not None
    except OrchError:
        return False
