"""Benchmark: orch's check of 1,000 profiles' openclaw.json (the gateway's schema from
the image, orch's keys, shared credentials) against running the gateway's own
`openclaw config validate --json` once, the anchor, measured in the same run.

Run: .venv/bin/python bench/config_check.py   (prints; never asserts)

The anchor runs in a throwaway container of the same image (`docker run --rm`),
which is what checking one config with the gateway itself costs when it is not
running; `docker exec` into a running one measured 3.5-4.8 s (openclaw.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import timed  # noqa: E402

from orchestrator.core.model import Fleet, Profile  # noqa: E402
from orchestrator.core.paths import profile_dirs  # noqa: E402
from orchestrator.core.spec import CONFIG_DIR  # noqa: E402
from orchestrator.core.versions import GATEWAY_IMAGE as GATEWAY_TAG  # noqa: E402
from orchestrator.fleet.config_check import config_problems  # noqa: E402
from orchestrator.fleet.openclaw_config import managed_config  # noqa: E402
from orchestrator.fleet.store import save_fleet  # noqa: E402
from orchestrator.host import gateway_schema  # noqa: E402

PROFILES = 1_000


def make_fleet(home: Path, n: int) -> Fleet:
    """n profiles, each with orch's config plus a Telegram channel of its own."""
    profiles = {}
    for i in range(n):
        name = f"p{i:04d}"
        profiles[name] = Profile(
            name=name, port=1024 + 111 * (i % 500), bind_ip=f"127.0.{i // 500}.1"
        )
    fleet = Fleet(profiles=profiles)
    save_fleet(home, fleet)
    for profile in fleet.profiles.values():
        dirs = profile_dirs(profile, home)
        dirs.config.mkdir(parents=True, exist_ok=True)
        config = managed_config(profile)
        config["channels"] = {
            "telegram": {"enabled": True, "botToken": f"1{profile.port}:tok-{profile.name}"}
        }
        dirs.config_file.write_text(json.dumps(config, indent=2) + "\n")
    return fleet


def anchor(config_dir: Path) -> float:
    """One `openclaw config validate --json` by the gateway itself."""
    start = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "openclaw",
         "-e", "HOME=/tmp", "-v", f"{config_dir}:{CONFIG_DIR}:ro",
         GATEWAY_TAG, "config", "validate", "--json"],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "home")
        os.environ["ORCH_CACHE_DIR"] = str(Path(tmp, "cache"))
        fleet = make_fleet(home, PROFILES)
        first = time.perf_counter()
        schema = gateway_schema.schema_for(GATEWAY_TAG)
        cold = time.perf_counter() - first
        if schema is None:
            print(f"image {GATEWAY_TAG} is not on this engine: `orch images build`")
            return 1
        gateway_schema._memo.clear()
        warm, _ = timed(lambda: gateway_schema.schema_for(GATEWAY_TAG), 1)
        seconds, problems = timed(
            lambda: config_problems(fleet, home, gateway_schema.schema_for), 3
        )
        one = profile_dirs(fleet.profiles["p0000"], home).config
        anchor_s = min(anchor(one) for _ in range(2))
        print(f"schema from the image, first time (copy out + relax + cache): {cold:.2f} s")
        print(f"schema from the host cache (read + validator):                {warm:.2f} s")
        each = 1000 * seconds / PROFILES
        print(f"orch: {PROFILES} profiles' configs checked:  {seconds:.3f} s")
        print(f"  ({each:.2f} ms each, {len(problems)} problems)")
        print(f"anchor: one `openclaw config validate` (docker run --rm): {anchor_s:.2f} s")
        print(f"ratio: {PROFILES} profiles by orch take {seconds / anchor_s:.3f}x ONE validate")
        print(f"  per profile: {anchor_s / (seconds / PROFILES):.0f}x faster than the gateway")
    return 0


if __name__ == "__main__":
    sys.exit(main())
