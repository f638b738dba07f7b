"""Every input reaches a clear error, through the real entry point: the dirs the
environment names (ORCH_HOME, ORCH_REGISTRY_DIR, XDG_*, HOME), numbers out of range on
every option that takes one, image references; exit 2, what/where/how, no traceback,
nothing written (orchestrator/fleet/places.py, orchestrator/cli/options.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
import typer

from orchestrator.cli import app
from orchestrator.cli.options import age
from orchestrator.core.model import Profile
from orchestrator.fleet.store import fleet_path, load_fleet

from ..helpers import fleet_of, save_with_files
from .helpers import invoke, said, tree


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox with a regular file, a named pipe and a fleet in `home`; every dir
    orch may use lives under it, so one tree() shows whatever a command wrote."""
    root = tmp_path / "host"
    root.mkdir()
    (root / "file").write_text("not a dir\n")
    os.mkfifo(root / "fifo")
    (root / "registry").mkdir()
    save_with_files(root / "home", fleet_of(Profile(name="main", port=20000)))
    for var in ("ORCH_CACHE_DIR", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ORCH_HOME", str(root / "home"))
    monkeypatch.setenv("ORCH_REGISTRY_DIR", str(root / "registry"))
    monkeypatch.setenv("ORCH_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("HOME", str(root / "user"))
    monkeypatch.chdir(root)
    return root


# (variable, value: {root} is the sandbox, what the error says). Unset: ORCH_HOME,
# so that the default home comes from XDG_DATA_HOME or HOME, or ORCH_CACHE_DIR.
BAD_DIRS = [
    (
        "ORCH_HOME",
        "{root}/file",
        "orch's home {root}/file (from ORCH_HOME={root}/file) is a regular file, not a dir",
    ),
    ("ORCH_HOME", "{root}/file/sub", "{root}/file is a regular file, so no dir can be made"),
    ("ORCH_HOME", "{root}/fifo", "is a named pipe, not a dir"),
    ("ORCH_HOME", "/dev/null", "is a device, not a dir"),
    ("ORCH_HOME", "/proc/self", "is on the kernel's proc filesystem"),
    ("ORCH_HOME", "/proc/self/orch", "is on the kernel's proc filesystem"),
    ("ORCH_HOME", "/sys/kernel", "is on the kernel's sysfs filesystem"),
    (
        "ORCH_REGISTRY_DIR",
        "{root}/file",
        "the host registry {root}/file (from ORCH_REGISTRY_DIR={root}/file) is a regular file",
    ),
    ("ORCH_REGISTRY_DIR", "/proc/self/registry", "proc filesystem"),
    ("XDG_DATA_HOME", "{root}/file", "orch's home {root}/file/orch (from XDG_DATA_HOME="),
    ("HOME", "{root}/file", "orch's home {root}/file/.local/share/orch (from HOME="),
    ("XDG_CACHE_HOME", "{root}/file", "orch's cache {root}/file/orch (from XDG_CACHE_HOME="),
    ("ORCH_CACHE_DIR", "/proc/self", "orch's cache /proc/self (from ORCH_CACHE_DIR=/proc/self)"),
]


def _env(root: Path, var: str, value: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {var: value.format(root=root)}
    if var in ("XDG_DATA_HOME", "HOME"):
        env["ORCH_HOME"] = None
    if var == "XDG_CACHE_HOME":
        env["ORCH_CACHE_DIR"] = None
    return env


@pytest.mark.parametrize("command", [("ls",), ("check",), ("setup", "web"), ("up",)])
@pytest.mark.parametrize(("var", "value", "expected"), BAD_DIRS)
def test_a_bad_dir_in_the_environment_is_a_clear_error_before_anything_is_touched(
    host: Path, command: tuple[str, ...], var: str, value: str, expected: str
) -> None:
    before = tree(host)
    result = invoke(*command, env=_env(host, var, value))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.output
    assert expected.format(root=host) in result.stderr
    assert "hint: " in result.stderr and var in result.stderr.split("hint: ")[1]
    assert tree(host) == before


def test_the_json_envelope_names_the_variable_too(host: Path) -> None:
    result = invoke("check", "--json", env={"ORCH_HOME": str(host / "file")})
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UsageError" and "ORCH_HOME" in error["message"]
    assert error["hint"].startswith("set ORCH_HOME to a dir of your own")


def test_a_relative_xdg_dir_is_ignored_as_the_spec_says(host: Path) -> None:
    result = invoke("ls", "--json", env={"ORCH_HOME": None, "XDG_DATA_HOME": "relative/dir"})
    assert result.exit_code == 0
    assert json.loads(result.stdout)["data"]["home"] == f"{host}/user/.local/share/orch"


def test_xdg_runtime_dir_is_not_read_by_orch(host: Path) -> None:
    result = invoke("check", env={"XDG_RUNTIME_DIR": str(host / "file")})
    assert result.exit_code == 0


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-5", "²"])
def test_a_port_start_that_is_not_a_port_is_a_clear_error(host: Path, value: str) -> None:
    before = tree(host)
    result = invoke("setup", "web", "--port", "auto", env={"ORCH_PORT_START": value})
    assert result.exit_code == 2
    assert f"error: ORCH_PORT_START={value!r} is not a port" in result.stderr
    assert tree(host) == before


def test_a_failed_first_setup_leaves_no_home_behind(host: Path) -> None:
    fresh = host / "new" / "deeper" / "home"
    before = tree(host)
    result = invoke("setup", "main", "--bind-ip", "localhost", env={"ORCH_HOME": str(fresh)})
    assert result.exit_code == 2 and "is not an IP address" in result.stderr
    assert not (host / "new").exists()
    assert tree(host) == before


def _as_user(uid: int, args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str]:
    """Run `orch ARGS` in a forked child that has dropped root for `uid`: (exit code,
    stderr). The interpreter under /root is closed to other users, so a first run as
    root with a home orch refuses at the same point imports every module it needs."""
    invoke(*args, env={**env, "ORCH_HOME": "/proc/self"})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read)
            os.chdir("/")
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result = invoke(*args, env=env)
            os.write(write, result.stderr.encode())
            code = result.exit_code
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        err = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.fixture
def open_sandbox() -> Iterator[Path]:
    """A dir another uid may reach (pytest's tmp dirs are 0700 root's)."""
    root = Path(tempfile.mkdtemp(prefix="orch-inputs-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops root for another uid")
def test_a_home_the_user_may_not_read_or_write_is_a_clear_error(open_sandbox: Path) -> None:
    root = open_sandbox
    closed, read_only, registry = root / "closed", root / "read-only", root / "registry"
    closed.mkdir(mode=0o700)
    read_only.mkdir(mode=0o755)
    registry.mkdir()
    os.chmod(registry, 0o1777)
    env = {"ORCH_REGISTRY_DIR": str(registry), "ORCH_CACHE_DIR": str(root / "cache")}
    before = tree(root)
    cases = [
        (("ls",), closed, "is not readable by you (you are uid 4242; it is uid 0's, mode 0700)"),
        (("setup", "main"), read_only, "is not writable by you (you are uid 4242"),
        (("setup", "main"), closed / "sub", f"cannot look at {closed}/sub: Permission denied"),
    ]
    for args, home, expected in cases:
        code, err = _as_user(4242, args, {**env, "ORCH_HOME": str(home)})
        assert code == 2, err
        assert expected in err and "hint: set ORCH_HOME" in err, err
    code, err = _as_user(4242, ("ls",), {**env, "ORCH_HOME": str(read_only)})
    assert code == 0, err  # reading needs no write access
    assert tree(root) == before


# --- numbers out of range ---------------------------------------------------------------


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, option) of every option of the app that takes a number or an age."""
    out = []

    def walk(group: object, prefix: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):  # type: ignore[attr-defined]
            if hasattr(command, "commands"):
                walk(command, (*prefix, name))
                continue
            for param in command.params:
                if param.opts[0].startswith("--") and _takes_a_number(param):
                    out.append(((*prefix, name), param.opts[0]))

    walk(typer.main.get_command(app), ())
    return out


def _takes_a_number(param: object) -> bool:
    """From typer's description of the option (its own click has no `type` on it)."""
    described = getattr(param, "type_descriptor", None)
    if described is not None:
        parser = described.parameter_info.parser
        annotation = described.annotation
    else:  # typer on the real click
        parser = getattr(param.type, "func", None)  # type: ignore[attr-defined]
        annotation = {"float": float, "integer": int}.get(param.type.name)  # type: ignore[attr-defined]
    numbers = (int, float, Optional[int], Optional[float])
    return annotation in numbers or getattr(parser, "__name__", "") in ("seconds", "parse", "age")


NUMERIC = numeric_options()


def test_the_walk_finds_every_number_option() -> None:
    found = {(" ".join(c), o) for c, o in NUMERIC}
    waits = {"up", "restart", "rescue", "backup create", "restore", "upgrade", "rollback"}
    others = {("logs", "--tail"), ("backup create", "--keep"), ("gc", "--older-than")}
    assert found >= {(c, "--timeout") for c in waits} | others


ARGS = {
    "logs": ["main"],
    "restart": ["main"],
    "rescue": ["main"],
    "rollback": ["main"],
    "restore": ["main", "archive.tar.gz"],
}


@pytest.mark.parametrize(
    ("command", "option"), NUMERIC, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "1e400", "9" * 400, "many"])
def test_every_number_option_refuses_what_is_out_of_range_with_exit_2(
    host: Path, command: tuple[str, ...], option: str, value: str
) -> None:
    args = [*command, *ARGS.get(command[-1], [])]
    before = tree(host)
    result = invoke(*args, option, value)
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for '{option}': " in result.stderr
    assert tree(host) == before


def test_with_json_an_option_out_of_range_is_the_error_envelope(host: Path) -> None:
    result = invoke("backup", "main", "--timeout", "nan", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["command"] == "backup create" and doc["ok"] is False
    assert doc["error"]["message"] == "--timeout: 'nan' is not a finite number"
    assert doc["error"]["hint"] == "see `orch backup create --help`"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("up", "--timeout", "0"), "0 is out of range: give more than 0 and at most 86400"),
        (("up", "--timeout", "86401"), "at most 86400 seconds"),
        (("logs", "main", "--tail", "-5"), "give a whole number from 0 to 10000000"),
        (("logs", "main", "--tail", "2.5"), "give a whole number"),
        (("backup", "main", "--keep", "0"), "give a whole number from 1 to 100000"),
        (("backup", "main", "--keep", "-3"), "from 1 to 100000"),
        (("gc", "--older-than", "-5m"), "'-5m' is not an age: use e.g. 90s, 30m, 2h or 1d"),
        (("gc", "--older-than", "3651d"), "out of range: at most 3650d"),
    ],
)
def test_zero_negative_and_too_large_values_say_the_range(
    host: Path, args: tuple[str, ...], expected: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert expected in result.stderr and "Invalid value for" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("1d", 86400), ("0", 0), ("1.5h", 5400)],
)
def test_ages_read_as_seconds(text: str, seconds: float) -> None:
    assert age(text) == seconds


def test_an_option_in_range_still_reaches_the_command(host: Path) -> None:
    result = invoke("up", "--dry-run", "--timeout", "0.5", "--json")
    assert json.loads(result.stdout)["command"] == "up"
    assert "--timeout" not in result.stdout


# --- image references -------------------------------------------------------------------


@pytest.mark.parametrize(
    "image", ["UPPER CASE;rm -rf /", "orch/Gateway", "a b", "img:tag:more", "img@sha256:12", ""]
)
@pytest.mark.parametrize("command", [("setup", "main"), ("setup", "web"), ("upgrade",)])
def test_setup_and_upgrade_refuse_an_image_that_is_not_a_reference_and_store_nothing(
    host: Path, command: tuple[str, ...], image: str
) -> None:
    before = tree(host)
    result = invoke(*command, "--image", image, "--json")
    assert result.exit_code == 2
    message = said(result)
    assert message.startswith("--image: ") and "not" in message
    assert tree(host) == before


def test_a_valid_reference_is_stored_as_given(host: Path) -> None:
    ref = "registry.example.com:5000/team/gateway:2026.9.6@sha256:" + "a" * 64
    result = invoke("setup", "web", "--image", ref, "--port", "21000")
    assert result.exit_code == 0, result.output
    assert load_fleet(host / "home").profiles["web"].image == ref


def test_a_fleet_file_with_a_bad_image_is_refused_with_its_line(host: Path) -> None:
    path = fleet_path(host / "home")
    path.write_text(path.read_text().replace("port: 20000", "port: 20000\n    image: 'A;B'"))
    for command in (("check",), ("ls",), ("ports",), ("render", "main")):
        result = invoke(*command)
        assert result.exit_code == 2, (command, result.output)
        assert "profiles.main.image: 'A;B' is not an image reference" in result.stderr
        assert f"{path}: invalid fleet file:\n  line 8: " in result.stderr
