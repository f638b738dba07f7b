"""Placement on swarm nodes in `orch check` (core/placement.py): ports per node, a
node the swarm does not have, a rescue away from its target's config dir, and the
local engine's refusal of placed profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.core.check import check_fleet, local_engine_problems
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.placement import SwarmNode, placed_overlaps
from orchestrator.core.ports import sweep

from ..helpers import fleet_of

WIDE = "0.0.0.0"


def node(hostname: str, current: bool = False, state: str = "ready") -> SwarmNode:
    return SwarmNode(
        id=f"id-{hostname}",
        hostname=hostname,
        state=state,
        availability="active",
        address="10.0.0.1",
        manager=current,
        current=current,
    )


NODES = [node("n1", current=True), node("n2")]


def placed(name: str, port: int, on: str | None, **more) -> Profile:
    return Profile(name=name, port=port, bind_ip=WIDE, node=on, **more)


def codes(problems) -> list[str]:
    return sorted(p.code for p in problems)


def test_two_profiles_on_different_nodes_may_use_the_same_ports(home: Path) -> None:
    fleet = fleet_of(placed("a", 18789, "n1"), placed("b", 18789, "n2"))
    assert check_fleet(fleet, home) == []
    assert check_fleet(fleet, home, nodes=NODES) == []


def test_two_profiles_on_one_node_may_not(home: Path) -> None:
    fleet = fleet_of(placed("a", 18789, "n2"), placed("b", 18789, "n2"))
    problems = check_fleet(fleet, home, nodes=NODES)
    assert "port-overlap" in codes(problems)
    assert {"a", "b"} <= set(problems[0].owners)


def test_an_unplaced_profile_is_checked_against_every_node_while_the_manager_is_unknown(
    home: Path,
) -> None:
    fleet = fleet_of(placed("a", 18789, None), placed("b", 18789, "n2"))
    assert "port-overlap" in codes(check_fleet(fleet, home))


def test_an_unplaced_profile_runs_on_the_manager_once_the_nodes_are_known(home: Path) -> None:
    apart = fleet_of(placed("a", 18789, None), placed("b", 18789, "n2"))
    assert check_fleet(apart, home, nodes=NODES) == []
    together = fleet_of(placed("a", 18789, None), placed("b", 18789, "n1"))
    assert "port-overlap" in codes(check_fleet(together, home, nodes=NODES))


def test_a_node_the_swarm_does_not_have_is_refused_when_the_nodes_are_known(home: Path) -> None:
    fleet = fleet_of(placed("a", 18789, "n9"))
    assert check_fleet(fleet, home) == []  # no live list: not known to be wrong
    (problem,) = check_fleet(fleet, home, nodes=NODES)
    assert problem.code == "node-unknown"
    assert "node n9, which this swarm does not have (nodes: n1, n2)" in problem.message
    assert problem.hint == "orch setup a --node HOSTNAME --force (hostnames: `docker node ls`)"


def test_a_rescue_on_another_node_than_its_target_is_refused(home: Path) -> None:
    fleet = fleet_of(placed("main", 18789, "n2"), placed("rescue", 18900, "n1", rescues="main"))
    (problem,) = check_fleet(fleet, home, nodes=NODES)
    assert problem.code == "rescue-node"
    assert problem.owners == ("rescue", "main")
    assert "config dir is on node n2, but rescue runs on node n1" in problem.message
    assert problem.hint == "orch setup rescue --node n2 --force"


def test_an_unplaced_rescue_of_a_placed_target_is_refused_unless_the_target_is_the_manager(
    home: Path,
) -> None:
    away = fleet_of(placed("main", 18789, "n2"), placed("rescue", 18900, None, rescues="main"))
    assert codes(check_fleet(away, home, nodes=NODES)) == ["rescue-node"]
    assert codes(check_fleet(away, home)) == ["rescue-node"]
    here = fleet_of(placed("main", 18789, "n1"), placed("rescue", 18900, None, rescues="main"))
    assert check_fleet(here, home, nodes=NODES) == []


def test_a_rescue_on_the_node_of_its_target_is_fine(home: Path) -> None:
    fleet = fleet_of(placed("main", 18789, "n2"), placed("rescue", 18900, "n2", rescues="main"))
    assert check_fleet(fleet, home, nodes=NODES) == []


def test_the_local_engine_refuses_a_placed_profile_with_the_way_out() -> None:
    (problem,) = local_engine_problems([placed("a", 18789, "n2"), placed("b", 18900, None)])
    assert problem.code == "node-local"
    assert problem.owners == ("a",)
    assert "--engine swarm" in problem.hint and "--node ''" in problem.hint


def test_other_fleets_of_this_host_do_not_clash_with_a_profile_on_another_node(
    home: Path,
) -> None:
    from orchestrator.core.check import reservations

    other = placed("theirs", 18789, None)
    foreign = [
        type(r)(r.start, r.end, "/other/home:theirs", r.role, r.host_ip, r.published)
        for r in reservations(other)
    ]
    away = fleet_of(placed("a", 18789, "n2"))
    assert check_fleet(away, home, foreign, nodes=NODES) == []
    here = fleet_of(placed("a", 18789, "n1"))
    assert codes(check_fleet(here, home, foreign, nodes=NODES)) == ["port-foreign"]


@pytest.mark.parametrize("bad", ["", "a b", "node;rm", "-lead", "x" * 64, "a..b", "n\n"])
def test_a_node_that_no_swarm_node_can_be_named_is_refused_by_the_model(bad: str) -> None:
    with pytest.raises(ValidationError, match="is not a hostname a swarm node can have"):
        Profile(name="a", port=18789, node=bad)


def test_a_placement_survives_the_fleet_file() -> None:
    fleet = fleet_of(placed("a", 18789, "worker-2.example"))
    document = fleet.to_document()
    assert document["profiles"]["a"]["node"] == "worker-2.example"
    assert Fleet.model_validate(document).profiles["a"].node == "worker-2.example"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([None, "n1", "n2", "n3"]), st.integers(0, 5)),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([None, "n1"]),
)
def test_per_node_overlaps_are_exactly_the_pairs_that_can_meet(profiles, manager) -> None:
    """Against a brute force: two profiles clash when both are on one node, or one of
    them is unplaced while the manager is unknown (it may be on any node)."""
    from orchestrator.core.check import fleet_reservations

    fleet = fleet_of(
        *(placed(f"p{i}", 20000 + 60 * slot, on) for i, (on, slot) in enumerate(profiles))
    )
    found = {
        frozenset((ov.first.owner, ov.second.owner))
        for ov in placed_overlaps(fleet_reservations(fleet), fleet, manager)
    }
    everything = {
        frozenset((ov.first.owner, ov.second.owner))
        for ov in sweep(fleet_reservations(fleet))
        if ov.first.owner != ov.second.owner
    }

    def can_meet(a: Profile, b: Profile) -> bool:
        na, nb = a.node or manager, b.node or manager
        return na is None or nb is None or na == nb

    expected = {pair for pair in everything if can_meet(*(fleet.profiles[name] for name in pair))}
    assert {pair for pair in found if len(pair) == 2} == expected


def test_a_node_that_is_down_drained_or_paused_is_one_problem_per_profile_on_it() -> None:

    from orchestrator.core.check import node_down_problems

    drained = node("n3")._replace(availability="drain")
    found = node_down_problems({"a": node("n1"), "b": node("n2", state="down"), "c": drained})
    assert [(p.code, p.owners) for p in found] == [
        ("swarm-node-down", ("b",)),
        ("swarm-node-down", ("c",)),
    ]
    assert found[0].message == "b's node n2 is down, availability active: its task could not start"
    assert found[1].hint == "bring n3 back, or: docker node update --availability active n3"
