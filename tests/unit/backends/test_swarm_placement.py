"""The steps of `up --engine swarm` for a placed fleet that need no engine: which node,
the stack document, the script that makes a profile's dirs on its node."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.backends import swarm_placement
from orchestrator.backends.swarm_placement import dirs_script, placement_of
from orchestrator.core.model import Profile
from orchestrator.core.placement import SwarmNode
from orchestrator.core.spec import render
from orchestrator.docker.registry import PinnedImage
from orchestrator.errors import CheckFailed, ExportError
from orchestrator.export.stack_placement import export_placed, placed_document

from ..helpers import fleet_of


def node(hostname: str, current: bool = False, state: str = "ready") -> SwarmNode:
    return SwarmNode(
        f"id-{hostname}", hostname, state, "active", f"10.0.0.{hostname[-1]}", current, current
    )


NODES = [node("n1", current=True), node("n2")]


def fleet_and_specs(home: Path, *profiles: Profile):
    fleet = fleet_of(*profiles)
    return fleet, [render(p, fleet, home) for p in fleet.select(None)]


def test_an_unplaced_profile_goes_to_the_manager_and_a_placed_one_to_its_node(home) -> None:
    fleet, specs = fleet_and_specs(
        home,
        Profile(name="a", port=18789, bind_ip="0.0.0.0"),
        Profile(name="b", port=18789, bind_ip="0.0.0.0", node="n2"),
    )
    placed = placement_of(fleet, home, specs, NODES)
    assert {p.spec.profile: p.node.hostname for p in placed} == {"a": "n1", "b": "n2"}


def test_a_node_that_is_down_or_unknown_stops_the_deploy(home) -> None:
    fleet, specs = fleet_and_specs(
        home,
        Profile(name="a", port=18789, bind_ip="0.0.0.0", node="n2"),
        Profile(name="b", port=18900, bind_ip="0.0.0.0", node="n7"),
    )
    with pytest.raises(CheckFailed) as caught:
        placement_of(fleet, home, specs, [NODES[0], node("n2", state="down")])
    assert sorted(p.code for p in caught.value.problems) == ["node-unknown", "swarm-node-down"]


def test_the_stack_pins_each_service_to_its_node_by_hostname_and_image_digest(home) -> None:
    fleet, specs = fleet_and_specs(home, Profile(name="b", port=18789, node="n2"))
    pinned = PinnedImage(specs[0].image, "r:5000/gw", "1", "sha256:" + "d" * 64)
    document = placed_document(specs, {"b": "n2"}, {specs[0].image: pinned.reference})
    service = document["services"]["b"]
    assert service["deploy"]["placement"] == {"constraints": ["node.hostname==n2"]}
    assert service["image"] == "r:5000/gw@sha256:" + "d" * 64
    assert {p["mode"] for p in service["ports"]} == {"host"}
    assert [s["source"] for s in service["secrets"]] == ["b_token"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns, as the job does as root")
def test_the_dirs_script_makes_only_what_is_missing_and_changes_nothing_that_exists(
    home, tmp_path, monkeypatch
) -> None:
    node_root = tmp_path / "node"
    monkeypatch.setattr(swarm_placement, "HOST_ROOT", str(node_root))
    fleet, (spec,) = fleet_and_specs(home, Profile(name="b", port=18789, node="n2"))
    sources = {m.role: m.source for m in spec.mounts}
    kept = node_root / sources["state"].lstrip("/")
    kept.mkdir(parents=True)
    kept.chmod(0o755)
    script = dirs_script(spec, b'{"gateway": {}}\n')
    subprocess.run(["sh", "-c", script], check=True)
    subprocess.run(["sh", "-c", script], check=True)  # twice: nothing more happens
    for role in ("config", "workspace"):
        made = (node_root / sources[role].lstrip("/")).stat()
        assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (1000, 1000, 0o700)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o755  # there before: left alone
    config = node_root / sources["config"].lstrip("/") / "openclaw.json"
    assert config.read_bytes() == b'{"gateway": {}}\n'
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert not (node_root / sources["token"].lstrip("/")).exists()  # a secret, no file


def test_export_of_a_fully_placed_fleet_needs_no_engine_and_names_each_node(home) -> None:
    fleet, specs = fleet_and_specs(home, Profile(name="b", port=18789, node="n2"))
    text = export_placed(fleet, specs)
    assert "node.hostname==n2" in text
    assert "orch.dirs." not in text  # no node labels to set by hand
    assert "secrets:" in text and "b_token" in text


def test_export_of_an_unplaced_profile_without_a_manager_says_how_to_place_it(home) -> None:
    fleet, specs = fleet_and_specs(
        home, Profile(name="a", port=18789), Profile(name="b", port=18900, node="n2")
    )
    with pytest.raises(ExportError) as caught:
        export_placed(fleet, specs)
    assert "a name(s) no node, and no swarm manager answers" in caught.value.message
    assert caught.value.hint.endswith("orch setup a --node HOSTNAME --force")
