"""cli.backup: backup (create, verify, ls), restore, upgrade, rollback."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from orchestrator.cli.app import JsonOpt, _confirm, _engine_ready, _home, _run, app
from orchestrator.cli.lifecycle import Names, _progress
from orchestrator.cli.options import Timeout, count, image_reference
from orchestrator.errors import UsageError


class _DefaultCreate(TyperGroup):
    """`orch backup main` means `orch backup create main`: the verb people use most
    needs no sub-command; `verify` and `ls` are the sub-commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["create", *args]
        return super().parse_args(ctx, args)


backup_app = typer.Typer(
    cls=_DefaultCreate,
    help=(
        "Back up profiles (online, consistent while they run), verify and list archives."
        "\n\n`orch backup [NAME...]` is `orch backup create [NAME...]`."
        "\n\nExample: orch backup main -o /srv/backups --keep 7"
    ),
)
app.add_typer(backup_app, name="backup")


def _human_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@backup_app.command("create")
def backup_create(
    names: Names = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "-o", "--output", help="Dir for the archives (default $ORCH_HOME/backups/NAME)."
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Stop the gateway gracefully for the copy, then start it.")
    ] = False,
    include_token: Annotated[
        bool, typer.Option(help="Put the gateway token into the archive (it is 0600).")
    ] = False,
    keep: Annotated[
        Optional[int],
        typer.Option(
            parser=count(1, 100_000, 7), help="Keep only the newest N archives of each profile."
        ),
    ] = None,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """One archive per profile (config, state, workspace; the token only when asked),
    mode 0600, written atomically, with a manifest of every file's sha256.

    Online by default: SQLite databases are copied with SQLite's backup API while
    the gateway runs, every other file is checked not to change during its copy.

    Example: orch backup main --keep 7
    """

    def work():
        from orchestrator.backends.upgrade import backup

        home = _home()
        _engine_ready(as_json)
        results = backup(
            home,
            names,
            output.absolute() if output else None,
            offline=offline,
            include_token=include_token,
            keep=keep,
            progress=_progress(as_json),
            timeout=timeout,
        )
        rows = [r.to_json() for r in results]

        def show() -> None:
            for r in rows:
                down = f", down {r['downtime_s']:.1f} s" if r["downtime_s"] is not None else ""
                print(
                    f"{r['profile']}: {r['archive']} ({_human_bytes(r['bytes'])}, {r['files']}"
                    f" files, {r['mode']}, {r['seconds']:.1f} s{down})"
                )
                for p in r["pruned"]:
                    print(f"{r['profile']}: pruned {p}")

        return {"backups": rows}, show

    _run("backup create", as_json, work)


@backup_app.command("verify")
def backup_verify(
    archive: Annotated[Path, typer.Argument(help="An archive written by `orch backup`.")],
    profile: Annotated[
        Optional[str], typer.Option(help="Also check that it is this profile's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an archive without restoring it: manifest, every file's size and sha256,
    nothing missing or extra, no path outside the profile's dirs.

    Example: orch backup verify ~/.local/share/orch/backups/main/main-20261201T101500.000000Z.tar.gz
    """

    def work():
        from orchestrator.fleet.backup import verify

        manifest = verify(archive, profile)
        data = {"archive": str(archive), "ok": True, **manifest.summary()}

        def show() -> None:
            print(
                f"{archive}: ok, profile {manifest.profile}, {len(manifest.files)} files"
                f" ({_human_bytes(manifest.size)}), openclaw {manifest.openclaw_version},"
                f" {manifest.mode}, taken {manifest.created}"
            )

        return data, show

    _run("backup verify", as_json, work)


@backup_app.command("ls")
def backup_ls(
    name: Annotated[Optional[str], typer.Argument(help="Only this profile's.")] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="The dir to list (default: the home's)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The archives of each profile, newest first.

    Example: orch backup ls main
    """

    def work():
        from orchestrator.fleet.backup import BACKUPS_DIR, list_archives
        from orchestrator.fleet.store import load_fleet

        home = _home(writes=False)
        if output is not None:
            dirs = [output]
        else:
            profiles = [name] if name else sorted(load_fleet(home).profiles)
            root = home / BACKUPS_DIR
            known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            dirs = [root / n for n in dict.fromkeys([*profiles, *known]) if not name or n == name]
        rows = []
        for d in dirs:
            for path, manifest in list_archives(d, name):
                rows.append(
                    {
                        "archive": str(path),
                        "archive_bytes": path.stat().st_size,
                        **manifest.summary(),
                    }
                )

        def show() -> None:
            if not rows:
                print("no archives")
            for r in rows:
                print(
                    f"{r['profile']}  {r['created']}  {r['mode']:<7}  openclaw"
                    f" {r['openclaw_version']}  {_human_bytes(r['archive_bytes'])}  {r['archive']}"
                )

        return {"archives": rows}, show

    _run("backup ls", as_json, work)


@app.command()
def restore(
    name: Annotated[str, typer.Argument(help="The profile to restore.")],
    archive: Annotated[Path, typer.Argument(help="An archive of that profile.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before stopping.")] = False,
    keep_old: Annotated[
        bool, typer.Option(help="Keep the replaced dirs (beside the profile's dirs).")
    ] = False,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Verify the archive, unpack it beside the profile's dirs, stop the gateway
    gracefully, swap the dirs, start it and wait until ready. The token is kept
    (the archive's when it has one). If the restored gateway does not get ready,
    its previous state is put back.

    Example: orch restore main backups/main/main-20261201T101500.000000Z.tar.gz --yes
    """

    def work():
        from orchestrator.backends.upgrade import restore as do_restore
        from orchestrator.fleet.backup import read_manifest

        home = _home()
        manifest = read_manifest(archive)
        if not yes:
            _confirm(
                f"restoring '{name}' stops its gateway and replaces its state with the one"
                f" of {manifest.created}",
                f"Stop '{name}' and replace its config, state and workspace with {archive.name}?",
                as_json,
            )
        _engine_ready(as_json)
        result = do_restore(home, name, archive, keep_old, timeout, _progress(as_json))
        data = result.to_json()

        def show() -> None:
            down = f", down {result.downtime_s:.1f} s" if result.downtime_s is not None else ""
            print(f"{name}: restored from {archive} ({result.seconds:.1f} s{down})")
            if result.note:
                print(f"{name}: {result.note}")
            for path in result.kept:
                print(f"{name}: kept the replaced {path}")

        return data, show

    _run("restore", as_json, work)


@app.command()
def upgrade(
    names: Names = None,
    image: Annotated[
        Optional[str],
        typer.Option(parser=image_reference, metavar="REF", help="An image on this engine."),
    ] = None,
    openclaw: Annotated[
        Optional[str], typer.Option(help="Build and use the image of this openclaw version.")
    ] = None,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Move profiles to another image, one at a time (rescue profiles first, or the
    order given): online backup, recreate, wait ready. On failure the old container
    and the state of that backup come back, and the new image's log tail is shown.

    Example: orch upgrade --openclaw 2026.10.1
    """

    def work():
        from orchestrator.backends.upgrade import upgrade as do_upgrade

        if (image is None) == (openclaw is None):
            raise UsageError(
                "give exactly one of --image REF and --openclaw VERSION",
                hint="orch upgrade --image orch/openclaw-gateway:2026.9.6",
            )
        home = _home()
        _engine_ready(as_json)
        target = image
        if openclaw is not None:
            import sys

            from orchestrator.host.images import build_images

            say = None if as_json else (lambda m: sys.stderr.write(f"images: {m}\n"))
            target = build_images(progress=say, version=openclaw)[-1].tag
        assert target is not None
        results = do_upgrade(home, names, target, timeout, _progress(as_json))
        rows = [r.to_json() for r in results]

        def show() -> None:
            for r in rows:
                if r["ok"]:
                    down = f", down {r['downtime_s']:.1f} s" if r["downtime_s"] else ""
                    took = f"{r['seconds']:.1f} s{down}"
                    print(f"{r['profile']}: {r['action']} -> {r['image']} ({took})")
                    if r["note"]:
                        print(f"{r['profile']}: {r['note']}")
                elif r["action"] == "skipped":
                    print(f"{r['profile']}: {r['note']}")
            failed = [r for r in rows if r["error"]]
            for r in failed:
                print(f"{r['profile']}: {r['error']}")

        data = {"image": target, "results": rows}
        return data, show

    _run("upgrade", as_json, work, ok=lambda d: all(r["ok"] for r in d["results"]), failed_exit=5)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="The profile to roll back.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Return a profile to the image it had before its last upgrade, with the state
    snapshot taken just before it: what happened since is lost (it says how much).

    Example: orch rollback main --yes
    """

    def work():
        from orchestrator.backends.upgrade import rollback as do_rollback
        from orchestrator.backends.upgrade import rollback_plan

        home = _home()
        plan = rollback_plan(home, name)
        lost = plan["lost"]
        what = (
            f"rolling '{name}' back to {plan['to_image']} loses {plan['snapshot_age_s']:.0f} s"
            f" of its state: {lost['changed']} file(s) changed, {lost['added']} added,"
            f" {lost['removed']} removed since the snapshot, and whatever its"
            f" {lost['databases']} database(s) took in"
        )
        if not yes:
            _confirm(what, f"{what}. Roll back?", as_json)
        _engine_ready(as_json)
        result = do_rollback(home, name, timeout, _progress(as_json))
        data = {**result.to_json(), "lost": lost}

        def show() -> None:
            print(f"{name}: rolled back to {result.image} ({result.seconds:.1f} s)")
            if result.note:
                print(f"{name}: {result.note}")

        return data, show

    _run("rollback", as_json, work)
