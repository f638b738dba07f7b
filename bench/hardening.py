"""What hardening costs: a gateway with orch's defaults (read-only root with a tmpfs
/tmp, 1 CPU) against the same gateway without them (writable root, no CPU limit), in
the same run: time from `orch up` to `/readyz`, and memory.

Each variant is one profile in a fleet of its own with a fresh state dir (a cold first
start, the slow one), started one after the other so they never compete for the CPU;
with --runs N the variants alternate (A B A B ...) so load drifts hit both alike, and
the medians are printed. Memory is `docker stats` (no stream) 10 s after ready, and
the cgroup's peak (`memory.max_usage_in_bytes`, cgroup v1) over the start; the CPU
seconds the start used and how long the CPU limit throttled it (`cpuacct.usage`,
`cpu.stat` throttled_time): the limit's own cost, which the load of other jobs on
the host does not blur as it blurs the wall-clock time. A tmpfs
counts against the container's memory: the read-only variant's /tmp (Node's compile
cache, about 23 MB) is in its numbers.

`--sweep 0,1,1.5,2` instead times the cold start for each CPU limit (writable root),
what the default of `cpus` was chosen with (0: no limit).

Needs a Docker engine and the gateway image (`orch images build`). Prints; never
asserts.
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

from common import free_bases, orch_command, wait_ready  # noqa: E402

ORCH = orch_command()
SETTLE_S = 10
HARDENED = ("--cpus", "1", "--read-only-root")  # orch's defaults, spelled out
PLAIN = ("--cpus", "0", "--writable-root")


def orch(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORCH_HOME": str(home)}
    return subprocess.run([*ORCH, *args], env=env, capture_output=True, text=True, check=True)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def cgroup(controller: str, container_id: str, name: str) -> str | None:
    """A file of the container's cgroup (v1, cgroupfs driver); None elsewhere."""
    try:
        return Path(f"/sys/fs/cgroup/{controller}/docker/{container_id}/{name}").read_text()
    except OSError:
        return None


def cpu_numbers(container_id: str) -> tuple[float | None, float | None]:
    """(CPU seconds the container used, seconds the CPU limit held it back) so far:
    cpuacct.usage, and cpu.stat's throttled_time (0 without a limit)."""
    usage = cgroup("cpuacct", container_id, "cpuacct.usage")
    stat = cgroup("cpu", container_id, "cpu.stat")
    throttled = None
    if stat:
        fields = dict(line.split() for line in stat.splitlines() if line.strip())
        throttled = int(fields.get("throttled_time", 0)) / 1e9
    return (int(usage) / 1e9 if usage else None), throttled


def peak_mib(container_id: str) -> float | None:
    """The cgroup's peak memory since the container started."""
    raw = cgroup("memory", container_id, "memory.max_usage_in_bytes")
    return int(raw) / 2**20 if raw else None


def settled_mib(name: str) -> float:
    """`docker stats` memory, as MiB."""
    usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name).split("/")[0]
    number, unit = usage.strip()[:-3], usage.strip()[-3:]
    return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def run_one(root: Path, label: str, options: tuple[str, ...], base: int) -> dict:
    """One cold start of one profile with `options`; its numbers."""
    home = root / f"{label}-{base}"
    home.mkdir()
    project = f"benchharden{os.getpid()}{base}"
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    orch(home, "setup", "gw", "--port", str(base), *options)
    name = f"{project}-gw"
    try:
        t0 = time.time()
        up = subprocess.Popen([*ORCH, "up", "--timeout", "600"],
                              env={**os.environ, "ORCH_HOME": str(home)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        ready = wait_ready([base], timeout=600) - t0
        container_id = docker("inspect", "-f", "{{.Id}}", name).strip()
        cpu_s, throttled_s = cpu_numbers(container_id)  # at ready, give or take 50 ms
        up.wait()
        host = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", name))
        time.sleep(SETTLE_S)
        return {
            "variant": label,
            "read_only": host["ReadonlyRootfs"],
            "cpus": host["NanoCpus"] / 1e9,
            "ready_s": ready,
            "cpu_s": cpu_s,
            "throttled_s": throttled_s,
            "memory_mib": settled_mib(name),
            "peak_mib": peak_mib(container_id),
        }
    finally:
        subprocess.run([*ORCH, "down"], env={**os.environ, "ORCH_HOME": str(home)},
                       capture_output=True, check=False)  # fmt: skip


def median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


COLUMNS = (  # key, heading, format
    ("ready_s", "up->/readyz s", ".1f"),
    ("cpu_s", "CPU s to ready", ".1f"),
    ("throttled_s", "throttled s", ".1f"),
    ("memory_mib", "memory MiB", ".0f"),
    ("peak_mib", "peak MiB", ".0f"),
)


def show(rows: list[dict], labels: list[str], anchor: str) -> None:
    print(f"{'variant':<24} {'runs':>4} " + " ".join(f"{h:>14}" for _, h, _ in COLUMNS))
    medians = {}
    for label in labels:
        mine = [r for r in rows if r["variant"] == label]
        medians[label] = m = {k: median(mine, k) for k, _, _ in COLUMNS}
        cells = [f"{m[k]:>14{f}}" if m[k] is not None else f"{'-':>14}" for k, _, f in COLUMNS]
        print(f"{label:<24} {len(mine):>4} " + " ".join(cells))
    base = medians[anchor]
    for label in labels:
        if label == anchor:
            continue
        m = medians[label]
        ratios = [f"start {m['ready_s'] / base['ready_s']:.2f}x",
                  f"memory {m['memory_mib'] / base['memory_mib']:.2f}x"]  # fmt: skip
        if m["peak_mib"] and base["peak_mib"]:
            ratios.append(f"peak {m['peak_mib'] / base['peak_mib']:.2f}x")
        print(f"{label} / {anchor}: {', '.join(ratios)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="cold starts per variant")
    parser.add_argument("--sweep", help="CPU limits to time instead, e.g. 0,1,1.5,2")
    args = parser.parse_args()
    if args.sweep:
        variants = [(f"cpus {c}", ("--cpus", c, "--writable-root")) for c in args.sweep.split(",")]
    else:
        variants = [("writable, no CPU limit", PLAIN), ("read-only root, 1 CPU", HARDENED)]
    print(f"cpus on this host: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    bases = free_bases(len(variants) * args.runs, 25000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-harden-") as tmp:
        for i in range(args.runs):
            order = variants if i % 2 == 0 else variants[::-1]
            for label, options in order:
                rows.append(run_one(Path(tmp), label, options, bases.pop(0)))
    labels = [label for label, _ in variants]
    show(rows, labels, labels[0])
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
