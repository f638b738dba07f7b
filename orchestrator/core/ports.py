"""Port footprints and the overlap sweep.

A profile owns every port derived from its base, published or not, so that a
later change of what is published can never collide. Overlaps are found with
one sort and a sweep over intervals, never a pairwise loop: a fleet of 10,000
profiles is checked in well under a second.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MIN_PORT = 1
MAX_PORT = 65535
DEFAULT_BASE = 18789


# The gateway's managed Chrome CDP range ends at base+110; above this base it
# silently falls back to a shared range, which would collide.
MAX_BASE = MAX_PORT - 110
FOOTPRINT_SPAN = 111


Held = tuple[str, int, int]  # a port range someone holds: (host address, first, last)


class Role(StrEnum):
    """What a port is for. Values are what users type in `--publish`."""

    GATEWAY = "gateway"
    BROWSER = "browser"
    BROWSER_CDP = "browser-cdp"
    CANVAS = "canvas"
    EXTENSION = "extension"
    CDP = "cdp"


# (first offset, last offset) from the base, and what the role is, for help text.
ROLE_OFFSETS: dict[Role, tuple[int, int]] = {
    Role.GATEWAY: (0, 0),
    Role.BROWSER: (2, 2),
    Role.BROWSER_CDP: (3, 3),
    Role.CANVAS: (4, 4),
    Role.EXTENSION: (10, 10),
    Role.CDP: (11, 110),
}


# The same as plain tuples: footprint() runs 10,000 times in a check of 10,000 profiles.
_ROLE_SPANS = tuple((role.value, lo, hi) for role, (lo, hi) in ROLE_OFFSETS.items())
ROLE_HELP: dict[Role, str] = {
    Role.GATEWAY: "gateway WebSocket + HTTP, /healthz",
    Role.BROWSER: "browser control (loopback in container)",
    Role.BROWSER_CDP: "default browser.cdpUrl (loopback)",
    Role.CANVAS: "canvas (relayed to the gateway port)",
    Role.EXTENSION: "extension relay (loopback)",
    Role.CDP: "managed Chrome CDP range (loopback)",
}


DEFAULT_PUBLISH: tuple[Role, ...] = (Role.GATEWAY, Role.BROWSER, Role.CANVAS)


# Not frozen: a fleet of 10,000 profiles makes 60,000 of these, and frozen
# dataclasses build 2.5x slower. Never mutated, so hashing by value is safe.
@dataclass(order=True, slots=True, unsafe_hash=True)
class Reservation:
    """One interval of host ports owned by one profile for one role."""

    start: int
    end: int
    owner: str
    role: str
    host_ip: str
    published: bool
    proto: str = "tcp"

    def describe(self) -> str:
        return f"{self.owner} {self.role} {format_range(self.start, self.end)}"


@dataclass(frozen=True)
class Overlap:
    """Two reservations that would fight for the same host ports."""

    first: Reservation
    second: Reservation
    host_ip: str
    start: int
    end: int


def format_range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def footprint(
    owner: str,
    base: int,
    host_ip: str,
    publish: Iterable[str],
    cdp_ports: dict[str, int] | None = None,
) -> list[Reservation]:
    """Every port a profile with this base owns, in port order."""
    published = {str(p) for p in publish}
    out = [
        Reservation(base + lo, base + hi, owner, role, host_ip, role in published)
        for role, lo, hi in _ROLE_SPANS
    ]
    if cdp_ports:
        # The roles are in port order already; only explicit cdpPorts need a sort.
        for name, port in sorted(cdp_ports.items()):
            out.append(Reservation(port, port, owner, f"cdp:{name}", host_ip, False))
        out.sort(key=lambda r: (r.start, r.end, r.role))
    return out


def footprint_bounds(base: int) -> tuple[int, int]:
    return base, base + FOOTPRINT_SPAN - 1


def hosts_intersect(a: str, b: str) -> bool:
    """Whether two publish addresses can clash: the wildcard clashes with all."""
    if a == b:
        return True
    return is_wildcard(a) or is_wildcard(b)


@functools.lru_cache(maxsize=4096)
def is_wildcard(ip: str) -> bool:
    """Cached: the sweep asks for the same few addresses tens of thousands of times."""
    return ipaddress.ip_address(ip).is_unspecified


def sweep(reservations: Iterable[Reservation]) -> list[Overlap]:
    """All overlapping pairs of different owners, by one sort and a sweep.

    Active intervals are kept per host address and hold only those that still
    reach the current start. A reservation is compared with the active ones of
    its own address and of the wildcards (a wildcard with all), so a fleet
    spread over many addresses (10,000 profiles need at least 17) stays as
    cheap as a well-spaced fleet on one: near O(n log n).
    """
    ordered = sorted(reservations, key=lambda r: (r.proto, r.start, r.end))
    overlaps: list[Overlap] = []
    active: dict[str, list[Reservation]] = {}
    wildcards: list[str] = []
    proto = None
    for res in ordered:
        if res.proto != proto:
            active, wildcards, proto = {}, [], res.proto
        wild = is_wildcard(res.host_ip)
        hosts = list(active) if wild else [res.host_ip, *wildcards]
        for host_ip in hosts:
            still = [a for a in active.get(host_ip, ()) if a.end >= res.start]
            active[host_ip] = still
            for other in still:
                if other.owner != res.owner:
                    host = res.host_ip if is_wildcard(other.host_ip) else other.host_ip
                    overlaps.append(
                        Overlap(
                            other, res, host, max(other.start, res.start), min(other.end, res.end)
                        )
                    )
        if wild and res.host_ip not in active:
            wildcards.append(res.host_ip)
        active.setdefault(res.host_ip, []).append(res)
    return overlaps


def pairwise(reservations: list[Reservation]) -> list[Overlap]:
    """The naive O(n^2) check; kept only as the benchmark's anchor and a test oracle."""
    overlaps = []
    for i, a in enumerate(reservations):
        for b in reservations[i + 1 :]:
            if a.owner == b.owner or a.proto != b.proto:
                continue
            if a.start <= b.end and b.start <= a.end and hosts_intersect(a.host_ip, b.host_ip):
                first, second = sorted((a, b), key=lambda r: (r.start, r.end))
                host = second.host_ip if is_wildcard(first.host_ip) else first.host_ip
                overlaps.append(
                    Overlap(first, second, host, max(a.start, b.start), min(a.end, b.end))
                )
    return overlaps


def nearest_free_base(
    taken: Iterable[tuple[int, int]],
    near: int = DEFAULT_BASE,
    at_or_above: bool = False,
) -> int | None:
    """The base closest to `near` whose whole footprint avoids every taken interval.

    `taken` is (start, end) host-port intervals already owned on intersecting
    addresses. With `at_or_above`, only bases >= near count (what `--port auto`
    promises: the lowest free base at or above 18789).
    """
    merged = merge_intervals(taken)
    above = _first_fit_up(merged, max(near, MIN_PORT))
    if at_or_above:
        return above
    below = _first_fit_down(merged, min(near, MAX_BASE))
    candidates = [b for b in (above, below) if b is not None]
    return min(candidates, key=lambda b: (abs(b - near), b)) if candidates else None


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _first_fit_up(merged: list[tuple[int, int]], base: int) -> int | None:
    for start, end in merged:
        if end < base:
            continue
        if base + FOOTPRINT_SPAN - 1 < start:
            break
        base = end + 1
    return base if base <= MAX_BASE else None


def _first_fit_down(merged: list[tuple[int, int]], base: int) -> int | None:
    for start, end in reversed(merged):
        if start > base + FOOTPRINT_SPAN - 1:
            continue
        if end < base:
            break
        base = start - FOOTPRINT_SPAN
    return base if base >= MIN_PORT else None
