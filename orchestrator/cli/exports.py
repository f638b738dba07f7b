"""`orch export compose|stack`: print the fleet as a Compose or stack file, or write it whole."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.app import FLEET, JsonOpt, _home, _run, app
from orchestrator.cli.lifecycle import AllAddressesOpt, Names

export_app = typer.Typer(
    help="Write the fleet as a Compose file, a Swarm stack file or a kustomization.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export", rich_help_panel=FLEET)


OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help="File to write (atomically); - prints to stdout.")
]


def _exported(text: str, output: str):
    """Print the export, or write it whole to `output`; the result for --json."""
    if output == "-":
        return {"file": None, "text": text}, lambda: sys.stdout.write(text)
    # start-up: only an export writes files
    from orchestrator.export.files import write_export

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
        # start-up: only `orch export compose` loads this
        from orchestrator.export.compose import export_compose as render_compose

        return _exported(render_compose(_home(writes=False), names), output)

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
        # start-up: only `orch export stack` loads this
        from orchestrator.export.stack import export_stack as render_stack

        return _exported(render_stack(_home(writes=False), names, all_addresses), output)

    _run("export stack", as_json, work)


StorageOpt = Annotated[
    str,
    typer.Option(
        "--storage",
        help="pvc (a claim per dir, the cluster's default class) or hostpath (the"
        " profile's own host dirs; single-node clusters only).",
    ),
]


@export_app.command("kubernetes")
def export_kubernetes(
    names: Names = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Directory to write the kustomization into (atomically): new, empty, or"
            " an earlier export (its token files are kept); - prints one stream.",
        ),
    ] = "-",
    storage: StorageOpt = "pvc",
    as_json: JsonOpt = False,
) -> None:
    """Write a kustomization a cluster applies as it is: per profile a single-writer
    Deployment, claims, a Service, a NetworkPolicy; no secret in it.

    Example: orch export kubernetes -o k8s/ && kubectl apply -k k8s/
    (copy each token file into k8s/secrets first: the header of
    k8s/kustomization.yaml gives the commands)
    """

    def work():
        # start-up: only `orch export kubernetes` loads these
        from orchestrator.export.kubernetes import export_kubernetes as render_k8s
        from orchestrator.export.kubernetes import write_directory

        rendered = render_k8s(_home(writes=False), names, storage)
        if output == "-":
            text = rendered.stream
            return {"dir": None, "text": text}, lambda: sys.stdout.write(text)
        path = write_directory(rendered.files, Path(output))
        files = sorted(rendered.files)
        return {"dir": str(path), "files": files}, lambda: print(f"wrote {path}/")

    _run("export kubernetes", as_json, work)
