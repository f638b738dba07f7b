"""Benchmark: `orch check` on 10,000 generated profiles, the interval sweep against
the naive pairwise check, and the whole `orch check` process on that fleet file.

Run: .venv/bin/python bench/check_sweep.py   (prints; never asserts)

The pairwise check of 10,000 profiles is 60,000 reservations, 1.8e9 pairs: far too
slow to run. It is measured on a 2,000-profile subset (12,000 reservations) and
extrapolated quadratically (x25); the output says which numbers are extrapolated.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import timed  # noqa: E402

from orchestrator.core.check import check_fleet, fleet_reservations  # noqa: E402
from orchestrator.core.model import Fleet, Profile  # noqa: E402
from orchestrator.core.ports import FOOTPRINT_SPAN, Overlap, Reservation, pairwise, sweep  # noqa: E402
from orchestrator.fleet.store import load_fleet, save_fleet  # noqa: E402

PROFILES = 10_000
SUBSET = 2_000
PER_ADDRESS = 500  # bases 1024 + 111*k, k < 500: ends at 56,513, room to shift up by 50
FIRST_BASE = 1024


def generate(n: int, collisions: float = 0.0, seed: int = 10_000) -> Fleet:
    """n profiles, PER_ADDRESS per loopback address, bases exactly one footprint apart.

    With `collisions`, that fraction of the profiles is moved 50 ports up, into the
    CDP range of its neighbour on the same address: each such move is one collision.
    """
    rnd = random.Random(seed)
    profiles = {}
    for i in range(n):
        address, slot = divmod(i, PER_ADDRESS)
        base = FIRST_BASE + FOOTPRINT_SPAN * slot
        if rnd.random() < collisions:
            base += 50
        name = f"p{i:05d}"
        profiles[name] = Profile(name=name, port=base, bind_ip=f"127.0.{address}.1")
    return Fleet(profiles=profiles)


def subset(reservations: list[Reservation], fleet: Fleet, n: int) -> list[Reservation]:
    owners = set(sorted(fleet.profiles)[:n])
    return [r for r in reservations if r.owner in owners]


def key(ov: Overlap) -> tuple:
    return (frozenset({ov.first, ov.second}), ov.host_ip, ov.start, ov.end)


def orch_process(home: Path, runs: int) -> tuple[float, int]:
    """Median wall time of the whole `orch check` process, and its exit code."""
    orch = Path(sys.executable).with_name("orch")
    cmd = [str(orch)] if orch.exists() else [sys.executable, "-m", "orchestrator"]
    env = {**os.environ, "ORCH_HOME": str(home)}
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run([*cmd, "check"], env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        code = proc.returncode
    return statistics.median(times), code


def bench_variant(label: str, fleet: Fleet, home: Path, runs: int, process_runs: int) -> None:
    reservations = fleet_reservations(fleet)
    addresses = len({p.bind_ip for p in fleet.profiles.values()})
    print(f"\n== {label}: {len(fleet.profiles):,} profiles, {len(reservations):,} reservations")
    print(f"   on {addresses} addresses")

    t_sweep, overlaps = timed(lambda: sweep(reservations), runs)
    t_check, problems = timed(lambda: check_fleet(fleet, home), runs)
    print(f"   sweep (ports only)               {t_sweep:8.3f} s   {len(overlaps):,} overlaps")
    print(f"   check_fleet (every rule)         {t_check:8.3f} s   {len(problems):,} problems")

    part = subset(reservations, fleet, SUBSET)
    pairs = len(part) * (len(part) - 1) // 2
    t_pair_part, naive = timed(lambda: pairwise(part), 1)
    t_sweep_part, fast = timed(lambda: sweep(part), runs)
    same = sorted(map(key, naive), key=repr) == sorted(map(key, fast), key=repr)
    print(
        f"   pairwise, {SUBSET:,}-profile subset     {t_pair_part:8.3f} s   measured once,"
        f" {pairs / 1e6:.1f}M pairs, {len(naive):,} overlaps"
    )
    print(
        f"   sweep, same subset               {t_sweep_part:8.3f} s   same overlaps as pairwise:"
        f" {'yes' if same else 'NO'}"
    )
    print(f"   -> pairwise / sweep on the subset:     {t_pair_part / t_sweep_part:10,.0f}x")
    scale = (len(reservations) / len(part)) ** 2
    t_pair_full = t_pair_part * scale
    print(
        f"   pairwise, {len(fleet.profiles):,} profiles  {t_pair_full:8.1f} s   EXTRAPOLATED"
        f" (x{scale:.0f}: quadratic in reservations), not run"
    )
    print(f"   -> pairwise (extrapolated) / sweep:    {t_pair_full / t_sweep:10,.0f}x")
    print(f"   -> pairwise (extrapolated) / check:    {t_pair_full / t_check:10,.0f}x")

    save_fleet(home, fleet)
    size = (home / "fleet.yaml").stat().st_size
    t_load, _ = timed(lambda: load_fleet(home), runs)
    t_proc, code = orch_process(home, process_runs)
    print(f"   load_fleet ({size / 1e6:.1f} MB YAML)          {t_load:8.3f} s")
    verdict = "PASS" if t_proc < 1.0 else "MISS"
    print(
        f"   whole `orch check` process       {t_proc:8.3f} s   median of {process_runs},"
        f" exit {code}; target < 1 s: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--runs", type=int, default=5, help="runs per in-process timing")
    parser.add_argument("--process-runs", type=int, default=5, help="runs of `orch check`")
    args = parser.parse_args()
    print(f"check_sweep: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        for label, collisions in (("well-spaced", 0.0), ("~1% collisions", 0.01)):
            home = Path(tmp) / label.replace(" ", "-").replace("%", "pc").replace("~", "")
            fleet = generate(args.profiles, collisions)
            bench_variant(label, fleet, home, args.runs, args.process_runs)


if __name__ == "__main__":
    main()
