"""The project of a fleet: the first `orch setup` in a home picks one no other fleet of
the host uses (the host registry, and the engine's containers and networks when one
answers), so two users' default homes both come up without an edit; a fleet file
that exists keeps its project (orchestrator/fleet/store.py free_project)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.core.model import DEFAULT_PROJECT
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import default_project, fleet_path, free_project, load_fleet

from ..cli.helpers import invoke


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two users' HOMEs: with ORCH_HOME unset, each has its own default home."""
    monkeypatch.delenv("ORCH_HOME")
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "ORCH_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    homes = [tmp_path / "ann", tmp_path / "bob"]
    for home in homes:
        home.mkdir()
    return homes


def _setup_as(user: Path, *args: str) -> dict:
    result = invoke("setup", *args, "--json", env={"HOME": str(user)})
    assert result.exit_code == 0, result.output
    listed = invoke("ls", "--json", env={"HOME": str(user)})
    return json.loads(listed.stdout)["data"]


def test_two_default_homes_get_distinct_projects_without_an_edit(users: list[Path]) -> None:
    ann, bob = users
    first = _setup_as(ann, "main", "--port", "auto")
    second = _setup_as(bob, "main", "--port", "auto")
    assert first["home"] == f"{ann}/.local/share/orch"
    assert second["home"] == f"{bob}/.local/share/orch"
    assert first["project"] == DEFAULT_PROJECT  # the default home keeps orch when free
    # The second is derived from its home, as every other home's is: readable, stable.
    assert second["project"] == "orch-" + hashlib.sha256(second["home"].encode()).hexdigest()[:6]
    # Each keeps its project from then on, whatever the other does.
    assert _setup_as(ann, "rescue", "--port", "auto")["project"] == first["project"]
    assert _setup_as(bob, "rescue", "--port", "auto")["project"] == second["project"]


def test_a_fleet_file_that_exists_keeps_its_project(users: list[Path]) -> None:
    ann, bob = users
    _setup_as(ann, "main", "--port", "auto")
    bobs = bob / ".local" / "share" / "orch"
    bobs.mkdir(parents=True)
    fleet_path(bobs).write_text("version: 1\nproject: orch\nprofiles: {}\n")
    assert _setup_as(bob, "main", "--port", "auto")["project"] == "orch"


def test_a_project_only_the_engine_knows_is_avoided(home: Path) -> None:
    derived = default_project(home)
    result = setup(home, SetupRequest(name="main"), projects=lambda _home: {derived, "other"})
    assert load_fleet(home).project == f"{derived}-2"
    assert result.action == "created"


def test_a_project_of_a_fleet_whose_home_is_gone_is_free_again(users: list[Path]) -> None:
    ann, bob = users
    _setup_as(ann, "main", "--port", "auto")
    fleet_path(ann / ".local" / "share" / "orch").unlink()  # ann's fleet is gone
    assert _setup_as(bob, "main", "--port", "auto")["project"] == DEFAULT_PROJECT


def test_free_project_walks_from_the_default_to_numbered_names(tmp_path: Path) -> None:
    home = tmp_path / "ci-home"
    derived = default_project(home)
    assert free_project(home, set()) == derived
    assert free_project(home, {derived}) == f"{derived}-2"
    assert free_project(home, {derived, f"{derived}-2"}) == f"{derived}-3"
