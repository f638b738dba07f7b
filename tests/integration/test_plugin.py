"""orch's pytest plugin on the real engine and gateway image: the commands of the CI
jobs in docs/ci/ run the example suite (two tests, `pytest -n 2`, one gateway each)
and leave nothing behind; the factory fixture gives main and rescue their own
gateways (orchestrator/testing.py, pytest_plugin.py, examples/ci-suite/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import http_get

from orchestrator.testing.factory import LABEL_RUN_ID, LABEL_RUN_OWNER, Owner, PortRegistry
from orchestrator.testing.runs import runs_root

pytestmark = [pytest.mark.docker, pytest.mark.gateway]

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / "docs" / "ci" / "github-actions.yml"
GITLAB = REPO / "docs" / "ci" / "gitlab-ci.yml"
# Install steps: this test's own virtualenv (`make install`) stands for them.
INSTALL_STEPS = {
    'python -m pip install ".[dev]"',
    "python3 -m venv .venv",
    ". .venv/bin/activate",
    'pip install ".[dev]"',
}


def ci_commands(path: Path) -> list[str]:
    """The shell commands of a CI file, in order: GitHub `run:` steps, GitLab scripts."""
    doc = yaml.safe_load(path.read_text())
    if "jobs" in doc:
        steps = [s for job in doc["jobs"].values() for s in job["steps"]]
        return [s["run"] for s in steps if "run" in s]
    job = doc["gateway-tests"]
    return [*job["before_script"], *job["script"], *job["after_script"]]


def leftovers(engine: Any, run_id: str) -> list[str]:
    """Everything that carries this run's id: containers, networks, dirs, port entries."""
    label = {"label": f"{LABEL_RUN_ID}={run_id}"}
    found = [f"container {c.name}" for c in engine.containers.list(all=True, filters=label)]
    found += [f"network {n.name}" for n in engine.networks.list(filters=label)]
    root = runs_root()
    for marker in (root / "runs").glob("*/run.json"):
        if json.loads(marker.read_text()).get(LABEL_RUN_ID) == run_id:
            found.append(f"dir {marker.parent}")
    found += [f"ports {e['base']}" for e in PortRegistry().entries() if e[LABEL_RUN_ID] == run_id]
    return found


def child_env(**extra: str) -> dict[str, str]:
    """This environment without the outer pytest's own variables, orch's venv first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["PYTHON"] = sys.executable
    return {**env, **extra}


def test_both_ci_jobs_run_the_same_commands() -> None:
    github = [c for c in ci_commands(GITHUB) if c not in INSTALL_STEPS]
    gitlab = [c for c in ci_commands(GITLAB) if c not in INSTALL_STEPS]
    assert (
        github
        == gitlab
        == [
            "orch images build",
            "examples/ci-suite/run.sh",
            'orch gc --run-id "$ORCH_RUN_ID"',
        ]
    )


def test_the_ci_jobs_give_two_parallel_tests_isolated_gateways_and_leave_nothing(
    engine: Any, gateway_image: str, tmp_path: Path
) -> None:
    run_id = f"it-{uuid.uuid4().hex[:10]}"
    report = tmp_path / "report.xml"
    env = child_env(ORCH_RUN_ID=run_id, JUNIT_XML=str(report))
    for command in ci_commands(GITHUB):
        if command in INSTALL_STEPS:
            continue
        proc = subprocess.run(
            ["sh", "-c", command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    seen = [
        {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in suite.iter("testcase")
    ]
    assert [s["gateway_run_id"] for s in seen] == [run_id, run_id]
    (lo1, hi1), (lo2, hi2) = (map(int, s["gateway_footprint"].split("-")) for s in seen)
    assert hi1 < lo2 or hi2 < lo1, f"footprints overlap: {seen}"
    assert seen[0]["gateway_token_sha256"] != seen[1]["gateway_token_sha256"]
    assert leftovers(engine, run_id) == []


def test_the_factory_gives_main_and_rescue_their_own_gateways(
    openclaw_gateways: Any, engine: Any
) -> None:
    main, rescue = openclaw_gateways(["main", "rescue"], rescues={"rescue": "main"})

    for gateway in (main, rescue):
        assert http_get(gateway.port, "/readyz") == (200, '{"ready":true}')
    assert main.token != rescue.token
    assert main.footprint[1] < rescue.footprint[0] or rescue.footprint[1] < main.footprint[0]
    assert len({main.dirs.state, rescue.dirs.state, main.dirs.config, rescue.dirs.config}) == 4

    # The rescue gateway sees main's config dir, and only that; main sees nothing of it.
    code, listing = rescue.exec(["ls", "/openclaw/rescue/main/config"])
    assert code == 0 and "openclaw.json" in listing
    assert main.exec(["ls", "/openclaw/rescue"])[0] != 0
    # The gateway's own CLI in its container reaches it (the token comes from the file).
    code, output = main.exec(["openclaw", "gateway", "call", "health"])
    assert code == 0, output

    container = engine.containers.get(main.container_name)
    assert container.labels[LABEL_RUN_ID] == main.run_id
    assert container.labels[LABEL_RUN_OWNER] == str(Owner.current())
    assert main.token not in json.dumps(container.attrs)
    assert main.token not in main.logs()
