"""What a new base must avoid on the host, read from a proc dir laid out like the
host's ($ORCH_HOST_PROC; the unit tests' is empty unless a test writes into it)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.core.ports import footprint_bounds
from orchestrator.docker.snapshot import ephemeral_range, held_ports
from orchestrator.fleet.owner import Owner
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.registry import PortRegistry
from orchestrator.fleet.store import load_fleet

from ..testing.test_factory import labels_of


def linux_ports(first: int, last: int) -> None:
    """The kernel's ephemeral range as /proc/sys/net/ipv4/ip_local_port_range says it."""
    path = Path(os.environ["ORCH_HOST_PROC"]) / "sys" / "net" / "ipv4" / "ip_local_port_range"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{first}\t{last}\n")


def test_the_ephemeral_range_is_read_from_the_hosts_proc() -> None:
    assert ephemeral_range() is None  # not there: nothing to avoid
    linux_ports(32768, 60999)
    assert ephemeral_range() == ("0.0.0.0", 32768, 60999)
    assert ("0.0.0.0", 32768, 60999) in held_ports()  # no engine here: the rest is empty


def test_an_unreadable_ephemeral_range_is_ignored() -> None:
    linux_ports(1, 0)
    assert ephemeral_range() is None
    Path(os.environ["ORCH_HOST_PROC"], "sys/net/ipv4/ip_local_port_range").write_text("x y\n")
    assert ephemeral_range() is None


def test_port_auto_skips_the_ephemeral_range(home: Path, monkeypatch) -> None:
    """A port there that a recent connection left in TIME-WAIT cannot be published."""
    linux_ports(32768, 60999)
    monkeypatch.setenv("ORCH_PORT_START", "32700")
    setup(home, SetupRequest(name="main", port="auto"), live=lambda _home, _name: held_ports())
    lo, hi = footprint_bounds(load_fleet(home).profiles["main"].port)
    assert lo == 61000 and hi < 65536


def test_test_gateways_get_bases_below_the_ephemeral_range_then_above_it(tmp_path: Path) -> None:
    linux_ports(20300, 60999)
    labels = labels_of(Owner.current())
    bases = PortRegistry(tmp_path).reserve(3, "127.0.0.1", labels, 20000, held_ports)
    assert [footprint_bounds(b)[1] < 20300 for b in bases] == [True, True, False]
    assert bases[2] == 61000
