"""Test runs: their ids, the labels and dirs that record which process made what, so
`orch gc` can remove what a killed run left. Stdlib only: `orch gc` and the plugin
import it without testcontainers.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

from orchestrator.base.owner import Owner
from orchestrator.errors import UsageError
from orchestrator.fleet.registry import LABEL_RUN_ID, LABEL_RUN_OWNER

ENV_ROOT = "ORCH_TEST_DIR"
ENV_RUN_ID = "ORCH_RUN_ID"
LABEL_RUN_CREATED = "orch.run-created"
RUN_MARKER = "run.json"
RUNS_DIR = "runs"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_generated_run_id = uuid.uuid4().hex[:12]


def runs_root() -> Path:
    """Where run dirs and the port registry live: $ORCH_TEST_DIR, else <tmp>/orch-test.

    One place per host, so `orch gc` finds what any run left. Set it to a host
    path when the suite runs in a container (bind sources are host paths)."""
    env = os.environ.get(ENV_ROOT)
    return Path(env).absolute() if env else Path(tempfile.gettempdir()) / "orch-test"


def current_run_id() -> str:
    """$ORCH_RUN_ID, else the pytest-xdist run id shared by all workers, else one per process."""
    run = os.environ.get(ENV_RUN_ID) or os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:12]
    run = run or _generated_run_id
    if not _RUN_ID_RE.fullmatch(run):
        raise UsageError(
            f"{ENV_RUN_ID}: '{run}' is not a valid run id",
            hint="use letters, digits, '.', '_' and '-' (at most 64), e.g. the CI job id",
        )
    return run


def run_labels(run_id: str, owner: Owner) -> dict[str, str]:
    return {
        LABEL_RUN_ID: run_id,
        LABEL_RUN_OWNER: str(owner),
        LABEL_RUN_CREATED: str(int(time.time())),
    }


def new_run_dir(root: Path, labels: dict[str, str]) -> Path:
    """A fresh dir for one group of gateways, marked with its run record first."""
    runs = root / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    owner = Owner.parse(labels[LABEL_RUN_OWNER])
    pid = owner.pid if owner else os.getpid()
    path = Path(tempfile.mkdtemp(prefix=f"{labels[LABEL_RUN_ID]}-{pid}-", dir=runs))
    (path / RUN_MARKER).write_text(json.dumps(labels) + "\n", encoding="utf-8")
    return path


def read_run_marker(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads((path / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and LABEL_RUN_ID in data else None
