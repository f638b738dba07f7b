"""base/parallel.py: a snapshot's engine calls at once, on plain threads."""

from __future__ import annotations

import threading

import pytest

from orchestrator.base.parallel import at_once


def test_the_results_come_back_in_the_order_of_the_calls() -> None:
    assert at_once(lambda: 1, lambda: "two", lambda: [3]) == [1, "two", [3]]
    assert at_once(lambda: 1) == [1]


def test_the_calls_run_at_the_same_time() -> None:
    """Each waits for all the others to have started: run one after another, they
    would never meet."""
    met = threading.Barrier(3, timeout=5)
    assert sorted(at_once(met.wait, met.wait, met.wait)) == [0, 1, 2]


def test_an_error_is_raised_once_every_call_has_ended() -> None:
    ended = []

    def slow() -> str:
        threading.Event().wait(0.2)
        ended.append("slow")
        return "ok"

    def broken() -> None:
        raise ValueError("no engine")

    with pytest.raises(ValueError, match="no engine"):
        at_once(broken, slow)
    assert ended == ["slow"]
