"""An example suite for CI: each test gets its own real, isolated OpenClaw gateway.

orch's pytest plugin (installed with orch) provides the fixtures. Run with
`pytest -n 2` (see run.sh): both tests run at the same time, in two xdist
workers, and each gateway gets a whole free port footprint of its own.

Each test records its gateway's port and a fingerprint of its token (never the
token) as JUnit properties, which CI systems show next to the test.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def record(gateway, record_property) -> None:
    record_property("gateway_port", gateway.port)
    record_property("gateway_footprint", f"{gateway.footprint[0]}-{gateway.footprint[1]}")
    record_property("gateway_token_sha256", hashlib.sha256(gateway.token.encode()).hexdigest())
    record_property("gateway_run_id", gateway.run_id)


def test_the_gateway_is_ready_and_live(openclaw_gateway, record_property) -> None:
    record(openclaw_gateway, record_property)
    assert get(f"{openclaw_gateway.url}/readyz") == (200, {"ready": True})
    status, health = get(f"{openclaw_gateway.url}/healthz")
    assert status == 200 and health["ok"] is True


def test_the_gateway_cli_in_its_container_answers(openclaw_gateway, record_property) -> None:
    record(openclaw_gateway, record_property)
    code, output = openclaw_gateway.exec(["openclaw", "--version"])
    assert code == 0, output
    assert output.startswith("OpenClaw ")
    assert (openclaw_gateway.dirs.config / "openclaw.json").exists()
