"""`orch rescue TARGET`: parse, call workflows.rescue, render."""

from dataclasses import asdict
from typing import Annotated, Any

import typer

from orchestrator.cli.app import LIFECYCLE, JsonOpt, _engine_ready, _project, _run, app
from orchestrator.cli.options import Timeout


@app.command(rich_help_panel=LIFECYCLE)
def rescue(
    target: Annotated[str, typer.Argument(help="The broken profile, e.g. main.")],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="The rescue profile (default: the one rescuing TARGET)."),
    ] = None,
    restore_last_good: Annotated[
        bool,
        typer.Option(
            "--restore-last-good",
            help="Put the last good config back (the broken one: openclaw.json.broken-TIME).",
        ),
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Restart TARGET now and wait until it is ready.")
    ] = False,
    timeout: Timeout = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """The rescue bot's runbook: TARGET's state and last error, the gateway's own
    `openclaw config validate` run from the rescue container, the diff against the
    last good config; optionally restore it and restart TARGET.

    Example: orch rescue main --restore-last-good --restart
    """

    def work():
        # start-up: only `orch rescue` loads this
        from orchestrator.workflows.rescue import rescue as run

        project = _project()
        _engine_ready(as_json)
        report = run(project, target, from_, restore_last_good, restart, timeout)
        data = asdict(report)
        data["problems"] = [p.to_json() for p in report.problems]
        return data, lambda: show(data)

    _run("rescue", as_json, work)


def show(data: dict[str, Any]) -> None:
    state = data["state"]
    who = f"{data['target']} (rescued by {data['rescuer']})"
    print(f"{who}: {state['state']}, {state['ready_reason']}")
    if state.get("last_error"):
        print(f"  last error: {state['last_error']}")
    v = data["validate"]
    if not v.get("ran"):
        print(f"gateway's validate: not run ({v['why']})")
    else:
        verdict = "valid" if v["ok"] else "INVALID"
        print(f"gateway's validate in {v['in']} ({v['seconds']} s): {verdict}")
        for line in _issues(v):
            print(f"  {line}")
    for p in data["problems"]:
        print(f"orch check: {p['message']}")
    good = data.get("last_good")
    if good is None:
        print("last good config: none that passes the checks")
    elif good["same"]:
        print(f"last good config ({good['source']}): {good['path']}, same as the current one")
    else:
        print(f"last good config ({good['source']}): {good['path']}; diff to the current one:")
        print(good["diff"].rstrip())
    restored = data.get("restored")
    if restored:
        if restored["changed"]:
            print(
                f"restored {restored['from']}; the broken config is kept at"
                f" {restored['broken_kept_at']}"
            )
        else:
            print("restore: the config already is the last good one")
    restarted = data.get("restart")
    if restarted:
        print(f"{data['target']}: ready after {restarted['seconds']} s ({restarted['how']})")
    elif not (state["ready"] or restored):
        print(f"next: orch rescue {data['target']} --restore-last-good --restart")


def _issues(v: dict[str, Any]) -> list[str]:
    result = v.get("result")
    if isinstance(result, dict):
        issues = result.get("issues") or result.get("errors") or []
        out = []
        for issue in issues:
            if isinstance(issue, dict):
                where = issue.get("path") or issue.get("key") or ""
                out.append(f"{where}: {issue.get('message', issue)}")
            else:
                out.append(str(issue))
        return out
    return [line for line in (v.get("output") or "").splitlines() if line.strip()][-10:]
