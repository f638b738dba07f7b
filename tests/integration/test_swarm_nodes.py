"""A fleet over a real two-node Docker Swarm, built by the tests on this machine.

The cluster (swarm_cluster.py) is made once for the module: two dockerds in
network namespaces of their own, joined as a swarm, the gateway image loaded into
both, a registry on the test network. It never touches the host's main engine
beyond `docker save`, and is taken down at the end, also when a test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import swarm_cluster
from support import Orch, free_base, new_home, wait_for

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


# --- the docker/ side: nodes, registry, images on a node ------------------------------


@pytest.fixture
def on_manager(cluster, monkeypatch):
    """orch's own docker/ code, in this process, talking to the manager's engine."""
    monkeypatch.setenv("DOCKER_HOST", cluster.manager.docker_host)
    return cluster


def test_the_nodes_are_listed_with_hostname_state_availability_and_address(on_manager):
    from orchestrator.docker.swarm_nodes import swarm_nodes

    nodes = {n.hostname: n for n in swarm_nodes() or []}
    assert set(nodes) == {"orch-node1", "orch-node2"}
    assert [nodes[h].address for h in sorted(nodes)] == ["10.213.0.1", "10.213.0.2"]
    assert all(n.state == "ready" and n.availability == "active" for n in nodes.values())
    assert nodes["orch-node1"].current and nodes["orch-node1"].manager
    assert not nodes["orch-node2"].current and not nodes["orch-node2"].manager


def test_an_image_pushed_to_the_registry_runs_on_the_other_node_by_its_digest(on_manager):
    """The base image is loaded into node 1 only; node 2 gets it from the registry,
    pinned by the digest the push returned. Timings against loading it directly."""
    from orchestrator.docker.registry import push_image, require_image_on
    from orchestrator.host.images import OFFLINE_BASE as BASE_IMAGE

    if not swarm_cluster.on_main_engine(BASE_IMAGE):
        pytest.skip(f"{BASE_IMAGE} is not on the main engine (`orch images build` makes it)")
    node1, node2 = on_manager.nodes
    loaded = swarm_cluster.load_image(on_manager, BASE_IMAGE, [node1])
    started = time.monotonic()
    pinned = push_image(BASE_IMAGE, on_manager.registry)
    pushed = time.monotonic() - started
    assert pinned.reference == f"{on_manager.registry}/orch/debian@{pinned.digest}"
    assert pinned.digest.startswith("sha256:")
    started = time.monotonic()
    require_image_on(pinned.reference, [node2.hostname], {"orch.project": "it-registry"})
    pulled = time.monotonic() - started
    print(
        f"{BASE_IMAGE}: docker load into one node {loaded:.1f} s;"
        f" registry push {pushed:.1f} s + pull and start on node 2 {pulled:.1f} s"
    )
    digests = on_manager.docker(node2, "image", "ls", "--digests", "--format", "{{.Digest}}")
    assert pinned.digest in digests.split()
    jobs = on_manager.docker(node1, "service", "ls", "-q", "--filter", "label=orch.job")
    assert jobs == ""  # the job's service is gone


def test_a_node_that_cannot_get_the_image_is_named_in_the_error(on_manager):
    from orchestrator.docker.registry import require_image_on
    from orchestrator.errors import ImageError

    missing = f"{on_manager.registry}/orch/none@sha256:{'0' * 64}"
    with pytest.raises(ImageError) as caught:
        require_image_on(missing, ["orch-node2"], {"orch.project": "it-registry"})
    assert "1 node(s) cannot get image" in caught.value.message
    assert "node orch-node2: rejected" in caught.value.message
    assert f"docker pull {missing}" in caught.value.hint


def test_a_push_to_a_registry_nobody_serves_says_where_it_tried(on_manager):
    from orchestrator.core.versions import GATEWAY_IMAGE
    from orchestrator.docker.registry import push_image
    from orchestrator.errors import ImageError

    with pytest.raises(ImageError) as caught:
        push_image(GATEWAY_IMAGE, "10.213.0.2:5999")
    assert f"pushing {GATEWAY_IMAGE} to 10.213.0.2:5999" in caught.value.message


# --- a fleet placed on node 2, through the real CLI on the manager -------------------


class OrchOnManager(Orch):
    """The real CLI run where orch runs in a real cluster: on the manager, in its
    network namespace (node 2's address is reachable from there, not from the
    host's), talking to the manager's engine."""

    def __init__(self, home, project, cluster) -> None:
        super().__init__(home, project)
        self.cluster = cluster

    def run(self, *args, ok=True, timeout=300, env=None):
        env = {**os.environ, **(env or {}), "ORCH_HOME": str(self.home)}
        env["DOCKER_HOST"] = self.cluster.manager.docker_host
        argv = self.cluster.manager.in_netns(sys.executable, "-m", "orchestrator", *args)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"orch {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


def stack_objects(cluster, node, stack: str) -> dict[str, str]:
    label = f"label=com.docker.stack.namespace={stack}"
    found = {
        "containers": cluster.docker(node, "ps", "-aq", "--filter", label),
        "networks": cluster.docker(node, "network", "ls", "-q", "--filter", label),
        "job containers": cluster.docker(
            node,
            "ps",
            "-aq",
            "--filter",
            "label=orch.job",
            "--filter",
            f"label=orch.project={stack}",
        ),
    }
    if node is cluster.manager:
        found["services"] = cluster.docker(node, "service", "ls", "-q", "--filter", label)
        found["secrets"] = cluster.docker(node, "secret", "ls", "-q", "--filter", label)
        found["jobs"] = cluster.docker(
            node, "service", "ls", "-q", "--filter", "label=orch.job",
            "--filter", f"label=orch.project={stack}",
        )  # fmt: skip
    return {kind: ids.strip() for kind, ids in found.items() if ids.strip()}


def test_check_refuses_a_node_the_swarm_does_not_have_and_local_up_a_placed_profile(
    cluster, tmp_path
):
    base = new_home(tmp_path / "home")
    fleet = OrchOnManager(base.home, base.project, cluster)
    fleet.run("setup", "t9", "--port", str(free_base()), "--node", "orch-node9")
    check = fleet.json("check", ok=False)["data"]
    (problem,) = [p for p in check["problems"] if p["code"] == "node-unknown"]
    assert "which this swarm does not have (nodes: orch-node1, orch-node2)" in problem["message"]
    up = fleet.json("up", ok=False)  # the local engine
    assert up["error"]["type"] == "CheckFailed"
    assert "local engine runs every profile on this host" in up["error"]["problems"][0]["message"]
    assert (
        cluster.docker(
            cluster.manager, "ps", "-aq", "--filter", f"label=orch.project={fleet.project}"
        )
        == ""
    )


@pytest.fixture(scope="module")
def fleets(cluster, tmp_path_factory):
    """Two fleets on the one swarm, deployed at the same time by `orch up --engine
    swarm` on the manager: t2 placed on node 2 (its dirs missing there, as on a fresh
    node) and, in another home, u1 on node 1. The second proves that one fleet's
    commands leave the other alone."""
    base = new_home(tmp_path_factory.mktemp("placed") / "home")
    fleet = OrchOnManager(base.home, base.project, cluster)
    port = free_base()
    fleet.run("setup", "t2", "--port", str(port), "--bind-ip", "0.0.0.0", "--node", "orch-node2")
    for kind in ("state", "workspace"):
        shutil.rmtree(fleet.home / "profiles" / "t2" / kind)
    second = new_home(tmp_path_factory.mktemp("other") / "home")
    other = OrchOnManager(second.home, second.project, cluster)
    other_port = free_base()
    other.run(
        "setup", "u1", "--port", str(other_port), "--bind-ip", "0.0.0.0", "--node", "orch-node1"
    )
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        ups = [pool.submit(f.json, "up", "--engine", "swarm", timeout=400) for f in (fleet, other)]
        up = ups[0].result()
        ups[1].result()
    took = time.monotonic() - started
    print(f"orch up --engine swarm of t2 on node 2 and u1 on node 1: {took:.1f} s")
    yield fleet, port, up, other
    for f in (fleet, other):
        f.run("down", "--engine", "swarm", ok=False)


@pytest.fixture(scope="module")
def placed_fleet(fleets):
    return fleets[:3]


@pytest.fixture(scope="module")
def other_fleet(fleets):
    return fleets[3]


def test_a_profile_placed_on_node_2_runs_there_and_answers_from_node_1(cluster, placed_fleet):
    fleet, port, up = placed_fleet
    assert [o["ready"] for o in up["data"]["outcomes"]] == [True]
    service = f"{fleet.project}_t2"
    nodes = cluster.docker(
        cluster.manager, "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.CurrentState}}",
    )  # fmt: skip
    node, state = nodes.split()[:2]
    # Swarm says "Starting" until the image's healthcheck first passes; /readyz decided.
    assert node == "orch-node2" and state in ("Starting", "Running")
    probe = cluster.manager.in_netns(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://10.213.0.2:{port}/readyz"
    )
    assert subprocess.run(probe, capture_output=True, text=True).stdout == "200"


def test_its_dirs_were_made_on_node_2_by_orch_for_the_gateway_user(placed_fleet):
    fleet, _port, _up = placed_fleet
    for kind in ("state", "workspace"):
        made = (fleet.home / "profiles" / "t2" / kind).stat()
        assert (made.st_uid, made.st_gid, made.st_mode & 0o777) == (1000, 1000, 0o700)


def test_its_token_is_a_swarm_secret_never_in_the_service(cluster, placed_fleet):
    fleet, _port, _up = placed_fleet
    token = fleet.token("t2")
    inspect = cluster.docker(cluster.manager, "service", "inspect", f"{fleet.project}_t2")
    assert token not in inspect
    assert f"{fleet.project}_t2_token" in inspect  # mounted from the secret


def test_up_again_changes_nothing_on_node_2(cluster, placed_fleet):
    fleet, _port, _up = placed_fleet
    service = f"{fleet.project}_t2"
    tasks = cluster.docker(cluster.manager, "service", "ps", "-q", service)
    again = fleet.json("up", "--engine", "swarm")["data"]
    assert [(o["action"], o["ready"]) for o in again["outcomes"]] == [("noop", True)]
    assert cluster.docker(cluster.manager, "service", "ps", "-q", service) == tasks
    jobs = cluster.docker(cluster.manager, "service", "ls", "-q", "--filter", "label=orch.job")
    assert jobs == ""


def test_export_stack_is_the_file_up_deployed_pinned_to_node_2(cluster, placed_fleet):
    fleet, port, _up = placed_fleet
    text = fleet.run("export", "stack").stdout
    assert "- node.hostname==orch-node2" in text
    assert f"published: {port}" in text and "mode: host" in text
    assert fleet.token("t2") not in text


def test_status_shows_its_node_task_and_ports_answering_from_the_manager(placed_fleet):
    fleet, port, _up = placed_fleet
    data = fleet.json("status", "--engine", "swarm")["data"]
    (row,) = data["profiles"]
    assert data["failing"] == []
    assert row["ready"] is True, row["ready_reason"]
    assert row["url"] == f"http://10.213.0.2:{port}"
    assert (row["node"], row["node_state"], row["desired"]) == ("orch-node2", "ready", "running")
    assert row["state"] in ("starting", "running") and row["error"] == ""
    assert row["tasks"][0]["node"] == "orch-node2"
    gateway = next(p for p in row["ports"] if p["role"] == "gateway")
    assert (gateway["host_ip"], gateway["ports"], gateway["answering"]) == (
        "10.213.0.2",
        str(port),
        True,
    )
    text = fleet.run("status", "--engine", "swarm").stdout
    assert f"t2: service {fleet.project}_t2 on orch-node2 (ready), task" in text
    assert f"gateway 10.213.0.2:{port} answers" in text


def tasks_by_node(cluster, service: str) -> list[tuple[str, str, str]]:
    """(node, desired state, current state) of each task of a service ("" node: pending)."""
    rows = cluster.docker(
        cluster.manager, "service", "ps", service,
        "--format", "{{.Node}}|{{.DesiredState}}|{{.CurrentState}}",
    )  # fmt: skip
    return [tuple(line.split("|")) for line in rows.splitlines()]  # type: ignore[misc]


def test_a_killed_node_is_down_and_its_gateway_ready_again_when_it_is_back_without_up(
    cluster, placed_fleet, other_fleet
):
    """node 2's dockerd killed: status says the node is down and t2 not ready (exit 5),
    and Swarm starts t2 nowhere else (it is pinned to the node with its dirs); the
    other fleet, on node 1, stays ready. node 2 back: its task runs there again and
    /readyz answers, with no `orch up`."""
    fleet, port, _up = placed_fleet
    node2, service = cluster.nodes[1], f"{fleet.project}_t2"
    swarm_cluster.stop_node(cluster, node2)
    killed = time.monotonic()
    try:
        wait_for(lambda: swarm_cluster.node_state(cluster, node2) == "down", 60, "node 2 down")
        print(f"node 2 marked down {time.monotonic() - killed:.1f} s after its engine was killed")
        # Swarm replaces the task of a down node: the replacement waits, pinned.
        wait_for(
            lambda: any(
                d == "Running" and s.startswith("Pending")
                for _, d, s in tasks_by_node(cluster, service)
            ),
            60,
            "a replacement task pending",
        )
        proc = fleet.run("status", "--engine", "swarm", "--json", ok=False)
        assert proc.returncode == 5, proc.stderr
        data = json.loads(proc.stdout)["data"]
        (row,) = data["profiles"]
        assert data["failing"] == ["t2"]
        assert (row["node"], row["node_state"], row["ready"]) == ("orch-node2", "down", False)
        assert row["ready_reason"].startswith("node orch-node2 is down: its task cannot run")
        assert row["state"] == "pending" and row["desired"] == "running"
        text = fleet.run("status", "--engine", "swarm", ok=False).stdout
        assert "on orch-node2 (down)" in text and "not ready" in text
        assert [n for n, _d, _s in tasks_by_node(cluster, service) if n == "orch-node1"] == []
        assert other_fleet.run("status", "--engine", "swarm", ok=False).returncode == 0
    finally:
        back = swarm_cluster.start_node(cluster, node2)
    print(f"node 2's engine answering and the node ready again in {back:.1f} s")
    restarted = time.monotonic()
    wait_for(
        lambda: fleet.run("status", "--engine", "swarm", ok=False).returncode == 0,
        180,
        "t2 ready again without orch up",
        interval=1.0,
    )
    print(f"t2 ready again {time.monotonic() - restarted:.1f} s after node 2 was back (no up)")
    running = [t for t in tasks_by_node(cluster, service) if t[1] == "Running"]
    assert [n for n, _d, _s in running] == ["orch-node2"]
    probe = cluster.manager.in_netns(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://10.213.0.2:{port}/readyz"
    )
    assert subprocess.run(probe, capture_output=True, text=True).stdout == "200"
    again = fleet.json("up", "--engine", "swarm")["data"]
    assert [(o["action"], o["ready"]) for o in again["outcomes"]] == [("noop", True)]


def test_a_backup_of_a_profile_on_node_2_is_made_there_and_restored_there(cluster, placed_fleet):
    """`orch backup t2` on the manager: archived on node 2 by a job pinned there, the
    output says where; `orch restore t2 PATH` brings the archived state back there.
    (The test reads node 2's files directly: in this harness both nodes share the
    machine's filesystem; orch itself only reaches node 2 through the engine.)"""
    fleet, port, _up = placed_fleet
    marker = fleet.workspace_dir("t2") / "marker.txt"
    marker.write_text("before")
    os.chown(marker, 1000, 1000)
    backup = fleet.json("backup", "t2", timeout=600)["data"]["backups"][0]
    path = Path(backup["archive"])
    assert backup["node"] == "orch-node2" and backup["where"] == f"orch-node2:{path}"
    assert path.parent == fleet.home / "backups" / "t2" and path.name.endswith(".node.tar.gz")
    assert (path.stat().st_mode & 0o777, path.stat().st_size) == (0o600, backup["bytes"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == backup["sha256"]
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
    assert {"config/openclaw.json", "workspace/marker.txt"} <= names
    print(f"backup on node 2: {backup['seconds']:.1f} s, gateway down {backup['downtime_s']:.1f} s")
    assert fleet.run("status", "--engine", "swarm", ok=False).returncode == 0

    marker.write_text("after")
    bad = path.with_name("t2-bad.node.tar.gz")
    bad.write_bytes(path.read_bytes()[:-10])
    bad.with_name(bad.name + ".sha256").write_text(f"{backup['sha256']}  {bad.name}\n")
    refused = fleet.json("restore", "t2", str(bad), "--yes", ok=False, timeout=600)
    assert "the archive does not match its sha256" in refused["error"]["message"]
    assert marker.read_text() == "after"  # nothing changed, the gateway kept running

    restored = fleet.json("restore", "t2", str(path), "--yes", timeout=600)["data"]
    assert restored["ok"] and restored["node"] == "orch-node2" and restored["kept"] == []
    assert marker.read_text() == "before"
    print(f"restore on node 2: {restored['seconds']:.1f} s, down {restored['downtime_s']:.1f} s")
    profile = fleet.home / "profiles" / "t2"
    assert sorted(p.name for p in profile.iterdir()) == ["config", "state", "workspace"]
    assert (fleet.workspace_dir("t2").stat().st_uid, marker.stat().st_uid) == (1000, 1000)
    (row,) = fleet.json("status", "--engine", "swarm")["data"]["profiles"]
    assert row["ready"] and row["node"] == "orch-node2"
    jobs = cluster.docker(cluster.manager, "service", "ls", "-q", "--filter", "label=orch.job")
    assert jobs == ""


def test_restart_on_the_swarm_stops_its_task_and_starts_a_new_one_ready_on_node_2(
    cluster, placed_fleet
):
    """`orch restart --engine swarm t2` goes through the swarm's Backend stop/start (as
    a node backup does): the service scaled to 0 and back, a new task on node 2."""
    fleet, _port, _up = placed_fleet
    service = f"{fleet.project}_t2"

    def running() -> list[str]:
        ps = ("service", "ps", "-q", "--filter", "desired-state=running", service)
        return cluster.docker(cluster.manager, *ps).split()

    before = running()
    assert len(before) == 1
    assert fleet.json("restart", "t2", "--engine", "swarm", timeout=600)["data"]["ready"]
    after = running()
    assert len(after) == 1 and after != before
    assert [t[0] for t in tasks_by_node(cluster, service) if t[1] == "Running"] == ["orch-node2"]
    (row,) = fleet.json("status", "--engine", "swarm")["data"]["profiles"]
    assert row["ready"] and row["node"] == "orch-node2"


def test_up_with_a_registry_runs_it_on_node_2_by_the_digest_it_pushed(cluster, placed_fleet):
    """`orch up --engine swarm --registry HOST:PORT` on the manager: the image is pushed,
    pinned by digest in the service, pulled by node 2, and the gateway gets ready there."""
    fleet, port, _up = placed_fleet
    orch = str(Path(sys.executable).with_name("orch"))
    argv = cluster.manager.in_netns(
        orch, "up", "--engine", "swarm", "--registry", cluster.registry, "--timeout", "300"
    )
    env = {**os.environ, "ORCH_HOME": str(fleet.home), "DOCKER_HOST": cluster.manager.docker_host}
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = {"seconds": time.monotonic() - start}
    print(f"up with --registry (push, pull on node 2, update): {result['seconds']:.1f} s")
    image = cluster.docker(
        cluster.manager, "service", "inspect", f"{fleet.project}_t2",
        "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ).strip()  # fmt: skip
    assert image.startswith(f"{cluster.registry}/orch/openclaw-gateway@sha256:")
    running = cluster.docker(
        cluster.manager, "service", "ps", f"{fleet.project}_t2", "--no-trunc",
        "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}} {{.Image}}",
    )  # fmt: skip
    # The new task (Swarm says "Starting" until the image's healthcheck first passes).
    node, state, *_rest, task_image = running.split()
    assert (node, task_image) == ("orch-node2", image)
    assert state in ("Starting", "Running")
    probe = cluster.manager.in_netns(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://10.213.0.2:{port}/readyz"
    )
    assert subprocess.run(probe, capture_output=True, text=True).stdout == "200"


# --- off the host: a placed profile's archives in S3, and evacuation ------------------

BUCKET = "orch-swarm-it"
S3_URL = f"s3://{BUCKET}/nodes"


@pytest.fixture(scope="module")
def bucket(cluster, tmp_path_factory):
    """SeaweedFS in the manager's namespace, on its test-network address: orch (on the
    manager) and the node jobs (on either node) reach it; the host's network never
    sees it. The environment orch gets: endpoint and credentials, no ~/.aws."""
    from s3_server import SeaweedS3

    base = tmp_path_factory.mktemp("s3")
    with SeaweedS3(base / "s3", cluster.manager.netns, cluster.manager.address) as s3:
        s3.in_netns_python(f"c.create_bucket(Bucket={BUCKET!r})")
        env = {
            **s3.env(),
            "AWS_CONFIG_FILE": str(base / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        yield s3, env


def job_secrets(cluster) -> str:
    return cluster.docker(cluster.manager, "secret", "ls", "-q", "--filter", "label=orch.job")


def test_a_profile_on_node_2_is_backed_up_to_s3_by_its_node_listed_and_verified(
    cluster, placed_fleet, bucket
):
    """`orch backup t2 --to s3://...` on the manager: node 2 archives and uploads it
    (a presigned URL as a one-job secret), the manager reads it back and writes the
    signed marker; `ls --from` lists it, `verify` checks marker, sha256 and members.
    A tampered archive, and a marker rewritten to match it, are refused; the real one
    is restored on node 2 by `orch restore t2 s3://...` (node 2 downloads it)."""
    fleet, _port, _up = placed_fleet
    s3, env = bucket
    marker = fleet.workspace_dir("t2") / "offsite.txt"
    marker.write_text("in the archive")
    os.chown(marker, 1000, 1000)
    started = time.monotonic()
    row = fleet.json("backup", "t2", "--to", S3_URL, env=env, timeout=600)["data"]["backups"][0]
    print(
        f"backup of t2 on node 2 to S3: {time.monotonic() - started:.1f} s wall,"
        f" {row['seconds']:.1f} s in orch, upload and read-back {row['upload_s']:.1f} s,"
        f" gateway down {row['downtime_s']:.1f} s, {row['bytes'] / 1e6:.1f} MB"
    )
    name = row["archive"].rsplit("/", 1)[1]
    assert row["archive"] == f"{S3_URL}/{name}" and name.endswith(".node.tar.gz")
    assert row["node"] == "orch-node2" and len(row["sha256"]) == 64
    assert (job_secrets(cluster), fleet_jobs(cluster)) == ("", "")
    listed = fleet.json("backup", "ls", "--from", S3_URL, env=env)["data"]
    (entry,) = listed["archives"]
    assert (entry["profile"], entry["node"], entry["kind"], entry["sha256"]) == (
        "t2", "orch-node2", "node", row["sha256"],
    )  # fmt: skip
    assert listed["unreadable"] == [] and "mac" not in entry
    verified = fleet.json("backup", "verify", row["archive"], env=env)["data"]
    assert verified["ok"] and verified["authenticated"] == "this home's key"
    assert verified["file_count"] > 3 and verified["node"] == "orch-node2"
    status = fleet.json("status", "--engine", "swarm")["data"]
    assert status["profiles"][0]["ready"]
    assert status["backups"]["t2"]["archive"] == row["archive"]

    key = f"nodes/{name}"
    tamper = (
        "import hashlib, json\n"
        f"key = {key!r}\n"
        f"good = c.get_object(Bucket={BUCKET!r}, Key=key)['Body'].read()\n"
        "bad = bytearray(good); bad[len(bad) // 2] ^= 1; bad = bytes(bad)\n"
        f"c.put_object(Bucket={BUCKET!r}, Key=key, Body=bad)\n"
        "m = json.loads(c.get_object("
        f"Bucket={BUCKET!r}, Key=key + '.complete.json')['Body'].read())\n"
        "other = 'nodes/t2-20000101T000000.000000Z.node.tar.gz'\n"
        "m.update(archive=other.split('/')[1], sha256=hashlib.sha256(bad).hexdigest())\n"
        f"c.put_object(Bucket={BUCKET!r}, Key=other, Body=bad)\n"
        f"c.put_object(Bucket={BUCKET!r}, Key=other + '.complete.json',"
        " Body=json.dumps(m).encode())\n"
        "open(1, 'wb').write(good)\n"
    )
    good = subprocess.run(
        [*cluster.manager.in_netns(sys.executable, "-c",
         "import boto3,sys\nc=boto3.session.Session().client('s3')\n" + tamper)],
        env={**os.environ, **env}, capture_output=True, timeout=120,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    try:
        flipped = fleet.json("backup", "verify", row["archive"], env=env, ok=False)["error"]
        assert "does not match the sha256 of its completion marker" in flipped["message"]
        forged = f"{S3_URL}/t2-20000101T000000.000000Z.node.tar.gz"
        refused = fleet.json("restore", "t2", forged, "--yes", env=env, ok=False)["error"]
        assert refused["type"] == "ArchiveUnauthenticated", refused
        assert (
            "completion marker was written by another orch home, or changed" in (refused["message"])
        )
        assert marker.read_text() == "in the archive"  # nothing was changed
    finally:
        restore_object = (
            "import sys\n"
            f"c.put_object(Bucket={BUCKET!r}, Key={key!r}, Body=sys.stdin.buffer.read())\n"
            "other = 'nodes/t2-20000101T000000.000000Z.node.tar.gz'\n"
            f"c.delete_object(Bucket={BUCKET!r}, Key=other + '.complete.json')\n"
            f"c.delete_object(Bucket={BUCKET!r}, Key=other)\n"
        )
        put_back = subprocess.run(
            [*cluster.manager.in_netns(sys.executable, "-c",
             "import boto3\nc=boto3.session.Session().client('s3')\n" + restore_object)],
            env={**os.environ, **env}, input=good.stdout, capture_output=True, timeout=120,
        )  # fmt: skip
        assert put_back.returncode == 0, put_back.stderr
    assert fleet.json("backup", "verify", row["archive"], env=env)["data"]["ok"]
    marker.write_text("changed since")
    restored = fleet.json("restore", "t2", row["archive"], "--yes", env=env, timeout=600)["data"]
    print(
        f"restore of t2 on node 2 from S3: {restored['seconds']:.1f} s,"
        f" down {restored['downtime_s']:.1f} s"
    )
    assert (restored["ok"], restored["node"], restored["archive"]) == (
        True, "orch-node2", row["archive"],
    )  # fmt: skip
    assert "what changed since then is not in it" in restored["note"]
    assert marker.read_text() == "in the archive" and marker.stat().st_uid == 1000
    assert (job_secrets(cluster), fleet_jobs(cluster)) == ("", "")


def fleet_jobs(cluster) -> str:
    return cluster.docker(cluster.manager, "service", "ls", "-q", "--filter", "label=orch.job")


def test_node_2_killed_its_profile_is_brought_back_on_node_1_from_s3(cluster, placed_fleet, bucket):
    """Refused while node 2 answers; node 2's engine stopped (its gateway with it):
    `orch restore t2 --latest --from s3://... --node orch-node1` restores the archive
    on node 1, moves t2's placement there and gets it ready; what was written after
    the archive is lost, as the output says. node 2 comes back in any case."""
    fleet, port, _up = placed_fleet
    _s3, env = bucket
    marker = fleet.workspace_dir("t2") / "offsite.txt"
    marker.write_text("written after the archive")
    evacuate = ("restore", "t2", "--latest", "--from", S3_URL, "--yes")
    refused = fleet.json(*evacuate, "--node", "orch-node1", env=env, ok=False)["error"]
    assert refused["type"] == "UsageError"
    assert (
        "node orch-node2 of 't2' still answers (state ready): nothing was changed"
        in (refused["message"])
    )
    same = fleet.json(*evacuate, "--node", "orch-node2", env=env, ok=False)["error"]
    assert "placed on orch-node2 already" in same["message"]
    fleet_file = fleet.home / "fleet.yaml"
    assert "node: orch-node2" in fleet_file.read_text()

    node2 = cluster.nodes[1]
    swarm_cluster.stop_node(cluster, node2, signal.SIGTERM)  # its containers stop too
    killed = time.monotonic()
    try:
        wait_for(lambda: swarm_cluster.node_state(cluster, node2) == "down", 60, "node 2 down")
        down_after = time.monotonic() - killed
        unknown = fleet.json(*evacuate, "--node", "orch-node9", env=env, ok=False)["error"]
        assert "this swarm has no node 'orch-node9'" in unknown["message"]
        started = time.monotonic()
        load = os.getloadavg()[0]
        moved = fleet.json(*evacuate, "--node", "orch-node1", env=env, timeout=600)["data"]
        wall = time.monotonic() - started
        print(
            f"evacuation of t2 to node 1: {wall:.1f} s from command to ready (orch:"
            f" {moved['seconds']:.1f} s, restore {moved['restore_s']:.1f} s, deploy and ready"
            f" {moved['deploy_s']:.1f} s); gateway down {time.monotonic() - killed:.1f} s"
            f" (node marked down after {down_after:.1f} s); archive"
            f" {moved['archive_age_s']:.0f} s old; load {load:.1f}"
        )
        assert (moved["from_node"], moved["to_node"], moved["ready"]) == (
            "orch-node2", "orch-node1", True,
        )  # fmt: skip
        assert moved["archive"].startswith(S3_URL) and moved["archive_age_s"] > 0
        assert moved["authenticated"] == "this home's key"
        assert "node: orch-node1" in fleet_file.read_text()
        assert marker.read_text() == "in the archive"  # what came after is lost
        probe = cluster.manager.in_netns(
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
            f"http://10.213.0.1:{port}/readyz",
        )  # fmt: skip
        assert subprocess.run(probe, capture_output=True, text=True).stdout == "200"
        (row,) = fleet.json("status", "--engine", "swarm")["data"]["profiles"]
        assert row["ready"] and row["node"] == "orch-node1"
        assert (job_secrets(cluster), fleet_jobs(cluster)) == ("", "")
    finally:
        if swarm_cluster.node_state(cluster, node2) != "ready":
            swarm_cluster.start_node(cluster, node2)
    service = f"{fleet.project}_t2"
    wait_for(
        lambda: (
            [n for n, d, _s in tasks_by_node(cluster, service) if d == "Running"] == ["orch-node1"]
        ),
        60,
        "t2 running on node 1 only once node 2 is back",
    )
    again = fleet.json("up", "--engine", "swarm")["data"]
    assert [(o["action"], o["ready"]) for o in again["outcomes"]] == [("noop", True)]


def leave_a_stray_job(cluster, fleet, profile: str, image: str) -> None:
    """A one-shot job of the fleet on node 2 that never ends, as a killed orch leaves."""
    from orchestrator.docker.node_jobs import Job, start_job

    home = cluster.docker(
        cluster.manager, "service", "inspect", f"{fleet.project}_{profile}",
        "--format", '{{index .Spec.Labels "orch.home"}}',
    ).strip()  # fmt: skip
    labels = {"orch.project": fleet.project, "orch.home": home}
    os.environ["DOCKER_HOST"] = cluster.manager.docker_host
    try:
        start_job(Job(node="orch-node2", image=image, command=["sleep", "600"], labels=labels))
    finally:
        os.environ.pop("DOCKER_HOST")


def test_down_leaves_nothing_of_its_fleet_on_either_node_and_another_fleet_runs_on(
    cluster, placed_fleet, other_fleet, gateway_image
):
    fleet, _port, _up = placed_fleet
    leave_a_stray_job(cluster, fleet, "t2", gateway_image)
    leave_a_stray_job(cluster, other_fleet, "u1", gateway_image)
    theirs = {n.hostname: stack_objects(cluster, n, other_fleet.project) for n in cluster.nodes}
    assert theirs["orch-node1"].keys() >= {"services", "secrets", "networks", "jobs"}
    fleet.run("down", "--engine", "swarm")
    for node in cluster.nodes:
        wait_for(
            lambda n=node: stack_objects(cluster, n, fleet.project) == {},
            60,
            f"the fleet's objects gone from {node.hostname}",
        )
    # The other fleet: its service, secret, network and stray job all still there, ready.
    assert stack_objects(cluster, cluster.manager, other_fleet.project) == theirs["orch-node1"]
    (row,) = other_fleet.json("status", "--engine", "swarm")["data"]["profiles"]
    assert row["ready"] and row["node"] == "orch-node1"
    other_fleet.run("down", "--engine", "swarm")
    for node in cluster.nodes:
        wait_for(
            lambda n=node: stack_objects(cluster, n, other_fleet.project) == {},
            60,
            f"the other fleet's objects gone from {node.hostname}",
        )
