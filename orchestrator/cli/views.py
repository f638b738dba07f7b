"""What commands show: the data of each result (the JSON `data` field) and its
human rendering, in plain aligned columns: rich is never imported, to keep every
command (and `orch --help`) fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.core.ports import ROLE_HELP, Role, footprint_bounds, format_range

if TYPE_CHECKING:  # annotations only: status shows no problems and loads no checks
    from orchestrator.core.check import Unchecked, Unenforced
    from orchestrator.core.problem import Problem

# Why `--purge` kept a dir: orch adopted it (it was there before), so it is not orch's.
ADOPTED_NOTE = " (adopted: orch did not create it)"


def profile_data(profile: Profile, home: Path) -> dict[str, Any]:
    dirs = profile_dirs(profile, home)
    lo, hi = footprint_bounds(profile.port)
    return {
        "name": profile.name,
        "port": profile.port,
        "footprint": [lo, hi],
        "bind_ip": profile.bind_ip,
        "image": profile.effective_image,
        "browser": profile.browser,
        "memory": profile.effective_memory,
        "cpus": profile.cpus,
        "read_only_root": profile.read_only_root,
        "publish": [r.value for r in profile.publish],
        "user": profile.user,
        "rescues": profile.rescues,
        "node": profile.node,
        "dirs": {k: str(p) for k, p in dirs.items()},
        "token_file": str(dirs.token_file),
        "config_file": str(dirs.config_file),
    }


def ports_data(profile: Profile) -> dict[str, Any]:
    from orchestrator.core.check import reservations  # start-up: `orch ports` only

    lo, hi = footprint_bounds(profile.port)
    return {
        "name": profile.name,
        "port": profile.port,
        "footprint": [lo, hi],
        "node": profile.node,
        "roles": [
            {
                "role": r.role,
                "host_ip": r.host_ip,
                "start": r.start,
                "end": r.end,
                "published": r.published,
            }
            for r in reservations(profile)
        ],
    }


def check_data(
    fleet: Fleet,
    problems: list[Problem],
    unchecked: Sequence[Unchecked] = (),
    warnings: Sequence[Unenforced] = (),
) -> dict[str, Any]:
    """`ok`: no problem in what was checked; `unchecked`: what could not be, and why;
    `warnings`: what runs, but not as the fleet file says (never a problem)."""
    return {
        "profiles": len(fleet.profiles),
        "ok": not problems,
        "problems": [p.to_json() for p in problems],
        "unchecked": [u.to_json() for u in unchecked],
        "warnings": [w.to_json() for w in warnings],
    }


class _Table:
    """Plain aligned columns. rich would cost ~50 ms of imports per command, and
    these tables need nothing but alignment."""

    def __init__(self, *columns: str) -> None:
        self.rows: list[tuple[str, ...]] = [columns]

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        widths = [max(len(r[i]) for r in self.rows) for i in range(len(self.rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        return "\n".join(line.rstrip() for line in lines) + "\n"


def _table(*columns: str) -> _Table:
    return _Table(*columns)


def _print(table: _Table) -> None:
    sys.stdout.write(table.render())


def show_profiles(rows: list[dict[str, Any]], home: str, project: str) -> None:
    print(f"fleet {home} (project {project})")
    if not rows:
        print("No profiles yet. Add one with: orch setup main")
        return
    table = _table("NAME", "PORT", "FOOTPRINT", "BIND", "PUBLISH", "STATE DIR")
    for row in rows:
        table.add_row(
            row["name"],
            str(row["port"]),
            format_range(*row["footprint"]),
            row["bind_ip"],
            ",".join(row["publish"]),
            row["dirs"]["state"],
        )
    _print(table)


def show_ports(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("No profiles yet. Add one with: orch setup main")
        return
    # Placement matters once a profile names a swarm node: ports are per node then.
    placed = any(row.get("node") for row in rows)
    nodes = ("NODE",) if placed else ()
    table = _table("PROFILE", *nodes, "ROLE", "HOST IP", "PORTS", "PUBLISHED", "WHAT")
    for row in rows:
        node = (row.get("node") or "(manager)",) if placed else ()
        for role in row["roles"]:
            known = role["role"] in Role._value2member_map_
            what = ROLE_HELP[Role(role["role"])] if known else "cdpPort of a browser profile"
            table.add_row(
                row["name"],
                *node,
                role["role"],
                role["host_ip"],
                format_range(role["start"], role["end"]),
                "published" if role["published"] else "reserved",
                what,
            )
    _print(table)


def show_problems(
    problems: list[Problem],
    profiles: int,
    unchecked: Sequence[Unchecked] = (),
    warnings: Sequence[Unenforced] = (),
) -> None:
    out = sys.stdout
    if not problems:
        but = f"; {_count(len(unchecked), 'item')} not checked" if unchecked else ""
        out.write(f"ok: no problems in {_count(profiles, 'profile')}{but}\n")
    else:
        out.write(f"{_count(len(problems), 'problem')}:\n")
    for problem in problems:
        out.write(f"  - {problem.message}\n")
        if problem.hint:
            out.write(f"    fix: {problem.hint}\n")
    if unchecked:
        out.write("not checked:\n")
    for item in unchecked:
        out.write(f"  - {item.what}: {item.why}\n    to check it: {item.hint}\n")
    for warning in warnings:
        out.write(f"warning: {warning.message}\n    to enforce it: {warning.hint}\n")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def show_error(message: str, hint: str, problems: list[Problem] | None = None) -> None:
    err = sys.stderr
    err.write(f"error: {message}\n")
    for problem in problems or []:
        err.write(f"  - {problem.message}\n")
    if hint:
        err.write(f"hint: {hint}\n")


def show_plan(plan: list[dict[str, Any]]) -> None:
    for action in plan:
        print(f"{action['profile']}: {action['action']} ({action['reason']})")


def _answer_word(port: dict[str, Any]) -> str:
    if port["answering"]:
        return " answers"
    return " silent" if port["note"] else ""


NOT_PUBLISHED = "not published (orch exec NAME)"


def show_status(engine: str, rows: list[dict[str, Any]]) -> None:
    """The rows of `orch status` as the engine's table."""
    shows = {"docker": _show_containers, "podman": _show_containers, "swarm": show_swarm_status}
    shows[engine](rows)


def show_backups(backups: dict[str, Any]) -> None:
    """One line per profile: its newest backup and how old it is."""
    from orchestrator.fleet.backup_names import human_age

    for name, newest in backups.items():
        if newest is None:
            print(f"{name}: no backup yet (`orch backup {name}`)")
        else:
            age = human_age(newest["age_s"])
            print(f"{name}: newest backup {age} old, {newest['archive']}")


def _show_containers(rows: list[dict[str, Any]]) -> None:
    table = _table(
        "PROFILE", "STATE", "HEALTH", "READY", "UPTIME", "RESTARTS", "URL", "PORTS", "DRIFT"
    )
    for row in rows:
        ports = ", ".join(f"{p['role']} {p['ports']}" + _answer_word(p) for p in row["ports"])
        uptime = f"{row['uptime_s']:.0f}s" if row["uptime_s"] is not None else "-"
        table.add_row(
            row["profile"],
            row["state"],
            row["health"],
            "yes" if row["ready"] else "no",
            uptime,
            str(row.get("restarts", 0)),
            row["url"] or NOT_PUBLISHED,
            ports or "-",
            row["drift"] or "-",
        )
    _print(table)
    for row in rows:
        if row.get("orphan"):
            print(f"{row['profile']}: {row['note']}")
            continue
        if not row["ready"] or row.get("restarts"):
            print(f"{row['profile']}: {row.get('ready_reason') or 'not ready'}")
            if row.get("last_error"):
                print(f"  last error: {row['last_error']}")
    notes = {(p["role"], p["note"]) for row in rows for p in row["ports"] if p["note"]}
    for role, note in sorted(notes):
        print(f"note: {role} silent: {note}")


def show_swarm_status(rows: list[dict[str, Any]]) -> None:
    """One line per profile (its node and that node's state, its task, readiness),
    its ports as dialled from the manager, why it is not ready, then its newest tasks."""
    for row in rows:
        ready = "ready" if row["ready"] else "not ready"
        where = f" on {row['node']} ({row['node_state'] or 'node unknown'})" if row["node"] else ""
        task = f"task {row['state']} (desired {row['desired']})" if row["desired"] else row["state"]
        print(
            f"{row['profile']}: service {row['service'] or '-'}{where}, {task},"
            f" {row['replicas']} running, {ready}, {row['url'] or 'gateway not published'}"
            + (f", drift: {row['drift']}" if row["drift"] else "")
        )
        ports = ", ".join(
            f"{p['role']} {p['host_ip']}:{p['ports']} {'answers' if p['answering'] else 'silent'}"
            for p in row.get("ports") or []
        )
        if ports:
            print(f"  ports from the manager: {ports}")
        if not row["ready"] and row.get("ready_reason"):
            print(f"  {row['ready_reason']}")
        if row.get("error") and row["ready"]:
            print(f"  last error: {row['error']}")
        for task in row["tasks"][:3]:
            error = f" ({task['error']})" if task["error"] else ""
            print(
                f"  task {task['name']} {task['id']} on {task['node']}:"
                f" {task['state']} (desired {task['desired']}){error}"
            )
