"""What several benchmarks share: waiting for gateways the same way for every tool."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.engine import http_status  # noqa: E402


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
