"""How `make test` shares its two xdist workers (`-n 2 --dist loadgroup`).

Every test that starts containers runs on one worker, one after another, as without
xdist: two gateway starts at once on a 2-core host each take twice as long and run
into the readiness waits. What starts none (the unit tests, the packaging test) runs
on the other worker beside them.

The grouping is decided here by path, not by `xdist_group` marks: pytest 9.2 keeps a
node's id where pytest-xdist 3.8 no longer writes a mark's group into it, so marks
group nothing.
"""

from __future__ import annotations

import pytest

#: Integration modules that start no container: they may run beside the engine's tests.
STARTS_NO_CONTAINER = ("tests/integration/test_packaging.py",)


def engine_scope(nodeid: str) -> str | None:
    """'engine' for a test that starts containers, None for one that may run beside."""
    if nodeid.startswith("tests/integration/") and not nodeid.startswith(STARTS_NO_CONTAINER):
        return "engine"
    return None


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class EngineTestsInTurn(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return engine_scope(nodeid) or super()._split_scope(nodeid)

    return EngineTestsInTurn(config, log)
