"""Who created something: one process on one host, told apart from a later process
that got the same pid. Test runs and port reservations carry it, so `orch gc` and the
host registry can tell a live run from what a killed one left.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NamedTuple


def process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot): a pid and its start time
    name one process even after the pid is reused. None when it does not exist or is
    a zombie (killed, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] == "Z" else fields[19]


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return ""


class Owner(NamedTuple):
    """The process that created something: host, pid namespace, pid, start time.

    A pid only means something in its own pid namespace: `orch gc` running in a
    container (another namespace) cannot tell, and then keeps the run."""

    host: str
    pidns: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid_namespace(), pid, process_start(pid) or "")

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        parts = (text or "").rsplit(":", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def __str__(self) -> str:
        return f"{self.host}:{self.pidns}:{self.pid}:{self.start}"

    def alive(self) -> bool | None:
        """True or False when this host and pid namespace can tell; else None."""
        here = Owner.current()
        if (self.host, self.pidns) != (here.host, here.pidns):
            return None
        if not Path("/proc/self/stat").exists():
            return pid_alive(self.pid)  # no /proc (macOS): the pid alone, reuse not detected
        start = process_start(self.pid)
        return start is not None and (not self.start or start == self.start)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts; see _is_zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
