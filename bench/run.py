"""Run every benchmark of bench/ in turn (what `make bench` calls). Prints; never asserts.

Each script runs as its own process with this interpreter, so one script's
imports and caches never flatter the next one's numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "cli_startup.py",
    "check_sweep.py",
    "config_check.py",
    "lifecycle.py",
    "export_compose.py",
    "swarm_deploy.py",
    "fixture.py",
    "browser.py",
    "backup_restore.py",
    "offsite.py",
    "hardening.py",
    "kubernetes_podman.py",
    "podman.py",
    "scale.py",
    "image_startup.py",
)


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n#### bench/{script}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script)])
        print(f"#### bench/{script}: exit {code}, {time.perf_counter() - start:.1f} s", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"\nbenchmarks that crashed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
