"""Fleets on one host never meet: a project of their own by default, one footprint
registry for the host (orchestrator.registry), native OpenClaw profiles avoided, and
objects recognised by their fleet (home and project), never by name alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.base.host import default_home
from orchestrator.base.owner import Owner
from orchestrator.core.check import check_fleet
from orchestrator.core.model import Profile
from orchestrator.core.observed import LiveContainer, Snapshot, live_problems, owned_by
from orchestrator.core.spec import render
from orchestrator.errors import CheckFailed
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.registry import (
    PortRegistry,
    foreign_reservations,
    other_fleets,
    registry_dir,
)
from orchestrator.fleet.store import default_project, load_fleet, save_fleet

from ..helpers import fleet_of, gateway_dir
from ..testing.test_factory import labels_of  # noqa: F401  (a run's labels, as the plugin makes them)


@pytest.fixture
def other_home(tmp_path: Path) -> Path:
    return tmp_path / "other-home"


# --- projects ------------------------------------------------------------------------


def test_the_default_home_keeps_project_orch() -> None:
    assert default_project(default_home()) == "orch"


def test_another_home_gets_a_readable_stable_project_of_its_own(tmp_path: Path) -> None:
    a, b = tmp_path / "CI Home", tmp_path / "x" / "CI Home"
    assert default_project(a) == default_project(a)
    assert default_project(a).startswith("ci-home-") and default_project(a) != default_project(b)
    assert default_project(tmp_path / "---").startswith("fleet-")


def test_the_first_setup_writes_the_derived_project_and_ls_shows_it(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=30000))
    text = (home / "fleet.yaml").read_text()
    assert f"project: {default_project(home)}" in text
    assert load_fleet(home).project == default_project(home) != "orch"


def test_an_existing_fleet_file_keeps_its_project(home: Path) -> None:
    home.mkdir()
    (home / "fleet.yaml").write_text("version: 1\nproject: orch\nprofiles: {}\n")
    setup(home, SetupRequest(name="main", port=30000))
    assert load_fleet(home).project == "orch"


def test_a_hand_written_file_without_project_gets_the_homes_project(home: Path) -> None:
    home.mkdir()
    (home / "fleet.yaml").write_text("version: 1\nprofiles:\n  main:\n    port: 30000\n")
    assert load_fleet(home).project == default_project(home)


# --- the host registry ----------------------------------------------------------------


def test_setup_records_the_fleet_in_the_host_registry_and_rm_of_the_last_forgets_it(
    home: Path,
) -> None:
    setup(home, SetupRequest(name="main", port=30000))
    (record,) = other_fleets(None)
    assert record["home"] == str(home) and record["profiles"][0]["port"] == 30000
    from orchestrator.fleet.provision import remove

    remove(home, "main")
    assert other_fleets(None) == []


def test_port_auto_in_a_second_fleet_avoids_the_first_fleets_whole_footprint(
    home: Path, other_home: Path
) -> None:
    setup(other_home, SetupRequest(name="main"))  # 18789..18899, not running
    result = setup(home, SetupRequest(name="main", port="auto"))
    assert result.profile.port == 18900


def test_a_footprint_overlapping_another_fleet_is_refused_naming_that_fleet(
    home: Path, other_home: Path
) -> None:
    setup(other_home, SetupRequest(name="main", port=18789))
    with pytest.raises(CheckFailed) as caught:
        setup(home, SetupRequest(name="web", port=18850))
    (problem,) = caught.value.problems
    assert problem.code == "port-foreign"
    assert str(other_home) in problem.message and "main of the fleet in" in problem.message
    assert "cdp" in problem.message and "18850-18899" in problem.message
    assert "nearest free base for web: 18900" in problem.message
    assert problem.hint == "orch setup web --port 18900 --force"
    assert not (home / "fleet.yaml").exists()  # nothing written


def test_check_reports_an_overlap_with_another_fleet_found_by_a_hand_edit(
    home: Path, other_home: Path
) -> None:
    setup(other_home, SetupRequest(name="main", port=18789))
    save_fleet(home, fleet_of(Profile(name="mine", port=18800)))
    problems = check_fleet(load_fleet(home), home, foreign_reservations(home))
    assert [p.code for p in problems] == ["port-foreign"]
    assert problems[0].owners == ("mine",)


def test_another_bind_address_does_not_overlap(home: Path, other_home: Path) -> None:
    setup(other_home, SetupRequest(name="main", port=18789))
    result = setup(home, SetupRequest(name="main", port=18789, bind_ip="127.0.0.2"))
    assert result.profile.port == 18789


def test_an_entry_whose_home_is_gone_is_stale_and_pruned(home: Path, other_home: Path) -> None:
    setup(other_home, SetupRequest(name="main", port=18789))
    (other_home / "fleet.yaml").unlink()
    assert setup(home, SetupRequest(name="main")).profile.port == 18789
    assert not any(registry_dir().glob("fleet-*.json")) or all(
        json.loads(p.read_text())["home"] == str(home) for p in registry_dir().glob("fleet-*.json")
    )


def test_port_auto_avoids_footprints_of_running_test_runs(home: Path) -> None:

    PortRegistry().reserve(1, "127.0.0.1", labels_of(Owner.current()), 18789, list)
    assert setup(home, SetupRequest(name="main")).profile.port == 18900


def test_test_runs_avoid_every_fleet_of_the_host(home: Path) -> None:

    setup(home, SetupRequest(name="main", port=20000))
    (base,) = PortRegistry().reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, list)
    assert base == 20111


def test_port_start_env_moves_where_auto_starts(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_PORT_START", "25000")
    assert setup(home, SetupRequest(name="main")).profile.port == 25000


# --- native OpenClaw profiles -----------------------------------------------------------


def native(name: str, config: dict | None) -> Path:
    path = gateway_dir(Path(os.environ["HOME"]) / name)
    if config is not None:
        (path / "openclaw.json").write_text(json.dumps(config))
    return path


def test_port_auto_avoids_the_users_native_openclaw_profiles(home: Path) -> None:
    native(".openclaw", {"agents": {}})  # default profile: 18789
    native(".openclaw-work", {"gateway": {"port": 18900}})
    native(".openclaw-empty", None)  # no config: not a profile
    assert setup(home, SetupRequest(name="main")).profile.port == 19011


def test_a_native_dir_adopted_by_the_profile_does_not_block_it(home: Path) -> None:
    adopted = native(".openclaw-rescue", {"gateway": {"port": 18789}})
    result = setup(home, SetupRequest(name="rescue", config_dir=adopted))
    assert result.profile.port == 18789


# --- objects are recognised by their fleet ------------------------------------------------


def container(name: str, labels: dict[str, str], ports=()) -> LiveContainer:
    return LiveContainer(name, name, "running", "Up", labels, tuple(ports))


def test_an_object_is_ours_only_with_our_project_and_our_home() -> None:
    mine = {"orch.managed": "true", "orch.project": "orch", "orch.home": "/a"}
    assert owned_by(mine, "orch", Path("/a")) is True
    assert owned_by(mine, "orch", Path("/b")) is False  # same project, another fleet
    assert owned_by(mine, "web", Path("/a")) is None
    assert owned_by({}, "orch", Path("/a")) is None


def test_a_name_held_by_another_fleet_is_refused_naming_its_home(home: Path) -> None:
    save_fleet(
        home, fleet_of(Profile(name="main", port=30000)).model_copy(update={"project": "orch"})
    )
    fleet = load_fleet(home)
    spec = render(fleet.profiles["main"], fleet, home)
    theirs = container(
        "orch-main",
        {
            "orch.managed": "true",
            "orch.project": "orch",
            "orch.home": "/srv/a",
            "orch.profile": "main",
        },
        [("127.0.0.1", 18789, "tcp")],
    )
    problems = live_problems([spec], Snapshot(others=[theirs], foreign=[theirs]))
    assert [p.code for p in problems] == ["name-taken"]
    assert "/srv/a" in problems[0].message and "project: NEW_NAME" in problems[0].hint


def test_a_port_held_by_another_fleets_container_names_that_fleet(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="main", port=18789)))
    fleet = load_fleet(home)
    spec = render(fleet.profiles["main"], fleet, home)
    theirs = container(
        "orch-main", {"orch.managed": "true", "orch.home": "/srv/a"}, [("127.0.0.1", 18789, "tcp")]
    )
    (problem,) = live_problems([spec], Snapshot(others=[theirs]))
    assert "container orch-main of the fleet in /srv/a" in problem.message


# --- a profile that does not publish its gateway ----------------------------------------


def test_a_profile_without_a_published_gateway_has_no_url_and_does_not_crash(
    home: Path,
) -> None:
    save_fleet(home, fleet_of(Profile(name="x", port=30000, publish=("cdp",))))
    fleet = load_fleet(home)
    spec = render(fleet.profiles["x"], fleet, home)
    assert spec.url() is None
    from orchestrator.backends.local import _status_of

    row = _status_of(spec, Snapshot())
    assert row.url is None and row.ready is False and row.state == "absent"


def test_a_network_made_before_networks_carried_their_home_is_the_default_fleets() -> None:
    from orchestrator.core.observed import legacy_network_of

    old = {"orch.managed": "true", "orch.project": "orch", "orch.profile": "main"}
    assert legacy_network_of(old, "orch", default_home=True) is True
    assert legacy_network_of(old, "orch", default_home=False) is False  # another home: never
    assert legacy_network_of({**old, "orch.home": "/srv/a"}, "orch", default_home=True) is False


# --- the kernel's ephemeral ports -------------------------------------------------------


def linux_ports(first: int, last: int) -> None:
    """The kernel's ephemeral range as /proc/sys/net/ipv4/ip_local_port_range says it
    (in the unit tests' own proc dir)."""
    path = Path(os.environ["ORCH_HOST_PROC"]) / "sys" / "net" / "ipv4" / "ip_local_port_range"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{first}\t{last}\n")


def test_the_ephemeral_range_is_read_from_the_hosts_proc() -> None:
    from orchestrator.fleet.registry import ephemeral_intervals

    assert ephemeral_intervals() == []  # not there: nothing to avoid
    linux_ports(32768, 60999)
    assert ephemeral_intervals() == [(32768, 60999)]


def test_an_unreadable_ephemeral_range_is_ignored() -> None:
    from orchestrator.fleet.registry import ephemeral_intervals

    linux_ports(1, 0)
    assert ephemeral_intervals() == []
    Path(os.environ["ORCH_HOST_PROC"], "sys/net/ipv4/ip_local_port_range").write_text("x y\n")
    assert ephemeral_intervals() == []


def test_port_auto_skips_the_ephemeral_range(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port there that a recent connection left in TIME-WAIT cannot be published."""
    from orchestrator.core.ports import footprint_bounds

    linux_ports(32768, 60999)
    monkeypatch.setenv("ORCH_PORT_START", "32700")
    setup(home, SetupRequest(name="main", port="auto"))
    lo, hi = footprint_bounds(load_fleet(home).profiles["main"].port)
    assert lo == 61000 and hi < 65536


def test_test_gateways_get_bases_below_the_ephemeral_range_then_above_it(tmp_path: Path) -> None:
    from orchestrator.core.ports import footprint_bounds

    linux_ports(20300, 60999)
    bases = PortRegistry(tmp_path).reserve(3, "127.0.0.1", labels_of(Owner.current()), 20000, list)
    assert [footprint_bounds(b)[1] < 20300 for b in bases] == [True, True, False]
    assert bases[2] == 61000
