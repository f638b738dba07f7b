"""`docker stack deploy`: the one call of the swarm backend that goes through the
docker CLI (backends/swarm.py says why: the stack file is the one translation)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from orchestrator.errors import EngineRefused, SwarmUnavailable

DEPLOY_TIMEOUT_S = 120.0


def docker_cli() -> str:
    path = shutil.which("docker")
    if path is None:
        raise SwarmUnavailable(
            "the docker CLI is not installed: orch deploys stacks with `docker stack deploy`;"
            " nothing was changed",
            hint="install the docker CLI (Debian: apt-get install docker.io)",
        )
    return path


def deploy(docker: str, stack: str, text: str) -> None:
    """`docker stack deploy` of the rendered file. `--resolve-image never`: with no
    registry, each node runs the image it has under that tag."""
    with tempfile.TemporaryDirectory(prefix="orch-stack-") as tmp:
        path = Path(tmp) / "stack.yaml"
        path.write_text(text)
        proc = subprocess.run(
            [docker, "stack", "deploy", "--resolve-image", "never", "-c", str(path), stack],
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
        )
    if proc.returncode != 0:
        raise EngineRefused(
            f"docker stack deploy of stack '{stack}' failed:\n"
            + (proc.stderr or proc.stdout).strip(),
            hint="see `orch export stack` for the file that was deployed",
        )
