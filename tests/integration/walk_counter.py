"""Run `orch ARGS` counting the fleet loads, spec renders and engine snapshots it
makes; the counts go to stderr as `COUNTS {json}` (test_walk.py, bench/walk.py)."""

import atexit
import json
import sys

from orchestrator.core import spec
from orchestrator.docker import snapshot
from orchestrator.fleet import store

TARGETS = {
    store.load_fleet.__code__: "loads",
    spec.render.__code__: "renders",
    snapshot.take_snapshot.__code__: "snapshots",
}
counts = dict.fromkeys(TARGETS.values(), 0)


def _count(frame, event, _arg):
    if event == "call" and frame.f_code in TARGETS:
        counts[TARGETS[frame.f_code]] += 1


atexit.register(lambda: sys.stderr.write(f"COUNTS {json.dumps(counts)}\n"))
sys.setprofile(_count)

from orchestrator.cli import main  # noqa: E402

sys.argv = ["orch", *sys.argv[1:]]
main()
