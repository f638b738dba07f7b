"""A fleet over a real two-node Docker Swarm, built by the tests on this machine.

The cluster (swarm_cluster.py) is made once for the module: two dockerds in
network namespaces of their own, joined as a swarm, the gateway image loaded into
both, a registry on the test network. It never touches the host's main engine
beyond `docker save`, and is taken down at the end, also when a test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import swarm_cluster

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


@pytest.fixture(scope="module")
def cluster(gateway_image):
    cluster = swarm_cluster.start_cluster([gateway_image])
    print(f"two-node swarm up: {cluster.timings}")
    try:
        yield cluster
    finally:
        swarm_cluster.stop_cluster(cluster)
        assert swarm_cluster.leftovers(cluster) == []


def test_the_cluster_has_two_ready_nodes_with_their_own_hostnames(cluster):
    rows = cluster.docker(cluster.manager, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    assert sorted(rows.split("\n")[:-1]) == ["orch-node1 Ready", "orch-node2 Ready"]


def test_the_registry_answers_from_the_second_node(cluster):
    probe = subprocess.run(
        cluster.nodes[1].in_netns("curl", "-fsS", f"http://{cluster.registry}/v2/"),
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr


def test_a_run_whose_owner_was_killed_is_taken_down_by_the_next(tmp_path):
    """A pytest killed mid-run leaves daemons, namespaces, mounts and cgroups: the
    next run's clean_stale() removes all of it, and nothing of another live run."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {os.path.dirname(swarm_cluster.__file__)!r})\n"
        "import swarm_cluster\n"
        "c = swarm_cluster.start_cluster([], registry=False)\n"
        "print(c.run_id, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    assert run_id, "the child did not start its cluster"
    crashed = swarm_cluster.Cluster.load(swarm_cluster.RUNS_ROOT / run_id / "run.json")
    assert swarm_cluster.leftovers(crashed)  # daemons, namespaces and dirs are there
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    time.sleep(0.2)
    cleaned = swarm_cluster.clean_stale()
    assert run_id in cleaned
    assert swarm_cluster.leftovers(crashed) == []
