"""Off-host backups of profiles placed on swarm nodes, and evacuation: the pure parts
(node archive markers and their HMAC, the refusal rules, the node jobs' scripts and
specs, what a node archive may contain); the real thing is in
tests/integration/test_swarm_nodes.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from orchestrator.backends.swarm_placement import Placed, moved
from orchestrator.core.model import Profile
from orchestrator.core.placement import SwarmNode, check_evacuation
from orchestrator.core.plan import Action, Kind
from orchestrator.core.spec import render_fleet
from orchestrator.docker.node_jobs import Job, job_spec
from orchestrator.errors import ArchiveInvalid, ArchiveUnauthenticated, UsageError
from orchestrator.fleet import offsite
from orchestrator.fleet.archive_keys import BackupKey, Keyring
from orchestrator.workflows import node_backup
from orchestrator.workflows.node_offsite import check_member, created_of

from ..helpers import fleet_of

KEY = BackupKey(b"k" * 32)
OTHER = BackupKey(b"o" * 32)
NAME = "t2-20261201T101500.000000Z.node.tar.gz"
T = offsite.Target("my-backups", "orch")


def _node(hostname: str, state: str = "ready", availability: str = "active") -> SwarmNode:
    return SwarmNode(
        id=f"id-{hostname}",
        hostname=hostname,
        state=state,
        availability=availability,
        address="10.0.0.1",
        manager=hostname == "n1",
        current=hostname == "n1",
    )


def _marker(key: BackupKey = KEY, **changes) -> dict:
    raw = offsite.make_node_marker(
        NAME,
        "a" * 64,
        1234,
        profile="t2",
        created="2026-12-01T10:15:00+00:00",
        node="n2",
        image="orch/openclaw-gateway:2026.9.6",
        openclaw_version="2026.9.6",
        key=key,
    )
    doc = offsite.parse_marker(raw, NAME)
    doc.update(changes)
    return doc


# ---------------------------------------------------------------- markers


def test_a_node_archive_marker_is_authenticated_by_the_key_that_wrote_it() -> None:
    marker = _marker()
    assert offsite.is_node_marker(marker) and marker["key_id"] == KEY.key_id
    ring = Keyring({KEY.key_id: KEY}, KEY.key_id)
    assert offsite.authenticate_node_marker(marker, ring, "s3://x/a") == "this home's key"
    imported = Keyring({KEY.key_id: KEY}, OTHER.key_id)
    assert offsite.authenticate_node_marker(marker, imported, "s3://x/a").startswith("trusted")


@pytest.mark.parametrize(
    "change",
    [
        {"sha256": "b" * 64},  # the archive replaced and its sum rewritten
        {"archive_bytes": 99},
        {"profile": "main"},  # another profile's archive passed off as this one's
        {"archive": "t2-20261202T101500.000000Z.node.tar.gz"},
        {"created": "2026-12-31T00:00:00+00:00"},  # made to look newest
        {"node": "n1"},
        {"mac": "0" * 64},
    ],
)
def test_any_change_to_a_node_marker_is_refused(change: dict) -> None:
    ring = Keyring({KEY.key_id: KEY}, KEY.key_id)
    with pytest.raises(ArchiveUnauthenticated) as caught:
        offsite.authenticate_node_marker(_marker(**change), ring, "s3://x/a")
    assert "changed after it was written" in caught.value.message
    assert "nothing was changed" in caught.value.message


def test_a_marker_of_another_home_or_without_a_mac_is_refused_unless_trusted() -> None:
    ring = Keyring({KEY.key_id: KEY}, KEY.key_id)
    for marker in (_marker(OTHER), {k: v for k, v in _marker().items() if k != "mac"}):
        with pytest.raises(ArchiveUnauthenticated):
            offsite.authenticate_node_marker(marker, ring, "s3://x/a")
    trusting = Keyring({}, None, trust=True)
    assert offsite.authenticate_node_marker(_marker(OTHER), trusting, "s3://x/a") == (
        "not checked (--trust)"
    )


def test_a_node_marker_mac_is_not_a_manifest_mac_of_the_same_bytes() -> None:
    """Separate domains: a MAC the key made over a manifest never passes for a marker's."""
    marker = _marker()
    signed = json.dumps(
        {k: v for k, v in marker.items() if k != "mac"}, sort_keys=True, separators=(",", ":")
    ).encode()
    assert KEY.mac(signed) != marker["mac"]


def test_a_node_archive_lists_as_complete_with_its_node_and_no_mac() -> None:
    raw = json.dumps(_marker()).encode()
    (entry,) = offsite.classify(T, {NAME: 1234}, {NAME: raw})
    assert entry.complete and entry.on_node and entry.profile == "t2"
    shown = entry.to_json()
    assert shown["node"] == "n2" and shown["kind"] == "node" and "mac" not in shown
    assert offsite.newest([entry], "t2") is entry


def test_the_time_of_an_archive_comes_from_its_name() -> None:
    assert created_of(NAME) == "2026-12-01T10:15:00+00:00"


# ---------------------------------------------------------------- evacuation rules

NODES = [_node("n1"), _node("n2", "down"), _node("n3", "ready", "drain")]


def test_evacuation_is_allowed_from_a_down_or_removed_node_to_a_ready_one() -> None:
    check_evacuation("t2", "n2", NODES[1], "n1", NODES)
    check_evacuation("t2", "n9", None, "n1", NODES)  # `docker node rm`'d: gone


@pytest.mark.parametrize(
    ("current", "old", "target", "said"),
    [
        (None, None, "n1", "runs on the manager"),
        ("n2", NODES[1], "n2", "placed on n2 already"),
        ("n2", _node("n2"), "n1", "node n2 of 't2' still answers (state ready)"),
        ("n2", NODES[1], "n7", "this swarm has no node 'n7' (nodes: n1, n2, n3)"),
        ("n2", NODES[1], "n3", "node n3 is ready, drain: it cannot run 't2' now"),
    ],
)
def test_evacuation_refusals_say_why_and_change_nothing(current, old, target, said) -> None:
    with pytest.raises(UsageError) as caught:
        check_evacuation("t2", current, old, target, NODES)
    assert said in caught.value.message
    assert caught.value.hint


def test_a_service_pinned_to_another_node_than_its_profile_is_recreated(tmp_path: Path) -> None:
    (spec,) = render_fleet(fleet_of(Profile(name="t2", port=19000, node="n1")), tmp_path)
    service = {
        "Spec": {
            "Labels": {"com.docker.stack.namespace": "p", "orch.profile": "t2"},
            "TaskTemplate": {"Placement": {"Constraints": ["node.hostname==n2"]}},
        }
    }
    noop = [Action(Kind.NOOP, "t2", "service up to date", spec)]
    placed = [Placed(spec, _node("n1"))]
    (action,) = moved(noop, placed, [service])
    assert action.kind == Kind.RECREATE and "moved to node n1" in action.reason
    service["Spec"]["TaskTemplate"]["Placement"]["Constraints"] = ["node.hostname==n1"]
    assert moved(noop, placed, [service]) == noop


# ---------------------------------------------------------------- node jobs


def test_a_job_gets_its_url_as_a_secret_file_never_in_its_spec() -> None:
    url = b"http://s3.example:8333/b/k?X-Amz-Signature=abc"
    job = Job(node="n2", image="img", command=["sh", "-c", "true"], secrets={"orch-s3-url": url})
    spec = job_spec(job, "orch-job-1", {"orch-s3-url": "secret-id-1"})
    assert url.decode() not in json.dumps(spec) and "X-Amz" not in json.dumps(spec)
    (ref,) = spec["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert ref["SecretID"] == "secret-id-1"
    assert ref["File"] == {"Name": "orch-s3-url", "UID": "0", "GID": "0", "Mode": 0o400}
    assert url.decode() not in repr(job)  # nor in a log line that prints the job


def _where(tmp_path: Path) -> node_backup.OnNode:
    (spec,) = render_fleet(fleet_of(Profile(name="t2", port=19000, node="n2")), tmp_path)
    return node_backup.OnNode(spec, _node("n2"), None)


def test_the_upload_script_streams_the_archive_and_always_removes_its_temp_dir() -> None:
    script = node_backup.upload_script("/h/backups/t2/.tmp/t2-x.node.tar.gz", Path("/h/b/.tmp"))
    assert script.startswith("set -eu; trap 'rm -rf /host/h/b/.tmp' EXIT; node -e ")
    assert script.endswith(" put /host/h/backups/t2/.tmp/t2-x.node.tar.gz")
    assert "/run/secrets/orch-s3-url" in script and "http" not in script.split("node -e")[0]


def test_a_fetching_restore_downloads_checks_then_unpacks_and_removes_the_archive(
    tmp_path: Path,
) -> None:
    where = _where(tmp_path)
    script = node_backup.stage_script(where, "/h/t2/.dl.node.tar.gz", "c" * 64, "S", fetch=True)
    steps = script.split("; ")
    get = next(i for i, s in enumerate(steps) if s.startswith("node -e"))
    check = next(i for i, s in enumerate(steps) if "sha256sum -c" in s)
    unpack = next(i for i, s in enumerate(steps) if s.startswith("tar -xzf"))
    assert steps.index("trap 'rm -f /host/h/t2/.dl.node.tar.gz' EXIT") < get < check < unpack
    # A node the profile moves to has no dirs yet: the gateway's owner and 0700.
    assert f"else chown {where.spec.user}" in script and "chmod 0700" in script


def test_the_swap_moves_a_current_dir_aside_only_when_there_is_one(tmp_path: Path) -> None:
    script = node_backup.swap_script(_where(tmp_path), "S")
    assert script.count("if [ -e ") == 3 and script.count("echo replaced") == 3


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("config/openclaw.json"),
        _member("state"),
        _member("workspace/notes/a.md"),
        _member("state/l", tarfile.SYMTYPE, "x"),
    ],
)
def test_a_node_archive_holds_the_profile_dirs(member: tarfile.TarInfo) -> None:
    check_member("s3://b/a", member)


@pytest.mark.parametrize(
    "member",
    [
        _member("/etc/passwd"),
        _member("config/../../etc/x"),
        _member("token/gateway_token"),
        _member("state/dev", tarfile.CHRTYPE),
        _member("state/l", tarfile.SYMTYPE, "/etc/shadow"),
        _member("state/l", tarfile.SYMTYPE, "../../x"),
    ],
)
def test_a_node_archive_member_outside_the_dirs_is_refused(member: tarfile.TarInfo) -> None:
    with pytest.raises(ArchiveInvalid) as caught:
        check_member("s3://b/a", member)
    assert "points outside the profile's dirs" in caught.value.message


def test_check_member_reads_members_as_tar_writes_them() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("config/openclaw.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tar:
        for member in tar:
            check_member("s3://b/a", member)


def test_a_node_archive_is_refused_for_a_profile_on_this_host_before_any_download(
    tmp_path: Path,
) -> None:
    from orchestrator.workflows.offsite import restore_from

    raw = json.dumps(_marker()).encode()
    (entry,) = offsite.classify(T, {NAME: 1234}, {NAME: raw})
    with pytest.raises(ArchiveInvalid) as caught:
        restore_from(tmp_path, "t2", entry)
    assert "was made on swarm node n2" in caught.value.message
    assert "nothing was changed" in caught.value.message
    assert list(tmp_path.iterdir()) == []
