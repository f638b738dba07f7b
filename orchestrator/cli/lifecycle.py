"""Running gateways: `orch up`, `down`, `status`, `logs`, `restart`, `exec`, on the local
engine or a swarm.
"""

import sys
from typing import Annotated, Any, Optional

import typer

from orchestrator.cli.app import JsonOpt, _confirm, _engine_ready, _home, _run, app
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
    str, typer.Option("--engine", help="docker (this host, the default) or swarm (a stack).")
]


AllAddressesOpt = Annotated[
    bool,
    typer.Option(
        "--all-addresses",
        help="Swarm: accept ports open on every address of the node (Swarm has no 127.0.0.1).",
    ),
]


def _parse_engine(value: str, all_addresses: bool = False) -> str:
    if value not in ("docker", "swarm"):
        raise UsageError(
            f"--engine: '{value}' is not docker or swarm",
            hint="use --engine docker (this host) or --engine swarm (a stack on a swarm)",
        )
    if all_addresses and value != "swarm":
        raise UsageError("--all-addresses only applies to --engine swarm")
    return value


@app.command()
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

    def work():
        from orchestrator.backends.local import move_taken_ports
        from orchestrator.backends.local import up as do_up
        from orchestrator.backends.upgrade import interrupted
        from orchestrator.cli.backup import resume, show_resumed
        from orchestrator.cli.views import show_plan, show_status
        from orchestrator.core.spec import render_fleet
        from orchestrator.docker.incontainer import require_host_view_of
        from orchestrator.fleet.store import load_fleet

        if port not in (None, "auto"):
            raise UsageError(f"--port: '{port}' is not auto", hint="orch up --port auto")
        if _parse_engine(engine, all_addresses) == "swarm":
            if port:
                raise UsageError("--port auto only applies to --engine docker")
            return _swarm_up(names, dry_run, timeout, keep_failed, all_addresses, as_json)
        home = _home()
        if dry_run:
            resumed = [{**r.to_json(), "message": r.describe()} for r in interrupted(home, names)]
        else:
            resumed = resume(home, names, timeout, as_json)
            _engine_ready(as_json)
            require_host_view_of(render_fleet(load_fleet(home), home, names))
        moved = move_taken_ports(home, names, dry_run) if port else []
        result = do_up(
            home,
            names,
            dry_run=dry_run,
            timeout=timeout,
            keep_failed=keep_failed,
            progress=_progress(as_json),
            remove_orphans=remove_orphans,
            build=build,
        )
        data: dict[str, Any] = {
            "dry_run": dry_run,
            "resumed": resumed,
            "images": result.images,
            "moved": [m.__dict__ for m in moved],
            "plan": [a.to_json() for a in result.actions],
            "outcomes": [o.to_json() for o in result.outcomes],
            "orphans": result.orphans,
        }
        rows = [s.to_json() for s in result.status]
        data["status"] = rows

        def show() -> None:
            show_resumed(resumed)
            for m in moved:
                print(f"{m.profile}: port {m.old_port} -> {m.new_port} ({m.reason})")
            for i in result.images:
                done = "to build (missing)" if dry_run else f"built in {i['seconds']:.1f} s"
                print(f"image {i['tag']}: {done}")
            # A real run narrated every change as it went ("creating", "ready in");
            # what is left to say is which profiles it left alone.
            show_plan([a for a in data["plan"] if dry_run or a["action"] == "noop"])
            if rows:
                show_status(rows)
            for name in result.orphans:
                verb = "removed" if remove_orphans else "kept (`orch status` says why)"
                print(f"orphan {name}: a container of this fleet not in the fleet file, {verb}")

        return data, show

    _run("up", as_json, work)


@app.command()
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

    def work():
        from orchestrator.backends.base import select
        from orchestrator.fleet.provision import purge_profiles

        backend = select(_parse_engine(engine))
        swarm = engine == "swarm"

        home = _home()
        if purge and not yes:
            who = ", ".join(names) if names else "every profile"
            _confirm(
                f"--purge would delete the dirs and token of {who}",
                f"Delete the config, state and workspace dirs and the token of {who}?"
                " (dirs orch adopted are kept)",
                as_json,
            )
        _engine_ready(as_json, auto_start=False)
        options = {} if swarm else {"remove_orphans": remove_orphans}
        outcomes = backend.down(home, names, progress=_progress(as_json), **options)
        purged: list[str] = []
        adopted: list[str] = []
        if purge:
            done = purge_profiles(home, [o.profile for o in outcomes if o.action != "kept"])
            purged, adopted = [str(p) for p in done.deleted], [str(p) for p in done.adopted]
        data = {"outcomes": [o.to_json() for o in outcomes], "purged": purged, "kept": adopted}

        def show() -> None:
            for o in outcomes:
                if o.action == "removed":
                    what = f"removed in {o.seconds:.1f} s"
                    if o.note and o.note != "removed":
                        what = o.note
                else:
                    what = o.note or "not running"
                print(f"{o.profile}: {what}")
            for path in purged:
                print(f"  deleted {path}")
            from orchestrator.cli.views import ADOPTED_NOTE

            for path in adopted:
                print(f"  kept    {path}{ADOPTED_NOTE}")

        return data, show

    _run("down", as_json, work)


@app.command()
def status(
    names: Names = None,
    engine: EngineOpt = "docker",
    as_json: JsonOpt = False,
) -> None:
    """Show state, health, uptime, restarts, last exit, published ports (answering?), drift.

    Exits 5 when a gateway that has a container is not ready (crash-looping,
    exited, not answering), so a script can wait on it.

    With --engine swarm: each profile's service, its tasks (node, state, error),
    readiness and drift.

    Example: orch status --json
    """

    def work():
        from orchestrator.backends.local import status as fleet_status
        from orchestrator.cli.views import show_status

        swarm = _parse_engine(engine) == "swarm"
        _engine_ready(as_json, auto_start=False)
        if swarm:
            return _swarm_status(names)
        home = _home(writes=False)
        found = fleet_status(home, names)
        holder["failing"] = [s.profile for s in found if s.should_run and not s.ready]
        rows = [s.to_json() for s in found]
        return {"profiles": rows}, lambda: show_status(rows)

    holder: dict[str, list[str]] = {"failing": []}
    _run("status", as_json, work, ok=lambda _d: not holder["failing"], failed_exit=5)


def _swarm_up(
    names: list[str] | None,
    dry_run: bool,
    timeout: float,
    keep_failed: bool,
    all_addresses: bool,
    as_json: bool,
):
    from orchestrator.backends.swarm import status as swarm_status
    from orchestrator.backends.swarm import up as swarm_up
    from orchestrator.cli.views import show_plan, show_swarm_status

    home = _home()
    _engine_ready(as_json, auto_start=False)
    result = swarm_up(
        home,
        names,
        dry_run=dry_run,
        timeout=timeout,
        keep_failed=keep_failed,
        all_addresses=all_addresses,
        progress=_progress(as_json),
    )
    rows = [] if dry_run else [s.to_json() for s in swarm_status(home, names)]
    data: dict[str, Any] = {
        "engine": "swarm",
        "dry_run": dry_run,
        "plan": [a.to_json() for a in result.actions],
        "outcomes": [o.to_json() for o in result.outcomes],
        "status": rows,
    }

    def show() -> None:
        show_plan(data["plan"])
        if rows:
            show_swarm_status(rows)

    return data, show


def _swarm_status(names: list[str] | None):
    from orchestrator.backends.swarm import status as swarm_status
    from orchestrator.cli.views import show_swarm_status

    rows = [s.to_json() for s in swarm_status(_home(writes=False), names)]
    return {"engine": "swarm", "profiles": rows}, lambda: show_swarm_status(rows)


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Profile.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    tail: Annotated[
        int, typer.Option(parser=count(0, 10_000_000, 100), help="Lines from the end.")
    ] = 100,
) -> None:
    """Print a gateway's log.

    Example: orch logs rescue -f --tail 20
    """

    def work():
        from orchestrator.backends.local import find_container
        from orchestrator.docker.containers import stream_logs

        _, container = find_container(_home(writes=False), name)
        out = sys.stdout.buffer
        stream_logs(container, tail, follow, lambda b: (out.write(b), out.flush()))
        return None, lambda: None

    try:
        _run("logs", False, work)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def restart(
    name: Annotated[str, typer.Argument(help="Profile.")],
    timeout: Timeout = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Restart a gateway gracefully and wait until it is ready again.

    Example: orch restart main
    """

    def work():
        from orchestrator.backends.local import find_container
        from orchestrator.backends.local import restart as do_restart

        spec, container = find_container(_home(), name)
        do_restart(container, spec, timeout)
        return {"profile": name, "ready": True}, lambda: print(f"{name}: restarted, ready")

    _run("restart", as_json, work)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(
    name: Annotated[str, typer.Argument(help="Profile.")],
    command: Annotated[list[str], typer.Argument(help="Command to run inside.")],
) -> None:
    """Run a command inside a gateway's container; exits with its exit code.

    Example: orch exec rescue -- openclaw status
    """
    holder: dict[str, int] = {}

    def work():
        from orchestrator.backends.local import find_container
        from orchestrator.docker.containers import exec_in

        _, container = find_container(_home(writes=False), name)
        out = sys.stdout.buffer
        holder["code"] = exec_in(container, command, lambda b: (out.write(b), out.flush()))
        return None, lambda: None

    _run("exec", False, work)
    raise typer.Exit(holder.get("code", 0))
