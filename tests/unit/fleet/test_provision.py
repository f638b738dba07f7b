"""`orch setup` and `orch rm` in the core: dirs, token, openclaw.json and the fleet file,
decided before anything is written and undone on failure (orchestrator/provision.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core.check import check_fleet
from orchestrator.core.model import Profile
from orchestrator.core.paths import MARKER_FILE, profile_dirs
from orchestrator.core.spec import WORKSPACE_DIR, render
from orchestrator.errors import CheckFailed, OrchError, UnknownProfileError, UsageError
from orchestrator.fleet import provision
from orchestrator.fleet.provision import SetupRequest, remove, setup
from orchestrator.fleet.store import fleet_path, load_fleet, save_fleet

from ..helpers import fleet_of, gateway_dir, snapshot

JSON5_CONFIG = """// my own gateway config, written by hand
{
  gateway: {
    port: 1234,          // orch replaces this
    customHeader: 'x',   /* and keeps this */
  },
  models: { default: "my-model", },   // a key orch knows nothing about
}
"""


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# --- a fresh setup ----------------------------------------------------------------------


def test_setup_creates_config_state_and_workspace_dirs_with_mode_0700(home: Path) -> None:
    result = setup(home, SetupRequest(name="main"))
    assert result.action == "created"
    for kind, path in result.dirs.items():
        assert path.is_dir(), kind
        assert mode(path) == 0o700, kind
        assert path.stat().st_uid == result.profile.uid, kind  # the container's user
        assert (path / MARKER_FILE).read_text() == "main\ncreated\n"


def test_setup_writes_a_0600_token_that_appears_nowhere_else(home: Path) -> None:
    result = setup(home, SetupRequest(name="main"))
    token_file = result.dirs.token_file
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert mode(token_file) == 0o600
    assert token not in fleet_path(home).read_text()
    fleet = load_fleet(home)
    spec = render(fleet.get("main"), fleet, home).model_dump_json()
    assert token not in spec
    assert str(token_file) in spec  # it is mounted as a file instead


def test_each_profile_gets_its_own_token(home: Path) -> None:
    a = setup(home, SetupRequest(name="a")).dirs.token_file.read_text()
    b = setup(home, SetupRequest(name="b")).dirs.token_file.read_text()
    assert a != b


def test_setup_writes_the_minimal_gateway_config(home: Path) -> None:
    result = setup(home, SetupRequest(name="main", port=20000))
    config = json.loads(result.dirs.config_file.read_text())
    assert mode(result.dirs.config_file) == 0o600
    gateway = config["gateway"]
    assert gateway["mode"] == "local"
    assert gateway["port"] == 20000
    assert gateway["bind"] == "lan"
    assert gateway["auth"] == {"mode": "token"}
    assert gateway["controlUi"]["allowedOrigins"] == [
        "http://127.0.0.1:20000",
        "http://localhost:20000",
    ]
    assert config["agents"]["defaults"]["workspace"] == WORKSPACE_DIR


def test_a_specific_bind_ip_is_an_allowed_origin_too(home: Path) -> None:
    result = setup(home, SetupRequest(name="main", bind_ip="192.168.7.7"))
    config = json.loads(result.dirs.config_file.read_text())
    assert "http://192.168.7.7:18789" in config["gateway"]["controlUi"]["allowedOrigins"]


def test_the_fleet_file_holds_the_new_profile(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=20000, bind_ip="127.0.0.2", publish=("gateway",)))
    profile = load_fleet(home).get("main")
    assert (profile.port, profile.bind_ip, [r.value for r in profile.publish]) == (
        20000,
        "127.0.0.2",
        ["gateway"],
    )


# --- --port auto ------------------------------------------------------------------------


def test_port_auto_starts_at_18789_and_the_next_profile_gets_18900(home: Path) -> None:
    assert setup(home, SetupRequest(name="main", port="auto")).profile.port == 18789
    assert setup(home, SetupRequest(name="rescue", port="auto")).profile.port == 18900
    assert setup(home, SetupRequest(name="third")).profile.port == 19011  # no --port = auto
    assert check_fleet(load_fleet(home), home) == []


def test_port_auto_fills_the_lowest_gap_that_fits_a_whole_footprint(home: Path) -> None:
    save_fleet(
        home,
        fleet_of(
            Profile(name="a", port=18789),  # 18789-18899
            Profile(name="b", port=18950),  # 18950-19060: 50 free ports between, too few
            Profile(name="c", port=19250),  # 19061-19249 is free: 189 ports
        ),
    )
    assert setup(home, SetupRequest(name="d", port="auto")).profile.port == 19061


def test_port_auto_ignores_profiles_on_other_addresses(home: Path) -> None:
    setup(home, SetupRequest(name="a"))
    assert setup(home, SetupRequest(name="b", bind_ip="127.0.0.2")).profile.port == 18789


def test_port_auto_on_the_wildcard_avoids_every_address(home: Path) -> None:
    setup(home, SetupRequest(name="a", bind_ip="127.0.0.2"))
    assert setup(home, SetupRequest(name="b", bind_ip="0.0.0.0")).profile.port == 18900


def test_port_auto_with_no_room_left_is_a_clear_error(home: Path) -> None:
    full = [Profile(name=f"p{i}", port=18789 + 111 * i) for i in range((65425 - 18789) // 111 + 1)]
    save_fleet(home, fleet_of(*full))
    before = snapshot(home)
    with pytest.raises(UsageError, match="no free port footprint left at or above 18789"):
        setup(home, SetupRequest(name="extra", port="auto"))
    assert snapshot(home) == before


def test_an_invalid_bind_ip_is_a_usage_error_even_with_port_auto(home: Path) -> None:
    setup(home, SetupRequest(name="a"))  # the auto port now compares addresses
    before = snapshot(home)
    with pytest.raises(UsageError, match="'not-an-ip' is not an IP address"):
        setup(home, SetupRequest(name="b", bind_ip="not-an-ip"))
    assert snapshot(home) == before


# --- running setup again ----------------------------------------------------------------


def test_setup_twice_changes_nothing_at_all(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=20000))
    before = snapshot(home)
    result = setup(home, SetupRequest(name="main", port=20000))
    assert result.action == "unchanged"
    assert snapshot(home) == before  # same bytes, modes and mtimes, fleet.yaml included


def test_setup_again_without_options_keeps_the_profile(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=20000, bind_ip="127.0.0.3"))
    before = snapshot(home)
    assert setup(home, SetupRequest(name="main")).action == "unchanged"
    assert snapshot(home) == before


def test_a_conflicting_rerun_is_refused_and_changes_nothing(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=20000))
    before = snapshot(home)
    with pytest.raises(UsageError) as info:
        setup(home, SetupRequest(name="main", port=21000))
    assert "already exists with other settings: port: 20000 -> 21000" in info.value.message
    assert "--force" in info.value.hint
    assert snapshot(home) == before


def test_a_conflicting_rerun_with_force_updates_fleet_and_config(home: Path) -> None:
    first = setup(home, SetupRequest(name="main", port=20000))
    token = first.dirs.token_file.read_text()
    result = setup(home, SetupRequest(name="main", port=21000), force=True)
    assert result.action == "updated"
    assert result.changes == ["port: 20000 -> 21000"]
    assert load_fleet(home).get("main").port == 21000
    assert json.loads(result.dirs.config_file.read_text())["gateway"]["port"] == 21000
    assert result.config_backup and result.config_backup.exists()
    assert json.loads(result.config_backup.read_text())["gateway"]["port"] == 20000
    assert result.dirs.token_file.read_text() == token  # the token survives


def test_two_forced_changes_in_one_second_keep_both_backups(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.fleet import openclaw_config

    # Backups are named by the second: freeze the clock so both land in the same one.
    monkeypatch.setattr(openclaw_config.time, "strftime", lambda fmt: "20260906-120000")
    setup(home, SetupRequest(name="main", port=20000))
    first = setup(home, SetupRequest(name="main", port=21000), force=True).config_backup
    second = setup(home, SetupRequest(name="main", port=22000), force=True).config_backup
    assert first != second
    assert json.loads(first.read_text())["gateway"]["port"] == 20000
    assert json.loads(second.read_text())["gateway"]["port"] == 21000


# --- collisions and ownership -----------------------------------------------------------


def test_a_colliding_port_is_refused_and_nothing_is_created(home: Path) -> None:
    setup(home, SetupRequest(name="main"))
    before = snapshot(home)
    with pytest.raises(CheckFailed) as info:
        setup(home, SetupRequest(name="rescue", port=18809))
    assert "nothing was changed" in info.value.message
    assert info.value.problems and all("rescue" in p.owners for p in info.value.problems)
    assert info.value.hint == "orch setup rescue --port 18900 --force"
    assert snapshot(home) == before
    assert not (home / "profiles" / "rescue").exists()
    assert not (home / "secrets" / "rescue").exists()


def test_a_dir_shared_with_another_profile_is_refused_and_nothing_is_created(
    home: Path,
) -> None:
    main = setup(home, SetupRequest(name="main"))
    before = snapshot(home)
    with pytest.raises(CheckFailed) as info:
        setup(home, SetupRequest(name="b", state_dir=main.dirs.state))
    assert [p.code for p in info.value.problems] == ["dir-shared"]
    assert snapshot(home) == before


def test_adopting_a_dir_keeps_the_users_json5_config_and_backs_it_up(
    home: Path, tmp_path: Path
) -> None:
    mine = gateway_dir(tmp_path / "my-openclaw")
    (mine / "openclaw.json").write_text(JSON5_CONFIG)
    (mine / "notes.txt").write_text("keep me")
    result = setup(home, SetupRequest(name="main", config_dir=mine))
    config = json.loads((mine / "openclaw.json").read_text())
    assert config["models"] == {"default": "my-model"}
    assert config["gateway"]["customHeader"] == "x"
    assert config["gateway"]["port"] == 18789
    assert config["gateway"]["mode"] == "local"
    assert result.config_backup.parent == mine
    assert result.config_backup.read_text() == JSON5_CONFIG
    assert (mine / "notes.txt").read_text() == "keep me"
    assert mode(mine) == 0o755  # an adopted dir keeps its mode (no --chown)
    assert result.adopted == {"config": mine}


def test_adopting_a_dir_twice_is_unchanged(home: Path, tmp_path: Path) -> None:
    mine = gateway_dir(tmp_path / "my-openclaw")
    (mine / "openclaw.json").write_text(JSON5_CONFIG)
    setup(home, SetupRequest(name="main", config_dir=mine))
    before = snapshot(tmp_path)
    assert setup(home, SetupRequest(name="main", config_dir=mine)).action == "unchanged"
    assert snapshot(tmp_path) == before


def test_a_broken_openclaw_json_is_refused_before_anything_is_written(
    home: Path, tmp_path: Path
) -> None:
    mine = gateway_dir(tmp_path / "mine")
    (mine / "openclaw.json").write_text("{ gateway: ")
    before = snapshot(mine)
    with pytest.raises(UsageError, match="is not valid JSON5"):
        setup(home, SetupRequest(name="main", config_dir=mine))
    assert snapshot(mine) == before
    assert snapshot(home) == {}


def test_a_dir_marked_by_another_profile_is_refused(home: Path) -> None:
    old = setup(home, SetupRequest(name="old"))
    remove(home, "old")  # its dirs stay, still marked as old's
    before = snapshot(home)
    with pytest.raises(UsageError) as info:
        setup(home, SetupRequest(name="new", workspace_dir=old.dirs.workspace))
    assert "belongs to profile 'old' (removed from the fleet)" in info.value.message
    assert "--force" in info.value.hint
    assert snapshot(home) == before


def test_a_dir_marked_by_another_profile_can_be_adopted_with_force(home: Path) -> None:
    old = setup(home, SetupRequest(name="old"))
    remove(home, "old")
    result = setup(home, SetupRequest(name="new", workspace_dir=old.dirs.workspace), force=True)
    assert result.dirs.workspace == old.dirs.workspace


# --- rm ---------------------------------------------------------------------------------


def test_rm_of_an_unknown_profile_is_refused(home: Path) -> None:
    setup(home, SetupRequest(name="main"))
    before = snapshot(home)
    with pytest.raises(UnknownProfileError, match="no profile named 'ghost'"):
        remove(home, "ghost")
    assert snapshot(home) == before


def test_rm_removes_the_profile_and_keeps_its_dirs(home: Path) -> None:
    dirs = setup(home, SetupRequest(name="main")).dirs
    result = remove(home, "main")
    assert "main" not in load_fleet(home).profiles
    assert sorted(result.kept) == sorted(p for _, p in dirs.items())
    assert all(p.is_dir() for _, p in dirs.items())
    assert dirs.token_file.exists()


def test_rm_then_setup_again_reuses_the_dirs_and_the_token(home: Path) -> None:
    first = setup(home, SetupRequest(name="main"))
    token = first.dirs.token_file.read_text()
    remove(home, "main")
    again = setup(home, SetupRequest(name="main"))
    assert again.dirs == first.dirs
    assert again.dirs.token_file.read_text() == token


def test_rm_purge_deletes_the_dirs_and_the_token(home: Path) -> None:
    dirs = setup(home, SetupRequest(name="main")).dirs
    other = setup(home, SetupRequest(name="other")).dirs
    result = remove(home, "main", purge=True)
    for _, path in dirs.items():
        assert not path.exists()
    assert not dirs.secrets.exists()
    assert set(result.purged) == {p for _, p in dirs.items()} | {dirs.secrets}
    assert all(p.exists() for _, p in other.items())  # the other profile is untouched
    assert other.token_file.exists()


def test_rm_purge_keeps_an_adopted_dir_that_is_not_marked_as_its_own(
    home: Path, tmp_path: Path
) -> None:
    dirs = setup(home, SetupRequest(name="main")).dirs
    (dirs.state / MARKER_FILE).write_text("somebody-else\n")
    result = remove(home, "main", purge=True)
    assert dirs.state.exists() and dirs.state in result.kept


def test_rm_of_a_profile_rescued_by_another_is_refused(home: Path) -> None:
    setup(home, SetupRequest(name="main"))
    setup(home, SetupRequest(name="rescue", rescues="main"))
    before = snapshot(home)
    with pytest.raises(UsageError, match="'main' is rescued by rescue"):
        remove(home, "main", purge=True)
    assert snapshot(home) == before


# --- failures midway --------------------------------------------------------------------


def fail_save(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(home: Path, fleet) -> None:
        raise OSError(28, "No space left on device", str(fleet_path(home)))

    monkeypatch.setattr(provision, "save_fleet", boom)


def test_a_failure_midway_leaves_no_created_dir_behind(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(home, SetupRequest(name="main"))
    before = snapshot(home)
    fail_save(monkeypatch)
    with pytest.raises(OrchError) as info:
        setup(home, SetupRequest(name="rescue"))
    assert "No space left on device" in info.value.message
    assert snapshot(home) == before  # no dir, marker, token or openclaw.json of rescue


def test_a_failure_in_a_fresh_home_leaves_it_empty(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_save(monkeypatch)
    with pytest.raises(OrchError):
        setup(home, SetupRequest(name="main"))
    assert snapshot(home) == {}


def test_a_failure_midway_puts_an_adopted_config_back(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = gateway_dir(tmp_path / "mine")
    (mine / "openclaw.json").write_text(JSON5_CONFIG)
    fail_save(monkeypatch)
    with pytest.raises(OrchError):
        setup(home, SetupRequest(name="main", config_dir=mine))
    assert sorted(p.name for p in mine.iterdir()) == ["openclaw.json"]  # no marker, no backup
    assert (mine / "openclaw.json").read_text() == JSON5_CONFIG


# --- concurrency ------------------------------------------------------------------------


def test_six_setups_at_the_same_moment_all_end_up_in_the_fleet(home: Path) -> None:
    names = [f"p{i}" for i in range(6)]
    env = {**os.environ, "ORCH_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "setup", name, "--port", "auto"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    fleet = load_fleet(home)
    assert sorted(fleet.profiles) == names
    assert sorted(p.port for p in fleet.profiles.values()) == [18789 + 111 * i for i in range(6)]
    assert check_fleet(fleet, home) == []
    for name in names:
        assert profile_dirs(fleet.get(name), home).token_file.exists()


def test_up_of_a_profile_whose_token_was_deleted_is_refused_before_docker(home: Path) -> None:
    from orchestrator.backends.base import UpOptions
    from orchestrator.backends.project import Project
    from orchestrator.errors import CheckFailed

    result = setup(home, SetupRequest(name="main"))
    result.dirs.token_file.unlink()
    project = Project.open(home)
    with pytest.raises(CheckFailed) as info:
        project.backend.up(project, None, UpOptions())
    (problem,) = info.value.problems
    assert problem.code == "file-missing" and "gateway_token is missing" in problem.message
    assert "orch setup main" in problem.hint
