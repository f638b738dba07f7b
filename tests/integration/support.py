"""Helpers for the integration tests: the real CLI bound to a temp home, waits,
HTTP probes, and a look into the real gateway's own state DB."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest


class Orch:
    """The real `orch` CLI bound to one temp home and one project."""

    def __init__(self, home: Path, project: str) -> None:
        self.home = home
        self.project = project

    def run(
        self,
        *args: str,
        ok: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        env = {**os.environ, **(env or {}), "ORCH_HOME": str(self.home)}
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"orch {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(
        self, *args: str, ok: bool = True, timeout: float = 300, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        proc = self.run(*args, "--json", ok=ok, timeout=timeout, env=env)
        return json.loads(proc.stdout)

    def token(self, name: str) -> str:
        return (self.home / "secrets" / name / "gateway_token").read_text().strip()

    def state_dir(self, name: str) -> Path:
        return self.home / "profiles" / name / "state"

    def workspace_dir(self, name: str) -> Path:
        return self.home / "profiles" / name / "workspace"

    def container(self, engine, name: str):
        return engine.containers.get(f"{self.project}-{name}")


def derived_image(ctx: Path, base: str, tag: str, *lines: str) -> str:
    """Build `tag`: `base` plus Dockerfile `lines` (a label, an entrypoint), in `ctx`.
    The classic builder: it needs no network and no BuildKit."""
    (ctx / "Dockerfile").write_text("\n".join([f"FROM {base}", *lines]) + "\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(ctx)],
        check=True,
        capture_output=True,
        env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    return tag


def new_home(base: Path, project: str | None = None) -> Orch:
    project = project or f"it{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, exist_ok=True)
    (base / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    return Orch(base, project)


def forget_home(fleet: Orch) -> None:
    """Drop the fleet file: the host registry then forgets the fleet's footprints."""
    (fleet.home / "fleet.yaml").unlink(missing_ok=True)


def remove_fleet(engine, fleet: Orch, forget: bool = True) -> None:
    """Remove every container and network the fleet left (its project AND its home:
    another fleet of the same project is not this one's to clean), gracefully first;
    then forget its footprints (its fleet file goes), unless `forget` is False."""
    labels = [f"orch.project={fleet.project}", f"orch.home={fleet.home}"]
    containers = engine.containers.list(all=True, filters={"label": labels})
    # All at once, as `orch down` stops them: each gateway's own shutdown is the wait.
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        list(pool.map(_stop_and_remove, containers))
    for network in engine.networks.list(filters={"label": labels}):
        network.remove()
    if forget:
        forget_home(fleet)


def _stop_and_remove(container) -> None:
    try:
        container.stop(timeout=15)
    finally:
        container.remove(force=True)


def free_base(span: int = 111, low: int = 21000, high: int = 32700) -> int:
    """A base whose whole footprint is free on the host right now (tests only;
    spreads tests apart so that parallel runs rarely meet). Below Linux's ephemeral
    range (32768+): a port a probe's connection just used sits in TIME-WAIT, and the
    engine refuses to publish it."""
    from orchestrator.docker.snapshot import host_listeners
    from orchestrator.fleet.registry import fleet_reservations, run_reservations

    used = {lst.port for lst in host_listeners()}
    owned = [(r.start, r.end) for r in fleet_reservations(None) + run_reservations()]
    for _ in range(200):
        base = random.randrange(low, high - span)
        end = base + span - 1
        if used.intersection(range(base, end + 1)):
            continue
        if not any(lo <= end and base <= hi for lo, hi in owned):
            return base
    raise RuntimeError("no free port footprint found")


def require_quiet_engine(engine) -> None:
    """Skip a test that restarts or kills dockerd while other containers run: it would
    stop gateways that are not the tests' own (the main job's, another fleet's).
    `make test-engine` runs these tests on a quiet engine."""
    running = [c.name for c in engine.containers.list()]
    if running:
        pytest.skip(
            f"restarting dockerd would stop containers that are not this test's:"
            f" {', '.join(sorted(running)[:5])}; run `make test-engine` on a quiet engine"
        )


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int | None, str]:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except OSError:
        return None, ""
    finally:
        conn.close()


def gateway_lease(state_dir: Path) -> dict[str, Any]:
    """The gateway-owner lease the real gateway writes into its own state DB."""
    import sqlite3

    db = sqlite3.connect(f"file:{state_dir / 'state' / 'openclaw.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("select * from state_leases").fetchall()
    finally:
        db.close()
    for row in rows:
        if row[0] == "gateway-owner":
            return json.loads(next(c for c in row if isinstance(c, str) and c.startswith("{")))
    raise AssertionError(f"no gateway-owner lease in {state_dir}")


def require_podman() -> None:
    """Podman installed as a user gets it (docker/podman.py `ensure_podman`), or the
    test skipped with a warning CI prints in its summary: never a silent skip."""
    import warnings

    from orchestrator.docker.podman import ensure_podman
    from orchestrator.errors import OrchError

    try:
        ensure_podman()
    except OrchError as exc:
        message = f"Podman tests skipped: Podman cannot be installed here: {exc.message}"
        warnings.warn(pytest.PytestWarning(message), stacklevel=2)
        pytest.skip(message)


class SharedPair:
    """main + rescue, up once for the whole session, for the tests that only need a
    running pair (conftest.py `shared_pair`). It remembers what it was made as (its
    fleet file, each profile's config file, its ports) so that whoever used it can
    check it is still that, and put it back when it is not (`restore`)."""

    NAMES = ("main", "rescue")

    def __init__(self, fleet: Orch) -> None:
        self.fleet = fleet
        self.files = {p: p.read_bytes() for p in self._tracked()}
        rows = fleet.json("ls")["data"]["profiles"]
        self.ports = {r["name"]: r["port"] for r in rows}

    def _tracked(self) -> list[Path]:
        home = self.fleet.home
        configs = [home / "profiles" / n / "config" / "openclaw.json" for n in self.NAMES]
        return [home / "fleet.yaml", *configs]

    def problems(self, engine) -> list[str]:
        """How the pair differs from what it was made as: a changed file, a container
        not running, a gateway not answering /readyz (given 15 s: it may be busy)."""
        found = [f"{p} changed" for p, data in self.files.items() if p.read_bytes() != data]
        for name in self.NAMES:
            try:
                state = self.fleet.container(engine, name).status
            except Exception as exc:  # noqa: BLE001 - gone is one of the answers
                found.append(f"{name}: {type(exc).__name__}")
                continue
            if state != "running":
                found.append(f"{name}: {state}")
        if not found:
            for name, port in self.ports.items():
                try:
                    wait_for(lambda p=port: http_get(p, "/readyz")[0] == 200, 15, name)
                except AssertionError:
                    found.append(f"{name}: not ready")
        return found

    def restore(self, engine) -> list[str]:
        """Put the pair back as it was made when a test left it changed: its files
        written back, its containers made again. Returns what was wrong."""
        found = self.problems(engine)
        if found:
            for path, data in self.files.items():
                path.write_bytes(data)
            self.fleet.run("down", ok=False)
            remove_fleet(engine, self.fleet, forget=False)
            self.fleet.run("up", "--timeout", "300", timeout=400)
        return found
