"""Bad input and half-done work, without Docker: fleet files cut short, writes that
fail half way, unsafe or missing files found by `orch check`, exit codes explained."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.core.check import file_problems
from orchestrator.core.exits import exit_meaning, last_error_line
from orchestrator.errors import FleetFileError, OrchError
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import CACHE_FILE, LAST_GOOD_FILE, last_good_fleet, load_fleet

from ..helpers import snapshot


def test_a_fleet_file_cut_mid_number_is_refused_with_its_line(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=41000))
    text = (home / "fleet.yaml").read_text()
    (home / "fleet.yaml").write_text(text.replace("port: 41000", "port: 41"))
    with pytest.raises(FleetFileError) as caught:
        load_fleet(home)
    assert "below 1024" in caught.value.message and "line " in caught.value.message


def test_a_privileged_base_is_accepted_when_the_profile_allows_it(home: Path) -> None:
    result = setup(home, SetupRequest(name="web", port=80, allow_privileged_ports=True))
    assert result.profile.port == 80
    assert "allow_privileged_ports: true" in (home / "fleet.yaml").read_text()
    assert load_fleet(home).profiles["web"].port == 80


def test_orch_keeps_the_last_good_fleet_file(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=30000))
    (home / "fleet.yaml").write_text("version: 1\nproject: x\n")  # cut short
    good = last_good_fleet(home)
    assert good is not None and set(good.profiles) == {"main"}
    assert (home / LAST_GOOD_FILE).exists()


def test_an_unwritable_cache_never_fails_a_setup_and_never_half_commits(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=30000))
    cache = home / CACHE_FILE
    cache.unlink()
    cache.mkdir()  # a dir where the cache file goes: every write of it fails
    result = setup(home, SetupRequest(name="x", port=30200))
    assert result.action == "created"
    fleet = load_fleet(home)
    assert set(fleet.profiles) == {"main", "x"}
    assert result.dirs.token_file.exists() and result.dirs.state.is_dir()


def test_a_failed_fleet_write_leaves_no_dirs_no_token_and_the_old_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(home, SetupRequest(name="main", port=30000))
    before = snapshot(home)
    from orchestrator.fleet import store

    real = store.atomic_write

    def failing(path: Path, data, mode: int = 0o644) -> None:
        if path.name == "fleet.yaml":
            raise OSError(28, "No space left on device", str(path))
        real(path, data, mode)

    monkeypatch.setattr(store, "atomic_write", failing)
    with pytest.raises(OrchError) as caught:
        setup(home, SetupRequest(name="x", port=30200))
    assert "nothing was changed" in caught.value.hint
    monkeypatch.undo()
    after = snapshot(home)
    assert {k for k in after if not k.startswith(".fleet")} == {
        k for k in before if not k.startswith(".fleet")
    }
    assert set(load_fleet(home).profiles) == {"main"}


def test_check_reports_a_token_file_readable_by_others_and_setup_repairs_it(home: Path) -> None:
    result = setup(home, SetupRequest(name="main", port=30000))
    os.chmod(result.dirs.token_file, 0o644)
    fleet = load_fleet(home)
    (problem,) = file_problems(fleet, home)
    assert problem.code == "token-mode" and "0644" in problem.message
    assert "orch setup main" in problem.hint
    assert setup(home, SetupRequest(name="main")).action == "updated"
    assert stat.S_IMODE(result.dirs.token_file.stat().st_mode) == 0o600
    assert file_problems(load_fleet(home), home) == []


def test_check_reports_a_deleted_profile_dir_and_token(home: Path) -> None:
    import shutil

    result = setup(home, SetupRequest(name="main", port=30000))
    shutil.rmtree(result.dirs.state)
    result.dirs.token_file.unlink()
    problems = file_problems(load_fleet(home), home)
    assert {(p.code, Path(p.paths[0]).name) for p in problems} == {
        ("file-missing", "state"),
        ("file-missing", "gateway_token"),
    }


@pytest.mark.parametrize(
    ("code", "oom", "words"),
    [
        (0, False, "cleanly"),
        (78, False, "configuration error"),
        (137, False, "SIGKILL"),
        (137, True, "out of memory"),
        (143, False, "SIGTERM"),
        (250, False, "signal 122"),
        (3, False, "exit code 3"),
    ],
)
def test_exit_codes_are_explained(code: int, oom: bool, words: str) -> None:
    assert words in exit_meaning(code, oom)


def test_the_last_error_line_of_a_log_is_found() -> None:
    log = "starting\nGateway start blocked: set gateway.mode=local (current: bogus-mode)\nbye\n"
    assert (
        last_error_line(log)
        == "Gateway start blocked: set gateway.mode=local (current: bogus-mode)"
    )
    assert last_error_line("all good\n") is None
