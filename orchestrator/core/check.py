"""Every way the profiles of a fleet would collide, found before anything runs.

Pure: takes the fleet (and optionally a snapshot of what the live host already
uses) and returns all problems at once, each naming both owners and the exact
ports or paths, so a user fixes everything in one round.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from orchestrator.core.adoption import HostRoots, forbidden_reason
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import profile_dirs, resolved_dirs
from orchestrator.core.placement import (
    SwarmNode,
    manager_of,
    node_of,
    on_this_host,
    placed_overlaps,
)
from orchestrator.core.ports import (
    ROLE_OFFSETS,
    Overlap,
    Reservation,
    footprint,
    footprint_bounds,
    format_range,
    hosts_intersect,
    nearest_free_base,
    sweep,
)
from orchestrator.core.problem import Problem
from orchestrator.core.spec import ContainerSpec

# Suggesting a free base costs a pass over the fleet; in a badly broken fleet
# of thousands, suggest for the first few owners only.
MAX_SUGGESTIONS = 100


# Role of a whole base..base+110 span, used only to find cdpPorts between roles.
FOOTPRINT = "footprint"


class Unchecked(NamedTuple):
    """Something `orch check` could not check, why, and how to make it checkable: a
    clean check says only what it checked."""

    what: str  # "main openclaw.json against the gateway's schema"
    why: str  # "no Docker engine answers"
    hint: str
    owners: tuple[str, ...] = ()
    file: str | None = None

    @property
    def message(self) -> str:
        return f"{self.what}: not checked, {self.why}"

    def to_json(self) -> dict:
        return {**self._asdict(), "owners": list(self.owners), "message": self.message}


class Unenforced(NamedTuple):
    """A limit the engine accepts and does not enforce (rootless Podman on cgroup v1
    has no cgroup controllers): the gateway runs, without it. A warning, never a
    problem: `orch check` and `orch up` say it, neither refuses."""

    profile: str
    limits: tuple[str, ...]  # "memory 1280m", "pids 512", "cpus 1"
    engine: str  # "rootless Podman 4.3.1 on cgroup v1"

    @property
    def detail(self) -> str:
        return (
            f"{', '.join(self.limits)} not enforced: {self.engine} has no cgroup"
            f" controller for {'it' if len(self.limits) == 1 else 'them'}"
        )

    @property
    def message(self) -> str:
        return f"{self.profile}: {self.detail}"

    hint = (
        "run rootful, or on a cgroup v2 host with controllers delegated to the user"
        " (systemd's user@.service Delegate=memory pids cpu)"
    )

    def to_json(self) -> dict:
        return {**self._asdict(), "limits": list(self.limits), "message": self.message}


#: The cgroup controller that enforces each limit of a spec.
LIMIT_CONTROLLERS = (("memory", "memory"), ("pids", "pids"), ("cpus", "cpu"))


def unenforced_limits(
    specs: Iterable[ContainerSpec], controllers: Sequence[str], engine: str
) -> list[Unenforced]:
    """Each spec's limits whose cgroup controller is not in `controllers` (what the
    engine's containers may use), one Unenforced per spec that has any."""
    out = []
    for spec in specs:
        values = {"memory": spec.mem_limit, "pids": spec.pids_limit, "cpus": f"{spec.cpus:g}"}
        missing = tuple(
            f"{limit} {values[limit]}"
            for limit, controller in LIMIT_CONTROLLERS
            if values[limit] not in (0, "0", "", None) and controller not in controllers
        )
        if missing:
            out.append(Unenforced(spec.profile, missing, engine))
    return out


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


def check_fleet(
    fleet: Fleet,
    home: Path,
    foreign: Sequence[Reservation] = (),
    roots: HostRoots | None = None,
    nodes: Sequence[SwarmNode] | None = None,
) -> list[Problem]:
    """All problems of the fleet: ports, cdpPorts, CDP URLs, dirs, rescue links, and
    footprints that overlap what `foreign` says other fleets and test runs of the
    host own (orchestrator.registry); with `roots` (what of the host no profile dir
    may be), the dirs written in the fleet file that point at one of them.
    Ports are checked per swarm node (core/placement.py); with `nodes`, the live
    node list, a node the swarm does not have is a problem too."""
    all_res = fleet_reservations(fleet)
    manager = manager_of(nodes)
    problems = port_problems(placed_overlaps(all_res, fleet, manager), all_res, fleet)
    here = on_this_host(fleet, manager)
    problems += foreign_problems(fleet, [r for r in all_res if r.owner in here], foreign)
    problems += cdp_port_problems(fleet)
    problems += cdp_url_problems(fleet)
    if roots is not None:
        problems += forbidden_dir_problems(fleet, home, roots)
    problems += dir_problems(fleet, home)
    problems += rescue_problems(fleet)
    problems += placement_problems(fleet, nodes)
    return problems


def port_problems(
    overlaps: list[Overlap], all_res: list[Reservation], fleet: Fleet
) -> list[Problem]:
    suggest = _Suggester(all_res, fleet)
    problems = []
    for ov in overlaps:
        first, second = ov.first, ov.second
        # Move an explicit cdpPort (a new base would not move it), else the later
        # profile: it is usually the newcomer.
        mover = first if _explicit_cdp(first) and not _explicit_cdp(second) else second
        other = first if mover is second else second
        if _explicit_cdp(mover):
            base = None
            advice = f"; move {mover.owner}'s {mover.role} to a port no profile owns"
            hint = _cdp_port_hint(mover)
        else:
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


def foreign_problems(
    fleet: Fleet, own: list[Reservation], foreign: Sequence[Reservation]
) -> list[Problem]:
    """Own reservations that overlap another holder's on the host, one problem per
    pair of owners, naming the other fleet's home, its profile, roles and ports."""
    if not foreign:
        return []
    pairs: dict[tuple[str, str], list[Overlap]] = defaultdict(list)
    for ov in sweep([*own, *foreign]):
        mine, theirs = (
            (ov.first, ov.second) if ov.first.owner in fleet.profiles else (ov.second, ov.first)
        )
        if mine.owner in fleet.profiles and theirs.owner not in fleet.profiles:
            pairs[(mine.owner, theirs.owner)].append(ov)
    problems = []
    for (owner, holder), overlaps in sorted(pairs.items()):
        profile = fleet.profiles[owner]
        taken = [
            (r.start, r.end)
            for r in [*own, *foreign]
            if r.owner != owner and hosts_intersect(r.host_ip, profile.bind_ip)
        ]
        base = nearest_free_base(taken, near=profile.port)
        theirs = [o.first if o.first.owner == holder else o.second for o in overlaps]
        roles = ", ".join(dict.fromkeys(r.role for r in theirs))
        start, end = min(o.start for o in overlaps), max(o.end for o in overlaps)
        lo, hi = footprint_bounds(profile.port)
        advice = f"; nearest free base for {owner}: {base}" if base else ""
        problems.append(
            Problem(
                code="port-foreign",
                message=(
                    f"{owner} footprint {format_range(lo, hi)} overlaps {holder}"
                    f" ({roles}) on {overlaps[0].host_ip} (ports {format_range(start, end)})"
                    f"{advice}"
                ),
                owners=(owner,),
                hint=(
                    f"orch setup {owner} --port {base} --force" if base else "use another --bind-ip"
                ),
                ports=(start, end),
            )
        )
    return problems


def cdp_port_problems(fleet: Fleet) -> list[Problem]:
    """Explicit cdpPorts inside another profile's footprint, between its roles.

    A profile owns base..base+110 whole, also base+1 and base+5..base+9 where no
    role listens today (old releases did), so a cdpPort there is a collision too.
    A cdpPort on a role's own ports is already reported by the role sweep.
    """
    explicit = [
        Reservation(port, port, p.name, f"cdp:{bname}", p.bind_ip, False)
        for p in fleet.profiles.values()
        for bname, port in sorted(p.cdp_ports.items())
    ]
    if not explicit:
        return []
    spans = [
        Reservation(*footprint_bounds(p.port), p.name, FOOTPRINT, p.bind_ip, False)
        for p in fleet.profiles.values()
    ]
    problems = []
    for ov in sweep(spans + explicit):
        span, cdp = (ov.first, ov.second) if ov.first.role == FOOTPRINT else (ov.second, ov.first)
        if span.role != FOOTPRINT or cdp.role == FOOTPRINT or _on_a_role(cdp.start - span.start):
            continue
        problems.append(
            Problem(
                code="port-overlap",
                message=(
                    f"{cdp.describe()} is inside {span.owner}'s footprint"
                    f" {format_range(span.start, span.end)} on {ov.host_ip}"
                    f" (ports {cdp.start}); move {cdp.owner}'s {cdp.role} to a port no profile owns"
                ),
                owners=(cdp.owner, span.owner),
                hint=_cdp_port_hint(cdp),
                ports=(cdp.start, cdp.end),
            )
        )
    return problems


def _explicit_cdp(res: Reservation) -> bool:
    """A browser profile's own cdpPort (role `cdp:NAME`), not a role of the footprint."""
    return res.role.startswith("cdp:")


def _on_a_role(offset: int) -> bool:
    return any(lo <= offset <= hi for lo, hi in ROLE_OFFSETS.values())


def _cdp_port_hint(res: Reservation) -> str:
    browser = res.role.removeprefix("cdp:")
    return (
        f"set profiles.{res.owner}.browser_profiles.{browser}.cdp_port in the fleet file"
        " to a port outside every footprint (see `orch ports`)"
    )


class _Suggester:
    """Nearest free base per owner, computed at most once per owner.

    Reservations are indexed by host address, so one suggestion reads only the
    addresses that can clash with the owner's, not the whole fleet.
    """

    def __init__(self, all_res: list[Reservation], fleet: Fleet) -> None:
        self.fleet = fleet
        self.by_host: dict[str, list[Reservation]] = defaultdict(list)
        for res in all_res:
            self.by_host[res.host_ip].append(res)
        self.cache: dict[str, int | None] = {}

    def __call__(self, owner: str) -> int | None:
        if owner not in self.cache:
            if len(self.cache) >= MAX_SUGGESTIONS or owner not in self.fleet.profiles:
                return None
            profile = self.fleet.profiles[owner]
            taken = [
                (r.start, r.end)
                for host, rs in self.by_host.items()
                if hosts_intersect(host, profile.bind_ip)
                for r in rs
                if r.owner != owner
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
    cache: dict[str, str] = {}
    for profile in fleet.profiles.values():
        for kind, path in resolved_dirs(profile, str(home), cache):
            # "/" -> ("",): the root is a prefix of every path, like any other dir.
            entries.append((tuple(path.rstrip("/").split("/")), profile.name, kind, path))
    entries.sort()
    problems = []
    stack: list[tuple[tuple[str, ...], str, str, str]] = []
    for entry in entries:
        parts, owner, kind, path = entry
        while stack and stack[-1][0] != parts[: len(stack[-1][0])]:
            stack.pop()
        for _a_parts, a_owner, a_kind, a_path in stack:
            if a_owner != owner:
                problems.append(_dir_problem(a_owner, a_kind, a_path, owner, kind, path))
        stack.append(entry)
    return problems


def _dir_problem(a_owner: str, a_kind: str, a_path: str, owner: str, kind: str, path: str):
    relation = "is the same dir as" if a_path == path else "is nested inside"
    return Problem(
        code="dir-shared",
        message=f"{owner} {kind} dir {path} {relation} {a_owner} {a_kind} dir {a_path}",
        owners=(owner, a_owner),
        hint=f"give {owner} its own dir: orch setup {owner} --{kind}-dir NEW_DIR --force",
        paths=(path, a_path),
    )


def forbidden_dir_problems(fleet: Fleet, home: Path, roots: HostRoots) -> list[Problem]:
    """Dirs written in the fleet file that resolve (symlinks, `..`) to a system tree,
    a home, orch's home or a dir above it (orchestrator.core.adoption). The default
    dirs under orch's home are orch's own and not looked at here."""
    problems = []
    cache: dict[str, str] = {}
    for profile in fleet.profiles.values():
        for kind, real in resolved_dirs(profile, str(home), cache):
            given = getattr(profile.dirs, kind)
            problem = given and forbidden_dir_problem(profile.name, kind, str(given), real, roots)
            if problem:
                problems.append(problem)
    return problems


def forbidden_dir_problem(
    name: str, kind: str, given: str, real: str, roots: HostRoots
) -> Problem | None:
    """The problem of profile `name` using `given` (resolving to `real`) as its
    `kind` dir, if that is a dir orch never uses."""
    reason = forbidden_reason(real, roots)
    if not reason:
        return None
    where = given if given == real else f"{given} (resolves to {real})"
    return Problem(
        code="dir-forbidden",
        message=f"{name} {kind} dir {where} is {reason}: never a profile dir",
        owners=(name,),
        hint=(
            f"give {name} a dir of its own (orch setup {name} --{kind}-dir DIR --force),"
            f" or drop dirs.{kind} from the fleet file for the default under orch's home"
        ),
        paths=(given, real),
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


TOKEN_MODE = 0o600


def file_problems(fleet: Fleet, home: Path) -> list[Problem]:
    """What `up` would find missing or unsafe on disk: each profile's dirs, its config
    file, its token file (there, mode 0600, owned by the user the gateway runs as).
    Reported, never repaired here: `orch setup NAME` repairs them."""

    problems = []
    root = os.geteuid() == 0
    for profile in fleet.select(None):
        dirs = profile_dirs(profile, home)
        fix = f"orch setup {profile.name}"
        wanted = [(kind, path, True) for kind, path in dirs.items()]
        wanted += [("config file", dirs.config_file, False), ("token file", dirs.token_file, False)]
        for kind, path, is_dir in wanted:
            if path.is_dir() if is_dir else path.is_file():
                continue
            problems.append(
                Problem(
                    code="file-missing",
                    message=f"{profile.name} {kind} {path} is missing",
                    owners=(profile.name,),
                    hint=f"`{fix}` creates it again (an existing token is kept)",
                    paths=(str(path),),
                )
            )
        try:
            st = dirs.token_file.stat()
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if mode != TOKEN_MODE:
            problems.append(
                Problem(
                    code="token-mode",
                    message=(
                        f"{profile.name} token file {dirs.token_file} has mode {mode:04o};"
                        " it must be 0600: any other user of the host could read it"
                    ),
                    owners=(profile.name,),
                    hint=f"`{fix}` sets it to 0600 (or: chmod 600 {dirs.token_file})",
                    paths=(str(dirs.token_file),),
                )
            )
        if root and st.st_uid != profile.uid:
            problems.append(
                Problem(
                    code="token-owner",
                    message=(
                        f"{profile.name} token file {dirs.token_file} is owned by uid"
                        f" {st.st_uid}; the gateway runs as uid {profile.uid} and cannot read it"
                    ),
                    owners=(profile.name,),
                    hint=f"`{fix}` gives it to uid {profile.uid}",
                    paths=(str(dirs.token_file),),
                )
            )
    return problems


def problems_for(problems: Iterable[Problem], names: Iterable[str]) -> list[Problem]:
    """The problems that involve any of `names`."""
    wanted = set(names)
    return [p for p in problems if wanted.intersection(p.owners)]


def placement_problems(fleet: Fleet, nodes: Sequence[SwarmNode] | None = None) -> list[Problem]:
    """Nodes the swarm does not have (when `nodes`, the live list, is known), and
    rescue profiles on another node than the config dir they repair."""
    manager = manager_of(nodes)
    problems = unknown_node_problems(fleet, nodes) if nodes is not None else []
    return problems + rescue_node_problems(fleet, manager)


def node_down_problems(assigned: Mapping[str, SwarmNode]) -> list[Problem]:
    """Profiles (name -> the node they run on) whose node cannot start a task now:
    down, drained or paused. Swarm would hold their task pending, and `up` would wait
    for nothing. The one rule for both ways a swarm fleet is placed (`node:` and node
    labels)."""
    return [
        Problem(
            code="swarm-node-down",
            message=(
                f"{profile}'s node {node.hostname} is {node.state}, availability"
                f" {node.availability}: its task could not start"
            ),
            owners=(profile,),
            hint=(
                f"bring {node.hostname} back, or: docker node update --availability active"
                f" {node.hostname}"
            ),
        )
        for profile, node in assigned.items()
        if not node.usable
    ]


def unknown_node_problems(fleet: Fleet, nodes: Sequence[SwarmNode]) -> list[Problem]:
    known = {n.hostname for n in nodes}
    listed = ", ".join(sorted(known)) or "none"
    return [
        Problem(
            code="node-unknown",
            message=(
                f"{p.name} is placed on node {p.node}, which this swarm does not have"
                f" (nodes: {listed})"
            ),
            owners=(p.name,),
            hint=f"orch setup {p.name} --node HOSTNAME --force (hostnames: `docker node ls`)",
        )
        for p in fleet.select(None)
        if p.node is not None and p.node not in known
    ]


def rescue_node_problems(fleet: Fleet, manager: str | None = None) -> list[Problem]:
    """A rescue mounts its target's config dir, which lives on the target's node: both
    must run on one node (unplaced means the manager's)."""
    problems = []
    for rescue in fleet.select(None):
        target = fleet.profiles.get(rescue.rescues or "")
        if target is None:
            continue
        mine, theirs = node_of(rescue, manager), node_of(target, manager)
        if mine == theirs:
            continue
        problems.append(
            Problem(
                code="rescue-node",
                message=(
                    f"{rescue.name} rescues {target.name}, whose config dir is on"
                    f" {_where(theirs, target)}, but {rescue.name} runs on {_where(mine, rescue)}:"
                    " a container mounts dirs of its own node only"
                ),
                owners=(rescue.name, target.name),
                hint=(
                    f"orch setup {rescue.name} --node {target.node} --force"
                    if target.node
                    else f"orch setup {rescue.name} --node '' --force (unplaced, as {target.name})"
                ),
            )
        )
    return problems


def _where(node: str | None, profile: Profile) -> str:
    if node is None:
        return "the manager (unplaced)"
    return f"node {node}" + ("" if profile.node else " (unplaced: the manager)")


def local_engine_problems(profiles: Sequence[Profile]) -> list[Problem]:
    """Profiles placed on a node, asked to run on the local engine: refused, not
    ignored, because the fleet's check let them share ports with profiles of other
    nodes, which on one host would collide."""
    return [
        Problem(
            code="node-local",
            message=(
                f"{p.name} is placed on swarm node {p.node}; the local engine runs every"
                " profile on this host and cannot honour it"
            ),
            owners=(p.name,),
            hint=(
                f"run it with --engine swarm, or drop the placement:"
                f" orch setup {p.name} --node '' --force"
            ),
        )
        for p in profiles
        if p.node is not None
    ]
