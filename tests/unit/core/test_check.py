"""Every rule of `orch check`, each problem naming both sides (orchestrator/check.py)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from orchestrator.core.check import check_fleet, problems_for
from orchestrator.core.model import BrowserProfile, Dirs, Profile
from orchestrator.core.paths import profile_dirs, resolved_dirs
from orchestrator.core.problem import Problem

from ..helpers import fleet_of


def codes(problems: list[Problem]) -> list[str]:
    return sorted(p.code for p in problems)


def with_dirs(name: str, port: int, **dirs: Path) -> Profile:
    return Profile(name=name, port=port, dirs=Dirs(**dirs))


# --- ports ------------------------------------------------------------------------------


def test_a_clean_fleet_has_no_problems(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="main", port=18789),
        Profile(name="rescue", port=18900),
        Profile(name="other-ip", port=18789, bind_ip="127.0.0.2"),
        Profile(name="v6", port=18789, bind_ip="::1"),
    )
    assert check_fleet(fleet, home) == []


def test_the_issue_example_is_reported_word_for_word(home: Path) -> None:
    fleet = fleet_of(Profile(name="main", port=18789), Profile(name="rescue", port=18809))
    messages = [p.message for p in check_fleet(fleet, home)]
    assert (
        "rescue cdp 18820-18919 overlaps main cdp 18800-18899 on 127.0.0.1 (ports 18820-18899);"
        " nearest free base for rescue: 18900"
    ) in messages


def test_a_port_overlap_names_both_owners_both_roles_the_ports_and_a_free_base(
    home: Path,
) -> None:
    fleet = fleet_of(Profile(name="main", port=18789), Profile(name="rescue", port=18809))
    problems = check_fleet(fleet, home)
    # every role of rescue below 18900 lands in main's cdp range: 6 overlaps
    assert codes(problems) == ["port-overlap"] * 6
    gateway = next(p for p in problems if "rescue gateway" in p.message)
    assert gateway.owners == ("rescue", "main")
    assert gateway.ports == (18809, 18809)
    assert "rescue gateway 18809 overlaps main cdp 18800-18899" in gateway.message
    assert "(ports 18809)" in gateway.message
    assert gateway.hint == "orch setup rescue --port 18900 --force"


def test_the_suggested_base_is_really_free(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="a", port=18789),
        Profile(name="b", port=18900),
        Profile(name="c", port=18850),  # collides with both
    )
    problems = check_fleet(fleet, home)
    hint = next(p.hint for p in problems if p.owners[0] == "c")
    base = int(hint.split("--port ")[1].split()[0])
    moved = fleet.with_profile(Profile(name="c", port=base))
    assert check_fleet(moved, home) == []


def test_a_wildcard_profile_collides_with_a_loopback_one_on_the_same_ports(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="lan", port=18789, bind_ip="0.0.0.0"), Profile(name="main", port=18789)
    )
    problems = check_fleet(fleet, home)
    assert problems and all(p.code == "port-overlap" for p in problems)
    assert all(" on 127.0.0.1 " in p.message for p in problems)


def test_different_loopback_addresses_do_not_collide(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="a", port=18789, bind_ip="127.0.0.1"),
        Profile(name="b", port=18789, bind_ip="127.0.0.2"),
    )
    assert check_fleet(fleet, home) == []


# --- explicit cdpPorts ------------------------------------------------------------------


def with_cdp_port(port: int, bind_ip: str = "127.0.0.1") -> Profile:
    return Profile(
        name="b",
        port=30000,
        bind_ip=bind_ip,
        browser_profiles={"chrome": BrowserProfile(cdp_port=port)},
    )


@pytest.mark.parametrize(
    ("offset", "what"),
    [(0, "gateway"), (2, "browser"), (10, "extension"), (11, "cdp"), (60, "cdp"), (110, "cdp")],
)
def test_an_explicit_cdp_port_on_another_profiles_role_is_refused(
    home: Path, offset: int, what: str
) -> None:
    fleet = fleet_of(Profile(name="a", port=18789), with_cdp_port(18789 + offset))
    problems = check_fleet(fleet, home)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.owners == ("b", "a")
    assert problem.ports == (18789 + offset, 18789 + offset)
    assert f"b cdp:chrome {18789 + offset} overlaps a {what} " in problem.message
    # Moving b's base would not help: the advice is to move the cdpPort.
    assert "--port" not in problem.hint and "browser_profiles.chrome.cdp_port" in problem.hint


@pytest.mark.parametrize("offset", [1, 5, 6, 9])
def test_an_explicit_cdp_port_between_the_roles_of_another_footprint_is_refused(
    home: Path, offset: int
) -> None:
    # base+1 and base+5..9 have no role today but belong to the footprint base..base+110.
    fleet = fleet_of(Profile(name="a", port=18789), with_cdp_port(18789 + offset))
    problems = check_fleet(fleet, home)
    assert len(problems) == 1
    assert problems[0].owners == ("b", "a")
    assert problems[0].ports == (18789 + offset, 18789 + offset)
    assert f"b cdp:chrome {18789 + offset} is inside a's footprint 18789-18899" in (
        problems[0].message
    )


@pytest.mark.parametrize("port", [18788, 18900])
def test_an_explicit_cdp_port_just_outside_another_footprint_is_fine(home: Path, port: int) -> None:
    assert check_fleet(fleet_of(Profile(name="a", port=18789), with_cdp_port(port)), home) == []


def test_an_explicit_cdp_port_on_another_address_is_fine(home: Path) -> None:
    fleet = fleet_of(Profile(name="a", port=18789), with_cdp_port(18790, bind_ip="127.0.0.9"))
    assert check_fleet(fleet, home) == []


def test_two_profiles_with_the_same_explicit_cdp_port_are_refused(home: Path) -> None:
    a = Profile(name="a", port=18789, browser_profiles={"x": BrowserProfile(cdp_port=9222)})
    b = Profile(name="b", port=18900, browser_profiles={"y": BrowserProfile(cdp_port=9222)})
    problems = check_fleet(fleet_of(a, b), home)
    assert [p.ports for p in problems] == [(9222, 9222)]
    assert set(problems[0].owners) == {"a", "b"}


# --- cdpUrl -----------------------------------------------------------------------------


def with_cdp_url(name: str, port: int, url: str, browser: str = "chrome") -> Profile:
    return Profile(name=name, port=port, browser_profiles={browser: BrowserProfile(cdp_url=url)})


def test_the_same_cdp_url_on_two_profiles_is_refused_naming_both(home: Path) -> None:
    fleet = fleet_of(
        with_cdp_url("a", 18789, "http://10.0.0.5:9222"),
        with_cdp_url("b", 18900, "http://10.0.0.5:9222/", browser="work"),  # trailing slash
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["cdp-url-shared"]
    assert problems[0].owners == ("a", "b")
    assert "http://10.0.0.5:9222" in problems[0].message
    assert "a browser chrome" in problems[0].message and "b browser work" in problems[0].message


def test_different_cdp_urls_are_fine(home: Path) -> None:
    fleet = fleet_of(
        with_cdp_url("a", 18789, "http://10.0.0.5:9222"),
        with_cdp_url("b", 18900, "http://10.0.0.6:9222"),
    )
    assert check_fleet(fleet, home) == []


# --- dirs -------------------------------------------------------------------------------


def test_default_dirs_never_meet(home: Path) -> None:
    fleet = fleet_of(*(Profile(name=f"p{i}", port=18789 + 111 * i) for i in range(5)))
    assert check_fleet(fleet, home) == []


def test_a_shared_dir_is_refused_naming_both_profiles_and_kinds(home: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    fleet = fleet_of(with_dirs("a", 18789, state=shared), with_dirs("b", 18900, workspace=shared))
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"]
    assert set(problems[0].owners) == {"a", "b"}
    assert f"dir {shared} is the same dir as" in problems[0].message
    assert "a state dir" in problems[0].message and "b workspace dir" in problems[0].message


def test_a_nested_dir_is_refused(home: Path, tmp_path: Path) -> None:
    fleet = fleet_of(
        with_dirs("a", 18789, state=tmp_path / "a"),
        with_dirs("b", 18900, workspace=tmp_path / "a" / "workspace-of-b"),
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"]
    assert "b workspace dir" in problems[0].message
    assert f"is nested inside a state dir {tmp_path / 'a'}" in problems[0].message


def test_a_dir_that_contains_another_profiles_default_dirs_is_refused(home: Path) -> None:
    # b's config dir is a's whole profile root: it holds a's config, state and workspace.
    fleet = fleet_of(
        Profile(name="a", port=18789), with_dirs("b", 18900, config=home / "profiles" / "a")
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"] * 3


def test_sibling_dirs_with_a_common_prefix_are_not_nested(home: Path, tmp_path: Path) -> None:
    fleet = fleet_of(
        with_dirs("a", 18789, state=tmp_path / "state"),
        with_dirs("b", 18900, state=tmp_path / "state-b"),
    )
    assert check_fleet(fleet, home) == []


def test_dirs_that_meet_only_through_a_symlink_are_refused(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    fleet = fleet_of(
        with_dirs("a", 18789, state=real), with_dirs("b", 18900, state=tmp_path / "link")
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"]
    assert problems[0].paths == (str(real), str(real))


def test_a_symlinked_parent_making_dirs_nested_is_refused(home: Path, tmp_path: Path) -> None:
    (tmp_path / "a-state").mkdir()
    (tmp_path / "sneaky").symlink_to(tmp_path / "a-state")
    fleet = fleet_of(
        with_dirs("a", 18789, state=tmp_path / "a-state"),
        with_dirs("b", 18900, workspace=tmp_path / "sneaky" / "ws"),  # not there yet
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"]
    assert "nested inside" in problems[0].message


def test_dirs_that_meet_only_through_dot_dot_are_refused(home: Path, tmp_path: Path) -> None:
    fleet = fleet_of(
        with_dirs("a", 18789, state=tmp_path / "x" / "state"),
        with_dirs("b", 18900, state=tmp_path / "x" / "other" / ".." / "state"),
    )
    problems = check_fleet(fleet, home)
    assert codes(problems) == ["dir-shared"]
    assert "is the same dir as" in problems[0].message


def test_the_root_dir_contains_every_other_dir(home: Path) -> None:
    fleet = fleet_of(Profile(name="a", port=18789), with_dirs("b", 18900, workspace=Path("/")))
    assert codes(check_fleet(fleet, home)) == ["dir-shared"] * 3


def test_one_profile_may_use_one_dir_for_two_kinds(home: Path, tmp_path: Path) -> None:
    fleet = fleet_of(with_dirs("a", 18789, config=tmp_path / "s", state=tmp_path / "s"))
    assert check_fleet(fleet, home) == []


def test_the_check_resolves_paths_exactly_like_profile_dirs(home: Path, tmp_path: Path) -> None:
    """The fast resolver of `orch check` against Path.resolve, on a tree full of traps:
    symlinks to dirs, relative links, links followed by `..`, missing parts."""
    root = tmp_path / "tree"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "d").mkdir()
    (root / "link-abs").symlink_to(root / "a" / "b")
    (root / "a" / "link-rel").symlink_to(Path("b") / "c")
    (root / "d" / "up").symlink_to(Path(".."))
    (root / "dangling").symlink_to(root / "nowhere" / "x")
    names = ["a", "b", "c", "d", "..", ".", "link-abs", "link-rel", "up", "dangling", "new"]
    rnd = random.Random(3)
    cache: dict[str, str] = {}
    for i in range(300):
        path = root.joinpath(*rnd.choices(names, k=rnd.randint(1, 6)))
        profile = with_dirs(f"p{i}", 18789, config=path)
        fast = dict(resolved_dirs(profile, str(home), cache))
        slow = {kind: str(p) for kind, p in profile_dirs(profile, home).items()}
        assert fast == slow, path


def test_a_relative_dir_in_the_fleet_resolves_from_the_working_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    profile = with_dirs("a", 18789, state=Path("rel") / "state")
    assert dict(resolved_dirs(profile, str(home), {}))["state"] == str(tmp_path / "rel" / "state")
    assert profile_dirs(profile, home).state == tmp_path / "rel" / "state"
    assert os.path.isabs(dict(resolved_dirs(profile, str(home), {}))["config"])


# --- rescue and the whole fleet ---------------------------------------------------------


def test_rescuing_an_unknown_profile_is_refused(home: Path) -> None:
    problems = check_fleet(fleet_of(Profile(name="rescue", port=18900, rescues="main")), home)
    assert codes(problems) == ["rescue-unknown"]
    assert problems[0].owners == ("rescue",)
    assert "'main'" in problems[0].message


def test_rescuing_a_known_profile_is_fine(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="main", port=18789), Profile(name="r", port=18900, rescues="main")
    )
    assert check_fleet(fleet, home) == []


def test_every_problem_is_returned_at_once(home: Path, tmp_path: Path) -> None:
    fleet = fleet_of(
        Profile(name="main", port=18789),
        Profile(name="rescue", port=18809, rescues="ghost"),  # ports + unknown rescue
        with_dirs("c", 30000, state=tmp_path / "s"),
        with_dirs("d", 31000, state=tmp_path / "s"),  # shared dir
        with_cdp_url("e", 32000, "http://h:9222"),
        with_cdp_url("f", 33000, "http://h:9222"),  # shared cdpUrl
    )
    problems = check_fleet(fleet, home)
    assert set(codes(problems)) == {
        "port-overlap",
        "rescue-unknown",
        "dir-shared",
        "cdp-url-shared",
    }
    assert len(problems) >= 9


def test_problems_for_keeps_those_that_involve_the_named_profiles(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="a", port=18789),
        Profile(name="b", port=18809),
        Profile(name="c", port=30000),
        Profile(name="d", port=30020),
    )
    problems = check_fleet(fleet, home)
    mine = problems_for(problems, ["d"])
    assert mine and all("d" in p.owners for p in mine)
    assert len(mine) < len(problems)


def test_a_problem_serialises_to_plain_json(home: Path) -> None:
    fleet = fleet_of(Profile(name="main", port=18789), Profile(name="rescue", port=18809))
    doc = check_fleet(fleet, home)[0].to_json()
    assert set(doc) == {"code", "message", "owners", "hint", "ports", "paths"}
    assert isinstance(doc["owners"], list) and isinstance(doc["ports"], list)


def test_limits_without_their_cgroup_controller_are_named_as_unenforced(home: Path) -> None:
    from orchestrator.core.check import unenforced_limits
    from orchestrator.core.spec import render_fleet

    fleet = fleet_of(
        Profile(name="main", port=20000),
        Profile(name="lean", port=20200, cpus=0, pids=256, memory="512m"),
    )
    specs = render_fleet(fleet, home)
    engine = "rootless Podman 4.3.1 on cgroup v1"
    found = {w.profile: w for w in unenforced_limits(specs, (), engine)}
    assert found["main"].limits == ("memory 1280m", "pids 512", "cpus 1")
    assert found["lean"].limits == ("memory 512m", "pids 256")  # no CPU limit asked
    assert found["main"].message == (
        "main: memory 1280m, pids 512, cpus 1 not enforced: rootless Podman 4.3.1 on"
        " cgroup v1 has no cgroup controller for them"
    )
    assert found["main"].to_json()["limits"] == ["memory 1280m", "pids 512", "cpus 1"]
    assert unenforced_limits(specs, ("cpu", "memory", "pids"), engine) == []
    (only_cpu,) = [w for w in unenforced_limits(specs, ("memory", "pids"), engine)]
    assert only_cpu.profile == "main" and only_cpu.limits == ("cpus 1",)
