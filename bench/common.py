"""What several benchmarks share: timing, free ports, and waiting for gateways the same
way for every tool."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.docker.containers import http_status
from orchestrator.docker.snapshot import host_listeners

# What every orch command pays before it does anything: Python, typer and its
# pydantic adapters, orch's fleet model, and the end of the process as orch ends it
# (cli/app.py moves every object out of the collector's reach, so the exit does not
# walk them; this floor ends the same way, so no ratio counts that as orch's gain).
FLOOR_IMPORTS = "import gc, typer, typer._adapters, orchestrator.core.model; gc.freeze()"


def wait_ready(ports: list[int], timeout: float = 240) -> float:
    """Poll /readyz on 127.0.0.1 every 0.1 s (as `orch up` does) until all answer 200;
    the wall-clock time when the last one did."""
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if http_status("127.0.0.1", p, "/readyz", 1.0) != 200}
        if pending:
            time.sleep(0.1)
    if pending:
        raise RuntimeError(f"not ready: {sorted(pending)}")
    return time.time()


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall time of `runs` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def orch_command() -> list[str]:
    """The console script users run (as `pip install` makes it), else the module."""
    script = Path(sys.executable).with_name("orch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator"]


def free_bases(count: int, start: int) -> list[int]:
    """`count` bases whose whole footprints are free on the host now, 200 apart: no
    listener there, and no fleet or test run of the host registry holds them. Start
    below Linux's ephemeral range (32768+): the engine refuses to publish a port that
    a probe's connection left in TIME-WAIT."""
    from orchestrator.fleet.registry import fleet_reservations, run_reservations, taken_intervals

    used = {lst.port for lst in host_listeners()}
    held = taken_intervals(fleet_reservations(None) + run_reservations(), "127.0.0.1")
    bases, base = [], start
    while len(bases) < count:
        span = range(base, base + 111)
        if not used.intersection(span) and not any(a <= span[-1] and base <= b for a, b in held):
            bases.append(base)
        base += 200
    return bases
