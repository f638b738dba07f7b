"""What commands show: the data of each result (the JSON `data` field) and its
human rendering. rich is imported only when a table is really printed, to keep
`orch check` and `orch --version` fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .check import Problem, reservations
from .paths import profile_dirs
from .ports import ROLE_HELP, Role, footprint_bounds, format_range
from .profile import Fleet, Profile


def profile_data(profile: Profile, home: Path) -> dict[str, Any]:
    dirs = profile_dirs(profile, home)
    lo, hi = footprint_bounds(profile.port)
    return {
        "name": profile.name,
        "port": profile.port,
        "footprint": [lo, hi],
        "bind_ip": profile.bind_ip,
        "image": profile.image,
        "publish": [r.value for r in profile.publish],
        "user": profile.user,
        "rescues": profile.rescues,
        "dirs": {k: str(p) for k, p in dirs.items()},
        "token_file": str(dirs.token_file),
        "config_file": str(dirs.config_file),
    }


def ports_data(profile: Profile) -> dict[str, Any]:
    lo, hi = footprint_bounds(profile.port)
    return {
        "name": profile.name,
        "port": profile.port,
        "footprint": [lo, hi],
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


def check_data(fleet: Fleet, problems: list[Problem]) -> dict[str, Any]:
    return {
        "profiles": len(fleet.profiles),
        "ok": not problems,
        "problems": [p.to_json() for p in problems],
    }


def _table(*columns: str):
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    return table


def _print(renderable: Any) -> None:
    from rich.console import Console

    # Piped output is read by people too (less, CI logs): do not fold at 80 columns.
    width = None if sys.stdout.isatty() else 200
    Console(width=width).print(renderable)


def show_profiles(rows: list[dict[str, Any]]) -> None:
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
    table = _table("PROFILE", "ROLE", "HOST IP", "PORTS", "PUBLISHED", "WHAT")
    for row in rows:
        for role in row["roles"]:
            known = role["role"] in Role._value2member_map_
            what = ROLE_HELP[Role(role["role"])] if known else "cdpPort of a browser profile"
            table.add_row(
                row["name"],
                role["role"],
                role["host_ip"],
                format_range(role["start"], role["end"]),
                "published" if role["published"] else "reserved",
                what,
            )
    _print(table)


def show_problems(problems: list[Problem], profiles: int) -> None:
    if not problems:
        print(f"ok: no problems in {profiles} profile{'s' if profiles != 1 else ''}")
        return
    out = sys.stdout
    out.write(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:\n")
    for problem in problems:
        out.write(f"  - {problem.message}\n")
        if problem.hint:
            out.write(f"    fix: {problem.hint}\n")


def show_error(message: str, hint: str, problems: list[Problem] | None = None) -> None:
    err = sys.stderr
    err.write(f"error: {message}\n")
    for problem in problems or []:
        err.write(f"  - {problem.message}\n")
    if hint:
        err.write(f"hint: {hint}\n")
