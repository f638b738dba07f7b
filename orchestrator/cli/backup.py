"""cli.backup: backup (create, verify, ls), restore, upgrade, rollback."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from orchestrator.cli.app import (
    BACKUPS,
    JsonOpt,
    _confirm,
    _engine_ready,
    _home,
    _project,
    _run,
    app,
)
from orchestrator.cli.lifecycle import Names, _progress
from orchestrator.cli.options import Timeout, count, image_reference
from orchestrator.errors import ArchiveInvalid, UsageError


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
app.add_typer(backup_app, name="backup", rich_help_panel=BACKUPS)


def _human_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


ToOpt = Annotated[
    Optional[str],
    typer.Option(
        "--to",
        metavar="s3://BUCKET/PREFIX",
        help="Upload the archive to an S3-compatible bucket instead (credentials from the"
        " AWS environment or ~/.aws).",
    ),
]
FromOpt = Annotated[
    Optional[str],
    typer.Option(
        "--from", metavar="s3://BUCKET/PREFIX", help="The S3 bucket and prefix of the archives."
    ),
]


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
    to: ToOpt = None,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """One archive per profile (config, state, workspace; the token only when asked),
    mode 0600, written atomically, with a manifest of every file's sha256.

    Online by default: SQLite databases are copied with SQLite's backup API while
    the gateway runs, every other file is checked not to change during its copy.

    A profile placed on a swarm node (`--node`) is archived on that node by a task
    pinned there, offline (its service scaled to 0 for the copy, then back); the
    output says node:path and the archive's sha256.

    With --to s3://BUCKET/PREFIX the same archive goes to an S3-compatible bucket:
    uploaded, read back and its sha256 compared, then a completion marker is written
    (an upload cut short is never counted); --keep prunes there. Endpoint, region and
    credentials as the AWS tools take them (AWS_ENDPOINT_URL, AWS_REGION,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE); orch never stores them.
    A profile on a swarm node: its node uploads the archive it made through a
    presigned URL (valid 10 min, handed over as a swarm secret; the node never gets
    the credentials); the marker carries an HMAC with this home's backup key.

    Example: orch backup main --keep 7

    Example: orch backup main --to s3://my-backups/orch --keep 14
    """

    def work():
        # start-up: only `orch backup create` loads this
        from orchestrator.workflows.backup import backup

        project = _project()
        placed = [p.name for p in project.fleet.select(names) if p.node]
        here = [p.name for p in project.fleet.select(names) if not p.node]
        if to is not None:
            return _backup_to(project.home, to)
        _engine_ready(as_json)
        rows = [
            r.to_json()
            for r in _backup_on_nodes(
                project, placed, output, keep, include_token, timeout, as_json
            )
        ]
        if here:
            results = backup(
                project.home,
                here,
                output.absolute() if output else None,
                offline=offline,
                include_token=include_token,
                keep=keep,
                progress=_progress(as_json),
                timeout=timeout,
            )
            rows += [r.to_json() for r in results]

        def show() -> None:
            for r in rows:
                down = f", down {r['downtime_s']:.1f} s" if r["downtime_s"] is not None else ""
                if "node" in r:
                    print(
                        f"{r['profile']}: {r['where']} (on node {r['node']};"
                        f" {_human_bytes(r['bytes'])}, {r['mode']}, {r['seconds']:.1f} s{down},"
                        f" sha256 {r['sha256']})"
                    )
                    continue
                print(
                    f"{r['profile']}: {r['archive']} ({_human_bytes(r['bytes'])}, {r['files']}"
                    f" files, {r['mode']}, {r['seconds']:.1f} s{down})"
                )
                for p in r["pruned"]:
                    print(f"{r['profile']}: pruned {p}")

        return {"backups": rows}, show

    def _backup_to(home: Path, url: str):
        from orchestrator.fleet.offsite import parse_target
        from orchestrator.workflows.offsite import backup_to

        if output is not None:
            raise UsageError("give -o DIR or --to URL, not both", hint="orch backup main --to URL")
        target = parse_target(url, "--to")
        _engine_ready(as_json)
        results = backup_to(
            home, target, names, offline, include_token, keep, _progress(as_json), timeout
        )
        rows = [r.to_json() for r in results]

        def show() -> None:
            for r in rows:
                down = f", down {r['downtime_s']:.1f} s" if r["downtime_s"] is not None else ""
                what = f"made on node {r['node']}" if r.get("node") else f"{r['files']} files"
                print(
                    f"{r['profile']}: {r['archive']} ({_human_bytes(r['bytes'])}, {what},"
                    f" {r['mode']}, {r['seconds']:.1f} s, upload {r['upload_s']:.1f} s,"
                    f" sha256 checked{down})"
                )
                for p in r["pruned"]:
                    print(f"{r['profile']}: pruned {p}")

        return {"backups": rows}, show

    _run("backup create", as_json, work)


def _backup_on_nodes(
    project: Any,
    names: list[str],
    output: Optional[Path],
    keep: Optional[int],
    include_token: bool,
    timeout: float,
    as_json: bool,
) -> list[Any]:
    """Profiles placed on swarm nodes: archived on their node (workflows/node_backup)."""
    if not names:
        return []
    from orchestrator.workflows.node_backup import backup_on_node

    if keep is not None or include_token:
        raise UsageError(
            f"--keep and --include-token are not supported yet for profiles on swarm nodes"
            f" ({', '.join(names)}); nothing was backed up",
            hint="back them up without these options",
        )
    out = output.absolute() if output else None
    return [
        backup_on_node(project, n, out, timeout=timeout, progress=_progress(as_json)) for n in names
    ]


@backup_app.command("schedule")
def backup_schedule(
    names: Names = None,
    every: Annotated[
        str, typer.Option(help="hourly, daily (03:00), weekly (Sunday 03:00) or HH:MM daily.")
    ] = "daily",
    to: ToOpt = None,
    keep: Annotated[
        Optional[int],
        typer.Option(
            parser=count(1, 100_000, 7), help="Keep only the newest N archives of each profile."
        ),
    ] = None,
    include_token: Annotated[
        bool, typer.Option(help="Put the gateway token into the archives.")
    ] = False,
    directory: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            help="Write the units here (default $ORCH_HOME/schedules), e.g."
            " ~/.config/systemd/user.",
        ),
    ] = None,
    system: Annotated[
        bool, typer.Option("--system", help="Allow --dir under /etc (system-wide units).")
    ] = False,
    cron: Annotated[
        bool, typer.Option("--cron", help="Print a crontab line instead; write nothing.")
    ] = False,
    env_file: Annotated[
        Optional[Path],
        typer.Option(
            help="A 0600 file of KEY=VALUE lines (e.g. the AWS credentials) the job reads;"
            " orch only names it."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up on a schedule with no daemon of orch's own: write a systemd timer (a
    .service and a .timer) that runs `orch backup` with these options, or print a cron
    line. ORCH_HOME and the S3 endpoint, region and profile name set now go into the
    unit; credentials never do (the job reads ~/.aws of its user, or --env-file).

    Example: orch backup schedule main --every daily --to s3://my-backups/orch --keep 14

    Example: orch backup schedule --every 02:30 --cron
    """

    def work():
        from orchestrator.workflows.offsite import write_schedule

        home = _home()
        result = write_schedule(
            home, names, every, to, keep, include_token, directory, system, cron, env_file
        )

        def show() -> None:
            for warning in result["warnings"]:
                print(f"warning: {warning}", file=sys.stderr)
            if cron:
                print(result["cron"])
                return
            print(f"wrote {result['service']}")
            print(f"wrote {result['timer']}")
            print("enable it with:")
            for line in result["enable"]:
                print(f"  {line}")

        return result, show

    _run("backup schedule", as_json, work)


TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust",
        help="Accept an archive that no key of this home authenticates (another host's, an"
        " older orch's): its checksums are still checked, who made it is not.",
    ),
]
TRUST_SKIPS = (
    "--trust: who made this archive was not checked; its checksums only show that it is"
    " whole, not that it is yours"
)


@backup_app.command("verify")
def backup_verify(
    archive: Annotated[
        str, typer.Argument(help="An archive written by `orch backup` (a file or s3:// URL).")
    ],
    profile: Annotated[
        Optional[str], typer.Option(help="Also check that it is this profile's.")
    ] = None,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check an archive without restoring it: that this home (or a key it imported)
    made it and nothing changed since (an HMAC of the manifest), then every file's size
    and sha256, nothing missing or extra, no path outside the profile's dirs.

    An s3:// archive is downloaded into a temp file of the home first (and checked
    against the sha256 of its completion marker), then removed.

    Example: orch backup verify ~/.local/share/orch/backups/main/main-20261201T101500.000000Z.tar.gz

    Example: orch backup verify s3://my-backups/orch/main-20261201T101500.000000Z.tar.gz
    """

    def work():
        # start-up: only `orch backup verify` loads these
        from orchestrator.fleet.archive_keys import keyring
        from orchestrator.fleet.backup import verify
        from orchestrator.fleet.offsite import is_url

        if is_url(archive):
            from orchestrator.workflows.offsite import verify_remote

            entry, summary, vouched = verify_remote(_home(), archive, trust, profile)
            extra = {"sha256": entry.marker["sha256"] if entry.marker else None}
        else:
            manifest, vouched = verify(Path(archive), keyring(_home(), trust), profile)
            summary, extra = manifest.summary(), {}
        data = {"archive": archive, "ok": True, "authenticated": vouched, **extra}
        data.update(summary)

        def show() -> None:
            if trust:
                print(f"warning: {TRUST_SKIPS}", file=sys.stderr)
            node = f", made on node {data['node']}" if data.get("node") else ""
            print(
                f"{archive}: ok, authenticated: {vouched}, profile {data['profile']},"
                f" {data['file_count']} files ({_human_bytes(data['bytes'])}), openclaw"
                f" {data['openclaw_version']}, {data['mode']}, taken {data['created']}{node}"
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
    source: FromOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The archives of each profile, newest first; then those that cannot be read,
    each with the reason (exit 1 when there is one: the others are still listed).

    With --from s3://BUCKET/PREFIX: the archives there with a completion marker, newest
    first (what the marker says; `verify` checks an archive itself), then the
    incomplete uploads, which are not backups (exit 1 when there is one).

    Example: orch backup ls main

    Example: orch backup ls --from s3://my-backups/orch
    """
    if source is not None:
        _run(
            "backup ls",
            as_json,
            lambda: _ls_remote(source, name, output),
            ok=lambda d: not d["unreadable"],
            failed_exit=1,
        )
        return

    def work():
        # start-up: only `orch backup ls` loads these
        from orchestrator.fleet.archive_keys import keyring
        from orchestrator.fleet.backup import BACKUPS_DIR, authenticate, list_archives
        from orchestrator.fleet.store import load_fleet

        home = _home(writes=False)
        if output is not None:
            if output.exists() and not output.is_dir():
                raise UsageError(f"-o: {output} is not a dir", hint="pass the dir of the archives")
            dirs = [output]
        else:
            profiles = [name] if name else sorted(load_fleet(home).profiles)
            root = home / BACKUPS_DIR
            known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            dirs = [root / n for n in dict.fromkeys([*profiles, *known]) if not name or n == name]
        keys = keyring(home)
        rows, unreadable = [], []
        for d in dirs:
            for item in list_archives(d, name):
                if item.head is None:
                    unreadable.append({"archive": str(item.path), "error": item.error})
                    continue
                try:
                    vouched = authenticate(item.path, item.head, keys)
                except ArchiveInvalid:
                    vouched = None
                rows.append(
                    {
                        "archive": str(item.path),
                        "archive_bytes": _size(item.path),
                        "authenticated": vouched,
                        **item.head.manifest.summary(),
                    }
                )

        def show() -> None:
            if not rows and not unreadable:
                print("no archives")
            for r in rows:
                flag = "" if r["authenticated"] else "  (not authenticated here)"
                print(
                    f"{r['profile']}  {r['created']}  {r['mode']:<7}  openclaw"
                    f" {r['openclaw_version']}  {_human_bytes(r['archive_bytes'])}"
                    f"  {r['archive']}{flag}"
                )
            for u in unreadable:
                print(f"unreadable  {u['error']}")  # the message starts with the path

        return {"archives": rows, "unreadable": unreadable}, show

    _run("backup ls", as_json, work, ok=lambda d: not d["unreadable"], failed_exit=1)


def _ls_remote(url: str, name: str | None, output: Path | None):
    from orchestrator.fleet.offsite import parse_target
    from orchestrator.workflows.offsite import list_remote

    if output is not None:
        raise UsageError("give -o DIR or --from URL, not both")
    _home(writes=False)
    entries = list_remote(parse_target(url, "--from"), name)
    rows = [e.to_json() for e in entries if e.complete]
    unreadable = [{"archive": e.url, "error": e.error} for e in entries if not e.complete]

    def show() -> None:
        if not rows and not unreadable:
            print(f"no archives under {url}")
        for r in rows:
            node = f"  (made on node {r['node']})" if r.get("node") else ""
            print(
                f"{r['profile']}  {r['created']}  {r['mode']:<7}  openclaw"
                f" {r['openclaw_version']}  {_human_bytes(r['archive_bytes'])}"
                f"  {r['archive']}{node}"
            )
        for u in unreadable:
            print(f"incomplete  {u['archive']}: {u['error']}")

    return {"archives": rows, "unreadable": unreadable}, show


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


key_app = typer.Typer(
    help=(
        "The key that authenticates this home's archives ($ORCH_HOME/keys/backup.key,"
        " mode 0600) and the keys of other homes it trusts."
        "\n\nTo restore here an archive made on host A: on A `orch backup key export"
        " a.key`, copy a.key here safely, then `orch backup key import a.key`."
    ),
    no_args_is_help=True,
)
backup_app.add_typer(key_app, name="key", rich_help_panel=BACKUPS)


@key_app.command("export")
def key_export(
    dest: Annotated[Path, typer.Argument(help="The file to write (0600), or - for stdout.")],
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    show_key: Annotated[
        bool, typer.Option("--show", help="Allow printing the key on a terminal (with -).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write this home's backup key (created on first use) so that another home can
    import it and accept this home's archives. Whoever holds it can make archives
    that this home accepts: copy it only over a channel you trust.

    Example: orch backup key export - | ssh other-host orch backup key import -
    """

    def work():
        # start-up: only `orch backup key export` loads this
        from orchestrator.fleet.archive_keys import export_key, key_path, signing_key

        home = _home()
        if str(dest) == "-":
            if as_json:
                raise UsageError("--json and - both use stdout", hint="write to a FILE instead")
            if sys.stdout.isatty() and not show_key:
                raise UsageError(
                    "refusing to print the backup key on a terminal",
                    hint="write it to a file, pipe it into `orch backup key import -`"
                    " elsewhere, or add --show",
                )
            key = signing_key(home)
            sys.stdout.write(key.text())
            sys.stdout.flush()
            where = "stdout"
        else:
            key = export_key(home, dest.absolute(), force)
            where = str(dest.absolute())
        data = {"key_id": key.key_id, "key_file": str(key_path(home)), "written_to": where}

        def show() -> None:
            print(
                f"wrote the backup key {key.key_id} of {home} to {where}"
                f"{' (mode 0600)' if where != 'stdout' else ''}: whoever holds it can make"
                " archives this home accepts",
                file=sys.stderr,
            )

        return data, show

    _run("backup key export", as_json, work)


@key_app.command("import")
def key_import(
    src: Annotated[Path, typer.Argument(help="A file from `key export`, or - for stdin.")],
    as_json: JsonOpt = False,
) -> None:
    """Trust the archives of another orch home: its key goes to
    $ORCH_HOME/keys/trusted/ID.key (0600). Remove that file to stop trusting it.

    Example: orch backup key import a.key
    """

    def work():
        # start-up: only `orch backup key import` loads this
        from orchestrator.fleet.archive_keys import MAX_KEY_FILE, import_key

        home = _home()
        if str(src) == "-":
            text, where = sys.stdin.read(MAX_KEY_FILE), "stdin"
        else:
            try:
                with open(src, encoding="ascii", errors="replace") as fh:
                    text, where = fh.read(MAX_KEY_FILE), str(src)
            except OSError as exc:
                raise UsageError(f"cannot read {src}: {exc.strerror}") from None
        key, status = import_key(home, text, where)
        said = {
            "added": "trusted from now on: archives made by the home that exported it verify here",
            "known": "trusted already; nothing changed",
            "own": "this home's own key; nothing changed",
        }[status]

        def show() -> None:
            print(f"backup key {key.key_id}: {said}")

        return {"key_id": key.key_id, "status": status}, show

    _run("backup key import", as_json, work)


@key_app.command("ls")
def key_ls(as_json: JsonOpt = False) -> None:
    """This home's key id and the ids of the keys it trusts (never the keys).

    Example: orch backup key ls
    """

    def work():
        # start-up: only `orch backup key ls` loads this
        from orchestrator.fleet.archive_keys import key_path, own_key, trusted_keys

        home = _home()
        own = own_key(home)
        data = {
            "own": own.key_id if own else None,
            "own_file": str(key_path(home)),
            "trusted": [k.key_id for k in trusted_keys(home)],
        }

        def show() -> None:
            print(f"own      {data['own'] or '(none yet: the first backup creates it)'}")
            for key_id in data["trusted"]:
                print(f"trusted  {key_id}")

        return data, show

    _run("backup key ls", as_json, work)


@app.command(rich_help_panel=BACKUPS)
def restore(
    name: Annotated[str, typer.Argument(help="The profile to restore.")],
    archive: Annotated[
        Optional[str], typer.Argument(help="An archive of that profile (a file or s3:// URL).")
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="The profile's newest complete archive in --from.")
    ] = False,
    source: FromOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before stopping.")] = False,
    keep_old: Annotated[
        bool, typer.Option(help="Keep the replaced dirs (beside the profile's dirs).")
    ] = False,
    trust: TrustOpt = False,
    node: Annotated[
        Optional[str],
        typer.Option(
            "--node",
            metavar="HOSTNAME",
            help="Evacuate: bring the profile back on this swarm node (its own node is"
            " down) from an s3:// archive; it is placed there from now on.",
        ),
    ] = None,
    timeout: Timeout = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Verify the archive (made by this home, or a home whose key it imported, and
    unchanged since; see --trust), unpack it beside the profile's dirs, stop the gateway
    gracefully, swap the dirs, start it and wait until ready. The token is kept
    (the archive's when it has one). If the restored gateway does not get ready,
    its previous state is put back.

    A profile placed on a swarm node: ARCHIVE is a path on that node, as `orch backup`
    printed it; its .sha256 beside it is checked there.

    From S3 (an s3:// archive, or --latest --from s3://BUCKET/PREFIX): the archive is
    downloaded into the home and checked against its completion marker's sha256 first;
    the note says how old it is (what changed since is not in it). A profile placed on
    a swarm node: its node downloads the archive (a presigned URL) and restores it.

    Evacuate with --node HOSTNAME: a profile whose swarm node is down is brought back
    on HOSTNAME from its archive in the bucket: refused while its node is still Ready;
    its dirs are restored on HOSTNAME, its placement moves there (fleet file), its
    service is deployed there and orch waits until it is ready. Everything it wrote
    since the archive is lost: the output says how old the archive is.

    Example: orch restore main backups/main/main-20261201T101500.000000Z.tar.gz --yes

    Example: orch restore main --latest --from s3://my-backups/orch --yes

    Example: orch restore t2 --latest --from s3://my-backups/orch --node node-b --yes
    """
    from orchestrator.fleet.offsite import is_url

    if node is not None and not (latest or source or (archive and is_url(archive))):
        _run("restore", as_json, _needs_bucket)
        return
    if latest or source is not None or (archive is not None and is_url(archive)):
        _run(
            "restore",
            as_json,
            lambda: _restore_remote(
                name, archive, latest, source, yes, keep_old, trust, timeout, as_json, node
            ),
        )
        return

    def work():
        # start-up: only `orch restore` loads these
        from orchestrator.fleet.archive_keys import keyring
        from orchestrator.fleet.backup import check_authentic
        from orchestrator.workflows.backup import restore as do_restore

        if archive is None:
            raise UsageError(
                "give an ARCHIVE, or --latest --from s3://BUCKET/PREFIX",
                hint="`orch backup ls NAME` lists the archives",
            )
        project = _project()
        if project.fleet.get(name).node:
            return _restore_on_node(project, name, Path(archive), yes, keep_old, timeout, as_json)
        home = project.home
        manifest, _ = check_authentic(Path(archive), keyring(home, trust))
        _warn_and_ask(
            trust,
            yes,
            f"restoring '{name}' stops its gateway and replaces its state with the one"
            f" of {manifest.created}",
            f"Stop '{name}' and replace its config, state and workspace with {Path(archive).name}?",
            as_json,
        )
        _engine_ready(as_json)
        result = do_restore(home, name, Path(archive), keep_old, timeout, _progress(as_json), trust)
        data = result.to_json()

        return data, _restored(name, result, str(archive))

    _run("restore", as_json, work)


def _restore_on_node(
    project: Any, name: str, archive: Path, yes: bool, keep_old: bool, timeout: float, as_json: bool
) -> Any:
    """A profile placed on a swarm node: ARCHIVE is a path on that node, as `orch backup`
    printed it; its .sha256 beside it vouches for it."""
    from orchestrator.workflows.node_backup import restore_on_node

    node = project.fleet.get(name).node
    if not yes:
        _confirm(
            f"restoring '{name}' stops its gateway on {node} and replaces its state",
            f"Stop '{name}' on {node} and replace its config, state and workspace with"
            f" {node}:{archive}?",
            as_json,
        )
    _engine_ready(as_json)
    result = restore_on_node(
        project, name, str(archive.absolute()), None, keep_old, timeout, _progress(as_json)
    )

    return result.to_json(), _restored(name, result, f"{result.node}:{archive}", f"{result.node}:")


def _restore_remote(
    name: str,
    archive: str | None,
    latest: bool,
    source: str | None,
    yes: bool,
    keep_old: bool,
    trust: bool,
    timeout: float,
    as_json: bool,
    target: str | None = None,
):
    # start-up: only `orch restore` from a bucket loads these
    from orchestrator.fleet.offsite import parse_target
    from orchestrator.workflows.offsite import resolve, restore_from

    if latest == (archive is not None) or latest != (source is not None):
        raise UsageError(
            "give an s3:// ARCHIVE, or --latest --from s3://BUCKET/PREFIX (not both)",
            hint="orch restore main --latest --from s3://my-backups/orch",
        )
    project = _project()
    placed_on = project.fleet.get(name).node
    from_url = parse_target(source, "--from") if source else None
    if target is not None:
        return _evacuate(
            project, name, archive, from_url, target, yes, keep_old, trust, timeout, as_json
        )
    if placed_on:
        return _restore_node_remote(
            project, name, archive, from_url, yes, keep_old, trust, timeout, as_json
        )
    home = project.home
    entry = resolve(archive, from_url, name)
    _warn_and_ask(
        trust,
        yes,
        f"restoring '{name}' stops its gateway and replaces its state with the one"
        f" of {entry.created}",
        f"Stop '{name}' and replace its config, state and workspace with {entry.url}?",
        as_json,
    )
    _engine_ready(as_json)
    result = restore_from(home, name, entry, keep_old, timeout, _progress(as_json), trust)
    return result.to_json(), _restored(name, result, entry.url)


def _warn_and_ask(trust: bool, yes: bool, what: str, question: str, as_json: bool) -> None:
    """Every restore's preface: say what --trust skips, then ask unless --yes."""
    if trust and not as_json:
        print(f"warning: {TRUST_SKIPS}", file=sys.stderr)
    if not yes:
        _confirm(what, question, as_json)


def _needs_bucket() -> Any:
    raise UsageError(
        "--node brings a profile back on another node from an archive in a bucket:"
        " give an s3:// ARCHIVE or --latest --from s3://BUCKET/PREFIX",
        hint="orch restore t2 --latest --from s3://my-backups/orch --node node-b",
    )


def _restore_node_remote(
    project: Any,
    name: str,
    archive: str | None,
    source: Any,
    yes: bool,
    keep_old: bool,
    trust: bool,
    timeout: float,
    as_json: bool,
) -> Any:
    """A profile placed on a swarm node, from a bucket: its node downloads and restores."""
    from orchestrator.workflows.node_offsite import restore_node_from
    from orchestrator.workflows.offsite import resolve

    node = project.fleet.get(name).node
    entry = resolve(archive, source, name)
    _warn_and_ask(
        trust,
        yes,
        f"restoring '{name}' stops its gateway on {node} and replaces its state with the"
        f" one of {entry.created}",
        f"Stop '{name}' on {node} and replace its config, state and workspace with {entry.url}?",
        as_json,
    )
    _engine_ready(as_json)
    result = restore_node_from(project, name, entry, keep_old, timeout, _progress(as_json), trust)
    return result.to_json(), _restored(name, result, entry.url, f"{result.node}:")


def _evacuate(
    project: Any,
    name: str,
    archive: str | None,
    source: Any,
    target: str,
    yes: bool,
    keep_old: bool,
    trust: bool,
    timeout: float,
    as_json: bool,
) -> Any:
    """`restore NAME ... --node OTHER`: the refusals first (no bucket read while the old
    node still answers), then the archive, the question, the move."""
    from orchestrator.workflows.node_offsite import evacuate, evacuation_nodes
    from orchestrator.workflows.offsite import human_age, resolve

    _engine_ready(as_json)
    old, _node = evacuation_nodes(project, name, target)
    entry = resolve(archive, source, name)
    _warn_and_ask(
        trust,
        yes,
        f"bringing '{name}' back on {target} from {entry.url} (taken {entry.created})"
        f" loses everything it wrote on {old} since then",
        f"Move '{name}' from {old} (down) to {target} with the state of {entry.created}?",
        as_json,
    )
    result = evacuate(project, name, entry, target, keep_old, timeout, _progress(as_json), trust)

    def show() -> None:
        age = f"{human_age(result.archive_age_s)} old" if result.archive_age_s is not None else ""
        print(
            f"{name}: moved from {result.from_node} to {result.to_node} and ready in"
            f" {result.seconds:.1f} s (restore {result.restore_s:.1f} s, deploy and ready"
            f" {result.deploy_s:.1f} s)"
        )
        print(
            f"{name}: from {result.archive} ({age}, authenticated: {result.authenticated}):"
            f" everything written since {result.archive_created} is lost"
        )
        for path in result.kept:
            print(f"{name}: kept the replaced {result.to_node}:{path}")

    return result.to_json(), show


def _restored(name: str, result: Any, source: str, where: str = "") -> Callable[[], None]:
    """The lines every restore prints (from a file, a node or a bucket): where from,
    how long and how long the gateway was down, the note, the replaced dirs kept
    (`where`: the node they are on)."""

    def show() -> None:
        down = f", down {result.downtime_s:.1f} s" if result.downtime_s is not None else ""
        print(f"{name}: restored from {source} ({result.seconds:.1f} s{down})")
        if result.note:
            print(f"{name}: {result.note}")
        for path in result.kept:
            print(f"{name}: kept the replaced {where}{path}")

    return show


def resume(home: Path, names: list[str] | None, timeout: float, as_json: bool) -> list[dict]:
    """Finish or undo the upgrades and rollbacks a kill interrupted (their journals):
    `up`, `upgrade` and `rollback` do this before anything else."""
    # start-up: core.paths loads the fleet model (pydantic), not for --help
    from orchestrator.core.paths import journaled

    if not journaled(home):
        return []
    from orchestrator.workflows.upgrade import interrupted, resume_interrupted  # a journal only

    if not interrupted(home, names):
        return []
    _engine_ready(as_json)
    done = resume_interrupted(home, names, timeout, _progress(as_json))
    return [{**r.to_json(), "message": r.describe()} for r in done]


def would_resume(home: Path, names: list[str] | None) -> list[dict]:
    """What `resume` would do (`orch up --dry-run`)."""
    # start-up: core.paths loads the fleet model (pydantic), not for --help
    from orchestrator.core.paths import journaled

    if not journaled(home):
        return []
    from orchestrator.workflows.upgrade import interrupted  # a journal only

    return [{**r.to_json(), "message": r.describe()} for r in interrupted(home, names)]


def show_resumed(resumed: list[dict]) -> None:
    for r in resumed:
        print(r["message"])


@app.command(rich_help_panel=BACKUPS)
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
    order given): online backup, recreate, wait ready. On any failure the old container
    and the state of that backup come back, and the new image's log tail is shown.
    Journaled ($ORCH_HOME/journal/NAME.json): an upgrade a kill interrupted is finished
    (its new container was ready) or undone by the next up, upgrade or rollback.

    Example: orch upgrade --openclaw 2026.10.1
    """

    def work():
        # start-up: only `orch upgrade` loads this
        from orchestrator.workflows.upgrade import upgrade as do_upgrade

        if (image is None) == (openclaw is None):
            raise UsageError(
                "give exactly one of --image REF and --openclaw VERSION",
                hint="orch upgrade --image orch/openclaw-gateway:2026.9.6",
            )
        home = _home()
        resumed = resume(home, names, timeout, as_json)
        _engine_ready(as_json)
        target = image
        if openclaw is not None:
            # start-up: the image builder only for --openclaw
            from orchestrator.host.images import build_images

            say = None if as_json else (lambda m: sys.stderr.write(f"images: {m}\n"))
            target = build_images(progress=say, version=openclaw)[-1].tag
        assert target is not None
        results = do_upgrade(home, names, target, timeout, _progress(as_json))
        rows = [r.to_json() for r in results]

        def show() -> None:
            show_resumed(resumed)
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

        data = {"image": target, "resumed": resumed, "results": rows}
        return data, show

    _run("upgrade", as_json, work, ok=lambda d: all(r["ok"] for r in d["results"]), failed_exit=5)


@app.command(rich_help_panel=BACKUPS)
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
        # start-up: only `orch rollback` loads these
        from orchestrator.workflows.upgrade import rollback as do_rollback
        from orchestrator.workflows.upgrade import rollback_plan

        home = _home()
        resumed = resume(home, [name], timeout, as_json)
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
        data = {**result.to_json(), "lost": lost, "resumed": resumed}

        def show() -> None:
            show_resumed(resumed)
            print(f"{name}: rolled back to {result.image} ({result.seconds:.1f} s)")
            if result.note:
                print(f"{name}: {result.note}")

        return data, show

    _run("rollback", as_json, work)
