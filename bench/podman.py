"""Benchmark: `orch up --engine podman` of main + rescue to both `/readyz`, against
the anchor, plain `podman run` of the same two gateways (the same image and the
same hardening, from each profile's rendered spec) + polling `/readyz`, in the same
run, cold starts one after the other; then `orch down` against `podman stop` +
`podman rm`.

Each side gets its own fleet (own project, ports, fresh dirs) from the same setup
commands; both sides poll /readyz every 0.1 s (bench/common.py). orch's side talks
to Podman's API service, started with `orch engine start --podman` on a socket of
the bench's own (stopped by its pid at the end); the anchor runs the podman CLI
with the same containers.conf. Rootful Podman (Debian's 4.3.1, installed when
missing; the image is moved into its store before timing). Prints; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases, orch_command, wait_ready  # noqa: E402

from orchestrator.core.spec import ContainerSpec, memory_bytes  # noqa: E402
from orchestrator.core.versions import GATEWAY_IMAGE  # noqa: E402
from orchestrator.docker.podman import (  # noqa: E402
    ORCH_DIR,
    containers_conf,
    ensure_podman,
    move_image,
    podman,
)

ORCH = orch_command()


def since(t0: float) -> float:
    return time.perf_counter() - t0


def make_fleet(root: Path, project: str, ports: list[int], env: dict) -> dict[str, str]:
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**env, "ORCH_HOME": str(home)}
    for name, port, extra in (("main", ports[0], []), ("rescue", ports[1], ["--rescues", "main"])):
        subprocess.run([*ORCH, "setup", name, "--port", str(port), *extra], env=env,
                       check=True, capture_output=True)  # fmt: skip
    return env


def run_args(spec: ContainerSpec) -> list[str]:
    """`podman run` of the spec with what orch's create body sets (docker/containers.py
    create_body): ports on 127.0.0.1, bind mounts, user, caps, no-new-privileges,
    memory/pids/CPU limits, read-only root with its tmpfs, restart policy."""
    args = ["run", "-d", "--name", f"{spec.name}-anchor", "--hostname", spec.hostname,
            "--user", spec.user, "--cap-drop", "ALL", "--restart", spec.restart,
            "--memory", str(memory_bytes(spec.mem_limit)),
            "--pids-limit", str(spec.pids_limit)]  # fmt: skip
    args += [f"--security-opt={opt}" for opt in spec.security_opt]
    if spec.cpus:
        args += ["--cpus", f"{spec.cpus:g}"]
    if spec.read_only:
        args.append("--read-only")
    for t in spec.tmpfs:
        args += ["--tmpfs", f"{t.target}:{t.options}"]
    for b in spec.ports:
        for cport, hport in b.expand():
            args += ["-p", f"{b.host_ip}:{hport}:{cport}/{b.proto}"]
    for m in spec.mounts:
        ro = ",ro" if m.read_only else ""
        args += ["--mount", f"type=bind,src={m.source},dst={m.target}{ro}"]
    for k, v in spec.env.items():
        args += ["-e", f"{k}={v}"]
    return [*args, spec.image, *spec.command]


def bench_orch(root: Path, ports: list[int], env: dict, run: int) -> dict[str, float]:
    env = make_fleet(root, f"benchpodorch{run}", ports, env)
    t0 = time.perf_counter()
    subprocess.run([*ORCH, "up", "--engine", "podman", "--timeout", "600"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    wait_ready(ports)
    ready = since(t0)
    t1 = time.perf_counter()
    subprocess.run([*ORCH, "down", "--engine", "podman"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return {"ready": ready, "down": since(t1)}


def bench_run(root: Path, ports: list[int], env: dict, conf: Path, run: int) -> dict[str, float]:
    env = make_fleet(root, f"benchpodrun{run}", ports, env)
    specs = []
    for name in ("main", "rescue"):
        out = subprocess.run([*ORCH, "render", name, "--format", "json"], env=env, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        specs.append(ContainerSpec(**json.loads(out)))
    names = [f"{s.name}-anchor" for s in specs]
    t0 = time.perf_counter()
    try:
        for spec in specs:
            podman(run_args(spec), conf)
        wait_ready(ports)
        ready = since(t0)
    finally:
        t1 = time.perf_counter()
        podman(["stop", "-t", "30", *names], conf)
        podman(["rm", "-f", *names], conf)
        down = since(t1)
    return {"ready": ready, "down": down}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="alternating rounds (medians)")
    args = parser.parse_args()
    ensure_podman()
    root = Path(tempfile.mkdtemp(prefix="orch-bench-podman-"))
    sock = root / "podman.sock"
    env = {**os.environ, "CONTAINER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_HOST", None)
    subprocess.run([*ORCH, "engine", "start", "--podman"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    pid = int((root / ORCH_DIR / "service.pid").read_text())
    conf = containers_conf(root / ORCH_DIR)
    t = time.perf_counter()
    moved = move_image(GATEWAY_IMAGE, conf)
    print(f"image into podman's store: {since(t):.1f} s ({'loaded' if moved else 'already there'})")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    anchor, ours = [], []
    try:
        for run in range(args.runs):
            a, b = free_bases(2, 21000 + run * 1000)
            anchor.append(bench_run(root, [a, b], env, conf, run))
            c, d = free_bases(2, 25000 + run * 1000)
            ours.append(bench_orch(root, [c, d], env, run))
    finally:
        os.kill(pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"load after {os.getloadavg()[0]:.1f}; medians of {args.runs} run(s)")
    print("| step | podman run + polling (anchor) | orch up --engine podman | ratio |")
    print("|---|---|---|---|")
    up_a, up_o = med(anchor, "ready"), med(ours, "ready")
    print(f"| main + rescue to both /readyz | {up_a:.1f} s | {up_o:.1f} s | {up_o / up_a:.2f}x |")
    down_a, down_o = med(anchor, "down"), med(ours, "down")
    print(f"| down | {down_a:.1f} s | {down_o:.1f} s | {down_o / down_a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
