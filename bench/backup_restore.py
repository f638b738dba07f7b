"""Backup and restore of one real gateway's state, against the anchors, in one run.

- orch: `orch backup` (online: the gateway keeps running), `orch backup --offline`,
  `orch restore --yes`; downtime measured from the outside (/readyz polled every
  0.1 s: the longest gap without a 200).
- `tar czf` of the same three dirs (copying a running gateway's SQLite files with tar
  is not consistent, so the safe way is docker stop + tar + docker start: timed too).
- upstream's `openclaw fleet stop + backup + start` on an image shaped like upstream's
  (derived from the orch image, as /work/shared/openclaw.md describes), with a temp
  HOME; skipped with a note when the host node or openclaw.mjs is missing.

Prints; never asserts. Removes every container, image and dir it made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import free_bases, wait_ready  # noqa: E402

from orchestrator.core.versions import GATEWAY_IMAGE  # noqa: E402
from orchestrator.docker.containers import http_status  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "images" / "gateway" / ".build"
if not BUILD.is_dir():
    BUILD = Path("/work/main/images/gateway/.build")
NODE = BUILD / "node" / "bin" / "node"
OPENCLAW = BUILD / "app" / "node_modules" / "openclaw" / "openclaw.mjs"


class Downtime:
    """The longest gap without a /readyz 200 while a step ran."""

    def __init__(self, port: int) -> None:
        self.port, self.gap, self._stop = port, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if http_status("127.0.0.1", self.port, "/readyz", 0.5) == 200:
                self.gap = max(self.gap, now - last_ok)
                last_ok = now
            time.sleep(0.1)
        self.gap = max(self.gap, time.monotonic() - last_ok)

    def __enter__(self) -> Downtime:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        wait_ready([self.port], 300)
        self._stop.set()
        self._thread.join()


def orch(home: Path, *args: str) -> dict:
    env = {**os.environ, "ORCH_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)}: {out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def run_tar(cmd: list[str]) -> None:
    """GNU tar exits 1 when a file changed while it read it: on a running gateway that
    is the expected (and the point: such an archive is not consistent), not a failure."""
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode not in (0, 1):
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)


def timed(fn, port: int) -> tuple[float, float]:
    with Downtime(port) as down:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
    return took, down.gap


def bench_orch(base: int) -> dict[str, tuple[float, float]]:
    home = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    (home / "fleet.yaml").write_text(f"version: 1\nproject: bb{uuid.uuid4().hex[:6]}\n")
    rows: dict[str, tuple[float, float]] = {}
    try:
        orch(home, "setup", "main", "--port", str(base))
        orch(home, "up", "--timeout", "300")
        dirs = [home / "profiles" / "main" / k for k in ("config", "state", "workspace")]
        size = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
        print(f"state: {size / 1e6:.1f} MB in config+state+workspace")
        archive: list[str] = []

        def online() -> None:
            archive[:] = [orch(home, "backup", "main")["data"]["backups"][0]["archive"]]

        rows["orch backup (online)"] = timed(online, base)
        print(f"orch archive: {Path(archive[0]).stat().st_size / 1e6:.1f} MB")
        rows["orch backup --offline"] = timed(
            lambda: orch(home, "backup", "main", "--offline"), base
        )
        rows["orch restore --yes"] = timed(
            lambda: orch(home, "restore", "main", archive[0], "--yes"), base
        )
        out = home / "tar.tgz"
        tar = [
            "tar",
            "czf",
            str(out),
            "-C",
            str(home / "profiles" / "main"),
            "config",
            "state",
            "workspace",
        ]
        rows["tar czf (running, not consistent)"] = timed(lambda: run_tar(tar), base)
        print(f"tar archive: {out.stat().st_size / 1e6:.1f} MB")
        project = (home / "fleet.yaml").read_text().split("project: ")[1].split()[0]

        def stop_tar_start() -> None:
            subprocess.run(["docker", "stop", f"{project}-main"], check=True, capture_output=True)
            run_tar(tar)
            subprocess.run(["docker", "start", f"{project}-main"], check=True, capture_output=True)

        rows["docker stop + tar czf + docker start"] = timed(stop_tar_start, base)
    finally:
        subprocess.run(
            [sys.executable, "-m", "orchestrator", "down"],
            env={**os.environ, "ORCH_HOME": str(home)},
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)
    return rows


def bench_upstream(port: int) -> dict[str, tuple[float, float]]:
    if not (NODE.exists() and OPENCLAW.exists()):
        print(f"upstream fleet: skipped ({NODE} or {OPENCLAW} missing)")
        return {}
    tag = f"orch/bench-upstream-shaped:{uuid.uuid4().hex[:6]}"
    ctx = Path(tempfile.mkdtemp(prefix="bench-up-ctx-"))
    home = Path(tempfile.mkdtemp(prefix="bench-up-home-"))
    cell = f"bb{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "HOME": str(home)}
    (ctx / "Dockerfile").write_text(
        f"FROM {GATEWAY_IMAGE}\nUSER root\nRUN mkdir -p /home/node && chown 1000:1000 /home/node\n"
        "USER 1000:1000\nENV HOME=/home/node OPENCLAW_CONFIG_PATH= OPENCLAW_STATE_DIR="
        " OPENCLAW_WORKSPACE_DIR= OPENCLAW_GATEWAY_PORT=\n"
        "WORKDIR /usr/local/lib/openclaw/node_modules/openclaw\n"
        'ENTRYPOINT ["/usr/bin/tini", "--"]\n'
        'CMD ["node", "dist/index.js", "gateway", "--bind", "lan", "--port", "18789"]\n'
    )

    def fleet(*args: str) -> None:
        subprocess.run(
            [str(NODE), str(OPENCLAW), "fleet", *args], env=env, check=True, capture_output=True
        )

    rows: dict[str, tuple[float, float]] = {}
    try:
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, str(ctx)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            check=True,
            capture_output=True,
        )
        fleet("create", cell, "--image", tag, "--port", str(port))
        wait_ready([port], 300)
        out = home / "up.tgz"

        def stop_backup_start() -> None:
            fleet("stop", cell)
            fleet("backup", cell, "--out", str(out))
            fleet("start", cell)

        rows["openclaw fleet stop + backup + start"] = timed(stop_backup_start, port)
        print(f"upstream archive: {out.stat().st_size / 1e6:.1f} MB")
        rows["openclaw fleet restore --force"] = timed(
            lambda: fleet("restore", cell, "--from", str(out), "--force"), port
        )
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"upstream fleet: failed ({exc}; {detail[-300:]!r}); its rows are missing")
    finally:
        subprocess.run(["docker", "rm", "-f", f"openclaw-cell-{cell}"], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(ctx, ignore_errors=True)
    return rows


def main() -> int:
    base, up_port = free_bases(2, 24000)
    rows = bench_orch(base)
    rows.update(bench_upstream(up_port))
    anchor = rows.get("openclaw fleet stop + backup + start")
    tar = rows.get("docker stop + tar czf + docker start")
    print(
        f"\n{'step':<40} {'time s':>8} {'downtime s':>11} {'vs upstream':>12} {'vs stop+tar':>12}"
    )
    for name, (took, down) in rows.items():
        ratio_up = f"{took / anchor[0]:.2f}x" if anchor else "-"
        ratio_tar = f"{took / tar[0]:.2f}x" if tar else "-"
        print(f"{name:<40} {took:>8.2f} {down:>11.2f} {ratio_up:>12} {ratio_tar:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
