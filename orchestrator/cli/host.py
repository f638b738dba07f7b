"""The host's commands: `orch engine start`, `orch images build|ls`, `orch doctor`."""

import sys
from typing import Annotated

import typer

from orchestrator.cli.app import HOST, JsonOpt, _engine_ready, _home, _run, app

engine_app = typer.Typer(help="The engine orch uses: Docker or Podman.", no_args_is_help=True)
images_app = typer.Typer(help="The gateway image and its offline base.", no_args_is_help=True)
app.add_typer(engine_app, name="engine", rich_help_panel=HOST)
app.add_typer(images_app, name="images", rich_help_panel=HOST)


@engine_app.command("start")
def engine_start(
    podman: Annotated[
        bool,
        typer.Option(
            "--podman",
            help="Podman instead: install it (root, Debian) and start its Docker-compatible"
            " API service on CONTAINER_HOST's socket, else /run/podman/podman.sock (root)"
            " or $XDG_RUNTIME_DIR/podman/podman.sock (a user: rootless).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make an engine available: install docker.io and start dockerd if none answers.

    Example: sudo orch engine start

    Example: orch engine start --podman && orch up --engine podman
    """

    def work():
        if podman:
            # start-up: only `orch engine start --podman` loads this
            from orchestrator.docker.podman import start_service, wanted_socket

            sock = wanted_socket()
            done = start_service(sock)
            lines = done or [f"podman's API already answers on {sock}"]
            lines.append(f"use it: orch up --engine podman (or export DOCKER_HOST=unix://{sock})")
            return {"done": done, "socket": str(sock)}, lambda: print("\n".join(lines))
        # start-up: only `orch engine start` loads this
        from orchestrator.docker.daemon import ensure_engine

        done = ensure_engine()
        lines = done or ["an engine already answers"]
        return {"done": done}, lambda: print("\n".join(lines))

    _run("engine start", as_json, work)


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even what is current.")] = False,
    browser: Annotated[
        bool | None,
        typer.Option(
            "--browser/--no-browser",
            help="Also build the browser variant (VERSION-browser, Chromium). Default: when"
            " a profile of the fleet has browser: true, or the variant is already here.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the images the fleet needs (and the offline base when needed); skip what
    is current.

    Example: orch images build --browser
    """

    def work():
        # start-up: only `orch images build` loads this
        from orchestrator.host.images import (
            build_browser_image,
            build_images,
            wants_browser_build,
        )

        _engine_ready(as_json)
        say = None if as_json else (lambda m: sys.stderr.write(f"images: {m}\n"))
        with_browser = wants_browser_build(_home()) if browser is None else browser
        build = build_browser_image if with_browser else build_images
        results = build(force=force, progress=say)
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
        # start-up: only `orch images ls` loads this
        from orchestrator.host.images import fleet_wants_browser, image_status

        _engine_ready(as_json, auto_start=False)
        rows = image_status(browser=fleet_wants_browser(_home(writes=False)))

        def show() -> None:
            for r in rows:
                print(" ".join(f"{k}={v}" for k, v in r.items()))

        return {"images": rows}, show

    _run("images ls", as_json, work)


@app.command(rich_help_panel=HOST)
def doctor(
    podman: Annotated[
        bool,
        typer.Option("--podman", help="Look at Podman's API socket (as --engine podman finds it)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Report the engine (Docker or Podman, its version), the images, free disk and
    what is missing.

    Example: orch doctor

    Example: orch doctor --podman
    """

    def work():
        # start-up: only `orch doctor` loads this
        from orchestrator.host.doctor import diagnose

        home = _home(writes=False)
        if podman:
            from orchestrator.docker.podman import use_podman  # --podman only

            use_podman()
        report = diagnose(home)

        def show() -> None:
            for item in report["checks"]:
                mark = "ok  " if item["ok"] else "MISS"
                print(f"{mark} {item['name']}: {item['detail']}")
                if not item["ok"] and item.get("fix"):
                    print(f"     fix: {item['fix']}")

        return report, show

    _run("doctor", as_json, work)
