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

from orchestrator.backends import local
from orchestrator.backends.local import starts_at_once
from orchestrator.core.model import Profile
from orchestrator.core.observed import LiveContainer, Snapshot
from orchestrator.core.plan import Action, Kind
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.docker import containers
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


def _engine_calls(monkeypatch) -> list[str]:
    """Every engine call, recorded, each answering as a container that never restarted."""
    asked: list[str] = []

    def get(path: str, *_args: object, **_kw: object) -> dict:
        asked.append(path)
        return {"RestartCount": 0, "State": {"Status": "running"}}

    monkeypatch.setattr(containers.docker_http, "get", get)
    return asked


def test_a_gateway_up_leaves_alone_is_awaited_without_asking_the_engine(tmp_path, monkeypatch):
    """A restart is a failure only for a fresh start: a converged `up` has no use for
    the restart count, and asking for it cost one inspect per gateway."""
    asked = _engine_calls(monkeypatch)
    with _gateway_port() as port:
        gateway = containers.starting(_spec(tmp_path, "main", port), "c0ffee", fresh=False)
        assert [error for _, error in await_ready([gateway], timeout=10)] == [None]
    assert asked == []


def test_a_fresh_start_keeps_its_restart_count_to_tell_a_restart(tmp_path, monkeypatch):
    asked = _engine_calls(monkeypatch)
    containers.starting(_spec(tmp_path, "main", 20000), "c0ffee")
    assert asked == ["/containers/c0ffee/json"]


def test_status_after_up_does_not_dial_a_readyz_up_just_saw_answer(tmp_path, monkeypatch):
    """`up` shows the rows of the gateways it has just seen ready: their /readyz is
    not dialled a second time (one round of probes per `up`, not two)."""
    spec = _spec(tmp_path, "main", _free_port())  # nothing answers: a dial says not ready
    running = LiveContainer("c0ffee", spec.name, "running", "Up 1 minute", spec.labels, ())
    snap = Snapshot(ours={"main": running})
    dialled: list[int] = []
    real = local.http_status
    monkeypatch.setattr(
        local, "http_status", lambda host, port, *a: dialled.append(port) or real(host, port, *a)
    )
    assert local._probe_all([spec], snap, False, {"main": True})["main"].ready is True
    assert dialled == []
    assert local._probe_all([spec], snap, False, {})["main"].ready is False
    assert len(dialled) == 1


def test_a_converged_up_waits_for_its_gateways_without_a_thread_pool(tmp_path, monkeypatch):
    """A no-op `up` starts nothing and asks the engine nothing: its actions run on the
    calling thread and the readiness probes on plain threads, so it never loads
    concurrent.futures (with logging and queue: about 4 ms of every no-op up)."""
    import concurrent.futures

    def no_pool(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a converged up made a thread pool")

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", no_pool)
    with _gateway_port() as a_port, _gateway_port() as b_port:
        actions = [
            Action(Kind.NOOP, name, "up to date and running", spec=_spec(tmp_path, name, port))
            for name, port in (("a", a_port), ("b", b_port))
        ]
        outcomes = local.apply_up(actions, timeout=10)
    assert [(o.profile, o.action, o.ready) for o in outcomes] == [
        ("a", Kind.NOOP, True),
        ("b", Kind.NOOP, True),
    ]
