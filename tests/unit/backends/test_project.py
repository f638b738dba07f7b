"""The fleet handle renders the fleet once per command: one pass for every profile,
read by the gate, the plan and the status alike (backends/project.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.project import Project
from orchestrator.core.model import Profile
from orchestrator.core.spec import render
from orchestrator.errors import UnknownProfileError
from orchestrator.fleet.store import load_fleet, save_fleet

from ..helpers import fleet_of


@pytest.fixture
def project(home: Path) -> Project:
    save_fleet(home, fleet_of(Profile(name="a", port=20000), Profile(name="b", port=20200)))
    return Project.open(home)


def test_every_spec_comes_from_one_render_pass_and_one_load(project: Project, home: Path):
    specs = project.specs() + project.specs(["b"]) + [project.spec("a")]
    fleet = load_fleet(home)
    assert specs == [render(fleet.profiles[n], fleet, home) for n in ("a", "b", "b", "a")]
    assert project.counts() == {"loads": 1, "renders": 1, "snapshots": 0}


def test_an_unknown_profile_is_a_clear_error_and_renders_nothing(project: Project):
    with pytest.raises(UnknownProfileError, match="no profile named 'c'"):
        project.spec("c")
    assert project.renders == 0


def test_reload_reads_the_file_again_and_renders_again(project: Project, home: Path):
    before = project.spec("a")
    save_fleet(home, load_fleet(home).with_profile(Profile(name="a", port=21000)))
    project.reload()
    assert project.spec("a").base_port == 21000 != before.base_port
    assert project.counts() == {"loads": 2, "renders": 2, "snapshots": 0}
