"""CPU time (user + sys) of orch commands above the floor, two source trees side by
side: each command run right after the floor (the imports every command pays), the
trees interleaved and their order swapped every round, so a load that changes while
it runs (other jobs on the host) moves both alike. Wall-clock ratios swing with such
load; CPU time much less.

    ORCH_HOME=... python bench/cpu_above_floor.py --trees MAIN_TREE,THIS_TREE \
        --commands status,check,up --rounds 16

Runs the commands against the fleet in ORCH_HOME as they are (start its gateways
first for a status of running gateways). Byte-compile both trees first
(`python -m compileall -q TREE/orchestrator`): with PYTHONDONTWRITEBYTECODE set,
a tree without .pyc files compiles every module at every start. Prints; never asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FLOOR_IMPORTS as FLOOR  # noqa: E402

RUN = "import sys; sys.argv = ['orch'] + sys.argv[1:]; from orchestrator.cli import main; main()"


def run(code: str, tree: str, args: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one Python process importing from `tree`."""
    env = {**os.environ, "PYTHONPATH": tree}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, cwd="/")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = str(Path(__file__).resolve().parents[1])
    parser.add_argument("--trees", default=here, help="comma-separated source trees")
    parser.add_argument("--commands", default="status,check,up")
    parser.add_argument("--rounds", type=int, default=16)
    opts = parser.parse_args()
    trees, commands = opts.trees.split(","), opts.commands.split(",")
    for tree in trees:  # one warm-up each (disk cache)
        for command in commands:
            run(RUN, tree, command.split())
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads = []
    for i in range(opts.rounds):
        loads.append(os.getloadavg()[0])
        for command in commands:
            for tree in trees if i % 2 == 0 else trees[::-1]:
                floor_cpu, floor_wall = run(FLOOR, tree, [])
                cpu, wall = run(RUN, tree, command.split())
                found.setdefault((command, tree), []).append((cpu - floor_cpu, wall - floor_wall))
    print(f"== CPU above the floor: {opts.rounds} rounds, load {min(loads):.1f}-{max(loads):.1f}")
    for command in commands:
        for tree in trees:
            rows = found[(command, tree)]
            cpu = statistics.median(r[0] for r in rows) * 1000
            wall = statistics.median(r[1] for r in rows) * 1000
            print(f"  orch {command:<8} {tree:<40} CPU {cpu:6.1f} ms   wall {wall:6.1f} ms")


if __name__ == "__main__":
    main()
