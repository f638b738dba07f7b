"""One reason the fleet cannot run as it is: what `orch check` and the live checks
return (core/check.py, core/observed.py). A module of its own so that what reads
problems (status, down, the results of every backend) does not load the checks.
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    """One reason the fleet cannot run as it is."""

    code: str
    message: str
    owners: tuple[str, ...]
    hint: str = ""
    ports: tuple[int, int] | None = None
    paths: tuple[str, ...] = ()
    # A problem inside a file (the gateway's openclaw.json): which file, line, key.
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def to_json(self) -> dict:
        data = self._asdict()
        data["owners"] = list(self.owners)
        data["paths"] = list(self.paths)
        data["ports"] = list(self.ports) if self.ports else None
        for where in ("file", "line", "key"):  # only problems inside a file have them
            if data[where] is None:
                del data[where]
        return data
