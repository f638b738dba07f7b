"""`pip install .` (a wheel, not editable) into a fresh venv: the image build contexts
ship inside the package, and that install's `orch images build` finds them, hashes
them as the checkout does and finds the engine's images current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def test_a_wheel_install_ships_the_images_and_builds_from_them(tmp_path, gateway_image):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(REPO)]
    subprocess.run(pip, check=True, timeout=600, cwd=tmp_path)
    where = "import orchestrator, os; print(os.path.dirname(orchestrator.__file__))"
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    shipped = Path(site) / "images"
    assert (shipped / "gateway" / "Dockerfile").is_file()
    assert (shipped / "base" / "build.sh").is_file()
    assert not (shipped / "gateway" / ".build").exists() and not (shipped / ".cache").exists()
    assert str(REPO) not in site  # the wheel's copy, not the checkout
    env = {**os.environ, "ORCH_HOME": str(tmp_path / "home")}
    build = subprocess.run(
        [str(venv / "bin" / "orch"), "images", "build", "--json"],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    rows = json.loads(build.stdout)["data"]["images"]
    assert {r["action"] for r in rows} <= {"current", "built"}
    assert gateway_image in {r["tag"] for r in rows}
