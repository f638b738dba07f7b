"""The `orch` command line: parse, call the core, render. Nothing else.

Core modules are imported inside each command, so `orch --version` and
`orch --help` never pay for pydantic, docker or rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__
from .errors import CheckFailed, Interrupted, OrchError, Terminated, UsageError
from .output import envelope, error_envelope, print_json

app = typer.Typer(
    name="orch",
    help=(
        "Run several fully isolated OpenClaw gateways on one host, one container each.\n\n"
        "Example: orch setup main && orch setup rescue && orch ports"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a versioned JSON envelope.")]


def _version(value: bool) -> None:
    if value:
        print(f"orch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run several fully isolated OpenClaw gateways on one host, one container each."""


def _run(
    command: str,
    as_json: bool,
    work: Callable[[], tuple[Any, Callable[[], None]]],
    ok: Callable[[Any], bool] = lambda _data: True,
    failed_exit: int = CheckFailed.exit_code,
) -> Any:
    """Call the core; print its result as JSON or for people; map errors to exit codes.

    `ok` says whether a result that was computed is still a failure (`orch check`
    with problems, `orch status` with a gateway that should run and is not ready):
    then the envelope says ok false and the exit code is `failed_exit`.
    """
    try:
        try:
            data, show = work()
        except (KeyboardInterrupt, Terminated) as exc:
            signum = Terminated.signum if isinstance(exc, Terminated) else 2
            raise Interrupted(f"orch {command} interrupted", signum=signum) from None
    except OrchError as exc:
        if as_json:
            print_json(error_envelope(command, exc))
        else:
            from .views import show_error

            show_error(exc.message, exc.hint, getattr(exc, "problems", None))
        raise typer.Exit(exc.exit_code) from None
    succeeded = ok(data)
    if as_json:
        print_json(envelope(command, data, ok=succeeded))
    else:
        show()
    if not succeeded:
        raise typer.Exit(failed_exit)
    return data


def _home() -> Path:
    from .store import orch_home

    return orch_home()


def _parse_port(value: str | None, allow_privileged: bool = False) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        port = int(value)
    except ValueError:
        raise UsageError(
            f"--port: '{value}' is not a port number", hint="use a number such as 19789, or auto"
        ) from None
    from .profile import validate_base

    try:
        return validate_base(port, allow_privileged)
    except ValueError as exc:
        raise UsageError(f"--port: {exc}", hint="use a base port such as 19789, or auto") from None


def _parse_publish(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    from .ports import Role

    roles = tuple(r.strip() for r in value.split(",") if r.strip())
    valid = [r.value for r in Role]
    bad = [r for r in roles if r not in valid]
    if bad:
        raise UsageError(
            f"--publish: unknown role {', '.join(repr(b) for b in bad)}",
            hint=f"roles are: {', '.join(valid)}",
        )
    return roles


def _check_name(name: str, option: str = "NAME") -> str:
    from .profile import name_problem

    problem = name_problem(name)
    if problem:
        raise UsageError(f"{option}: {problem}", hint="for example: orch setup rescue")
    return name


@app.command()
def setup(
    name: Annotated[str, typer.Argument(help="Profile name, e.g. main or rescue.")],
    port: Annotated[
        Optional[str],
        typer.Option(help="Base port N, or auto (lowest free footprint at or above 18789)."),
    ] = None,
    bind_ip: Annotated[Optional[str], typer.Option(help="Host address to publish on.")] = None,
    image: Annotated[Optional[str], typer.Option(help="Gateway image.")] = None,
    config_dir: Annotated[Optional[Path], typer.Option(help="Adopt this config dir.")] = None,
    state_dir: Annotated[Optional[Path], typer.Option(help="Adopt this state dir.")] = None,
    workspace_dir: Annotated[Optional[Path], typer.Option(help="Adopt this workspace.")] = None,
    publish: Annotated[
        Optional[str],
        typer.Option(help="Roles to publish, comma separated (default gateway,browser,canvas)."),
    ] = None,
    rescues: Annotated[
        Optional[str], typer.Option(help="Mount this profile's config dir to repair it.")
    ] = None,
    allow_privileged_ports: Annotated[
        bool, typer.Option(help="Allow a base port below 1024.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Change an existing profile.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a profile and prepare its dirs, token and openclaw.json.

    Running the same setup twice changes nothing; a different one needs --force.

    Example: orch setup rescue --port auto --rescues main
    """

    def work():
        from .provision import SetupRequest
        from .provision import setup as do_setup
        from .views import profile_data

        request = SetupRequest(
            name=_check_name(name),
            port=_parse_port(port, allow_privileged_ports),
            allow_privileged_ports=allow_privileged_ports or None,
            bind_ip=bind_ip,
            image=image,
            config_dir=config_dir,
            state_dir=state_dir,
            workspace_dir=workspace_dir,
            publish=_parse_publish(publish),
            rescues=_check_name(rescues, "--rescues") if rescues else None,
        )
        home = _home()
        result = do_setup(home, request, force=force)
        data = {
            "action": result.action,
            "changes": result.changes,
            "config_backup": str(result.config_backup) if result.config_backup else None,
            "profile": profile_data(result.profile, home),
        }

        def show() -> None:
            p = data["profile"]
            print(
                f"{result.action}: {p['name']} on {p['bind_ip']}, base port {p['port']}"
                f" (owns {p['footprint'][0]}-{p['footprint'][1]})"
            )
            for change in result.changes:
                print(f"  changed {change}")
            for kind, path in p["dirs"].items():
                print(f"  {kind:<10} {path}")
            print(f"  {'token':<10} {p['token_file']} (0600, never printed)")
            if data["config_backup"]:
                print(f"  previous openclaw.json kept as {data['config_backup']}")

        return data, show

    _run("setup", as_json, work)


def _confirm(what: str, question: str, as_json: bool) -> None:
    """Ask before deleting; with no terminal (CI, --json) demand --yes instead."""
    if as_json or not sys.stdin.isatty():
        raise UsageError(
            f"{what}; nothing was changed", hint="add --yes to confirm without a prompt"
        )
    if not typer.confirm(question):
        raise UsageError("aborted; nothing was changed")


def _refuse_if_container(home: Path, name: str) -> None:
    """A profile removed while its container lives would leave an orphan behind."""
    from .dockerd import engine_answers

    if not engine_answers():
        return
    from .lifecycle import container_of

    container = container_of(home, name)
    if container is not None:
        raise UsageError(
            f"profile '{name}' still has a container ({container.name}, {container.state});"
            " nothing was changed",
            hint=f"run `orch down {name}` first",
        )


@app.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="Profile to remove.")],
    purge: Annotated[bool, typer.Option(help="Also delete its dirs and token.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --purge.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a profile from the fleet; its dirs are kept unless --purge.

    Example: orch rm rescue --purge --yes
    """

    def work():
        from .provision import purge_targets
        from .provision import remove as do_remove

        home = _home()
        _refuse_if_container(home, _check_name(name))
        if purge and not yes:
            targets = purge_targets(home, name)
            listing = "\n".join(f"  {t}" for t in targets)
            _confirm(
                f"--purge would delete {len(targets)} paths of '{name}'",
                f"Delete these paths of '{name}'?\n{listing}\n",
                as_json,
            )
        result = do_remove(home, name, purge=purge)
        data = {
            "removed": name,
            "purged": [str(p) for p in result.purged],
            "kept": [str(p) for p in result.kept],
        }

        def show() -> None:
            print(f"removed {name} from the fleet")
            for path in data["purged"]:
                print(f"  deleted {path}")
            for path in data["kept"]:
                print(f"  kept    {path}")

        return data, show

    _run("rm", as_json, work)


@app.command("ls")
def list_profiles(as_json: JsonOpt = False) -> None:
    """List the profiles of the fleet.

    Example: orch ls --json
    """

    def work():
        from .store import load_fleet
        from .views import profile_data, show_profiles

        home = _home()
        fleet = load_fleet(home)
        rows = [profile_data(p, home) for p in fleet.select(None)]
        data = {"home": str(home), "project": fleet.project, "profiles": rows}
        return data, lambda: show_profiles(rows, str(home), fleet.project)

    _run("ls", as_json, work)


@app.command()
def ports(
    name: Annotated[Optional[str], typer.Argument(help="Only this profile.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each profile's ports: role, host ip, port or range, published or reserved.

    Example: orch ports rescue
    """

    def work():
        from .store import load_fleet
        from .views import ports_data, show_ports

        fleet = load_fleet(_home())
        rows = [ports_data(p) for p in fleet.select([name] if name else None)]
        return {"profiles": rows}, lambda: show_ports(rows)

    _run("ports", as_json, work)


@app.command()
def check(as_json: JsonOpt = False) -> None:
    """Report every problem of the fleet at once (exit 0 clean, 1 problems).

    Example: orch check --json
    """

    def work():
        from .check import check_fleet, file_problems
        from .registry import foreign_reservations
        from .store import load_fleet
        from .views import check_data, show_problems

        home = _home()
        fleet = load_fleet(home)
        problems = check_fleet(fleet, home, foreign_reservations(home))
        problems += file_problems(fleet, home)
        from .dockerd import engine_answers

        if engine_answers(timeout=0.5):
            from .lifecycle import orphan_problems

            problems += orphan_problems(home, fleet)
        return check_data(fleet, problems), lambda: show_problems(problems, len(fleet.profiles))

    _run("check", as_json, work, ok=lambda data: data["ok"])


@app.command()
def render(
    name: Annotated[str, typer.Argument(help="Profile to render.")],
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    as_json: JsonOpt = False,
) -> None:
    """Print the fully resolved container spec of a profile.

    Example: orch render rescue --format json
    """

    def work():
        from .spec import render as render_spec
        from .store import load_fleet

        if fmt not in ("yaml", "json"):
            raise UsageError(f"--format: '{fmt}' is not yaml or json")
        home = _home()
        fleet = load_fleet(home)
        spec = render_spec(fleet.get(name), fleet, home).model_dump(mode="json")

        def show() -> None:
            if fmt == "json":
                print_json(spec)
            else:
                import yaml

                sys.stdout.write(yaml.safe_dump(spec, sort_keys=False))

        return spec, show

    _run("render", as_json, work)


@app.command()
def schema(as_json: JsonOpt = False) -> None:
    """Print the JSON schema of the fleet file.

    Example: orch schema > fleet.schema.json
    """

    def work():
        from .profile import Fleet

        doc = Fleet.model_json_schema()
        return doc, lambda: print_json(doc)

    _run("schema", as_json, work)


def _progress(as_json: bool):
    """Progress lines on stderr for people; silent for --json."""
    if as_json:
        return None

    def say(profile: str, message: str) -> None:
        sys.stderr.write(f"{profile}: {message}\n")
        sys.stderr.flush()

    return say


def _engine_ready(as_json: bool, auto_start: bool = True) -> None:
    """Make sure an engine answers; start one (root on Debian) if allowed."""
    from .dockerd import engine_answers

    if engine_answers():
        return
    from .incontainer import own_container_id

    if own_container_id() is not None:  # never install or start an engine inside a container
        from .errors import EngineUnavailable

        raise EngineUnavailable(
            "orch runs in a container and no Docker engine answers on its socket",
            hint="mount the host's socket: docker run -v /var/run/docker.sock:/var/run/docker.sock",
        )
    if not auto_start:
        from .errors import EngineUnavailable

        raise EngineUnavailable(
            "no Docker engine answers", hint="run `orch engine start` (or `make engine`)"
        )
    from .dockerd import ensure_engine

    for line in ensure_engine():
        if not as_json:
            sys.stderr.write(f"engine: {line}\n")


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
    timeout: Annotated[float, typer.Option(help="Seconds to wait for /readyz.")] = 120.0,
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
    as_json: JsonOpt = False,
) -> None:
    """Check, plan and bring up gateways; wait until each answers /readyz.

    Nothing is created while any check (fleet or live host) fails. Running it
    twice changes nothing; a changed profile is recreated, the others are kept.
    With --engine swarm the fleet is deployed as a stack on the swarm.

    Example: orch up rescue
    """

    def work():
        from .lifecycle import status as fleet_status
        from .lifecycle import up as do_up
        from .provision import move_taken_ports
        from .views import show_plan, show_status

        if port not in (None, "auto"):
            raise UsageError(f"--port: '{port}' is not auto", hint="orch up --port auto")
        if _parse_engine(engine, all_addresses) == "swarm":
            if port:
                raise UsageError("--port auto only applies to --engine docker")
            return _swarm_up(names, dry_run, timeout, keep_failed, all_addresses, as_json)
        home = _home()
        if not dry_run:
            _engine_ready(as_json)
            _require_host_view(home, names)
        moved = move_taken_ports(home, names, dry_run) if port else []
        result = do_up(
            home,
            names,
            dry_run=dry_run,
            timeout=timeout,
            keep_failed=keep_failed,
            progress=_progress(as_json),
            remove_orphans=remove_orphans,
        )
        data: dict[str, Any] = {
            "dry_run": dry_run,
            "moved": [m.__dict__ for m in moved],
            "plan": [a.to_json() for a in result.actions],
            "outcomes": [o.to_json() for o in result.outcomes],
            "orphans": result.orphans,
        }
        rows = [] if dry_run else [s.to_json() for s in fleet_status(home, names, probe=False)]
        data["status"] = _with_token_files(home, rows)

        def show() -> None:
            for m in moved:
                print(f"{m.profile}: port {m.old_port} -> {m.new_port} ({m.reason})")
            show_plan(data["plan"])
            if rows:
                show_status(rows)
            for name in result.orphans:
                verb = "removed" if remove_orphans else "kept (`orch status` says why)"
                print(f"orphan {name}: a container of this fleet not in the fleet file, {verb}")

        return data, show

    _run("up", as_json, work)


def _require_host_view(home: Path, names: list[str] | None) -> None:
    """When orch runs in a container: bind sources must be host paths, ports reachable."""
    from .incontainer import own_container_id, require_host_view

    if own_container_id() is None:
        return
    from .spec import render_fleet
    from .store import load_fleet

    specs = render_fleet(load_fleet(home), home, names)
    loopback = any(p.host_ip.startswith("127.") for s in specs for p in s.ports)
    require_host_view([m.source for s in specs for m in s.mounts], loopback)


def _with_token_files(home: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each status row with the path of its profile's token file (never the token)."""
    from .paths import profile_dirs
    from .store import load_fleet

    fleet = load_fleet(home)
    for row in rows:
        if row["profile"] in fleet.profiles:
            row["token_file"] = str(profile_dirs(fleet.profiles[row["profile"]], home).token_file)
    return rows


@app.command()
def down(
    names: Names = None,
    purge: Annotated[bool, typer.Option(help="Also delete the profiles' dirs.")] = False,
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
        from .lifecycle import down as remove

        swarm = _parse_engine(engine) == "swarm"
        if swarm:
            from .swarm import down as remove

        home = _home()
        if purge and not yes:
            who = ", ".join(names) if names else "every profile"
            _confirm(
                f"--purge would delete the dirs and token of {who}",
                f"Delete the config, state and workspace dirs and the token of {who}?",
                as_json,
            )
        _engine_ready(as_json, auto_start=False)
        if swarm:
            outcomes = remove(home, names, progress=_progress(as_json))
        else:
            outcomes = remove(
                home, names, progress=_progress(as_json), remove_orphans=remove_orphans
            )
        purged: list[str] = []
        if purge:
            purged = _purge_after_down(home, [o.profile for o in outcomes if o.action != "kept"])
        data = {"outcomes": [o.to_json() for o in outcomes], "purged": purged}

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

        return data, show

    _run("down", as_json, work)


def _purge_after_down(home: Path, names: list[str]) -> list[str]:
    from .provision import purge_dirs
    from .store import load_fleet

    fleet = load_fleet(home)
    deleted: list[str] = []
    for name in names:
        if name in fleet.profiles:
            purged, _ = purge_dirs(fleet.profiles[name], home)
            deleted += [str(p) for p in purged]
    return deleted


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
        from .lifecycle import status as fleet_status
        from .views import show_status

        swarm = _parse_engine(engine) == "swarm"
        _engine_ready(as_json, auto_start=False)
        if swarm:
            return _swarm_status(names)
        home = _home()
        found = fleet_status(home, names)
        holder["failing"] = [s.profile for s in found if s.should_run and not s.ready]
        rows = _with_token_files(home, [s.to_json() for s in found])
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
    from .swarm import status as swarm_status
    from .swarm import up as swarm_up
    from .views import show_plan

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
            _show_swarm_status(rows)

    return data, show


def _swarm_status(names: list[str] | None):
    from .swarm import status as swarm_status

    rows = [s.to_json() for s in swarm_status(_home(), names)]
    return {"engine": "swarm", "profiles": rows}, lambda: _show_swarm_status(rows)


def _show_swarm_status(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        ready = "ready" if row["ready"] else "not ready"
        print(
            f"{row['profile']}: service {row['service'] or '-'} {row['state']},"
            f" {row['replicas']} running, {ready}, {row['url'] or 'gateway not published'}"
            + (f", drift: {row['drift']}" if row["drift"] else "")
        )
        for task in row["tasks"][:3]:
            error = f" ({task['error']})" if task["error"] else ""
            print(
                f"  task {task['name']} {task['id']} on {task['node']}:"
                f" {task['state']} (desired {task['desired']}){error}"
            )


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Profile.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
) -> None:
    """Print a gateway's log.

    Example: orch logs rescue -f --tail 20
    """

    def work():
        from .engine import stream_logs
        from .lifecycle import find_container

        _, container = find_container(_home(), name)
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
    timeout: Annotated[float, typer.Option(help="Seconds to wait for /readyz.")] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Restart a gateway gracefully and wait until it is ready again.

    Example: orch restart main
    """

    def work():
        from .engine import restart as do_restart
        from .lifecycle import find_container

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
        from .engine import exec_in
        from .lifecycle import find_container

        _, container = find_container(_home(), name)
        out = sys.stdout.buffer
        holder["code"] = exec_in(container, command, lambda b: (out.write(b), out.flush()))
        return None, lambda: None

    _run("exec", False, work)
    raise typer.Exit(holder.get("code", 0))


engine_app = typer.Typer(help="The Docker engine orch uses.", no_args_is_help=True)
images_app = typer.Typer(help="The gateway image and its offline base.", no_args_is_help=True)
app.add_typer(engine_app, name="engine")
app.add_typer(images_app, name="images")
export_app = typer.Typer(
    help="Write the fleet as a Compose file or a Swarm stack file.", no_args_is_help=True
)
app.add_typer(export_app, name="export")
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help="File to write (atomically); - prints to stdout.")
]


def _exported(text: str, output: str):
    """Print the export, or write it whole to `output`; the result for --json."""
    if output == "-":
        return {"file": None, "text": text}, lambda: sys.stdout.write(text)
    from .compose import write_export

    path = write_export(text, Path(output))
    return {"file": str(path), "bytes": len(text.encode())}, lambda: print(f"wrote {path}")


@export_app.command("compose")
def export_compose(
    names: Names = None,
    output: OutputOpt = "-",
    as_json: JsonOpt = False,
) -> None:
    """Write one Compose file that runs the same gateways as `orch up`; no secret in it.

    `orch status` and `orch up` recognise the containers Compose creates from it.

    Example: orch export compose -o compose.yaml && docker compose -f compose.yaml up -d --wait
    """

    def work():
        from .compose import export_compose as render_compose

        return _exported(render_compose(_home(), names), output)

    _run("export compose", as_json, work)


@export_app.command("stack")
def export_stack(
    names: Names = None,
    output: OutputOpt = "-",
    all_addresses: AllAddressesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a stack file for `docker stack deploy`: the same gateways on a swarm.

    Example: orch export stack --all-addresses -o stack.yaml
    """

    def work():
        from .compose import export_stack as render_stack

        return _exported(render_stack(_home(), names, all_addresses), output)

    _run("export stack", as_json, work)


@engine_app.command("start")
def engine_start(as_json: JsonOpt = False) -> None:
    """Make an engine available: install docker.io and start dockerd if none answers.

    Example: sudo orch engine start
    """

    def work():
        from .dockerd import ensure_engine

        done = ensure_engine()
        lines = done or ["an engine already answers"]
        return {"done": done}, lambda: print("\n".join(lines))

    _run("engine start", as_json, work)


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even what is current.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the gateway image (and the offline base when needed); skip what is current.

    Example: orch images build
    """

    def work():
        from .images import build_images

        _engine_ready(as_json)
        say = None if as_json else (lambda m: sys.stderr.write(f"images: {m}\n"))
        results = build_images(force=force, progress=say)
        rows = [r.to_json() if hasattr(r, "to_json") else r.__dict__ for r in results]

        def show() -> None:
            for r in rows:
                print(f"{r['tag']}: {r['action']} ({r['seconds']:.1f} s)")

        return {"images": rows}, show

    _run("images build", as_json, work)


@images_app.command("ls")
def images_ls(as_json: JsonOpt = False) -> None:
    """List the images orch needs and whether they are present and current.

    Example: orch images ls
    """

    def work():
        from .images import image_status

        _engine_ready(as_json, auto_start=False)
        rows = image_status()

        def show() -> None:
            for r in rows:
                print(" ".join(f"{k}={v}" for k, v in r.items()))

        return {"images": rows}, show

    _run("images ls", as_json, work)


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Report the engine, its version, the images, free disk and what is missing.

    Example: orch doctor
    """

    def work():
        from .doctor import diagnose

        report = diagnose(_home())

        def show() -> None:
            for item in report["checks"]:
                mark = "ok  " if item["ok"] else "MISS"
                print(f"{mark} {item['name']}: {item['detail']}")
                if not item["ok"] and item.get("fix"):
                    print(f"     fix: {item['fix']}")

        return report, show

    _run("doctor", as_json, work)


@app.command("gc")
def gc_cmd(
    run_id: Annotated[Optional[str], typer.Option(help="Only what this run created.")] = None,
    older_than: Annotated[
        Optional[str],
        typer.Option(help="Only what is older (90s, 30m, 2h, 1d); also runs of other hosts."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only list what would be removed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove what killed test runs left: containers, networks, dirs, port reservations.

    Only what orch's pytest plugin created (it carries a run id label), and only
    when its run is over; never a fleet of `orch up`, never a run still running.

    Example: orch gc --older-than 1h
    """

    def work():
        from .gc import collect_gc, parse_age

        age = parse_age(older_than) if older_than is not None else None
        _engine_ready(as_json, auto_start=False)
        result = collect_gc(run_id=run_id, older_than=age, dry_run=dry_run)

        def show() -> None:
            verb = "would remove" if dry_run else "removed"
            for x in result.removed:
                print(f"{verb} {x.kind} {x.name} (run {x.run_id}: {x.why})")
            for x in result.kept:
                print(f"kept {x.kind} {x.name} (run {x.run_id}: {x.why})")
            if not result.removed and not result.kept:
                print("nothing left by test runs")

        return result.to_json(), show

    _run("gc", as_json, work)


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM as an exception in the main thread, like Ctrl-C: the command stops,
    rolls back or keeps what it did, and says which (exit 143)."""
    raise Terminated()


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    app()
