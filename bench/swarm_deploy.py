"""Benchmark: `orch up --engine swarm` of main+rescue real gateways to ready, against
`docker stack deploy` of the same stack file, on a single-node swarm, in the same run.

Run: .venv/bin/python bench/swarm_deploy.py [--rounds N]   (prints; never asserts)

Each side gets its own fleet (own project, ports and fresh dirs), so both starts are
cold; the two never run at the same time. "Ready" is the same for both: both gateways
answer /readyz (orch returns only then; for the anchor the script polls every 0.1 s
from the moment `docker stack deploy` starts). Removal: `orch down --engine swarm`
against `docker stack rm --detach=false` (both wait for the tasks to stop).

The swarm is started here (`docker swarm init` on 127.0.0.1) and left at the end,
with docker_gwbridge if it was not there before. An engine already in a swarm is not
touched: the script stops. Needs the gateway image (`make images`).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_bases, wait_ready  # noqa: E402

ORCH = [sys.executable, "-m", "orchestrator"]


def sh(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def make_fleet(root: Path, project: str, main_port: int) -> dict[str, str]:
    """A fleet of main + rescue in its own home; the env that selects it."""
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home)}
    sh([*ORCH, "setup", "main", "--port", str(main_port)], env)
    sh([*ORCH, "setup", "rescue", "--port", "auto", "--rescues", "main"], env)
    node = sh(["docker", "info", "--format", "{{.Swarm.NodeID}}"]).strip()
    for name in ("main", "rescue"):
        sh(["docker", "node", "update", "--label-add", f"orch.dirs.{project}-{name}=true", node])
    return env


def ports(env: dict[str, str]) -> list[int]:
    import json

    listing = json.loads(sh([*ORCH, "ls", "--json"], env))["data"]["profiles"]
    return [p["port"] for p in listing]


def bench_orch(env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    sh([*ORCH, "up", "--engine", "swarm", "--all-addresses"], env)
    up = time.perf_counter() - start
    start = time.perf_counter()
    sh([*ORCH, "up", "--engine", "swarm", "--all-addresses"], env)
    noop = time.perf_counter() - start
    start = time.perf_counter()
    sh([*ORCH, "down", "--engine", "swarm"], env)
    return {"up_ready": up, "noop": noop, "down": time.perf_counter() - start}


def bench_stack(env: dict[str, str], project: str, root: Path) -> dict[str, float]:
    path = root / f"{project}-stack.yaml"
    sh([*ORCH, "export", "stack", "--all-addresses", "-o", str(path)], env)
    deploy = ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(path), project]
    port_list = ports(env)
    start = time.perf_counter()
    sh(deploy)
    returned = time.perf_counter() - start
    wait_ready(port_list)
    up = time.perf_counter() - start
    start = time.perf_counter()
    sh(deploy)
    noop = time.perf_counter() - start
    start = time.perf_counter()
    sh(["docker", "stack", "rm", "--detach=false", project])
    return {"returned": returned, "up_ready": up, "noop": noop, "down": time.perf_counter() - start}


def row(label: str, value: float | None, anchor: float | None) -> str:
    if value is None:
        return f"  {label:<40} {'-':>8}"
    ratio = f"{value / anchor:6.2f}x" if anchor else ""
    return f"  {label:<40} {value:8.2f} s {ratio}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    state = sh(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).strip()
    if state != "inactive":
        print(f"this engine is in a swarm already ({state}); not touching it: skipped")
        return 0
    had_gwbridge = "docker_gwbridge" in sh(["docker", "network", "ls", "--format", "{{.Name}}"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sh(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
        "--listen-addr", f"127.0.0.1:{port}"])  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="orch-bench-swarm-"))
    results: dict[str, list[dict[str, float]]] = {"orch": [], "stack": []}
    try:
        print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
        for i in range(args.rounds):
            bases = free_bases(4, start=25600)
            orch_env = make_fleet(root, f"benchswarmorch{i}", bases[0])
            stack_env = make_fleet(root, f"benchswarmstack{i}", bases[2])
            results["orch"].append(bench_orch(orch_env))
            results["stack"].append(bench_stack(stack_env, f"benchswarmstack{i}", root))
    finally:
        subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
        if not had_gwbridge:
            subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True)
        subprocess.run(["rm", "-rf", str(root)])

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    print(f"\nmain + rescue on a single-node swarm (median of {args.rounds} round(s))")
    print(f"  {'':<40} {'time':>10} {'ratio':>7}")
    print(row("docker stack deploy returns", median("stack", "returned"), None))
    print(row("docker stack deploy -> both /readyz", median("stack", "up_ready"), None))
    print(
        row(
            "orch up --engine swarm -> both /readyz",
            median("orch", "up_ready"),
            median("stack", "up_ready"),
        )
    )
    print(row("docker stack deploy again (no change)", median("stack", "noop"), None))
    print(
        row("orch up --engine swarm again (noop)", median("orch", "noop"), median("stack", "noop"))
    )
    print(row("docker stack rm --detach=false", median("stack", "down"), None))
    print(row("orch down --engine swarm", median("orch", "down"), median("stack", "down")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
