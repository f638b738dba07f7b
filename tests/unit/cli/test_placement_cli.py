"""`orch setup --node`, and placement where it matters: `orch ports` and `orch check`."""

from __future__ import annotations

from pathlib import Path

from orchestrator.fleet.store import load_fleet

from .test_cli import envelope, orch


def test_setup_places_a_profile_on_a_node_and_an_empty_node_drops_it(home: Path) -> None:
    proc = orch(home, "setup", "a", "--port", "18789", "--node", "worker-2", "--json")
    assert envelope(proc, "setup", True)["data"]["profile"]["node"] == "worker-2"
    assert load_fleet(home).profiles["a"].node == "worker-2"
    shown = orch(home, "setup", "b", "--port", "18900", "--node", "worker-2").stdout
    assert "  node       worker-2 (swarm: orch up --engine swarm runs it there)" in shown
    proc = orch(home, "setup", "a", "--port", "18789", "--node", "", "--force", "--json")
    assert proc.returncode == 0, proc.stderr
    assert load_fleet(home).profiles["a"].node is None


def test_setup_refuses_a_node_no_swarm_node_can_be_named(home: Path) -> None:
    proc = orch(home, "setup", "a", "--port", "18789", "--node", "a b", "--json")
    error = envelope(proc, "setup", False)["error"]
    assert proc.returncode == 2
    assert "node: 'a b' is not a hostname a swarm node can have" in error["message"]
    assert not (home / "fleet.yaml").exists() or "a" not in load_fleet(home).profiles


def test_ports_shows_the_node_column_once_a_profile_is_placed(home: Path) -> None:
    orch(home, "setup", "a", "--port", "18789")
    assert "NODE" not in orch(home, "ports").stdout
    orch(home, "setup", "b", "--port", "18900", "--bind-ip", "0.0.0.0", "--node", "n2")
    table = orch(home, "ports").stdout
    assert "NODE" in table.splitlines()[0]
    assert any(line.split()[:2] == ["a", "(manager)"] for line in table.splitlines())
    assert any(line.split()[:2] == ["b", "n2"] for line in table.splitlines())


def test_check_says_the_nodes_were_not_checked_without_a_swarm_manager(home: Path) -> None:
    orch(home, "setup", "b", "--port", "18789", "--node", "n2")
    data = envelope(orch(home, "check", "--json"), "check", True)["data"]
    what = [u["what"] for u in data["unchecked"]]
    assert "the swarm nodes the profiles are placed on" in what
