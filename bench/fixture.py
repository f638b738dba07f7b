"""Benchmark: how long orch's pytest fixture takes to hand a test a ready gateway,
against what a CI user would write by hand with plain testcontainers.

Run: .venv/bin/python bench/fixture.py [--runs N] [--tests N]   (prints; never asserts)

1. One ready gateway, cold (fresh state dir, new container), median of N runs each,
   alternating so load drifts hit both sides alike:
   - fixture: `GatewayFactory()(["gw"])`, exactly what `openclaw_gateway` calls: port
     footprint reserved, `orch setup`'s dirs/token/config, network, container, /readyz;
   - anchor: `DockerContainer(image)` of the same image with the same dirs, token file,
     port and user, written by hand, and testcontainers' `HttpWaitStrategy` on /readyz
     at its default poll interval (1 s), and tuned to 0.1 s (orch's poll); and, like
     for like, with the limits and security options orch's spec sets (1280m, 512 pids,
     1 CPU, cap_drop ALL, no-new-privileges, read-only root with a tmpfs /tmp: the
     memory limit alone costs about 0.2 s here).
   Both timed from "give me a gateway" to "ready", dir preparation included; the
   teardown (orch: graceful stop; testcontainers: rm -f) is shown apart.
2. Amortisation: a real `pytest` run of N tests with `openclaw_session_gateway` against
   the same N tests with `openclaw_gateway` (one gateway per test), whole process.

Needs the engine and the gateway image (`orch images build`). Sets
TESTCONTAINERS_RYUK_DISABLED=true and TESTCONTAINERS_CONNECTION_MODE=docker_host
(this machine's /.dockerenv trap) unless already set.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

from orchestrator.core.versions import GATEWAY_IMAGE  # noqa: E402
from orchestrator.testing.factory import GatewayFactory, Owner, PortRegistry  # noqa: E402
from orchestrator.testing.runs import run_labels  # noqa: E402

CONTAINER_UID = 1000


def fixture_once() -> tuple[float, float]:
    """(seconds to a ready gateway, seconds to remove it) through the fixture's factory."""
    factory = GatewayFactory()
    start = time.perf_counter()
    factory(["gw"])
    ready = time.perf_counter() - start
    start = time.perf_counter()
    factory.close()
    return ready, time.perf_counter() - start


def anchor_once(poll: float | None, isolated: bool = False) -> tuple[float, float]:
    """The same gateway by hand: dirs, config, token, DockerContainer, HTTP wait;
    `isolated` adds what orch's spec also sets (memory, pids and CPU limits, cap_drop
    ALL, no-new-privileges, read-only root), so that the comparison is like for like."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    # A free footprint from the same registry, outside the timing: a hand-written
    # suite would hard-code a port, which is exactly what collides under xdist.
    registry = PortRegistry(Path(tempfile.gettempdir()) / "orch-test")
    labels = run_labels("bench-anchor", Owner.current())
    (port,) = registry.reserve(1, "127.0.0.1", labels)
    workdir = Path(tempfile.mkdtemp(prefix="orch-bench-anchor-"))
    try:
        start = time.perf_counter()
        dirs = {name: workdir / name for name in ("config", "state", "workspace")}
        for path in dirs.values():
            path.mkdir(mode=0o700)
        token = workdir / "token"
        token.write_text(secrets.token_urlsafe(32))
        token.chmod(0o600)
        origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        config = {
            "gateway": {
                "mode": "local",
                "port": port,
                "bind": "lan",
                "auth": {"mode": "token"},
                "controlUi": {"allowedOrigins": origins},
            },
            "agents": {"defaults": {"workspace": "/openclaw/workspace"}},
        }
        (dirs["config"] / "openclaw.json").write_text(json.dumps(config))
        if os.geteuid() == 0:
            for path in [*dirs.values(), token, dirs["config"] / "openclaw.json"]:
                os.chown(path, CONTAINER_UID, CONTAINER_UID)
        run_kwargs: dict[str, object] = {"user": f"{CONTAINER_UID}:{CONTAINER_UID}"}
        if isolated:
            run_kwargs.update(
                mem_limit="1280m",
                pids_limit=512,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                nano_cpus=1_000_000_000,
                read_only=True,
                tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=256m,mode=1777"},
            )
        wait = HttpWaitStrategy(port, "/readyz").for_status_code(200).with_startup_timeout(180)
        if poll is not None:
            wait = wait.with_poll_interval(poll)
        container = (
            DockerContainer(GATEWAY_IMAGE)
            .with_env("OPENCLAW_GATEWAY_PORT", str(port))
            .with_bind_ports(port, port)
            .with_volume_mapping(str(dirs["config"]), "/openclaw/config", "rw")
            .with_volume_mapping(str(dirs["state"]), "/openclaw/state", "rw")
            .with_volume_mapping(str(dirs["workspace"]), "/openclaw/workspace", "rw")
            .with_volume_mapping(str(token), "/run/secrets/openclaw_gateway_token", "ro")
            .with_kwargs(**run_kwargs)
            .waiting_for(wait)
        )
        container.start()
        ready = time.perf_counter() - start
        start = time.perf_counter()
        container.stop()  # testcontainers' own teardown: rm -f
        return ready, time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        registry.release([port], Owner.current())


SUITE = """
import urllib.request

def check(gateway):
    with urllib.request.urlopen(gateway.url + "/readyz", timeout=5) as response:
        assert response.status == 200
{tests}
"""


def pytest_run(fixture: str, tests: int) -> float:
    """Wall time of a whole `pytest` process running `tests` tests on `fixture`."""
    body = "".join(f"\ndef test_{i}({fixture}):\n    check({fixture})\n" for i in range(tests))
    suite = Path(tempfile.mkdtemp(prefix="orch-bench-suite-"))
    try:
        (suite / "pytest.ini").write_text("[pytest]\n")
        (suite / "test_bench.py").write_text(textwrap.dedent(SUITE).format(tests=body))
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
            cwd=suite,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"pytest failed:\n{proc.stdout}\n{proc.stderr}")
        return elapsed
    finally:
        shutil.rmtree(suite, ignore_errors=True)


def median_of(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts per variant")
    parser.add_argument("--tests", type=int, default=3, help="tests in the pytest runs")
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} image={GATEWAY_IMAGE}")

    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "fixture (openclaw_gateway)": fixture_once,
        "anchor: DockerContainer + HttpWaitStrategy (1 s poll)": lambda: anchor_once(None),
        "anchor: DockerContainer + HttpWaitStrategy (0.1 s poll)": lambda: anchor_once(0.1),
        "anchor, 0.1 s poll, orch's limits and security options": lambda: anchor_once(0.1, True),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for run in range(args.runs):
        for name, once in variants.items():
            samples[name].append(once())
            print(f"  run {run + 1} {name}: ready {samples[name][-1][0]:.2f} s", flush=True)

    fixture_ready, _ = median_of(samples["fixture (openclaw_gateway)"])
    print(f"\n1. one cold gateway, median of {args.runs} (ready; removal apart)")
    print(f"{'variant':<58} {'ready s':>8} {'remove s':>9} {'fixture/this':>13}")
    for name, rows in samples.items():
        ready, remove = median_of(rows)
        print(f"{name:<58} {ready:>8.2f} {remove:>9.2f} {fixture_ready / ready:>13.2f}")

    session = pytest_run("openclaw_session_gateway", args.tests)
    function = pytest_run("openclaw_gateway", args.tests)
    print(f"\n2. a pytest run of {args.tests} tests, whole process")
    print(f"{'fixture':<58} {'total s':>8} {'per test s':>11}")
    for name, total in (
        ("openclaw_session_gateway (one gateway, shared)", session),
        ("openclaw_gateway (one gateway per test)", function),
    ):
        print(f"{name:<58} {total:>8.2f} {total / args.tests:>11.2f}")
    print(f"session-scoped saves {function - session:.1f} s ({function / session:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
