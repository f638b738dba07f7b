"""Benchmark: `orch up --engine swarm` of main+rescue real gateways to ready, against
`docker stack deploy` of the same stack file, in the same run: on a real two-node
swarm (the default), or on a single-node swarm of this engine (--single-node).

Run: .venv/bin/python bench/swarm_deploy.py [--rounds N] [--single-node]
(prints; never asserts)

Two nodes: the swarm of tests/integration/swarm_cluster.py (two dockerds in network
namespaces of their own, the gateway image loaded into both; the host's main engine
is only read from), taken down at the end. Each side places main and rescue on node 2
(the worker: a rescue runs on the node of the profile it repairs), and runs from the
manager's network namespace, as orch runs on a real manager. orch's side starts as on
a fresh node 2 (state and workspace dirs missing: orch makes them there with a job);
the anchor's dirs are there already (both nodes share this machine's filesystem,
which a real cluster does not: there a user makes them on the node by hand first).
"Ready": both gateways answer /readyz on node 2's address, polled from the manager
every 0.1 s from the moment `docker stack deploy` starts.

Single node:

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
sys.path.insert(0, str(ROOT / "tests" / "integration"))


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


# --- two nodes ------------------------------------------------------------------------


POLL = """
import http.client, sys, time
host, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
deadline = time.monotonic() + 300
def ok(port):
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
pending = set(ports)
while pending and time.monotonic() < deadline:
    pending = {p for p in pending if not ok(p)}
    if pending:
        time.sleep(0.1)
sys.exit(1 if pending else 0)
"""


def two_node_fleet(cluster, root: Path, project: str, main_port: int, fresh: bool):
    """main + rescue placed on node 2; the env that runs orch on the manager."""
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home), "DOCKER_HOST": cluster.manager.docker_host}
    node = ["--node", cluster.nodes[1].hostname, "--bind-ip", "0.0.0.0"]
    sh([*ORCH, "setup", "main", "--port", str(main_port), *node], env)
    sh([*ORCH, "setup", "rescue", "--port", "auto", "--rescues", "main", *node], env)
    if fresh:  # as on a new node 2: orch makes the dirs there
        for name in ("main", "rescue"):
            for kind in ("state", "workspace"):
                subprocess.run(["rm", "-rf", str(home / "profiles" / name / kind)], check=True)
    return env


def on_manager(cluster, argv: list[str], env: dict[str, str] | None = None) -> str:
    return sh(cluster.manager.in_netns(*argv), env)


def bench_orch_two(cluster, env: dict[str, str]) -> dict[str, float]:
    up = [*ORCH, "up", "--engine", "swarm", "--timeout", "300"]
    start = time.perf_counter()
    on_manager(cluster, up, env)
    ready = time.perf_counter() - start
    start = time.perf_counter()
    on_manager(cluster, up, env)
    noop = time.perf_counter() - start
    start = time.perf_counter()
    on_manager(cluster, [*ORCH, "down", "--engine", "swarm"], env)
    return {"up_ready": ready, "noop": noop, "down": time.perf_counter() - start}


def bench_stack_two(cluster, env: dict[str, str], project: str, root: Path) -> dict[str, float]:
    path = root / f"{project}-stack.yaml"
    sh([*ORCH, "export", "stack", "-o", str(path)], env)
    docker = ["docker", "-H", cluster.manager.docker_host]
    deploy = [*docker, "stack", "deploy", "--resolve-image", "never", "-c", str(path), project]
    port_list = [str(p) for p in ports(env)]
    poll = cluster.manager.in_netns(sys.executable, "-c", POLL, cluster.nodes[1].address)
    start = time.perf_counter()
    sh(deploy)
    returned = time.perf_counter() - start
    sh([*poll, *port_list])
    ready = time.perf_counter() - start
    start = time.perf_counter()
    sh(deploy)
    noop = time.perf_counter() - start
    start = time.perf_counter()
    sh([*docker, "stack", "rm", "--detach=false", project])
    return {
        "returned": returned,
        "up_ready": ready,
        "noop": noop,
        "down": time.perf_counter() - start,
    }


def main_two_nodes(rounds: int) -> dict[str, list[dict[str, float]]]:
    import swarm_cluster

    from orchestrator.core.versions import GATEWAY_IMAGE

    started = time.perf_counter()
    cluster = swarm_cluster.start_cluster([GATEWAY_IMAGE], registry=False)
    took = time.perf_counter() - started
    print(f"two-node swarm with the gateway image on both nodes: {took:.1f} s")
    root = Path(tempfile.mkdtemp(prefix="orch-bench-swarm2-"))
    results: dict[str, list[dict[str, float]]] = {"orch": [], "stack": []}
    try:
        for i in range(rounds):
            bases = free_bases(4, start=25600)
            print(f"round {i + 1}: load average {os.getloadavg()[0]:.2f}")
            orch_env = two_node_fleet(cluster, root, f"bench2orch{i}", bases[0], fresh=True)
            stack_env = two_node_fleet(cluster, root, f"bench2stack{i}", bases[2], fresh=False)
            results["orch"].append(bench_orch_two(cluster, orch_env))
            results["stack"].append(bench_stack_two(cluster, stack_env, f"bench2stack{i}", root))
    finally:
        swarm_cluster.stop_cluster(cluster)
        subprocess.run(["rm", "-rf", str(root)])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--single-node", action="store_true", help="this engine as the swarm")
    args = parser.parse_args()
    if not args.single_node:
        print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
        results = main_two_nodes(args.rounds)
        report(results, args.rounds, "main + rescue on node 2 of a two-node swarm")
        return 0
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

    report(results, args.rounds, "main + rescue on a single-node swarm")
    return 0


def report(results: dict[str, list[dict[str, float]]], rounds: int, what: str) -> None:
    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    print(f"\n{what} (median of {rounds} round(s)); load average now {os.getloadavg()[0]:.2f}")
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


if __name__ == "__main__":
    sys.exit(main())
