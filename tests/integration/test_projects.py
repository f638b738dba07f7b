"""The first `orch setup` in a home picks a project no other fleet on the host uses,
against the real engine: two users' default homes both come up with no edit, and a
project only the engine's containers carry (no registry record) is avoided too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import http_get

pytestmark = pytest.mark.docker

UNSET = ("ORCH_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")


def orch_as(user: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """The real CLI as a user whose HOME is `user`: ORCH_HOME unset, so its fleet lives
    in its default home (`user`/.local/share/orch), as a new user's does."""
    from orchestrator.fleet.places import cache_dir

    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(HOME=str(user), ORCH_CACHE_DIR=str(cache_dir()))  # one schema cache for all
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if ok and proc.returncode != 0:
        raise AssertionError(
            f"orch {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def data_as(user: Path, *args: str) -> dict:
    return json.loads(orch_as(user, *args, "--json").stdout)["data"]


def projects_in_use(home: Path) -> set[str]:
    from orchestrator.docker.snapshot import foreign_projects
    from orchestrator.fleet.registry import other_projects

    return other_projects(home) | foreign_projects(home)


def remove_all_of(engine, home: Path) -> None:
    for container in engine.containers.list(all=True, filters={"label": f"orch.home={home}"}):
        container.remove(force=True)
    for network in engine.networks.list(filters={"label": f"orch.home={home}"}):
        network.remove()
    (home / "fleet.yaml").unlink(missing_ok=True)  # the registry forgets the fleet


@pytest.mark.gateway
def test_two_users_default_homes_both_come_up_with_no_edit(tmp_path, engine, gateway_image):
    users = [tmp_path / "ann", tmp_path / "bob"]
    homes = [user / ".local" / "share" / "orch" for user in users]
    try:
        projects = []
        for user, home in zip(users, homes, strict=True):
            user.mkdir()
            taken = projects_in_use(home)
            data_as(user, "setup", "main", "--port", "auto")
            listed = data_as(user, "ls")
            assert listed["home"] == str(home)
            assert listed["project"] not in taken, (listed["project"], taken)
            projects.append(listed["project"])
        assert len(set(projects)) == 2
        assert projects[0] == "orch" or "orch" in projects_in_use(homes[0])
        # Neither `orch up` is refused for a name (at once: the two starts overlap).
        with ThreadPoolExecutor(max_workers=2) as pool:
            up = ("up", "--port", "auto", "--timeout", "240")
            ups = [pool.submit(data_as, user, *up) for user in users]
            assert all(up.result()["outcomes"] for up in ups)
        for user, project in zip(users, projects, strict=True):
            (row,) = data_as(user, "status")["profiles"]
            assert row["container"] == f"{project}-main" and row["ready"], row
            (profile,) = data_as(user, "ls")["profiles"]
            assert http_get(profile["port"], "/readyz")[0] == 200
    finally:
        for user, home in zip(users, homes, strict=True):
            if home.exists():
                orch_as(user, "down", ok=False)
            remove_all_of(engine, home)


def test_a_project_only_the_engines_containers_carry_is_not_taken(tmp_path, engine):
    """No registry record names the project (its fleet file is gone, say, or it ran on
    an older orch): the labels on the engine still do, and setup picks another."""
    from orchestrator.fleet.store import default_project

    home = tmp_path / "ci-home"
    wanted = default_project(home)
    squatter = engine.containers.create(
        "orch/debian:bookworm",
        ["sleep", "300"],
        labels={"orch.managed": "true", "orch.project": wanted, "orch.home": "/elsewhere"},
    )
    try:
        env = {**os.environ, "ORCH_HOME": str(home)}
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "setup", "main", "--port", "auto", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"project: {wanted}-2\n" in (home / "fleet.yaml").read_text()
    finally:
        squatter.remove(force=True)
        remove_all_of(engine, home)
