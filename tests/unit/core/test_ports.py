"""Port footprints, the overlap sweep and the free-base search (orchestrator/ports.py)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import accumulate

import pytest

from orchestrator.core.ports import (
    MAX_BASE,
    MAX_PORT,
    MIN_PORT,
    Overlap,
    Reservation,
    footprint,
    footprint_bounds,
    hosts_intersect,
    merge_intervals,
    nearest_free_base,
    pairwise,
    sweep,
)

# The port map of /work/shared/openclaw.md, as offsets from the base.
PORT_MAP = {
    "gateway": (0, 0),
    "browser": (2, 2),
    "browser-cdp": (3, 3),
    "canvas": (4, 4),
    "extension": (10, 10),
    "cdp": (11, 110),
}


def roles(reservations: list[Reservation]) -> dict[str, tuple[int, int]]:
    return {r.role: (r.start, r.end) for r in reservations}


def both(base_a: int, base_b: int, ip_a: str = "127.0.0.1", ip_b: str = "127.0.0.1"):
    return footprint("a", base_a, ip_a, ["gateway"]) + footprint("b", base_b, ip_b, ["gateway"])


def canonical(overlaps: list[Overlap]) -> Counter:
    """Overlaps as an order-free multiset: the pair of reservations, host and range."""
    return Counter(
        (frozenset({ov.first, ov.second}), ov.host_ip, ov.start, ov.end) for ov in overlaps
    )


# --- footprints -------------------------------------------------------------------------


@pytest.mark.parametrize("base", [MIN_PORT, 18789, 19001, MAX_BASE])
def test_footprint_puts_every_role_at_its_offset_from_the_base(base: int) -> None:
    got = roles(footprint("main", base, "127.0.0.1", []))
    assert got == {role: (base + lo, base + hi) for role, (lo, hi) in PORT_MAP.items()}


def test_footprint_of_the_default_base_matches_the_documented_ports() -> None:
    got = roles(footprint("main", 18789, "127.0.0.1", []))
    assert got["gateway"] == (18789, 18789)
    assert got["browser"] == (18791, 18791)
    assert got["canvas"] == (18793, 18793)
    assert got["cdp"] == (18800, 18899)  # the managed Chrome range of the docs


def test_footprint_marks_only_the_published_roles_as_published() -> None:
    res = footprint("main", 18789, "127.0.0.1", ["gateway", "cdp"])
    assert {r.role for r in res if r.published} == {"gateway", "cdp"}


def test_footprint_adds_explicit_cdp_ports_in_port_order() -> None:
    res = footprint("main", 18789, "127.0.0.1", [], {"work": 30000, "home": 9222})
    assert [(r.role, r.start) for r in res][0] == ("cdp:home", 9222)
    assert [(r.role, r.start) for r in res][-1] == ("cdp:work", 30000)
    assert [r.start for r in res] == sorted(r.start for r in res)


def test_footprint_bounds_span_base_to_base_plus_110() -> None:
    assert footprint_bounds(18789) == (18789, 18899)
    lo, hi = footprint_bounds(18789)
    assert hi == max(r.end for r in footprint("m", 18789, "127.0.0.1", []))
    assert lo == min(r.start for r in footprint("m", 18789, "127.0.0.1", []))


def test_the_highest_base_ends_its_footprint_on_the_last_port() -> None:
    assert footprint_bounds(MAX_BASE)[1] == MAX_PORT
    assert MAX_BASE == 65425


# --- the sweep --------------------------------------------------------------------------


def test_sweep_finds_the_issue_example_exactly() -> None:
    # main base 18789 (cdp 18800-18899), rescue base 18809 (cdp 18820-18919)
    res = footprint("main", 18789, "127.0.0.1", []) + footprint("rescue", 18809, "127.0.0.1", [])
    cdp = [ov for ov in sweep(res) if (ov.first.role, ov.second.role) == ("cdp", "cdp")]
    assert len(cdp) == 1
    ov = cdp[0]
    assert (ov.first.owner, ov.first.start, ov.first.end) == ("main", 18800, 18899)
    assert (ov.second.owner, ov.second.start, ov.second.end) == ("rescue", 18820, 18919)
    assert (ov.host_ip, ov.start, ov.end) == ("127.0.0.1", 18820, 18899)


def test_sweep_reports_every_role_of_the_later_profile_inside_the_earlier_cdp_range() -> None:
    res = footprint("main", 18789, "127.0.0.1", []) + footprint("rescue", 18809, "127.0.0.1", [])
    pairs = {(ov.first.role, ov.second.role, ov.start, ov.end) for ov in sweep(res)}
    assert pairs == {
        ("cdp", "gateway", 18809, 18809),
        ("cdp", "browser", 18811, 18811),
        ("cdp", "browser-cdp", 18812, 18812),
        ("cdp", "canvas", 18813, 18813),
        ("cdp", "extension", 18819, 18819),
        ("cdp", "cdp", 18820, 18899),
    }


@pytest.mark.parametrize("base", [1024, 18789, 40000])
def test_two_bases_20_apart_overlap_in_their_cdp_ranges(base: int) -> None:
    # The docs advise "at least 20 ports between bases": not enough.
    overlaps = sweep(both(base, base + 20))
    cdp = [ov for ov in overlaps if (ov.first.role, ov.second.role) == ("cdp", "cdp")]
    assert [(ov.start, ov.end) for ov in cdp] == [(base + 31, base + 110)]


@pytest.mark.parametrize("gap", [1, 20, 99, 100, 110])
def test_bases_closer_than_111_always_overlap(gap: int) -> None:
    assert sweep(both(18789, 18789 + gap))


def test_bases_110_apart_overlap_on_exactly_one_port() -> None:
    overlaps = sweep(both(18789, 18899))
    assert [(ov.first.role, ov.second.role, ov.start, ov.end) for ov in overlaps] == [
        ("cdp", "gateway", 18899, 18899)
    ]


@pytest.mark.parametrize("gap", [111, 112, 1000])
def test_bases_111_or_more_apart_do_not_overlap(gap: int) -> None:
    assert sweep(both(18789, 18789 + gap)) == []


def test_one_profile_never_overlaps_itself() -> None:
    res = footprint("main", 18789, "0.0.0.0", [], {"x": 18850})  # inside its own cdp range
    assert sweep(res) == []


def test_the_same_ports_on_127_0_0_1_and_127_0_0_2_do_not_intersect() -> None:
    assert sweep(both(18789, 18789, "127.0.0.1", "127.0.0.2")) == []


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
@pytest.mark.parametrize("other", ["127.0.0.1", "127.0.0.2", "192.168.1.5", "::1", "0.0.0.0", "::"])
def test_a_wildcard_address_intersects_every_address(wildcard: str, other: str) -> None:
    assert hosts_intersect(wildcard, other) and hosts_intersect(other, wildcard)
    for overlaps in (
        sweep(both(18789, 18789, wildcard, other)),
        sweep(both(18789, 18789, other, wildcard)),
    ):
        # every role of one hits the same role of the other
        assert sorted((ov.first.role, ov.second.role) for ov in overlaps) == sorted(
            (role, role) for role in PORT_MAP
        )


@pytest.mark.parametrize("specific", ["127.0.0.1", "::1"])
def test_a_wildcard_overlap_is_reported_on_the_specific_address(specific: str) -> None:
    for pair in (both(18789, 18789, "0.0.0.0", specific), both(18789, 18789, specific, "::")):
        assert {ov.host_ip for ov in sweep(pair)} == {specific}


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("::1", "127.0.0.1", False),
        ("192.168.1.5", "10.0.0.1", False),
        ("0.0.0.0", "::", True),
    ],
)
def test_hosts_intersect_only_on_equal_or_wildcard_addresses(a: str, b: str, clash: bool) -> None:
    assert hosts_intersect(a, b) is clash


def test_the_same_ports_on_different_protocols_do_not_intersect() -> None:
    tcp = Reservation(5000, 5010, "a", "x", "127.0.0.1", True, "tcp")
    udp = Reservation(5000, 5010, "b", "x", "127.0.0.1", True, "udp")
    assert sweep([tcp, udp]) == []
    assert len(sweep([tcp, udp, Reservation(5005, 5005, "c", "y", "0.0.0.0", True, "udp")])) == 1


# --- the sweep against the naive oracle -------------------------------------------------

IPS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "0.0.0.0", "::", "::1"]


def random_reservations(rnd: random.Random) -> list[Reservation]:
    """A small crowded fleet: bases in a narrow window so that overlaps are common."""
    out: list[Reservation] = []
    for i in range(rnd.randint(1, 12)):
        base = rnd.randint(1000, 1000 + rnd.choice([50, 300, 1500]))
        publish = rnd.sample(list(PORT_MAP), rnd.randint(0, 3))
        cdp = {f"b{j}": rnd.randint(990, 2700) for j in range(rnd.choice([0, 0, 1, 2]))}
        out += footprint(f"p{i}", base, rnd.choice(IPS), publish, cdp)
        if rnd.random() < 0.2:  # a few UDP intervals, of the same owner
            start = rnd.randint(1000, 2600)
            out.append(
                Reservation(
                    start, start + rnd.randint(0, 30), f"p{i}", "udp", rnd.choice(IPS), True, "udp"
                )
            )
    rnd.shuffle(out)
    return out


def test_sweep_equals_the_naive_pairwise_check_on_300_random_fleets() -> None:
    rnd = random.Random(20260906)
    found = empty = 0
    for _ in range(300):
        res = random_reservations(rnd)
        fast, naive = sweep(res), pairwise(res)
        assert canonical(fast) == canonical(naive)
        assert len(fast) == len(naive)  # no pair reported twice
        found += len(fast)
        empty += not fast
    # The cases exercise both outcomes, so the comparison above proves something.
    assert found > 1000 and empty > 10


def test_sweep_reports_each_overlap_with_the_earlier_interval_first() -> None:
    rnd = random.Random(7)
    for _ in range(50):
        for ov in sweep(random_reservations(rnd)):
            assert (ov.first.start, ov.first.end) <= (ov.second.start, ov.second.end)
            assert ov.start == max(ov.first.start, ov.second.start)
            assert ov.end == min(ov.first.end, ov.second.end)
            assert ov.start <= ov.end


# --- nearest free base ------------------------------------------------------------------


def main_footprint() -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in footprint("main", 18789, "127.0.0.1", [])]


def test_nearest_free_base_is_near_itself_when_nothing_is_taken() -> None:
    assert nearest_free_base([], near=18789) == 18789
    assert nearest_free_base([], near=18789, at_or_above=True) == 18789


def test_nearest_free_base_for_the_issue_example_is_18900() -> None:
    assert nearest_free_base(main_footprint(), near=18809) == 18900


def test_nearest_free_base_goes_down_when_that_is_closer() -> None:
    taken = [(18850, 18960)]
    # up: 18961 is 161 away; down: 18739 (footprint 18739-18849) is 61 away
    assert nearest_free_base(taken, near=18800) == 18739


def test_nearest_free_base_at_or_above_never_goes_down() -> None:
    taken = [(18850, 18960)]
    assert nearest_free_base(taken, near=18800, at_or_above=True) == 18961


def test_a_footprint_fits_exactly_into_a_gap_of_111_ports() -> None:
    # 889..999 is free: exactly one footprint, bounded by taken ports on both sides.
    taken = [(700, 888), (1000, 1200)]
    assert nearest_free_base(taken, near=950) == 889
    assert nearest_free_base(taken, near=889, at_or_above=True) == 889
    assert nearest_free_base(taken, near=890, at_or_above=True) == 1201
    assert nearest_free_base([(1111, 2000)], near=1000, at_or_above=True) == 1000


def test_nearest_free_base_prefers_the_lower_base_on_a_tie() -> None:
    # near 1000 taken exactly: 889 (footprint 889-999) and 1111 are both 111 away.
    assert nearest_free_base([(1000, 1110)], near=1000) == 889


def test_nearest_free_base_is_none_when_the_whole_range_is_taken() -> None:
    assert nearest_free_base([(MIN_PORT, MAX_PORT)], near=18789) is None
    assert nearest_free_base([(MIN_PORT, MAX_PORT)], near=18789, at_or_above=True) is None


def test_nearest_free_base_at_or_above_is_none_when_only_lower_bases_are_free() -> None:
    taken = [(18789, MAX_PORT)]
    assert nearest_free_base(taken, near=18789, at_or_above=True) is None
    assert nearest_free_base(taken, near=18789) == 18789 - 111


def test_nearest_free_base_is_none_above_the_highest_base() -> None:
    assert nearest_free_base([], near=MAX_BASE + 1, at_or_above=True) is None
    assert nearest_free_base([], near=MAX_BASE + 1) == MAX_BASE


def brute_force_free_base(taken: list[tuple[int, int]], near: int, at_or_above: bool) -> int | None:
    """The oracle: try every base, with a prefix sum over the taken ports."""
    used = [0] * (MAX_PORT + 2)
    for start, end in taken:
        for port in range(start, end + 1):
            used[port] = 1
    prefix = [0, *accumulate(used)]  # prefix[p] = taken ports below p
    free = [b for b in range(MIN_PORT, MAX_BASE + 1) if prefix[b + 111] == prefix[b]]
    if at_or_above:
        free = [b for b in free if b >= near]
        return min(free) if free else None
    return min(free, key=lambda b: (abs(b - near), b)) if free else None


def test_nearest_free_base_agrees_with_trying_every_base() -> None:
    rnd = random.Random(18789)
    for case in range(40):
        taken = []
        for _ in range(rnd.randint(0, 40)):
            start = rnd.randint(MIN_PORT, MAX_PORT)
            taken.append((start, min(MAX_PORT, start + rnd.randint(0, 3000))))
        if case % 10 == 0:  # some nearly exhausted ranges
            taken.append((MIN_PORT, 30000))
            taken.append((30200, MAX_PORT))
        near = rnd.randint(MIN_PORT, MAX_PORT)
        for at_or_above in (False, True):
            expected = brute_force_free_base(taken, near, at_or_above)
            assert nearest_free_base(taken, near, at_or_above) == expected, (taken, near)


# --- merge_intervals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intervals", "merged"),
    [
        ([], []),
        ([(5, 9)], [(5, 9)]),
        ([(1, 5), (3, 9)], [(1, 9)]),  # overlapping
        ([(1, 5), (6, 9)], [(1, 9)]),  # adjacent: no free port between
        ([(1, 5), (7, 9)], [(1, 5), (7, 9)]),  # one free port between
        ([(7, 9), (1, 5)], [(1, 5), (7, 9)]),  # unsorted input
        ([(1, 10), (2, 3), (4, 4)], [(1, 10)]),  # contained
        ([(1, 1), (1, 1)], [(1, 1)]),  # duplicates
    ],
)
def test_merge_intervals_joins_overlapping_and_adjacent_intervals(
    intervals: list[tuple[int, int]], merged: list[tuple[int, int]]
) -> None:
    assert merge_intervals(intervals) == merged
