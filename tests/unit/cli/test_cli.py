"""The real `orch` entry point, run as a process: help, JSON envelopes, exit codes and
clear errors that leave the orch home as it was (orchestrator/cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from orchestrator import __version__
from orchestrator.cli.app import app
from orchestrator.core.model import Profile
from orchestrator.fleet.store import fleet_path, load_fleet, save_fleet

from ..helpers import fleet_of, save_with_files, snapshot

ORCH = [sys.executable, "-m", "orchestrator"]


def orch(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run orch with `home` as ORCH_HOME and no terminal on stdin."""
    return subprocess.run(
        [*ORCH, *args],
        env={**os.environ, "ORCH_HOME": str(home), "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def envelope(proc: subprocess.CompletedProcess[str], command: str, ok: bool) -> dict:
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "orch/v1"
    assert doc["command"] == command
    assert doc["ok"] is ok
    assert ("data" in doc) is ok and ("error" in doc) is (not ok)
    return doc


def leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command path of a click group (typer vendors its own click)."""
    out = []
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):  # a sub-group such as `orch images`
            out += leaf_commands(command, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.fixture
def two_profiles(home: Path) -> Path:
    save_with_files(
        home, fleet_of(Profile(name="main", port=18789), Profile(name="rescue", port=18900))
    )
    return home


# --- help and version -------------------------------------------------------------------


def test_every_command_has_help_with_an_example(home: Path) -> None:
    commands = leaf_commands(typer.main.get_command(app))
    core = {"setup", "rm", "ls", "ports", "check", "render", "schema"}
    assert core <= {c[-1] for c in commands}  # the walk over the app really finds them
    env = {**os.environ, "ORCH_HOME": str(home)}
    procs = {
        command: subprocess.Popen(
            [*ORCH, *command, "--help"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for command in commands
    }
    missing = []
    for command, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (command, err)
        if b"Example:" not in out:
            missing.append(" ".join(command))
    assert missing == [], f"commands whose --help has no 'Example:' line: {missing}"


def test_every_command_is_in_the_readme_reference() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    reference = readme[readme.index("## Command reference") :]
    commands = leaf_commands(typer.main.get_command(app))
    missing = [" ".join(c) for c in commands if f"`orch {' '.join(c)}" not in reference]
    assert missing == [], f"commands missing from README's command reference: {missing}"


def test_the_top_level_help_has_an_example(home: Path) -> None:
    proc = orch(home, "--help")
    assert proc.returncode == 0 and "Example: orch setup main" in proc.stdout


def test_the_top_level_help_groups_commands_by_panel_with_setup_first(home: Path) -> None:
    out = orch(home, "--help").stdout
    heads = [line for line in out.splitlines() if line.endswith(":") and not line[0].isspace()]
    assert heads == [
        "Options:",
        "Fleet:",
        "Lifecycle:",
        "Backups and upgrades:",
        "Host and images:",
    ]
    first = out.split("Fleet:\n", 1)[1].splitlines()[0]
    assert first.split()[0] == "setup"


def test_each_example_of_a_command_prints_on_its_own_line(home: Path) -> None:
    lines = orch(home, "setup", "--help").stdout.splitlines()
    examples = [line.strip() for line in lines if line.strip().startswith("Example:")]
    assert examples == [
        "Example: orch setup rescue --port auto --rescues main",
        "Example: orch setup web --port auto --browser --publish gateway,browser,cdp",
        "Example: orch setup tenant2 --port 18789 --bind-ip 0.0.0.0 --node worker2",
    ]


def test_version_prints_the_package_version(home: Path) -> None:
    proc = orch(home, "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"orch {__version__}"
    assert not home.exists()


# --- JSON envelopes ---------------------------------------------------------------------


def test_setup_json_is_the_envelope_with_the_profile(home: Path) -> None:
    proc = orch(home, "setup", "main", "--port", "auto", "--json")
    assert proc.returncode == 0, proc.stderr
    data = envelope(proc, "setup", True)["data"]
    assert data["action"] == "created"
    assert data["profile"]["name"] == "main" and data["profile"]["port"] == 18789
    assert data["profile"]["footprint"] == [18789, 18899]
    token = Path(data["profile"]["token_file"]).read_text().strip()
    assert token not in proc.stdout


def test_ls_json_is_the_envelope_with_every_profile(two_profiles: Path) -> None:
    proc = orch(two_profiles, "ls", "--json")
    assert proc.returncode == 0
    data = envelope(proc, "ls", True)["data"]
    assert [p["name"] for p in data["profiles"]] == ["main", "rescue"]
    assert data["home"] == str(two_profiles)


def test_ports_json_lists_every_role_of_the_named_profile(two_profiles: Path) -> None:
    proc = orch(two_profiles, "ports", "rescue", "--json")
    data = envelope(proc, "ports", True)["data"]
    assert [p["name"] for p in data["profiles"]] == ["rescue"]
    roles = {
        r["role"]: (r["start"], r["end"], r["published"]) for r in data["profiles"][0]["roles"]
    }
    assert roles["gateway"] == (18900, 18900, True)
    assert roles["cdp"] == (18911, 19010, False)


def test_check_json_is_the_envelope_with_no_problems_and_what_it_did_not_check(
    two_profiles: Path,
) -> None:
    proc = orch(two_profiles, "check", "--json")
    assert proc.returncode == 0
    data = envelope(proc, "check", True)["data"]
    unchecked = data.pop("unchecked")
    assert data == {"profiles": 2, "ok": True, "problems": [], "warnings": []}
    # No engine answers in unit tests: neither config met the gateway's schema.
    assert [u["owners"] for u in unchecked] == [["main"], ["rescue"], []]


def test_render_json_is_the_envelope_with_the_spec(two_profiles: Path) -> None:
    proc = orch(two_profiles, "render", "rescue", "--json")
    data = envelope(proc, "render", True)["data"]
    assert data["profile"] == "rescue" and data["base_port"] == 18900
    assert data["cap_drop"] == ["ALL"]


def test_schema_json_is_the_envelope_with_the_fleet_schema(home: Path) -> None:
    proc = orch(home, "schema", "--json")
    data = envelope(proc, "schema", True)["data"]
    assert "profiles" in data["properties"]
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    # The schema accepts what orch writes (a profile's name is its key, not a field)...
    rich = Profile.model_validate(
        {
            "name": "main",
            "port": 18789,
            "bind_ip": "::1",
            "publish": ["gateway", "cdp"],
            "dirs": {"state": "/srv/main/state"},
            "browser_profiles": {"chrome": {"cdp_port": 9222}},
        }
    )
    save_fleet(home, fleet_of(rich, Profile(name="rescue", port=18900, rescues="main")))
    doc = yaml.safe_load(fleet_path(home).read_text())
    jsonschema.validate(doc, data)
    # ...and refuses what orch refuses.
    doc["profiles"]["main"]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, data)


def test_an_error_in_json_mode_is_an_ok_false_envelope_with_type_message_and_hint(
    home: Path,
) -> None:
    proc = orch(home, "setup", "Main", "--json")
    assert proc.returncode == 2
    error = envelope(proc, "setup", False)["error"]
    assert error["type"] == "UsageError"
    assert "uppercase" in error["message"]
    assert error["hint"]
    assert error["exit_code"] == 2


def test_an_unknown_profile_in_json_mode_is_an_unknown_profile_error(two_profiles: Path) -> None:
    proc = orch(two_profiles, "render", "ghost", "--json")
    assert proc.returncode == 2
    error = envelope(proc, "render", False)["error"]
    assert error["type"] == "UnknownProfileError"
    assert "no profile named 'ghost'" in error["message"]
    assert error["hint"] == "create it with `orch setup ghost`"


def test_a_collision_in_json_mode_lists_the_problems_and_exits_1(two_profiles: Path) -> None:
    proc = orch(two_profiles, "setup", "third", "--port", "18809", "--json")
    assert proc.returncode == 1
    error = envelope(proc, "setup", False)["error"]
    assert error["type"] == "CheckFailed"
    assert error["problems"] and all("third" in p["owners"] for p in error["problems"])


# --- orch check -------------------------------------------------------------------------


def test_check_exits_0_on_a_clean_fleet(two_profiles: Path) -> None:
    proc = orch(two_profiles, "check")
    assert proc.returncode == 0
    first, *rest = proc.stdout.splitlines()
    assert first == "ok: no problems in 2 profiles; 3 items not checked"
    assert rest[0] == "not checked:"
    assert "main " in rest[1] and "gateway's schema: no Docker engine answers" in rest[1]
    hint = "to check it: start one (`orch engine start`), then run `orch check` again"
    assert rest[-1].strip() == hint


def test_check_exits_1_and_prints_every_problem(home: Path) -> None:
    save_with_files(
        home,
        fleet_of(
            Profile(name="main", port=18789),
            Profile(name="rescue", port=18809),
            Profile(name="lost", port=30000, rescues="ghost"),
        ),
    )
    proc = orch(home, "check")
    assert proc.returncode == 1
    assert proc.stdout.startswith("7 problems:")
    assert (
        "rescue cdp 18820-18919 overlaps main cdp 18800-18899 on 127.0.0.1 (ports 18820-18899);"
        " nearest free base for rescue: 18900"
    ) in proc.stdout
    assert "lost rescues 'ghost'" in proc.stdout
    as_json = orch(home, "check", "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False, "a script reading the top-level ok must see the failure"
    assert doc["data"]["ok"] is False and len(doc["data"]["problems"]) == 7


def test_check_on_a_broken_fleet_file_says_the_line_and_exits_2(home: Path) -> None:
    home.mkdir()
    fleet_path(home).write_text("version: 1\nprofiles:\n  main:\n    port: 18789\n    port: 1\n")
    proc = orch(home, "check")
    assert proc.returncode == 2
    assert "line 5" in proc.stderr and "duplicate key 'port'" in proc.stderr
    assert proc.stdout == ""


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("setup", "Main"), "uppercase"),
        (("setup", ".."), "'.' is not allowed"),
        (("setup", "a/b"), "cannot contain a slash"),
        (("setup", "all"), "'all' is reserved"),
        (("setup", "main", "--port", "abc"), "--port: 'abc' is not a port number"),
        (("setup", "main", "--port", "70000"), "--port: base port 70000 is too high"),
        (("setup", "main", "--port", "65426"), "the highest usable base is 65425"),
        (("setup", "main", "--port", "0"), "out of range"),
        (("setup", "main", "--bind-ip", "localhost"), "is not an IP address"),
        (("setup", "main", "--publish", "gateway,ssh"), "--publish: unknown role 'ssh'"),
        (("setup", "main", "--rescues", "Main"), "--rescues:"),
    ],
)
def test_bad_setup_input_is_a_clear_error_that_leaves_the_home_untouched(
    two_profiles: Path, args: tuple[str, ...], expected: str
) -> None:
    before = snapshot(two_profiles)
    proc = orch(two_profiles, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(two_profiles) == before


def test_bad_input_in_a_fresh_home_does_not_create_it(home: Path) -> None:
    for args in (("setup", "Main"), ("setup", "main", "--port", "abc")):
        assert orch(home, *args).returncode == 2
    assert not home.exists()


@pytest.mark.parametrize(
    "args", [("rm", "ghost"), ("render", "ghost"), ("ports", "ghost"), ("rm", "ghost", "--purge")]
)
def test_an_unknown_profile_is_a_clear_error_that_changes_nothing(
    two_profiles: Path, args: tuple[str, ...]
) -> None:
    before = snapshot(two_profiles)
    proc = orch(two_profiles, *args)
    assert proc.returncode == 2
    assert "error: no profile named 'ghost' in the fleet (known: main, rescue)" in proc.stderr
    assert "hint: create it with `orch setup ghost`" in proc.stderr
    assert snapshot(two_profiles) == before


def test_a_conflicting_setup_is_refused_with_a_hint_to_force(home: Path) -> None:
    assert orch(home, "setup", "main", "--port", "20000").returncode == 0
    before = snapshot(home)
    proc = orch(home, "setup", "main", "--port", "21000")
    assert proc.returncode == 2
    assert "port: 20000 -> 21000" in proc.stderr and "--force" in proc.stderr
    assert snapshot(home) == before


# --- setup, render and rm end to end ----------------------------------------------------


def test_setup_then_render_never_prints_the_token(home: Path) -> None:
    proc = orch(home, "setup", "main")
    assert proc.returncode == 0
    assert proc.stdout.startswith("created: main on 127.0.0.1, base port 18789 (owns 18789-18899)")
    token_file = home / "secrets" / "main" / "gateway_token"
    token = token_file.read_text().strip()
    assert token not in proc.stdout and "never printed" in proc.stdout
    for args in (("render", "main"), ("render", "main", "--format", "json"), ("ls", "--json")):
        out = orch(home, *args)
        assert out.returncode == 0
        assert token not in out.stdout
    assert str(token_file) in orch(home, "render", "main").stdout


def test_setup_sets_and_keeps_the_cpu_limit_and_the_root_a_profile_runs_with(home: Path) -> None:
    assert orch(home, "setup", "main", "--cpus", "1.5", "--writable-root").returncode == 0
    assert load_fleet(home).profiles["main"].model_dump(include={"cpus", "read_only_root"}) == {
        "cpus": 1.5,
        "read_only_root": False,
    }
    spec = json.loads(orch(home, "render", "main", "--format", "json").stdout)
    assert (spec["cpus"], spec["read_only"], spec["tmpfs"]) == (1.5, False, [])
    assert orch(home, "setup", "main").stdout.startswith("unchanged: main")  # kept
    proc = orch(home, "setup", "main", "--read-only-root")
    assert proc.returncode == 2 and "read_only_root: False -> True" in proc.stderr
    assert orch(home, "setup", "main", "--read-only-root", "--cpus", "0", "--force").returncode == 0
    ls = envelope(orch(home, "ls", "--json"), "ls", True)["data"]["profiles"][0]
    assert (ls["cpus"], ls["read_only_root"]) == (0, True)


def test_setup_twice_says_unchanged(home: Path) -> None:
    assert orch(home, "setup", "main").returncode == 0
    before = snapshot(home)
    proc = orch(home, "setup", "main")
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged: main")
    assert snapshot(home) == before


def test_rm_purge_without_yes_and_without_a_terminal_refuses(home: Path) -> None:
    assert orch(home, "setup", "main").returncode == 0
    before = snapshot(home)
    proc = orch(home, "rm", "main", "--purge")
    assert proc.returncode == 2
    assert "--purge would delete 4 paths of 'main'" in proc.stderr
    assert "--yes" in proc.stderr
    assert snapshot(home) == before


def test_rm_purge_with_yes_deletes_the_dirs(home: Path) -> None:
    assert orch(home, "setup", "main").returncode == 0
    proc = orch(home, "rm", "main", "--purge", "--yes", "--json")
    assert proc.returncode == 0
    data = envelope(proc, "rm", True)["data"]
    assert len(data["purged"]) == 4 and data["kept"] == []
    assert all(not Path(p).exists() for p in data["purged"])
    assert load_fleet(home).profiles == {}


def test_rm_keeps_the_dirs_and_says_so(home: Path) -> None:
    assert orch(home, "setup", "main").returncode == 0
    proc = orch(home, "rm", "main")
    assert proc.returncode == 0
    assert proc.stdout.startswith("removed main from the fleet")
    assert proc.stdout.count("  kept    ") == 3
    assert (home / "profiles" / "main" / "state").is_dir()


def test_render_refuses_an_unknown_format(two_profiles: Path) -> None:
    proc = orch(two_profiles, "render", "main", "--format", "toml")
    assert proc.returncode == 2 and "--format: 'toml' is not yaml or json" in proc.stderr


# --- adopted dirs -----------------------------------------------------------------------


def test_setup_help_says_exactly_what_chown_changes(home: Path) -> None:
    text = " ".join(orch(home, "setup", "--help").stdout.split())
    assert "--chown" in text
    assert "chown -R UID:GID of every entry in it not owned by that user yet" in text
    assert "(symlinks not followed" in text and "chmod 0700 on the dir itself" in text
    assert "Without it an adopted dir's owner and mode are never changed" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a dir to uid 4242 needs root")
def test_setup_of_another_users_dir_exits_2_and_names_the_fix(home: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, 4242)
    proc = orch(home, "setup", "main", "--state-dir", str(theirs), "--json")
    assert proc.returncode == 2, proc.stderr
    error = envelope(proc, "setup", False)["error"]
    assert error["type"] == "UnsafeDir" and error["exit_code"] == 2
    (problem,) = error["problems"]
    assert problem["code"] == "dir-other-user" and problem["paths"] == [str(theirs)]
    assert f"chown -R 1000:1000 {theirs}" in error["hint"]
    text = orch(home, "setup", "main", "--state-dir", str(theirs))
    assert text.returncode == 2 and "Traceback" not in text.stderr
    assert f"main state dir {theirs} belongs to uid 4242" in text.stderr
    assert not fleet_path(home).exists() and sorted(os.listdir(theirs)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a dir to uid 4242 needs root")
def test_setup_chown_says_what_it_changed(home: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "file").write_text("x")
    for path in (theirs, theirs / "file"):
        os.chown(path, 4242, 4242)
    proc = orch(home, "setup", "main", "--state-dir", str(theirs), "--chown")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"  --chown: owner of 2 entries in {theirs}: 4242:4242 -> 1000:1000 (symlinks not followed)"
    ) in proc.stdout
    assert f"  --chown: mode of {theirs}: 0755 -> 0700" in proc.stdout
    assert f"  state      {theirs} (adopted: orch did not create it)" in proc.stdout


def test_rm_purge_names_the_adopted_dirs_it_keeps(home: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    if os.geteuid() == 0:
        os.chown(mine, 1000, 1000)
    assert orch(home, "setup", "main", "--workspace-dir", str(mine)).returncode == 0
    asked = orch(home, "rm", "main", "--purge")
    assert "--purge would delete 3 paths of 'main'" in asked.stderr
    proc = orch(home, "rm", "main", "--purge", "--yes", "--json")
    data = envelope(proc, "rm", True)["data"]
    assert data["adopted"] == [str(mine)] and data["kept"] == [str(mine)]
    assert str(mine) not in data["purged"] and mine.is_dir()
    assert orch(home, "setup", "main", "--workspace-dir", str(mine)).returncode == 0
    text = orch(home, "rm", "main", "--purge", "--yes").stdout
    assert f"  kept    {mine} (adopted: orch did not create it)" in text


def test_a_fleet_file_dir_in_a_users_home_is_refused_by_check_and_exports(
    home: Path, tmp_path: Path
) -> None:
    users_home = os.environ["HOME"]  # a temp dir here: the real homes are never pointed at
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    text = fleet_path(home).read_text()
    fleet_path(home).write_text(
        text.replace("port: 18789", f"port: 18789\n    dirs: {{workspace: {users_home}}}")
    )
    check = orch(home, "check", "--json")
    assert check.returncode == 1
    (problem,) = json.loads(check.stdout)["data"]["problems"]
    assert problem["code"] == "dir-forbidden" and problem["paths"] == [users_home, users_home]
    out = tmp_path / "compose.yaml"
    for kind in ("compose", "stack"):
        proc = orch(home, "export", kind, "-o", str(out), "--json")
        assert proc.returncode == 1, proc.stderr
        problems = envelope(proc, f"export {kind}", False)["error"]["problems"]
        assert [p["code"] for p in problems] == ["dir-forbidden"]
    assert not out.exists()
