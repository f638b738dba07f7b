"""Backup schedules without a daemon of orch's own: a systemd timer (service + timer
unit) or a cron line that runs `orch backup ...` as typed.

Pure: it renders text. The units carry ORCH_HOME and the non-secret S3 settings
(endpoint, region, profile name); credentials never: the service reads them from
~/.aws of the user it runs as, or from an EnvironmentFile the user names.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# Settings worth carrying into a unit: they say where, not who.
CARRIED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
EVERY = {
    "hourly": ("hourly", "0 * * * *"),
    "daily": ("*-*-* 03:00:00", "0 3 * * *"),
    "weekly": ("Sun *-*-* 03:00:00", "0 3 * * 0"),
}
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_every(every: str) -> tuple[str, str]:
    """`hourly`, `daily`, `weekly` or `HH:MM` (daily then): (OnCalendar, cron fields)."""
    if every in EVERY:
        return EVERY[every]
    match = TIME_RE.match(every)
    if not match:
        raise ValueError(f"{every!r} is not hourly, daily, weekly or HH:MM")
    hour, minute = int(match.group(1)), int(match.group(2))
    return f"*-*-* {hour:02d}:{minute:02d}:00", f"{minute} {hour} * * *"


@dataclass(frozen=True)
class Schedule:
    unit: str  # e.g. orch-backup-main
    command: list[str]  # argv: the orch binary, then `backup ...`
    home: str
    every: str
    env: dict[str, str]
    env_file: str | None = None

    def service(self) -> str:
        lines = [
            "[Unit]",
            f"Description=orch backup ({shlex.join(self.command[1:])})",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"Environment={_quote_env('ORCH_HOME', self.home)}",
        ]
        lines += [f"Environment={_quote_env(k, v)}" for k, v in sorted(self.env.items())]
        if self.env_file:
            lines.append(f"EnvironmentFile={self.env_file}")
        lines.append(f"ExecStart={shlex.join(self.command)}")
        return "\n".join(lines) + "\n"

    def timer(self) -> str:
        on_calendar, _ = parse_every(self.every)
        return (
            "[Unit]\n"
            f"Description=Run {self.unit}.service {self.every}\n\n"
            "[Timer]\n"
            f"OnCalendar={on_calendar}\n"
            "Persistent=true\n"
            "RandomizedDelaySec=300\n\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        )

    def cron_line(self) -> str:
        _, fields = parse_every(self.every)
        env = {"ORCH_HOME": self.home, **self.env}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = shlex.join(self.command)
        if self.env_file:
            inner = f"set -a; . {shlex.quote(self.env_file)}; set +a; exec {command}"
            command = f"sh -c {shlex.quote(inner)}"
        # cron reads % as a newline: escape it.
        return f"{fields} {prefix} {command}".replace("%", "\\%")


def _quote_env(key: str, value: str) -> str:
    """One Environment= assignment, quoted as systemd reads it."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{key}={escaped}"'


def unit_name(names: list[str] | None) -> str:
    return "orch-backup-" + ("-".join(names) if names else "all")
