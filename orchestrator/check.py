"""Every way the profiles of a fleet would collide, found before anything runs.

Pure: takes the fleet (and optionally a snapshot of what the live host already
uses) and returns all problems at once, each naming both owners and the exact
ports or paths, so a user fixes everything in one round.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import profile_dirs
from .ports import (
    Overlap,
    Reservation,
    footprint,
    format_range,
    is_wildcard,
    nearest_free_base,
    sweep,
)
from .profile import Fleet, Profile

# Suggesting a free base costs a pass over the fleet; in a badly broken fleet
# of thousands, suggest for the first few owners only.
MAX_SUGGESTIONS = 100


@dataclass(frozen=True)
class Problem:
    """One reason the fleet cannot run as it is."""

    code: str
    message: str
    owners: tuple[str, ...]
    hint: str = ""
    ports: tuple[int, int] | None = None
    paths: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        data = asdict(self)
        data["owners"] = list(self.owners)
        data["paths"] = list(self.paths)
        data["ports"] = list(self.ports) if self.ports else None
        return data


def reservations(profile: Profile) -> list[Reservation]:
    return footprint(
        profile.name,
        profile.port,
        profile.bind_ip,
        [r.value for r in profile.publish],
        profile.cdp_ports,
    )


def fleet_reservations(fleet: Fleet) -> list[Reservation]:
    return [r for p in fleet.profiles.values() for r in reservations(p)]


def check_fleet(fleet: Fleet, home: Path) -> list[Problem]:
    """All problems of the fleet itself: ports, CDP URLs, dirs, rescue links."""
    all_res = fleet_reservations(fleet)
    problems = port_problems(sweep(all_res), all_res, fleet)
    problems += cdp_url_problems(fleet)
    problems += dir_problems(fleet, home)
    problems += rescue_problems(fleet)
    return problems


def port_problems(
    overlaps: list[Overlap], all_res: list[Reservation], fleet: Fleet
) -> list[Problem]:
    suggest = _Suggester(all_res, fleet)
    problems = []
    for ov in overlaps:
        first, second = ov.first, ov.second
        # Name the later profile as the one to move: it is usually the newcomer.
        mover = second if second.owner in fleet.profiles else first
        other = first if mover is second else second
        base = suggest(mover.owner)
        advice = f"; nearest free base for {mover.owner}: {base}" if base else ""
        hint = f"orch setup {mover.owner} --port {base} --force" if base else "remove a profile"
        problems.append(
            Problem(
                code="port-overlap",
                message=(
                    f"{mover.describe()} overlaps {other.describe()} on {ov.host_ip}"
                    f" (ports {format_range(ov.start, ov.end)}){advice}"
                ),
                owners=(mover.owner, other.owner),
                hint=hint,
                ports=(ov.start, ov.end),
            )
        )
    return problems


class _Suggester:
    """Nearest free base per owner, computed at most once per owner."""

    def __init__(self, all_res: list[Reservation], fleet: Fleet) -> None:
        self.fleet = fleet
        self.by_owner: dict[str, list[Reservation]] = defaultdict(list)
        for res in all_res:
            self.by_owner[res.owner].append(res)
        self.cache: dict[str, int | None] = {}

    def __call__(self, owner: str) -> int | None:
        if owner not in self.cache:
            if len(self.cache) >= MAX_SUGGESTIONS or owner not in self.fleet.profiles:
                return None
            profile = self.fleet.profiles[owner]
            taken = [
                (r.start, r.end)
                for other, rs in self.by_owner.items()
                if other != owner
                for r in rs
                if is_wildcard(r.host_ip)
                or is_wildcard(profile.bind_ip)
                or r.host_ip == profile.bind_ip
            ]
            self.cache[owner] = nearest_free_base(taken, near=profile.port)
        return self.cache[owner]


def cdp_url_problems(fleet: Fleet) -> list[Problem]:
    users: dict[str, list[str]] = defaultdict(list)
    for profile in fleet.profiles.values():
        for bname, browser in sorted(profile.browser_profiles.items()):
            if browser.cdp_url:
                users[browser.cdp_url.rstrip("/")].append(f"{profile.name} browser {bname}")
    problems = []
    for url, owners in sorted(users.items()):
        names = sorted({o.split(" ")[0] for o in owners})
        if len(names) > 1:
            problems.append(
                Problem(
                    code="cdp-url-shared",
                    message=f"cdpUrl {url} is used by {' and '.join(owners)}",
                    owners=tuple(names),
                    hint="give each gateway its own Chrome: two gateways on one CDP fight",
                )
            )
    return problems


def dir_problems(fleet: Fleet, home: Path) -> list[Problem]:
    """Shared or nested dirs between profiles, by one sort over path parts.

    Paths are resolved first, so dirs that meet only through a symlink or `..`
    are caught too.
    """
    entries = []
    for profile in fleet.profiles.values():
        for kind, path in profile_dirs(profile, home).items():
            entries.append((path.parts, profile.name, kind, path))
    entries.sort()
    problems = []
    stack: list[tuple[tuple[str, ...], str, str, Path]] = []
    for entry in entries:
        parts, owner, kind, path = entry
        while stack and stack[-1][0] != parts[: len(stack[-1][0])]:
            stack.pop()
        for _a_parts, a_owner, a_kind, a_path in stack:
            if a_owner != owner:
                problems.append(_dir_problem(a_owner, a_kind, a_path, owner, kind, path))
        stack.append(entry)
    return problems


def _dir_problem(a_owner: str, a_kind: str, a_path: Path, owner: str, kind: str, path: Path):
    relation = "is the same dir as" if a_path == path else "is nested inside"
    return Problem(
        code="dir-shared",
        message=f"{owner} {kind} dir {path} {relation} {a_owner} {a_kind} dir {a_path}",
        owners=(owner, a_owner),
        hint=f"give {owner} its own dir: orch setup {owner} --{kind}-dir NEW_DIR --force",
        paths=(str(path), str(a_path)),
    )


def rescue_problems(fleet: Fleet) -> list[Problem]:
    problems = []
    for profile in fleet.profiles.values():
        if profile.rescues and profile.rescues not in fleet.profiles:
            problems.append(
                Problem(
                    code="rescue-unknown",
                    message=f"{profile.name} rescues '{profile.rescues}', not in the fleet",
                    owners=(profile.name,),
                    hint=f"orch setup {profile.rescues} first, or drop --rescues",
                )
            )
    return problems


def problems_for(problems: Iterable[Problem], names: Iterable[str]) -> list[Problem]:
    """The problems that involve any of `names`."""
    wanted = set(names)
    return [p for p in problems if wanted.intersection(p.owners)]
