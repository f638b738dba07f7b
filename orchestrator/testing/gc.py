"""`orch gc`: remove what killed test runs left behind.

A test run that is killed (SIGKILL, a runner that vanished) cannot clean up: its
gateway containers keep running, their networks, dirs and port reservations stay.
Everything the pytest plugin creates carries the run's record (run id, owning
process, creation time: see orchestrator.testing), and this module removes what
belongs to runs that are over. It never touches what has no run record (a user's
`orch up` fleet, anything else on the engine) and never a run whose process still
lives. A run of another host or pid namespace (a CI container) cannot be told
alive or dead: it is only removed with --older-than.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.ports import footprint_bounds, format_range
from orchestrator.errors import NotFound
from orchestrator.testing.factory import LABEL_RUN_ID, LABEL_RUN_OWNER, Owner, PortRegistry
from orchestrator.testing.runs import LABEL_RUN_CREATED, RUNS_DIR, read_run_marker, runs_root

STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Leftover:
    kind: str  # container | network | dir | ports
    name: str
    run_id: str
    owner: str
    created: int
    why: str  # why it is removed, or why it is kept


@dataclass
class GcResult:
    removed: list[Leftover] = field(default_factory=list)
    kept: list[Leftover] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [asdict(x) for x in self.removed],
            "kept": [asdict(x) for x in self.kept],
        }


def verdict(record: dict[str, str], now: float, older_than: float | None) -> tuple[bool, str]:
    """(remove?, why) for one run record. Pure but for the liveness of its owner."""
    owner = Owner.parse(record.get(LABEL_RUN_OWNER))
    created = _int(record.get(LABEL_RUN_CREATED))
    old_enough = older_than is None or now - created >= older_than
    alive = owner.alive() if owner else None
    if alive and owner:
        return False, f"its run is still running (pid {owner.pid})"
    if alive is None and older_than is None:
        return False, "its run is on another host or pid namespace: use --older-than"
    if not old_enough:
        return False, f"younger than {older_than:.0f} s"
    return True, "its run is over" if alive is False else "older than --older-than"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _leftover(kind: str, name: str, record: dict[str, str], why: str) -> Leftover:
    return Leftover(
        kind,
        name,
        record.get(LABEL_RUN_ID, ""),
        record.get(LABEL_RUN_OWNER, ""),
        _int(record.get(LABEL_RUN_CREATED)),
        why,
    )


def collect_gc(
    run_id: str | None = None,
    older_than: float | None = None,
    root: Path | None = None,
    dry_run: bool = False,
    registry: Path | None = None,
) -> GcResult:
    """Find the leftovers of runs that are over and (unless dry_run) remove them:
    containers first (stopped gracefully), then networks, dirs and port reservations."""
    from orchestrator.docker import api as docker_http

    root = root or runs_root()
    now = time.time()
    result = GcResult(dry_run=dry_run)

    def judge(kind: str, name: str, record: dict[str, str]) -> bool:
        if run_id is not None and record.get(LABEL_RUN_ID) != run_id:
            return False
        remove, why = verdict(record, now, older_than)
        (result.removed if remove else result.kept).append(_leftover(kind, name, record, why))
        return remove

    label = {"label": [LABEL_RUN_ID]}
    containers = [
        c for c in docker_http.containers(label) if judge("container", _name(c), c["Labels"])
    ]
    networks = [
        n
        for n in docker_http.get("/networks", {"filters": json.dumps(label)}) or []
        if judge("network", n["Name"], n.get("Labels") or {})
    ]
    # Run dirs under the root, and the home of each container (a run may have used
    # another ORCH_TEST_DIR); a dir counts only with its run record inside.
    homes = sorted((root / RUNS_DIR).glob("*"))
    homes += [Path(c["Labels"]["orch.home"]) for c in containers if c["Labels"].get("orch.home")]
    records = {p: r for p in dict.fromkeys(homes) if (r := read_run_marker(p)) is not None}
    dirs = [p for p, record in records.items() if judge("dir", str(p), record)]
    ports = PortRegistry(registry)

    def prunable(entry: dict[str, Any]) -> bool:
        return _prunable(entry, run_id, now, older_than)

    if dry_run:
        gone = [e for e in ports.entries() if prunable(e)]
    else:
        _remove_containers([c["Id"] for c in containers])
        _remove_networks([n["Id"] for n in networks])
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)
        gone = ports.prune(prunable)
    result.removed += [
        _leftover("ports", format_range(*footprint_bounds(e["base"])), e, "its run is over")
        for e in gone
    ]
    return result


def _prunable(entry: dict[str, Any], run_id: str | None, now: float, older: float | None) -> bool:
    if run_id is not None and entry.get(LABEL_RUN_ID) != run_id:
        return False
    return verdict(entry, now, older)[0]


def _name(raw: dict[str, Any]) -> str:
    return (raw.get("Names") or ["/?"])[0].lstrip("/")


def _remove_containers(ids: list[str]) -> None:
    """Graceful stop first (a gateway killed with rm -f keeps its state lease), in parallel."""
    if not ids:
        return
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.docker import api as docker_http

    def one(container_id: str) -> None:
        with contextlib.suppress(NotFound):
            docker_http.stop(container_id, STOP_TIMEOUT_S)
        with contextlib.suppress(NotFound):
            docker_http.remove_container(container_id, force=True)

    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        list(pool.map(one, ids))


def _remove_networks(ids: list[str]) -> None:
    from orchestrator.docker import api as docker_http

    for network_id in ids:
        with contextlib.suppress(NotFound):
            docker_http.remove_network(network_id)
