"""`orch gc`: what killed test runs left, removed."""

from typing import Annotated, Optional

import typer

from orchestrator.cli.app import HOST, JsonOpt, _engine_ready, _run, app
from orchestrator.cli.options import age


@app.command("gc", rich_help_panel=HOST)
def gc_cmd(
    run_id: Annotated[Optional[str], typer.Option(help="Only what this run created.")] = None,
    older_than: Annotated[
        Optional[float],
        typer.Option(
            parser=age,
            metavar="AGE",
            help="Only what is older (90s, 30m, 2h, 1d); also runs of other hosts.",
        ),
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
        # start-up: only `orch gc` loads these
        from orchestrator.fleet.places import checked_registry
        from orchestrator.testing.gc import collect_gc

        checked_registry()
        _engine_ready(as_json, auto_start=False)
        result = collect_gc(run_id=run_id, older_than=older_than, dry_run=dry_run)

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
