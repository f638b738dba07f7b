"""The `orch` command line: parse, call the core, render. Nothing else.

Core modules are imported inside each command, so `orch --version` and
`orch --help` never pay for pydantic or the Docker SDK.
"""

import copy
import errno
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from orchestrator import __version__
from orchestrator.cli.output import envelope, error_envelope, print_json
from orchestrator.errors import CheckFailed, Interrupted, OrchError, Terminated, UsageError

JSON_META = "orch.json"


# typer's help panels, in the order `orch --help` lists them: setting up a fleet first.
FLEET, LIFECYCLE, BACKUPS, HOST = "Fleet", "Lifecycle", "Backups and upgrades", "Host and images"
PANELS = (FLEET, LIFECYCLE, BACKUPS, HOST)


def examples_on_own_lines(text: str | None) -> str | None:
    """A help text whose `Example:` paragraphs click prints line by line (its `\\b`
    marker) instead of running them into one wrapped paragraph."""
    if not text:
        return text
    paragraphs = text.split("\n\n")
    marked = [
        "\b\n" + p if p.lstrip().startswith("Example") and not p.startswith("\b") else p
        for p in paragraphs
    ]
    return "\n\n".join(marked)


def _mark_examples(command: Any) -> Any:
    command.help = examples_on_own_lines(command.help)
    for sub in getattr(command, "commands", {}).values():
        _mark_examples(sub)
    return command


class _Group(TyperGroup):
    """The root command group: a value refused while the options are parsed
    (`--timeout inf`, `--tail x`) is answered with the JSON envelope when --json was
    given, as every other error of a command is. Its help lists the commands by
    typer's help panels, with the plain (rich-free, fast) formatter."""

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        return None if command is None else _mark_examples(command)

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        self.help = examples_on_own_lines(self.help)
        super().format_help_text(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        found = [(n, self.get_command(ctx, n)) for n in self.list_commands(ctx)]
        shown = [(n, c) for n, c in found if c is not None and not c.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(n) for n, _ in shown)
        panels: dict[str, list[tuple[str, str]]] = {}
        for name, command in shown:
            panel = getattr(command, "rich_help_panel", None) or "Commands"
            panels.setdefault(panel, []).append((name, command.get_short_help_str(limit)))
        order = {panel: i for i, panel in enumerate(PANELS)}
        for panel in sorted(panels, key=lambda p: order.get(p, len(PANELS))):
            with formatter.section(panel):
                formatter.write_dl(panels[panel])

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            failing = exc.ctx
            if failing is None or not failing.meta.get(JSON_META):
                raise
            command = failing.command_path.partition(" ")[2] or failing.command_path
            error = UsageError(_usage_message(exc), hint=f"see `{failing.command_path} --help`")
            print_json(error_envelope(command, error))
            raise typer.Exit(error.exit_code) from None


def _usage_message(exc: typer.BadParameter) -> str:
    if exc.param is None:
        return exc.format_message()
    names = "/".join(getattr(exc.param, "opts", None) or [exc.param.name or "?"])
    return f"{names}: {exc.message}"


def _json_first(ctx: typer.Context, _param: typer.CallbackParam, value: bool) -> bool:
    """--json is read before every other option (eager), so an error in any of them
    still knows that the answer must be JSON."""
    if value:
        ctx.meta[JSON_META] = True
    return value


app = typer.Typer(
    cls=_Group,
    name="orch",
    help=(
        "Run several fully isolated OpenClaw gateways on one host, one container each.\n\n"
        "Example: orch setup main\n"
        "Example: orch setup rescue --rescues main\n"
        "Example: orch up && orch status"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", is_eager=True, callback=_json_first, help="Print a versioned JSON envelope."
    ),
]


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
        except OSError as exc:
            if exc.filename is None and exc.errno not in _FILE_ERRNOS:
                raise  # not about a file: a bug to see whole
            raise _os_error(command, exc) from None
    except OrchError as exc:
        if as_json:
            print_json(error_envelope(command, exc))
        else:
            # start-up: the views (and the core types they show) only for an error
            from orchestrator.cli.views import show_error

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


_FILE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.ELOOP,
        errno.ENAMETOOLONG,
    }
)


def _os_error(command: str, exc: OSError) -> OrchError:
    """The last word on a file the OS refused (a dir made read-only or full since
    the checks at the start): what, where, and no traceback. Bad input (exit 2)
    when it is about a path the user gave or chose; every other error of orch is
    raised as its own OrchError before it gets here."""
    where = f" {exc.filename}" if exc.filename else ""
    return UsageError(
        f"orch {command}: cannot use{where}: {exc.strerror or exc}",
        hint="check that the dirs orch uses (ORCH_HOME, ORCH_REGISTRY_DIR, a profile's dirs)"
        " are dirs you may write, on a disk with room",
    )


def _home(writes: bool = True) -> Path:
    """orch's home, once it and the other dirs orch keeps things in are checked
    (fleet.places): a bad ORCH_HOME, ORCH_REGISTRY_DIR or XDG_* is a clear error
    before anything is read or made. `writes`: the command may write."""
    # start-up: the dir checks only for a command that uses the home
    from orchestrator.fleet.places import checked_places

    return checked_places(writes)


def _project(engine: str = "docker", writes: bool = True) -> Any:
    """The command's fleet handle (backends.project.Project) on the checked home.
    `--engine podman` first finds Podman's API socket and points the command's engine
    talk at it (DOCKER_HOST)."""
    from orchestrator.backends.project import Project  # pydantic: not for --help

    home = _home(writes)
    if engine == "podman":
        from orchestrator.docker.podman import use_podman  # --engine podman only

        use_podman()
    return Project.open(home, engine)


def _parse_port(value: str | None, allow_privileged: bool = False) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        port = int(value)
    except ValueError:
        raise UsageError(
            f"--port: '{value}' is not a port number", hint="use a number such as 19789, or auto"
        ) from None
    # start-up: the fleet model (pydantic) only when --port is given
    from orchestrator.core.model import validate_base

    try:
        return validate_base(port, allow_privileged)
    except ValueError as exc:
        raise UsageError(f"--port: {exc}", hint="use a base port such as 19789, or auto") from None


def _parse_publish(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    # start-up: only when --publish is given
    from orchestrator.core.ports import Role

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
    # start-up: the fleet model (pydantic) only when a name is given
    from orchestrator.core.model import name_problem

    problem = name_problem(name)
    if problem:
        raise UsageError(f"{option}: {problem}", hint="for example: orch setup rescue")
    return name


def _engine_ready(as_json: bool, auto_start: bool = True) -> None:
    """An engine that answers (see docker.daemon.require_engine); what was done to
    get one goes to stderr for people."""
    # start-up: the engine's modules only for a command that needs one
    from orchestrator.docker.daemon import require_engine

    for line in require_engine(auto_start):
        if not as_json:
            sys.stderr.write(f"engine: {line}\n")


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM as an exception in the main thread, like Ctrl-C: the command stops,
    rolls back or keeps what it did, and says which (exit 143)."""
    raise Terminated()


def main() -> None:
    import signal  # start-up: only the console script needs it, not an importer of app

    signal.signal(signal.SIGTERM, _terminate)
    try:
        narrowed(app, sys.argv[1:2])()
    finally:
        _exit_without_collecting()


def _exit_without_collecting() -> None:
    """The process ends next: every object it made (typer's app, pydantic's
    validators, the modules) goes to the collector's permanent generation, so
    Python's last collections at exit do not walk them all. That walk was 25-40 ms
    of every command here (bench/cpu_above_floor.py), for memory the OS takes
    back anyway; files are closed and streams flushed as before (by reference
    counting and at exit), only the cycle search is skipped."""
    gc.freeze()


def narrowed(full: typer.Typer, first: list[str]) -> typer.Typer:
    """`full` with only the command (or command group) that `first` names.

    Before it parses anything, typer builds the parameters of every command it has
    (a pydantic adapter per option): about a third of what a no-op `orch up` takes
    above Python and its imports. A command line that names a command needs only
    that one, and its parsing, help, errors and exit codes are the same. Anything
    else (no command, an option first, a misspelled name) gets the whole app."""
    if not first:
        return full
    commands = [c for c in full.registered_commands if _command_name(c) == first[0]]
    groups = [g for g in full.registered_groups if g.name == first[0]]
    if not commands and not groups:
        return full
    one = copy.copy(full)
    one.registered_commands, one.registered_groups = commands, groups
    return one


def _command_name(info: Any) -> str:
    """The name typer gives a command: its own, or its function's with - for _."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


def _confirm(what: str, question: str, as_json: bool) -> None:
    """Ask before deleting; with no terminal (CI, --json) demand --yes instead."""
    if as_json or not sys.stdin.isatty():
        raise UsageError(
            f"{what}; nothing was changed", hint="add --yes to confirm without a prompt"
        )
    if not typer.confirm(question):
        raise UsageError("aborted; nothing was changed")
