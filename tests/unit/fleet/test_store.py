"""The fleet file on disk: precise errors, atomic writes, the lock (orchestrator/store.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.core.model import Fleet, Profile
from orchestrator.errors import FleetFileError
from orchestrator.fleet.store import (
    atomic_write,
    default_project,
    dump_fleet,
    fleet_path,
    load_fleet,
    locked,
    orch_home,
    parse_fleet,
    save_fleet,
)

from ..helpers import fleet_of


def load_error(home: Path, text: str | bytes) -> str:
    """Write `text` as the fleet file of `home` and return the load error's message."""
    home.mkdir(parents=True, exist_ok=True)
    path = fleet_path(home)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FleetFileError) as info:
        load_fleet(home)
    assert str(path) in info.value.message  # every error names the file
    assert info.value.hint
    return info.value.message


# --- where the fleet lives --------------------------------------------------------------


def test_orch_home_is_orch_home_from_the_environment(home: Path) -> None:
    assert orch_home() == home


def test_a_relative_orch_home_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCH_HOME", "rel/home")
    assert orch_home() == tmp_path / "rel" / "home"


# --- reading ----------------------------------------------------------------------------


def test_no_fleet_file_is_an_empty_fleet(home: Path) -> None:
    assert load_fleet(home).profiles == {}
    assert not home.exists()  # reading never creates anything


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_fleet_file_is_an_empty_fleet(home: Path, text: str) -> None:
    home.mkdir()
    fleet_path(home).write_text(text)
    assert load_fleet(home) == Fleet(project=default_project(home))


def test_a_saved_fleet_loads_back_equal(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="main", port=18789),
        Profile(name="rescue", port=18900, bind_ip="0.0.0.0", rescues="main", publish=["cdp"]),
    )
    save_fleet(home, fleet)
    assert load_fleet(home) == fleet


def test_the_written_file_is_short_with_defaults_left_out(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="main", port=18789)))
    text = fleet_path(home).read_text()
    assert "main:\n    port: 18789\n" in text
    assert "image" not in text and "bind_ip" not in text


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nprofiles:\n  main:\n    port: 18789: 1\n", 4),  # a second colon
        ("version: 1\nprofiles:\n  main:\n\tport: 18789\n", 4),  # a tab indent
        ("version: 1\nprofiles:\n  main:\n    port: 18789\n   bad\n", 5),  # broken indent
    ],
)
def test_corrupt_yaml_names_the_line_it_breaks_on(home: Path, text: str, line: int) -> None:
    message = load_error(home, text)
    assert f"line {line}, column" in message and "not valid YAML" in message


def test_a_wrong_type_deep_in_a_profile_names_the_line_of_that_key(home: Path) -> None:
    text = (
        "version: 1\n"
        "profiles:\n"
        "  main:\n"
        "    port: 18789\n"
        "    browser_profiles:\n"
        "      chrome:\n"
        "        cdp_port: abc\n"
    )
    message = load_error(home, text)
    assert "line 7: profiles.main.browser_profiles.chrome.cdp_port:" in message
    assert "valid integer" in message


def test_every_invalid_value_is_reported_with_its_own_line(home: Path) -> None:
    text = (
        "version: 1\n"
        "profiles:\n"
        "  main:\n"
        "    port: 0\n"
        "  rescue:\n"
        "    port: 18900\n"
        "    bind_ip: nope\n"
    )
    message = load_error(home, text)
    assert "line 4: profiles.main.port: base port 0 is out of range" in message
    assert "line 7: profiles.rescue.bind_ip: 'nope' is not an IP address" in message


def test_a_base_that_overflows_the_cdp_range_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  main:\n    port: 65426\n")
    assert "line 4: profiles.main.port: base port 65426 is too high" in message


def test_a_duplicate_key_is_refused_naming_both_lines(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  main:\n    port: 18789\n    port: 18900\n")
    assert "line 5" in message and "duplicate key 'port' (first on line 4)" in message


def test_a_duplicate_profile_is_refused_naming_both_lines(home: Path) -> None:
    text = "version: 1\nprofiles:\n  main:\n    port: 18789\n  main:\n    port: 18900\n"
    message = load_error(home, text)
    assert "line 5" in message and "duplicate key 'main' (first on line 3)" in message


def test_an_unknown_key_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  main:\n    port: 18789\n    colour: red\n")
    assert "line 5: profiles.main.colour: Extra inputs are not permitted" in message


def test_an_unknown_top_level_key_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofile:\n  main:\n    port: 18789\n")
    assert "line 2: profile: Extra inputs are not permitted" in message


def test_another_fleet_file_version_is_refused(home: Path) -> None:
    message = load_error(home, "version: 2\nprofiles: {}\n")
    assert "line 1: version: fleet file version 2 is not supported (expected 1)" in message


def test_a_fleet_file_that_is_not_a_mapping_is_refused(home: Path) -> None:
    message = load_error(home, "- main\n- rescue\n")
    assert "must be a mapping" in message


def test_an_invalid_profile_name_in_the_file_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  Main:\n    port: 18789\n")
    assert "line 3: profiles.Main.name:" in message and "uppercase" in message


def test_an_empty_profile_entry_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  main:\n")
    assert "line 3: profiles.main:" in message


def test_an_unhashable_key_is_a_yaml_error_with_its_line(home: Path) -> None:
    message = load_error(home, "version: 1\nprofiles:\n  ? [a, b]\n  : 1\n")
    assert "line 3" in message and "unhashable key" in message


def test_a_file_damaged_into_binary_is_refused_with_its_line(home: Path) -> None:
    message = load_error(home, b"version: 1\nprofiles:\n  main:\n    port: \xff\xfe\n")
    assert "line 4: not UTF-8 text" in message


def test_a_fleet_path_that_is_a_directory_is_a_clear_error(home: Path) -> None:
    fleet_path(home).mkdir(parents=True)
    with pytest.raises(FleetFileError, match="cannot read"):
        load_fleet(home)


@pytest.mark.parametrize("libyaml", [True, False])
def test_yaml_nested_too_deeply_to_read_is_a_clear_error(
    home: Path, libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libyaml stops at a depth of its own; PyYAML's pure parser hits Python's
    recursion limit, which must not end in a traceback either."""
    import yaml

    from orchestrator.fleet import store

    if not libyaml:
        monkeypatch.setattr(store, "_yaml_loader", lambda: yaml.SafeLoader)
    message = load_error(home, "version: 1\nprofiles: " + "[" * 5000 + "]" * 5000 + "\n")
    expected = "maximum nesting depth" if libyaml else "nested too deeply to read"
    assert expected in message


@pytest.mark.parametrize(
    ("dirs", "expected"),
    [
        ('{state: "a\\0b"}', "profiles.main.dirs.state: a dir cannot contain a NUL byte"),
        ("{config: ''}", "profiles.main.dirs.config: a dir cannot be empty"),
    ],
)
def test_a_dir_the_os_cannot_take_is_refused_with_its_line(
    home: Path, dirs: str, expected: str
) -> None:
    message = load_error(
        home, f"version: 1\nprofiles:\n  main:\n    port: 20000\n    dirs: {dirs}\n"
    )
    assert f"line 5: {expected}" in message


def test_parse_errors_name_the_given_source() -> None:
    with pytest.raises(FleetFileError, match=r"^fleet\.yaml: invalid fleet file:\n  line 1:"):
        parse_fleet("version: 2\n", "fleet.yaml")


# --- writing ----------------------------------------------------------------------------


def test_atomic_write_creates_the_file_with_the_given_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "secret"
    atomic_write(path, "s3cret", mode=0o600)
    assert path.read_text() == "s3cret"
    assert path.stat().st_mode & 0o777 == 0o600


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("old content\n")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "new content that must not appear half-written\n" * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old content\n"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.yaml"]


def test_a_write_interrupted_midway_never_leaves_a_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content goes to a temp file first: a crash while writing (here: after the
    first chunk) leaves the target untouched."""
    path = tmp_path / "fleet.yaml"
    path.write_text("old content\n")
    real_fdopen = os.fdopen

    class Dying:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[:10])
            raise KeyboardInterrupt  # a BaseException, like a signal or SystemExit

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Dying(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, "new content\n" * 100)
    monkeypatch.undo()
    assert path.read_text() == "old content\n"
    assert leftovers(tmp_path) == []


def test_save_fleet_writes_a_header_that_points_to_check_and_schema(home: Path) -> None:
    save_fleet(home, Fleet())
    text = fleet_path(home).read_text()
    assert text.startswith("# orch fleet file")
    assert "orch check" in text and "orch schema" in text
    assert text == dump_fleet(Fleet())


def test_a_hand_edit_after_orch_saved_is_read_from_the_yaml_not_the_cache(tmp_path: Path) -> None:
    from orchestrator.core.model import Fleet, Profile
    from orchestrator.fleet.store import CACHE_FILE, fleet_path, load_fleet, save_fleet

    save_fleet(tmp_path, Fleet(profiles={"main": Profile(name="main", port=18789)}))
    assert (tmp_path / CACHE_FILE).exists()
    path = fleet_path(tmp_path)
    path.write_text(path.read_text().replace("port: 18789", "port: 20000"))
    assert load_fleet(tmp_path).profiles["main"].port == 20000


def test_a_hand_broken_file_is_reported_even_with_a_cache_present(tmp_path: Path) -> None:
    from orchestrator.core.model import Fleet, Profile
    from orchestrator.errors import FleetFileError
    from orchestrator.fleet.store import fleet_path, load_fleet, save_fleet

    save_fleet(tmp_path, Fleet(profiles={"main": Profile(name="main", port=18789)}))
    path = fleet_path(tmp_path)
    path.write_text(path.read_text().replace("port: 18789", "port: [oops"))
    with pytest.raises(FleetFileError, match="line"):
        load_fleet(tmp_path)


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    from orchestrator.core.model import Fleet, Profile
    from orchestrator.fleet.store import CACHE_FILE, load_fleet, save_fleet

    save_fleet(tmp_path, Fleet(profiles={"main": Profile(name="main", port=18789)}))
    (tmp_path / CACHE_FILE).write_text("{not json")
    assert load_fleet(tmp_path).profiles["main"].port == 18789


# --- the fleet lock ----------------------------------------------------------------


def test_a_command_that_fails_in_a_fresh_home_leaves_no_home(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b" / "home"
    with pytest.raises(RuntimeError), locked(home):
        assert (home / ".fleet.lock").exists()
        raise RuntimeError("bad input")
    assert not (tmp_path / "a").exists()
    with locked(home):
        atomic_write(home / "fleet.yaml", "version: 1\n")
    assert (home / "fleet.yaml").exists()  # a home with something in it stays
