"""Run `orch ARGS` counting the fleet loads, spec render passes and engine snapshots
it makes; the counts go to stderr as `COUNTS {json}` (test_walk.py, bench/lifecycle.py).

A render pass is one call of `render_fleet` (every profile at once, as the fleet
handle renders) or of `render` outside one (a profile rendered on its own)."""

import atexit
import json
import sys
import threading

from orchestrator.core import spec
from orchestrator.docker import snapshot
from orchestrator.fleet import store

TARGETS = {
    store.load_fleet.__code__: "loads",
    spec.render_fleet.__code__: "renders",
    spec.render.__code__: "renders",
    snapshot.take_snapshot.__code__: "snapshots",
}
counts = dict.fromkeys(TARGETS.values(), 0)


def _inside_render_fleet(frame) -> bool:
    """A `render` that `render_fleet` called (directly or from its comprehension)."""
    caller = frame.f_back
    for _ in range(2):
        if caller is None:
            return False
        if caller.f_code is spec.render_fleet.__code__:
            return True
        caller = caller.f_back
    return False


def _count(frame, event, _arg):
    if event == "call" and frame.f_code in TARGETS:
        if frame.f_code is spec.render.__code__ and _inside_render_fleet(frame):
            return
        counts[TARGETS[frame.f_code]] += 1


atexit.register(lambda: sys.stderr.write(f"COUNTS {json.dumps(counts)}\n"))
sys.setprofile(_count)
threading.setprofile(_count)  # `up` takes its snapshot in a thread while the gate runs

from orchestrator.cli import main  # noqa: E402

sys.argv = ["orch", *sys.argv[1:]]
main()
