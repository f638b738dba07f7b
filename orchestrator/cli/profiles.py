"""The fleet file: `orch setup`, `rm`, `ls`, `ports`, `check`, `render`, `schema`."""

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli.app import (
    FLEET,
    JsonOpt,
    _check_name,
    _confirm,
    _home,
    _parse_port,
    _parse_publish,
    _project,
    _run,
    app,
)
from orchestrator.cli.options import cores, image_reference
from orchestrator.cli.output import print_json
from orchestrator.errors import UsageError


@app.command(rich_help_panel=FLEET)
def setup(
    name: Annotated[str, typer.Argument(help="Profile name, e.g. main or rescue.")],
    port: Annotated[
        Optional[str],
        typer.Option(help="Base port N, or auto (lowest free footprint at or above 18789)."),
    ] = None,
    bind_ip: Annotated[Optional[str], typer.Option(help="Host address to publish on.")] = None,
    image: Annotated[
        Optional[str],
        typer.Option(parser=image_reference, metavar="REF", help="Gateway image."),
    ] = None,
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
    browser: Annotated[
        Optional[bool],
        typer.Option(
            "--browser/--no-browser",
            help="Run the browser image (headless Chromium, 2g memory); default: keep.",
        ),
    ] = None,
    cpus: Annotated[
        Optional[float],
        typer.Option(
            parser=cores,
            metavar="CORES",
            help="CPU limit in cores, e.g. 1.5; 0: none (default 1; keep).",
        ),
    ] = None,
    read_only_root: Annotated[
        Optional[bool],
        typer.Option(
            "--read-only-root/--writable-root",
            help="Read-only root with a tmpfs /tmp (new profiles: read-only); default: keep.",
        ),
    ] = None,
    node: Annotated[
        Optional[str],
        typer.Option(
            metavar="HOSTNAME",
            help="Swarm node to run on with --engine swarm ('' drops it; default: keep).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Change an existing profile.")] = False,
    chown: Annotated[
        bool,
        typer.Option(
            "--chown",
            help=(
                "Hand each adopted dir to the gateway's user: chown -R UID:GID of every"
                " entry in it not owned by that user yet (symlinks not followed, other"
                " filesystems not entered), and chmod 0700 on the dir itself. Without it"
                " an adopted dir's owner and mode are never changed."
            ),
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a profile and prepare its dirs, token and openclaw.json.

    Running the same setup twice changes nothing; a different one needs --force.

    A dir given with --config-dir, --state-dir or --workspace-dir that exists is
    adopted: never chowned, chmod'ed or deleted (`rm --purge` keeps it) unless
    --chown. Refused: system trees, any user's home itself, orch's home; an
    adopted dir of another user or that the gateway's user cannot write (the
    error names the command that fixes it), unless --chown.

    Example: orch setup rescue --port auto --rescues main
    Example: orch setup web --port auto --browser --publish gateway,browser,cdp
    Example: orch setup tenant2 --port 18789 --bind-ip 0.0.0.0 --node worker2
    """

    def work():
        # start-up: only `orch setup` loads these
        from orchestrator.cli.views import profile_data
        from orchestrator.fleet.provision import SetupRequest
        from orchestrator.fleet.provision import setup as do_setup

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
            browser=browser,
            cpus=cpus,
            read_only_root=read_only_root,
            node=node,
        )
        home = _home()
        # start-up: the engine's modules only once the home checked out
        from orchestrator.docker.snapshot import foreign_projects, held_except

        result = do_setup(
            home, request, force=force, live=held_except, projects=foreign_projects, chown=chown
        )
        data = {
            "action": result.action,
            "changes": result.changes,
            "config_backup": str(result.config_backup) if result.config_backup else None,
            "profile": profile_data(result.profile, home),
            "adopted": {kind: str(path) for kind, path in result.adopted.items()},
            "host_changes": [c.to_json() for c in result.host_changes],
        }

        def show() -> None:
            # start-up: only `orch setup` loads this
            from orchestrator.cli.views import ADOPTED_NOTE

            p = data["profile"]
            print(
                f"{result.action}: {p['name']} on {p['bind_ip']}, base port {p['port']}"
                f" (owns {p['footprint'][0]}-{p['footprint'][1]})"
            )
            for change in result.changes:
                print(f"  changed {change}")
            if p["node"]:
                print(f"  {'node':<10} {p['node']} (swarm: orch up --engine swarm runs it there)")
            for kind, path in p["dirs"].items():
                print(f"  {kind:<10} {path}{ADOPTED_NOTE if kind in data['adopted'] else ''}")
            print(f"  {'token':<10} {p['token_file']} (0600, never printed)")
            if data["config_backup"]:
                print(f"  previous openclaw.json kept as {data['config_backup']}")
            for change in result.host_changes:
                print(f"  --chown: {change.describe()}")

        return data, show

    _run("setup", as_json, work)


@app.command("rm", rich_help_panel=FLEET)
def remove(
    name: Annotated[str, typer.Argument(help="Profile to remove.")],
    purge: Annotated[
        bool,
        typer.Option(help="Also delete the dirs orch created for it and its token."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --purge.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a profile from the fleet; its dirs are kept unless --purge.

    --purge deletes only what orch created: dirs it adopted (given with
    --config-dir etc. and there before) are kept and named in the output.

    Example: orch rm rescue --purge --yes
    """

    def work():
        # start-up: only `orch rm` loads these
        from orchestrator.backends.local import refuse_if_container
        from orchestrator.fleet.provision import purge_targets
        from orchestrator.fleet.provision import remove as do_remove

        project = _project()
        home = project.home
        refuse_if_container(project, _check_name(name))
        if purge and not yes:
            targets, adopted = purge_targets(home, name)
            listing = "".join(f"  {t}\n" for t in targets)
            listing += "".join(f"  (kept, not created by orch: {a})\n" for a in adopted)
            _confirm(
                f"--purge would delete {len(targets)} paths of '{name}'",
                f"Delete these paths of '{name}'?\n{listing}",
                as_json,
            )
        result = do_remove(home, name, purge=purge)
        data = {
            "removed": name,
            "purged": [str(p) for p in result.purged],
            "kept": [str(p) for p in result.kept],
            "adopted": [str(p) for p in result.adopted],
        }

        def show() -> None:
            # start-up: only `orch rm` loads this
            from orchestrator.cli.views import ADOPTED_NOTE

            print(f"removed {name} from the fleet")
            for path in data["purged"]:
                print(f"  deleted {path}")
            for path in data["kept"]:
                note = ADOPTED_NOTE if path in data["adopted"] else ""
                print(f"  kept    {path}{note}")

        return data, show

    _run("rm", as_json, work)


@app.command("ls", rich_help_panel=FLEET)
def list_profiles(as_json: JsonOpt = False) -> None:
    """List the profiles of the fleet.

    Example: orch ls --json
    """

    def work():
        # start-up: only `orch ls` loads these
        from orchestrator.cli.views import profile_data, show_profiles
        from orchestrator.fleet.store import load_fleet

        home = _home(writes=False)
        fleet = load_fleet(home)
        rows = [profile_data(p, home) for p in fleet.select(None)]
        data = {"home": str(home), "project": fleet.project, "profiles": rows}
        return data, lambda: show_profiles(rows, str(home), fleet.project)

    _run("ls", as_json, work)


@app.command(rich_help_panel=FLEET)
def ports(
    name: Annotated[Optional[str], typer.Argument(help="Only this profile.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each profile's ports: role, host ip, port or range, published or reserved.

    Example: orch ports rescue
    """

    def work():
        # start-up: only `orch ports` loads these
        from orchestrator.cli.views import ports_data, show_ports
        from orchestrator.fleet.store import load_fleet

        fleet = load_fleet(_home(writes=False))
        rows = [ports_data(p) for p in fleet.select([name] if name else None)]
        return {"profiles": rows}, lambda: show_ports(rows)

    _run("ports", as_json, work)


@app.command(rich_help_panel=FLEET)
def check(as_json: JsonOpt = False) -> None:
    """Report every problem of the fleet at once (exit 0 clean, 1 problems).

    Example: orch check --json
    """

    def work():
        # start-up: only `orch check` loads these
        from orchestrator.cli.views import check_data, show_problems
        from orchestrator.core.check import Unchecked, check_fleet, file_problems
        from orchestrator.docker.daemon import engine_answers
        from orchestrator.fleet.adopt import host_roots
        from orchestrator.fleet.config_check import config_report
        from orchestrator.fleet.registry import foreign_reservations
        from orchestrator.host.gateway_schema import NO_ENGINE, schema_for, without_engine

        project = _project(writes=False)
        home, fleet = project.home, project.fleet
        engine = engine_answers(timeout=0.5)
        nodes, unplaced = _live_nodes(fleet, engine)
        problems = check_fleet(fleet, home, foreign_reservations(home), host_roots(home), nodes)
        problems += file_problems(fleet, home)
        schema_of = schema_for if engine else without_engine
        report = config_report(fleet, home, schema_of, lambda p: project.spec(p.name))
        problems += report.problems
        unchecked = report.unchecked + unplaced
        if engine:
            # start-up: the engine's snapshot only when an engine answers
            from orchestrator.workflows.orphans import orphan_problems

            problems += orphan_problems(project)
        elif fleet.profiles:
            what = "containers of this fleet that no profile names (orphans)"
            unchecked.append(Unchecked(what, "no Docker engine answers", NO_ENGINE.hint))
        warnings = []
        if engine:
            from orchestrator.docker.podman_api import podman_facts
            from orchestrator.errors import OrchError

            with contextlib.suppress(OrchError):  # the engine went away since it answered
                if podman_facts() is not None:  # start-up: the Podman backend for one only
                    from orchestrator.backends.podman import limit_warnings

                    warnings = limit_warnings(project, None)
        data = check_data(fleet, problems, unchecked, warnings)
        return data, lambda: show_problems(problems, len(fleet.profiles), unchecked, warnings)

    _run("check", as_json, work, ok=lambda data: data["ok"])


def _live_nodes(fleet, engine: bool) -> tuple[list | None, list]:
    """The swarm's nodes when a profile is placed on one and this engine is a manager
    (then `check` also refuses a node the swarm does not have), else None and what
    could not be checked, and why."""
    # start-up: only for a fleet placed on swarm nodes
    from orchestrator.core.check import Unchecked

    placed = sorted(p.name for p in fleet.profiles.values() if p.node)
    if not placed:
        return None, []
    what = "the swarm nodes the profiles are placed on"
    if not engine:
        return None, [Unchecked(what, "no Docker engine answers", "start it, or run on a manager")]
    # start-up: only for a fleet placed on swarm nodes
    from orchestrator.docker.swarm_nodes import swarm_nodes

    nodes = swarm_nodes()
    if nodes is None:
        why = "this engine is not a swarm manager"
        hint = "run `orch check` on a manager of the swarm"
        return None, [Unchecked(what, why, hint, owners=tuple(placed))]
    return nodes, []


@app.command(rich_help_panel=FLEET)
def render(
    name: Annotated[str, typer.Argument(help="Profile to render.")],
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    as_json: JsonOpt = False,
) -> None:
    """Print the fully resolved container spec of a profile.

    Example: orch render rescue --format json
    """

    def work():
        # start-up: only `orch render` loads these
        from orchestrator.core.spec import render as render_spec
        from orchestrator.fleet.store import load_fleet

        if fmt not in ("yaml", "json"):
            raise UsageError(f"--format: '{fmt}' is not yaml or json")
        home = _home(writes=False)
        fleet = load_fleet(home)
        spec = render_spec(fleet.get(name), fleet, home).model_dump(mode="json")

        def show() -> None:
            if fmt == "json":
                print_json(spec)
            else:
                # start-up: PyYAML only for --format yaml
                import yaml

                sys.stdout.write(yaml.safe_dump(spec, sort_keys=False))

        return spec, show

    _run("render", as_json, work)


@app.command(rich_help_panel=FLEET)
def schema(as_json: JsonOpt = False) -> None:
    """Print the JSON schema of the fleet file.

    Example: orch schema > fleet.schema.json
    """

    def work():
        # start-up: only `orch schema` loads this
        from orchestrator.core.model import Fleet

        doc = Fleet.model_json_schema()
        return doc, lambda: print_json(doc)

    _run("schema", as_json, work)
