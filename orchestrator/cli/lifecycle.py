"""Running gateways: `orch up`, `down`, `status`, `logs`, `restart`, `exec`, on the local
engine or a swarm.
"""

import re
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from orchestrator.cli.app import LIFECYCLE, JsonOpt, _confirm, _engine_ready, _project, _run, app
from orchestrator.cli.options import Timeout, count
from orchestrator.errors import UsageError


def _progress(as_json: bool):
    """Progress lines on stderr for people; silent for --json."""
    if as_json:
        return None

    def say(profile: str, message: str) -> None:
        sys.stderr.write(f"{profile}: {message}\n")
        sys.stderr.flush()

    return say


Names = Annotated[Optional[list[str]], typer.Argument(help="Profiles (default: all).")]
RemoveOrphansOpt = Annotated[
    bool,
    typer.Option(
        "--remove-orphans",
        help="Also remove containers of this fleet whose profile is not in the fleet file.",
    ),
]


EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="docker (this host's engine, the default; a Podman behind DOCKER_HOST is"
        " detected), podman (its API socket, found) or swarm (a stack).",
    ),
]


AllAddressesOpt = Annotated[
    bool,
    typer.Option(
        "--all-addresses",
        help="Swarm: accept ports open on every address of the node (Swarm has no 127.0.0.1).",
    ),
]


RegistryOpt = Annotated[
    Optional[str],
    typer.Option(
        "--registry",
        metavar="HOST:PORT",
        help="Swarm: push the image to this registry and pin it by digest; every node"
        " pulls it from there.",
    ),
]
_REGISTRY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}")


def _parse_registry(value: str | None, engine: str) -> str | None:
    if value is None:
        return None
    if engine != "swarm":
        raise UsageError("--registry only applies to --engine swarm")
    if not _REGISTRY.fullmatch(value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise UsageError(
            f"--registry: '{value}' is not HOST:PORT",
            hint="name the registry the nodes reach, e.g. --registry 10.0.0.1:5000",
        )
    return value


def _parse_engine(value: str, all_addresses: bool = False) -> str:
    if value not in ("docker", "podman", "swarm"):
        raise UsageError(
            f"--engine: '{value}' is not docker, podman or swarm",
            hint="use --engine docker (this host), --engine podman (this host's Podman)"
            " or --engine swarm (a stack on a swarm)",
        )
    if all_addresses and value != "swarm":
        raise UsageError("--all-addresses only applies to --engine swarm")
    return value


@app.command(rich_help_panel=LIFECYCLE)
def up(
    names: Names = None,
    dry_run: Annotated[bool, typer.Option(help="Only print the plan.")] = False,
    timeout: Timeout = 120.0,
    keep_failed: Annotated[
        bool, typer.Option(help="Leave a gateway that never got ready, to debug it.")
    ] = False,
    engine: EngineOpt = "docker",
    all_addresses: AllAddressesOpt = False,
    port: Annotated[
        Optional[str],
        typer.Option(help="auto: first move profiles whose ports are taken on this host."),
    ] = None,
    remove_orphans: RemoveOrphansOpt = False,
    registry: RegistryOpt = None,
    build: Annotated[
        bool,
        typer.Option(
            "--build/--no-build",
            help="Build a missing gateway image (or its browser variant) first, as Compose"
            " does; --no-build refuses instead.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Check, plan and bring up gateways; wait until each answers /readyz.

    Nothing is created while any check (fleet or live host) fails. Running it
    twice changes nothing; a changed profile is recreated, the others are kept.
    An upgrade or rollback a kill interrupted is finished or undone first.
    An image a profile needs that is not on the engine is built first when orch
    knows how (its gateway image and browser variant), unless --no-build.
    With --engine swarm the fleet is deployed as a stack on the swarm.

    Example: orch up rescue
    """

    flags = {"dry_run": dry_run, "timeout": timeout, "keep_failed": keep_failed}
    flags |= {"remove_orphans": remove_orphans, "build": build, "all_addresses": all_addresses}
    flags["registry"] = registry
    _run("up", as_json, lambda: _up(engine, names, port, flags, as_json))


def _up(engine: str, names: list[str] | None, port: str | None, flags: dict, as_json: bool):
    # start-up: only `orch up` loads these
    from orchestrator.backends.base import UpOptions
    from orchestrator.backends.local import move_taken_ports
    from orchestrator.cli.backup import resume, would_resume
    from orchestrator.docker.incontainer import require_host_view_of

    if port not in (None, "auto"):
        raise UsageError(f"--port: '{port}' is not auto", hint="orch up --port auto")
    if _parse_engine(engine, flags["all_addresses"]) == "swarm" and port:
        raise UsageError("--port auto only applies to --engine docker or podman")
    flags["registry"] = _parse_registry(flags["registry"], engine)
    options = UpOptions(**flags, progress=_progress(as_json))
    project = _project(engine)
    here, dry_run = project.backend.runs_here, options.dry_run
    resumed: list[dict[str, Any]] = []
    if here and dry_run:
        resumed = would_resume(project.home, names)
    elif here:
        resumed = resume(project.home, names, options.timeout, as_json)
        if resumed:  # it changed the fleet file and the engine
            project.reload()
            project.changed()
    if not dry_run:
        _engine_ready(as_json, auto_start=here)
    if here and not dry_run:
        require_host_view_of(project.specs(names))
    moved = move_taken_ports(project, names, dry_run) if port else []
    result = project.backend.up(project, names, options)
    data: dict[str, Any] = {
        "engine": project.backend.name,
        "dry_run": dry_run,
        "resumed": resumed,
        "images": result.images,
        "moved": [m._asdict() for m in moved],
        "plan": [a.to_json() for a in result.actions],
        "outcomes": [o.to_json() for o in result.outcomes],
        "orphans": result.orphans,
        "status": [s.to_json() for s in result.status],
        "warnings": result.warnings,
    }
    return data, lambda: _show_up(data, project.backend.name, options.remove_orphans)


def _show_up(data: dict[str, Any], engine: str, remove_orphans: bool) -> None:
    # start-up: only `orch up` prints these
    from orchestrator.cli.backup import show_resumed
    from orchestrator.cli.views import show_plan, show_status

    dry_run = data["dry_run"]
    show_resumed(data["resumed"])
    for m in data["moved"]:
        print(f"{m['profile']}: port {m['old_port']} -> {m['new_port']} ({m['reason']})")
    for i in data["images"]:
        done = "to build (missing)" if dry_run else f"built in {i['seconds']:.1f} s"
        print(f"image {i['tag']}: {done}")
    # A real run narrated every change as it went ("creating", "ready in");
    # what is left to say is which profiles it left alone.
    show_plan([a for a in data["plan"] if dry_run or a["action"] == "noop"])
    if data["status"]:
        show_status(engine, data["status"])
    for name in data["orphans"]:
        verb = "removed" if remove_orphans else "kept (`orch status` says why)"
        print(f"orphan {name}: a container of this fleet not in the fleet file, {verb}")


@app.command(rich_help_panel=LIFECYCLE)
def down(
    names: Names = None,
    purge: Annotated[
        bool, typer.Option(help="Also delete the dirs orch created for them (not adopted ones).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --purge.")] = False,
    engine: EngineOpt = "docker",
    remove_orphans: RemoveOrphansOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop gateways gracefully and remove their containers and networks; dirs are kept.

    Containers of this fleet whose profile is not in the fleet file (a file cut
    short, a hand edit) are kept and reported, unless --remove-orphans.

    With --engine swarm: remove the stack's services, networks and secrets.

    Example: orch down rescue
    """
    _run("down", as_json, lambda: _down(engine, names, purge, yes, remove_orphans, as_json))


def _down(
    engine: str,
    names: list[str] | None,
    purge: bool,
    yes: bool,
    remove_orphans: bool,
    as_json: bool,
):
    project = _project(_parse_engine(engine))
    if purge and not yes:
        who = ", ".join(names) if names else "every profile"
        _confirm(
            f"--purge would delete the dirs and token of {who}",
            f"Delete the config, state and workspace dirs and the token of {who}?"
            " (dirs orch adopted are kept)",
            as_json,
        )
    _engine_ready(as_json, auto_start=False)
    outcomes = project.backend.down(project, names, _progress(as_json), remove_orphans)
    purged: list[str] = []
    adopted: list[str] = []
    if purge:
        # start-up: only `orch down --purge` deletes dirs
        from orchestrator.fleet.provision import purge_profiles

        done = purge_profiles(project.home, [o.profile for o in outcomes if o.action != "kept"])
        purged, adopted = [str(p) for p in done.deleted], [str(p) for p in done.adopted]
    data = {"outcomes": [o.to_json() for o in outcomes], "purged": purged, "kept": adopted}
    return data, lambda: _show_down(data)


def _show_down(data: dict[str, Any]) -> None:
    # start-up: only `orch down` prints this
    from orchestrator.cli.views import ADOPTED_NOTE

    for o in data["outcomes"]:
        if o["action"] == "removed":
            what = f"removed in {o['seconds']:.1f} s"
            if o["note"] and o["note"] != "removed":
                what = o["note"]
        else:
            what = o["note"] or "not running"
        print(f"{o['profile']}: {what}")
    for path in data["purged"]:
        print(f"  deleted {path}")
    for path in data["kept"]:
        print(f"  kept    {path}{ADOPTED_NOTE}")


@app.command(rich_help_panel=LIFECYCLE)
def status(
    names: Names = None,
    engine: EngineOpt = "docker",
    as_json: JsonOpt = False,
) -> None:
    """Show state, health, uptime, restarts, last exit, published ports (answering?), drift.

    Exits 5 when a gateway that has a container (a service, on a swarm) is not ready
    (crash-looping, exited, not answering), so a script can wait on it.

    With --engine swarm: each profile's service, its node and the node's state (down
    when its engine is gone), its task (state, desired state, last error), its ports
    dialled from the manager, readiness (/readyz on its node) and drift.

    Example: orch status --json
    """
    ok = lambda data: not data["failing"]  # noqa: E731
    _run("status", as_json, lambda: _status(engine, names, as_json), ok=ok, failed_exit=5)


def _status(engine: str, names: list[str] | None, as_json: bool):
    # start-up: only `orch status` loads these
    from orchestrator.backends.base import failing
    from orchestrator.cli.views import show_backups, show_status

    project = _project(_parse_engine(engine), writes=False)
    _engine_ready(as_json, auto_start=False)
    found = project.backend.status(project, names)
    rows = [s.to_json() for s in found]
    data = {"engine": project.backend.name, "profiles": rows, "failing": failing(found)}
    data["backups"] = _newest_backups(project.home, [r["profile"] for r in rows])

    def show() -> None:
        show_status(project.backend.name, rows)
        show_backups(data["backups"])

    return data, show


def _newest_backups(home: Path, names: list[str]) -> dict[str, Any]:
    """Each profile's newest backup (local or offsite) and its age: file names and the
    record of the last upload only, no archive opened, no network."""
    from orchestrator.fleet.backup_names import newest_backup

    return {n: newest_backup(home, n) for n in dict.fromkeys(names)}


@app.command(rich_help_panel=LIFECYCLE)
def logs(
    name: Annotated[str, typer.Argument(help="Profile.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    tail: Annotated[
        int, typer.Option(parser=count(0, 10_000_000, 100), help="Lines from the end.")
    ] = 100,
    engine: EngineOpt = "docker",
) -> None:
    """Print a gateway's log.

    Example: orch logs rescue -f --tail 20
    """
    try:
        _run("logs", False, lambda: _logs(engine, name, tail, follow))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _logs(engine: str, name: str, tail: int, follow: bool):
    project = _project(_parse_engine(engine), writes=False)
    project.backend.logs(project, name, tail, follow, _write_out)
    return None, lambda: None


def _write_out(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@app.command(rich_help_panel=LIFECYCLE)
def restart(
    name: Annotated[str, typer.Argument(help="Profile.")],
    timeout: Timeout = 120.0,
    engine: EngineOpt = "docker",
    as_json: JsonOpt = False,
) -> None:
    """Restart a gateway gracefully and wait until it is ready again.

    Example: orch restart main
    """
    _run("restart", as_json, lambda: _restart(engine, name, timeout))


def _restart(engine: str, name: str, timeout: float):
    project = _project(_parse_engine(engine))
    project.backend.restart(project, name, timeout)
    return {"profile": name, "ready": True}, lambda: print(f"{name}: restarted, ready")


@app.command(
    "exec",
    rich_help_panel=LIFECYCLE,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_cmd(
    name: Annotated[str, typer.Argument(help="Profile.")],
    command: Annotated[list[str], typer.Argument(help="Command to run inside.")],
    engine: EngineOpt = "docker",
) -> None:
    """Run a command inside a gateway's container; exits with its exit code.

    Example: orch exec rescue -- openclaw status
    """
    code = _run("exec", False, lambda: _exec(engine, name, command))
    raise typer.Exit(code or 0)


def _exec(engine: str, name: str, command: list[str]):
    project = _project(_parse_engine(engine), writes=False)
    return project.backend.exec(project, name, command, _write_out), lambda: None
