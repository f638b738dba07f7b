"""The pure parts of the swarm's docker/ side: node records, registry names, job specs."""

from __future__ import annotations

import pytest

from orchestrator.docker.node_jobs import BindMount, Job, job_spec
from orchestrator.docker.registry import PinnedImage, registry_name
from orchestrator.docker.swarm_nodes import node_from_api


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("orch/openclaw-gateway:2026.9.6", ("r:5000/orch/openclaw-gateway", "2026.9.6")),
        ("busybox", ("r:5000/busybox", "latest")),
        ("ghcr.io/acme/gw:1", ("r:5000/acme/gw", "1")),
        ("localhost:5001/gw:2", ("r:5000/gw", "2")),
        ("gw@sha256:" + "ab" * 32, ("r:5000/gw", "ab" * 8)),
    ],
)
def test_an_image_keeps_its_path_and_tag_in_the_named_registry(image, expected) -> None:
    assert registry_name(image, "r:5000") == expected


def test_a_pinned_image_runs_by_digest_with_no_tag() -> None:
    pinned = PinnedImage("gw:1", "r:5000/gw", "1", "sha256:" + "c" * 64)
    assert pinned.reference == "r:5000/gw@sha256:" + "c" * 64


def test_a_job_is_one_task_pinned_to_its_node_never_restarted() -> None:
    job = Job(
        "node-2",
        "img",
        ["mkdir", "-p", "/h/x"],
        {"orch.project": "p"},
        [BindMount("/h", "/h"), BindMount("/d", "/src", read_only=True)],
        user="0:0",
    )
    spec = job_spec(job, "orch-job-1")
    template = spec["TaskTemplate"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert template["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}
    assert template["Placement"]["Constraints"] == ["node.hostname==node-2"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["ContainerSpec"]["Command"] == ["mkdir", "-p", "/h/x"]
    assert template["ContainerSpec"]["User"] == "0:0"
    assert template["ContainerSpec"]["Mounts"] == [
        {"Type": "bind", "Source": "/h", "Target": "/h", "ReadOnly": False},
        {"Type": "bind", "Source": "/d", "Target": "/src", "ReadOnly": True},
    ]
    assert spec["Labels"] == {"orch.project": "p", "orch.job": "true"}


def test_a_node_record_says_which_node_orch_talks_to_and_where_a_manager_is() -> None:
    raw = {
        "ID": "abc",
        "Spec": {"Availability": "active", "Role": "manager"},
        "Description": {"Hostname": "n1"},
        "Status": {"State": "ready", "Addr": "0.0.0.0"},
        "ManagerStatus": {"Addr": "10.0.0.1:2377"},
    }
    node = node_from_api(raw, "abc")
    assert (node.hostname, node.address, node.manager, node.current) == (
        "n1",
        "10.0.0.1",
        True,
        True,
    )
    assert node.usable
    down = node_from_api({**raw, "Status": {"State": "down", "Addr": "10.0.0.2"}}, "other")
    assert (down.address, down.current, down.usable) == ("10.0.0.2", False, False)
