"""The main job's gateways must come through `make test` untouched: README promises
that the tests never touch them. `make up` records them (`record`); CI checks them
after `make test` (`check`, via `make check-main-job`): the same profiles, the same
container ids, never restarted, and each gateway answering /readyz.

Usage: python .ci/main_job.py record|check [--orch PATH] [--file PATH]
Reads the fleet of the home `make up` used (the default one, or $ORCH_HOME as orch
does) through `orch status --json`; container ids and start times through `docker
inspect`; readiness by GET /readyz on each url.
Exit 0 when it holds, 1 with every difference listed when it does not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
READY_WAIT_S = 30.0  # a ready gateway answers at once; this only absorbs a loaded host


def containers(orch: str) -> dict[str, dict[str, str | None]]:
    """Each profile of the default home: its container's id, start time and url."""
    proc = subprocess.run([orch, "status", "--json"], capture_output=True, text=True)
    if proc.returncode not in (0, 5):  # 5: one is not ready, still reported
        sys.exit(f"main-job: `orch status --json` failed ({proc.returncode}): {proc.stderr}")
    rows = json.loads(proc.stdout)["data"]["profiles"]
    found: dict[str, dict[str, str | None]] = {}
    for row in rows:
        entry: dict[str, str | None] = {"container": row["container"], "url": row["url"]}
        entry.update(id=None, started=None)
        if row["container"]:
            fmt = "{{.Id}} {{.State.StartedAt}}"
            out = subprocess.run(["docker", "inspect", "-f", fmt, row["container"]],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            entry["id"], entry["started"] = out.split()
        found[row["profile"]] = entry
    return found


def readyz(url: str) -> int | None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def differences(recorded: dict, now: dict) -> list[str]:
    problems = []
    if set(recorded) != set(now):
        problems.append(f"profiles were {sorted(recorded)}, now {sorted(now)}")
    for name in sorted(set(recorded) & set(now)):
        was, cur = recorded[name], now[name]
        if cur["id"] != was["id"]:
            problems.append(f"{name}: {was['container']} was {was['id']}, is now {cur['id']}")
        elif cur["started"] != was["started"]:
            problems.append(f"{name}: restarted (started {was['started']}, now {cur['started']})")
    deadline = time.monotonic() + READY_WAIT_S
    for name in sorted(now):
        url = now[name]["url"]
        status = readyz(url) if url else None
        while url and status != 200 and time.monotonic() < deadline:
            time.sleep(1)
            status = readyz(url)
        if status != 200:
            problems.append(f"{name}: /readyz on {url} answered {status} (want 200)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("--orch", default=str(HERE.parent / ".venv" / "bin" / "orch"))
    parser.add_argument("--file", type=Path, default=HERE / "main-job.json")
    args = parser.parse_args()
    now = containers(args.orch)
    if args.action == "record":
        if not now or not all(entry["id"] for entry in now.values()):
            sys.exit(f"main-job: nothing to record: {now}")
        args.file.write_text(json.dumps(now, indent=2) + "\n")
        listing = ", ".join(f"{name} {entry['id'][:12]}" for name, entry in now.items())
        print(f"main-job: recorded {listing}")
        return 0
    try:
        recorded = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"main-job: no record of the main job ({exc}); `make up` writes it")
    problems = differences(recorded, now)
    for problem in problems:
        print(f"main-job: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"main-job: {', '.join(sorted(now))}: same containers, never restarted, ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
