"""Two fleets on one host (two orch homes), against the real engine and gateway.

Fleet `a` runs main and rescue (the session's pair, conftest.py `shared_pair`: no
test here changes it); fleet `b`, in another home with the project orch derives for
it, runs its own main and rescue at the same time on a footprint that `--port auto`
found around a's. Every command of b, and of a third fleet `c` that even shares a's
project name, leaves a's containers exactly as they were: same ids, still running and
ready. Tests that change b are defined last.
"""

from __future__ import annotations

import pytest
from support import Orch, http_get, new_home, remove_fleet

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


def footprint(fleet: Orch) -> dict[str, tuple[int, int]]:
    rows = fleet.json("ls")["data"]["profiles"]
    return {r["name"]: tuple(r["footprint"]) for r in rows}


def containers_of(engine, fleet: Orch) -> dict[str, str]:
    labels = [f"orch.project={fleet.project}", f"orch.home={fleet.home}"]
    found = engine.containers.list(all=True, filters={"label": labels})
    return {c.labels["orch.profile"]: c.id for c in found}


def assert_untouched(engine, fleet: Orch, before: dict[str, str]) -> None:
    assert containers_of(engine, fleet) == before
    for name, ports in footprint(fleet).items():
        assert engine.containers.get(before[name]).status == "running"
        assert http_get(ports[0], "/readyz")[0] == 200, f"{name} of {fleet.home} not ready"


@pytest.fixture(scope="module")
def fleets(tmp_path_factory, engine, shared_pair):
    root = tmp_path_factory.mktemp("two-fleets")
    a = shared_pair.fleet
    b = Orch(root / "b-home", project="")  # no fleet file yet: orch derives the project
    b.run("setup", "main", "--port", "auto")
    b.run("setup", "rescue", "--port", "auto", "--rescues", "main")
    b.project = b.json("ls")["data"]["project"]
    assert b.json("up")["ok"]
    try:
        yield a, b, containers_of(engine, a)
    finally:
        b.run("down", ok=False)
        remove_fleet(engine, b)
        shared_pair.restore(engine)


def overlaps(x: tuple[int, int], y: tuple[int, int]) -> bool:
    return x[0] <= y[1] and y[0] <= x[1]


def test_both_fleets_run_main_and_rescue_at_once_on_disjoint_footprints(fleets, engine):
    a, b, before = fleets
    assert b.project not in ("orch", a.project) and b.project.startswith("b-home-")
    fa, fb = footprint(a), footprint(b)
    assert not any(overlaps(x, y) for x in fa.values() for y in fb.values())
    assert set(containers_of(engine, b)) == {"main", "rescue"}
    assert_untouched(engine, a, before)
    for ports in fb.values():
        assert http_get(ports[0], "/readyz")[0] == 200


def test_status_and_dry_run_of_one_fleet_show_only_its_own_containers(fleets, engine):
    a, b, before = fleets
    rows = b.json("status")["data"]["profiles"]
    assert {r["container"] for r in rows} == {f"{b.project}-main", f"{b.project}-rescue"}
    assert all(r["ready"] and r["drift"] is None for r in rows)
    plan = b.json("up", "--dry-run")["data"]["plan"]
    assert {p["action"] for p in plan} == {"noop"}
    assert {p["container"] for p in plan} == {f"{b.project}-main", f"{b.project}-rescue"}
    assert b.json("up")["data"]["outcomes"]  # a no-op up
    assert_untouched(engine, a, before)


def test_logs_restart_and_gc_of_one_fleet_leave_the_other_as_it_was(fleets, engine):
    a, b, before = fleets
    assert b.run("logs", "main", "--tail", "5").returncode == 0
    b_main = containers_of(engine, b)["main"]
    assert b.json("restart", "main")["data"]["ready"] is True
    assert containers_of(engine, b)["main"] == b_main
    b.run("gc")
    assert_untouched(engine, a, before)


def test_a_fleet_sharing_the_project_name_never_adopts_the_others_containers(
    fleets, engine, tmp_path
):
    a, _b, before = fleets
    c = new_home(tmp_path / "c", project=a.project)  # same project, another home
    try:
        c.run("setup", "main", "--port", "auto")
        assert not any(overlaps(footprint(c)["main"], f) for f in footprint(a).values())
        for args in (("up", "--dry-run"), ("up",)):  # never a plan to recreate a's main
            refused = c.json(*args, ok=False)
            assert refused["error"]["exit_code"] == 1, refused
            (problem,) = refused["error"]["problems"]
            assert problem["code"] == "name-taken"
            assert str(a.home) in problem["message"] and "project: NEW_NAME" in problem["hint"]
        rows = c.json("status")["data"]["profiles"]
        assert [(r["profile"], r["state"], r["container"]) for r in rows] == [
            ("main", "absent", None)
        ]
        assert [o["action"] for o in c.json("down")["data"]["outcomes"]] == ["noop"]
        assert c.run("rm", "main").returncode == 0  # no container of its own blocks it
        assert containers_of(engine, c) == {}
        networks = engine.networks.list(filters={"label": f"orch.home={c.home}"})
        assert networks == []
        assert_untouched(engine, a, before)
    finally:
        remove_fleet(engine, c)


def test_changing_one_profile_recreates_only_it_and_leaves_the_other_fleet_alone(fleets, engine):
    a, b, before = fleets
    was = containers_of(engine, b)
    b.run("setup", "rescue", "--publish", "gateway", "--force")
    plan = b.json("up", "--dry-run")["data"]["plan"]
    assert {p["profile"]: p["action"] for p in plan} == {"main": "noop", "rescue": "recreate"}
    b.json("up")
    now = containers_of(engine, b)
    assert now["main"] == was["main"] and now["rescue"] != was["rescue"]
    assert http_get(footprint(b)["rescue"][0], "/readyz")[0] == 200
    assert_untouched(engine, a, before)


def test_down_and_rm_of_one_fleet_leave_the_other_running(fleets, engine):
    a, b, before = fleets
    down = b.json("down")["data"]["outcomes"]
    assert {o["profile"]: o["action"] for o in down} == {"main": "removed", "rescue": "removed"}
    assert containers_of(engine, b) == {}
    assert b.run("rm", "rescue").returncode == 0
    assert_untouched(engine, a, before)


def test_port_auto_avoids_a_fleet_that_is_down(fleets, engine, tmp_path):
    a, b, before = fleets
    b.run("down")  # b, which ran, is down now (a no-op if an earlier test took it down)
    assert containers_of(engine, b) == {}
    d = new_home(tmp_path / "d")
    try:
        d.run("setup", "main", "--port", "auto")
        d.run("setup", "rescue", "--port", "auto")
        mine = footprint(d).values()
        assert not any(overlaps(x, y) for x in mine for y in footprint(b).values())
    finally:
        remove_fleet(engine, d)
    assert_untouched(engine, a, before)
