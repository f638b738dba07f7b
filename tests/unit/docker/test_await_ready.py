"""The one poller `up` waits for its starting gateways with, against real local HTTP
servers standing in for gateway ports (no engine: no container ids to inspect)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.backends.local import starts_at_once
from orchestrator.core.model import Profile
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.docker.containers import Starting, await_ready

from ..helpers import fleet_of


class _Readyz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _gateway_port() -> Iterator[int]:
    """A port where /readyz answers 200, as a ready gateway's does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with _gateway_port() as port:
        return port  # closed again: nothing listens there afterwards


def _spec(home: Path, name: str, port: int) -> ContainerSpec:
    fleet = fleet_of(Profile(name=name, port=port))
    return render(fleet.profiles[name], fleet, home)


def test_a_gateway_started_while_others_are_awaited_is_polled_too(tmp_path):
    with _gateway_port() as first_port, _gateway_port() as later_port:
        first = Starting(_spec(tmp_path, "first", first_port), None)
        later = Starting(_spec(tmp_path, "later", later_port), None)
        gateways = [first]
        seen = []
        for gateway, error in await_ready(gateways, timeout=10):
            seen.append((gateway.spec.profile, error))
            if gateway is first:
                gateways.append(later)  # what `up` does as one settles
    assert seen == [("first", None), ("later", None)]


def test_each_gateway_times_out_on_its_own_clock_with_the_reason(tmp_path):
    with _gateway_port() as port:
        ready = Starting(_spec(tmp_path, "ready", port), None)
        silent = Starting(_spec(tmp_path, "silent", _free_port()), None, began=time.monotonic())
        start = time.monotonic()
        results = dict(
            (g.spec.profile, error) for g, error in await_ready([ready, silent], timeout=1.0)
        )
    assert results["ready"] is None
    assert "silent: gateway not ready after 1 s" in (results["silent"] or "")
    assert 0.9 <= time.monotonic() - start < 5


@pytest.mark.parametrize(("raw", "want"), [("3", 3), ("1", 1), ("0", 64)])
def test_starts_at_once_follows_the_environment(monkeypatch, raw, want):
    monkeypatch.setenv("ORCH_STARTS_AT_ONCE", raw)
    assert starts_at_once() == want
