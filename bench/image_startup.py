"""Per-gateway start-up of orch's image against the same image without a change, in
one run: `orch up` of one profile to /readyz with a fresh state dir (cold, the first
start) and again after `orch down` (warm, same dirs), the CPU seconds the cold start
used (cgroup v1 `cpuacct.usage` at ready: what the load of other jobs does not blur),
`docker exec ... openclaw status` and `openclaw config validate` once ready, and memory
(`docker stats`) `--settle` s after ready.

Each image (`--images A,B,...`, the first is the anchor) gets a profile in a fleet of
its own, one start at a time, alternating A B, B A, ... with `--runs N`; medians and
ratios to the anchor are printed. Default: orch's gateway image against itself (a
noise check); to compare a change, build the candidate under another tag first.
Prints; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases, orch_command  # noqa: E402
from hardening import cpu_numbers, docker, settled_mib  # noqa: E402

from orchestrator.docker.containers import http_status  # noqa: E402

ORCH = orch_command()


def timed_up(env: dict[str, str], base: int) -> float | None:
    """`orch up` started now; seconds until /readyz answers (polled every 0.1 s, as the
    other benches poll Compose's gateways); None when the start failed (on a starved
    host the gateway's own 5 s start-up deadlines can fail it: counted, not hidden)."""
    t0 = time.time()
    up = subprocess.Popen([*ORCH, "up", "--timeout", "600"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    while http_status("127.0.0.1", base, "/readyz", 1.0) != 200:
        if up.poll() not in (None, 0):
            reason = [ln for ln in up.communicate()[1].splitlines() if "failed" in ln]
            print(f"  orch up failed: {reason[-1][-200:] if reason else '?'}", flush=True)
            return None
        time.sleep(0.1)
    ready = time.time() - t0
    up.communicate()
    return ready


def exec_s(name: str, *command: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "exec", name, *command], capture_output=True, check=True)
    return time.perf_counter() - t0


def run_one(root: Path, image: str, base: int, settle: float) -> dict:
    home = root / f"h{base}"
    home.mkdir()
    project = f"benchimg{os.getpid()}{base}"
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    env = {**os.environ, "ORCH_HOME": str(home)}
    subprocess.run([*ORCH, "setup", "gw", "--port", str(base), "--image", image],
                   env=env, capture_output=True, check=True)  # fmt: skip
    name = f"{project}-gw"
    try:
        cold = timed_up(env, base)
        if cold is None:
            return {"image": image, "failed": 1}
        cpu_s, _ = cpu_numbers(docker("inspect", "-f", "{{.Id}}", name).strip())
        status = exec_s(name, "openclaw", "status")
        validate = exec_s(name, "openclaw", "config", "validate")
        time.sleep(settle)
        memory = settled_mib(name)
        subprocess.run([*ORCH, "down"], env=env, capture_output=True, check=True)
        warm = timed_up(env, base)
        return {"image": image, "failed": int(warm is None), "cold_s": cold, "cpu_s": cpu_s,
                "warm_s": warm, "status_s": status, "validate_s": validate,
                "memory_mib": memory}  # fmt: skip
    finally:
        subprocess.run([*ORCH, "down"], env=env, capture_output=True, check=False)


KEYS = ("cold_s", "cpu_s", "warm_s", "status_s", "validate_s", "memory_mib")


def main() -> int:
    from orchestrator.core.versions import GATEWAY_IMAGE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=GATEWAY_IMAGE, help="anchor first, comma separated")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--settle", type=float, default=10)
    args = parser.parse_args()
    images = args.images.split(",")
    if len(images) == 1:
        images *= 2
    print(f"== image start-up, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    bases = free_bases(len(images) * args.runs, 26000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-img-") as tmp:
        for i in range(args.runs):
            for image in images if i % 2 == 0 else images[::-1]:
                rows.append(run_one(Path(tmp), image, bases.pop(0), args.settle))
                print(f"  {json.dumps(rows[-1])}  load {os.getloadavg()[0]:.2f}", flush=True)
    med = {
        image: {
            k: statistics.median([r[k] for r in rows if r["image"] == image and r.get(k)] or [0])
            for k in KEYS
        }
        for image in dict.fromkeys(images)
    }
    for image in med:
        failed = sum(r["failed"] for r in rows if r["image"] == image)
        print(f"{image}: {failed} start(s) failed")
    anchor = med[images[0]]
    print(f"{'image':<40} " + " ".join(f"{k:>11}" for k in KEYS))
    for image, m in med.items():
        print(f"{image:<40} " + " ".join(f"{m[k]:>11.2f}" for k in KEYS))
        print(f"{'  ratio to ' + images[0][-28:]:<40} "
              + " ".join(f"{m[k] / (anchor[k] or 1):>10.2f}x" for k in KEYS))  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
