"""A browser profile against a plain one, in the same run: image size, time from
`orch up` to ready, to a browser answering on CDP, and memory per container.

One profile of each kind, started one after the other so they never compete for the
CPU. "CDP answers" is `GET /json/version` on the profile's published CDP port
(base+11) from the host, after `orch exec NAME -- openclaw browser start` issued as
soon as `orch up` returned. Memory is `docker stats` (no stream) once settled.

Needs a Docker engine and both images (`orch images build --browser`). Prints; never
asserts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases  # noqa: E402

from orchestrator.core.versions import BROWSER_IMAGE, GATEWAY_IMAGE
from orchestrator.docker.containers import http_status

ORCH = [sys.executable, "-m", "orchestrator"]


def orch(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORCH_HOME": str(home)}
    return subprocess.run([*ORCH, *args], env=env, capture_output=True, text=True, check=True)


def image_mb(tag: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out) / 1e6


def memory_mib(container: str) -> str:
    cmd = ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return out.strip()


def wait_cdp(port: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status("127.0.0.1", port, "/json/version", 1.0) == 200:
            return time.monotonic()
        time.sleep(0.2)
    raise RuntimeError(f"CDP {port} never answered")


def run_one(root: Path, kind: str, base: int) -> dict:
    home = root / kind
    home.mkdir()
    project = f"bench{kind}{os.getpid()}"
    (home / "fleet.yaml").write_text(f"version: 1\nproject: {project}\nprofiles: {{}}\n")
    extra = ["--browser", "--publish", "gateway,browser,cdp"] if kind == "browser" else []
    orch(home, "setup", "gw", "--port", str(base), *extra)
    try:
        t0 = time.monotonic()
        orch(home, "up")
        row = {"kind": kind, "up_to_ready_s": time.monotonic() - t0}
        if kind == "browser":
            orch(home, "exec", "gw", "--", "openclaw", "browser", "start")
            row["up_to_cdp_s"] = wait_cdp(base + 11) - t0
        time.sleep(10)  # let start-up work settle before measuring memory
        row["memory"] = memory_mib(f"{project}-gw")
        return row
    finally:
        subprocess.run([*ORCH, "down"], env={**os.environ, "ORCH_HOME": str(home)},
                       capture_output=True, check=False)  # fmt: skip


def main() -> int:
    sizes = {"plain": image_mb(GATEWAY_IMAGE), "browser": image_mb(BROWSER_IMAGE)}
    bases = free_bases(2, 25600)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-browser-") as tmp:
        for kind, base in zip(("plain", "browser"), bases, strict=True):
            rows.append(run_one(Path(tmp), kind, base))
    print(f"{'profile':<8} {'image MB':>9} {'up->ready s':>12} {'up->CDP s':>10}  memory")
    for row in rows:
        cdp = f"{row['up_to_cdp_s']:.1f}" if "up_to_cdp_s" in row else "-"
        print(f"{row['kind']:<8} {sizes[row['kind']]:>9.0f} {row['up_to_ready_s']:>12.1f}"
              f" {cdp:>10}  {row['memory']}")  # fmt: skip
    print(f"browser image / plain image: {sizes['browser'] / sizes['plain']:.2f}x")
    print(json.dumps({"sizes_mb": sizes, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
