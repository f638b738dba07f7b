"""The host's footprint registry: the ports every orch fleet and test run on this
host owns, whether its gateways run or not.

A fleet only knows its own file; two fleets (two users, a user and a test run, two
CI jobs) would otherwise pick the same free base. One dir per host
($ORCH_REGISTRY_DIR, default /tmp/orch-registry, open to every user), one lock:

- `fleet-<hash of home>.json`: each fleet's profiles (name, base, address, what it
  publishes), written by that fleet whenever it saves or brings up its fleet file;
  stale (skipped, then removed) once its home's fleet file is gone;
- `runs.json`: footprints reserved by running test processes (the pytest plugin),
  each with its owning process; stale once that process is gone.

Native OpenClaw profiles of the invoking user (`~/.openclaw*/openclaw.json`) are
read as well, so a later `openclaw --profile` gateway never collides either.
Containers' labels stay the record of what runs; this is the record of what is owned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.base.atomic import atomic_write
from orchestrator.base.host import proc_dir
from orchestrator.base.locks import exclusive_in
from orchestrator.base.owner import Owner
from orchestrator.core.ports import (
    DEFAULT_BASE,
    FOOTPRINT_SPAN,
    MAX_BASE,
    Held,
    Reservation,
    footprint,
    footprint_bounds,
    hosts_intersect,
    nearest_free_base,
)
from orchestrator.errors import OrchError

if TYPE_CHECKING:
    from orchestrator.core.model import Fleet


REGISTRY_ENV = "ORCH_REGISTRY_DIR"
DEFAULT_REGISTRY = Path("/tmp/orch-registry")
LOCK_FILE = "registry.lock"
RUNS_FILE = "runs.json"
FLEET_PREFIX = "fleet-"
LABEL_RUN_OWNER = "orch.run-owner"
LABEL_RUN_ID = "orch.run-id"
DEV_PORT = 19001  # `openclaw --dev`
WILDCARD = "0.0.0.0"


def registry_dir() -> Path:
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser().absolute() if env else DEFAULT_REGISTRY


@contextlib.contextmanager
def locked(root: Path | None = None) -> Iterator[Path]:
    """Hold the host registry lock; yields the registry dir."""
    root = root or registry_dir()
    lock = root / LOCK_FILE
    fresh = not root.exists()
    with exclusive_in(root, LOCK_FILE, mode=0o666):
        if fresh:  # made now: writable by every user (sticky, like /tmp), all fleets meet here
            with contextlib.suppress(OSError):
                os.chmod(root, 0o1777)
        with contextlib.suppress(OSError):
            if lock.stat().st_uid == os.geteuid():
                os.chmod(lock, 0o666)
        yield root


def _write(path: Path, data: Any, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=mode)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fleet_file(root: Path, home: Path) -> Path:
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    return root / f"{FLEET_PREFIX}{digest}.json"


def fleet_record(home: Path, fleet: Fleet) -> dict[str, Any]:
    profiles = [
        {
            "name": p.name,
            "port": p.port,
            "bind_ip": p.bind_ip,
            "publish": [r.value for r in p.publish],
            "cdp_ports": p.cdp_ports,
        }
        for p in fleet.select(None)
    ]
    return {"home": str(home), "project": fleet.project, "profiles": profiles}


def publish_fleet(home: Path, fleet: Fleet, root: Path | None = None) -> None:
    """Record `fleet`'s footprints for the other fleets of the host (a no-op when current)."""
    with locked(root) as where:
        path = _fleet_file(where, home)
        record = fleet_record(home, fleet)
        if not fleet.profiles:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        elif _read(path) != record:
            _write(path, record)


def _home_gone(home: str) -> bool:
    """Only a fleet file that is certainly gone makes an entry stale: another user's
    home we may not read is still there."""
    try:
        os.stat(os.path.join(home, "fleet.yaml"))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def other_fleets(home: Path | None, root: Path | None = None) -> list[dict[str, Any]]:
    """The records of every live fleet on the host but `home`'s; stale ones are removed."""
    root = root or registry_dir()
    out = []
    try:
        paths = sorted(root.glob(f"{FLEET_PREFIX}*.json"))
    except OSError:
        return []
    for path in paths:
        record = _read(path)
        if not isinstance(record, dict) or not isinstance(record.get("home"), str):
            continue
        if home is not None and record["home"] == str(home):
            continue
        if _home_gone(record["home"]):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        out.append(record)
    return out


def other_projects(home: Path, root: Path | None = None) -> set[str]:
    """The projects of every other live fleet the registry knows (running or not)."""
    return {str(r["project"]) for r in other_fleets(home, root) if r.get("project")}


def fleet_holder(record: dict[str, Any]) -> str:
    return f"the fleet in {record['home']} (project {record.get('project', '?')})"


def fleet_reservations(home: Path | None, root: Path | None = None) -> list[Reservation]:
    """What the fleets of this host but `home`'s own, as reservations whose owner
    names the holder ("main of the fleet in /home/ann/.local/share/orch ...")."""
    out: list[Reservation] = []
    for record in other_fleets(home, root):
        holder = fleet_holder(record)
        for p in record.get("profiles") or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                out += footprint(
                    f"{p['name']} of {holder}",
                    int(p["port"]),
                    str(p["bind_ip"]),
                    p.get("publish") or [],
                    {str(k): int(v) for k, v in (p.get("cdp_ports") or {}).items()},
                )
    return out


def run_reservations(root: Path | None = None, home: Path | None = None) -> list[Reservation]:
    """The footprints live test runs reserved, but those reserved for the fleet in `home`
    (a test run's own fleet uses what it reserved)."""
    out = []
    for entry in PortRegistry(root).entries():
        if home is not None and entry.get("home") == str(home):
            continue
        if _entry_alive(entry):
            start, end = footprint_bounds(int(entry["base"]))
            owner = f"test run {entry.get(LABEL_RUN_ID, '?')}"
            out.append(
                Reservation(start, end, owner, "footprint", entry.get("bind_ip", WILDCARD), False)
            )
    return out


def foreign_reservations(home: Path, root: Path | None = None) -> list[Reservation]:
    """Everything on the host that `home`'s fleet must not overlap: other fleets, test runs."""
    return fleet_reservations(home, root) + run_reservations(root, home)


def ephemeral_intervals() -> list[tuple[int, int]]:
    """The kernel's range of source ports for outgoing connections (Linux: 32768-60999),
    which every base picked for the user (`--port auto`, the pytest plugin) avoids: a
    port of it that a recent connection left in TIME-WAIT cannot be bound, so the
    engine refuses to publish it, and every probe, test client or browser on the host
    makes such connections. A base the user names is theirs."""
    proc = proc_dir()
    try:
        text = Path(f"{proc}/sys/net/ipv4/ip_local_port_range").read_text()
        lo, hi = (int(x) for x in text.split())
    except (OSError, ValueError):
        return []
    return [(lo, hi)] if 0 < lo <= hi else []


def native_reservations(skip: Iterable[Path] = ()) -> list[Reservation]:
    """Footprints of the invoking user's native OpenClaw profiles (`openclaw --profile`).

    Their gateway binds loopback or every address depending on its config, so the
    footprint counts on every address. `skip`: dirs an orch profile adopted (orch
    rewrites their port, so they are not a second gateway).
    """
    import json5  # json5 is slow to import: only when an openclaw.json is read

    skipped = {os.path.realpath(p) for p in skip}
    out = []
    try:
        candidates = sorted(Path.home().glob(".openclaw*"))
    except (OSError, RuntimeError):
        return []
    for path in candidates:
        config = path / "openclaw.json"
        if not config.is_file() or os.path.realpath(path) in skipped:
            continue
        try:
            doc = json5.loads(config.read_text(encoding="utf-8"))
            port = (doc.get("gateway") or {}).get("port")
        except (OSError, ValueError, AttributeError):
            port = None
        if not isinstance(port, int):
            # Without gateway.port: the default profile and --dev have known ports; other
            # profiles get one hashed from their name, which orch cannot know.
            port = {".openclaw": DEFAULT_BASE, ".openclaw-dev": DEV_PORT}.get(path.name)
        if isinstance(port, int) and 0 < port <= MAX_BASE:
            start, end = footprint_bounds(port)
            owner = f"native OpenClaw profile in {path}"
            out.append(Reservation(start, end, owner, "footprint", WILDCARD, False))
    return out


def taken_intervals(reservations: Iterable[Reservation], bind_ip: str) -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in reservations if hosts_intersect(r.host_ip, bind_ip)]


class PortRegistry:
    """Port footprints reserved by running test processes (`runs.json` of the registry).

    Reserving holds the registry lock, so two processes never pick overlapping
    footprints, and it also avoids every fleet of the host. An entry lives until its
    owner releases it or dies (then any reserve reclaims it).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or registry_dir()

    def entries(self) -> list[dict[str, Any]]:
        data = _read(self.root / RUNS_FILE)
        if not isinstance(data, dict):
            return []
        return [e for e in data.get("reservations", []) if isinstance(e, dict)]

    def _save(self, entries: list[dict[str, Any]]) -> None:
        _write(self.root / RUNS_FILE, {"reservations": entries}, mode=0o666)

    def reserve(
        self,
        count: int,
        bind_ip: str,
        labels: dict[str, str],
        start: int,
        taken_now: Callable[[], list[Held]],
        home: Path | None = None,
    ) -> list[int]:
        """`count` bases whose whole footprints are free: not reserved by a live
        process or a fleet, and clear of every interval `taken_now` says the host holds.
        `home`: the fleet the bases are for (its checks do not count them as foreign)."""
        with locked(self.root):
            entries = [e for e in self.entries() if _entry_alive(e)]
            taken = [
                footprint_bounds(e["base"])
                for e in entries
                if hosts_intersect(e.get("bind_ip", WILDCARD), bind_ip)
            ]
            taken += taken_intervals(fleet_reservations(None, self.root), bind_ip)
            taken += taken_intervals(native_reservations(), bind_ip)
            taken += [(lo, hi) for ip, lo, hi in taken_now() if hosts_intersect(ip, bind_ip)]
            taken += ephemeral_intervals()
            bases: list[int] = []
            for _ in range(count):
                base = nearest_free_base(taken, near=start, at_or_above=True)
                if base is None:
                    raise OrchError(
                        f"no free port footprint of {FOOTPRINT_SPAN} ports left between {start}"
                        f" and {MAX_BASE + FOOTPRINT_SPAN - 1} on {bind_ip} ({len(entries)}"
                        " reserved by running tests)",
                        hint="run fewer gateways at once, or set ORCH_TEST_PORT_START lower",
                    )
                bases.append(base)
                taken.append(footprint_bounds(base))
            mine = {"home": str(home)} if home else {}
            entries += [{"base": b, "bind_ip": bind_ip, **mine, **labels} for b in bases]
            self._save(entries)
            return bases

    def release(self, bases: Sequence[int], owner: Owner) -> None:
        with locked(self.root):
            kept = [
                e
                for e in self.entries()
                if not (e["base"] in bases and e.get(LABEL_RUN_OWNER) == str(owner))
            ]
            self._save(kept)

    def prune(self, dead: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Drop the entries for which `dead` is true, and return them."""
        with locked(self.root):
            entries = self.entries()
            gone = [e for e in entries if dead(e)]
            if gone:
                self._save([e for e in entries if e not in gone])
            return gone


def _entry_alive(entry: dict[str, Any]) -> bool:
    owner = Owner.parse(entry.get(LABEL_RUN_OWNER))
    return owner is not None and owner.alive() is not False
