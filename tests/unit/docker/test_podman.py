"""orchestrator/docker/podman.py, the parts that need no podman: orch's own
containers.conf and the changes `podman kube play` 4.3.1 needs, made from the spec.
The real runs are in tests/integration/test_kubernetes_podman.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.core.spec import render_fleet
from orchestrator.docker.podman import CONF_ENV, containers_conf, for_kube_play, podman_env
from orchestrator.export.kubernetes import export_kubernetes
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import load_fleet


def test_orchs_containers_conf_sets_the_ulimits_in_orchs_own_dir(tmp_path: Path) -> None:
    path = containers_conf(tmp_path / "podman")
    assert path.parent == tmp_path / "podman"
    assert 'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' in path.read_text()
    assert podman_env(path)[CONF_ENV] == str(path)
    mtime = path.stat().st_mtime_ns
    containers_conf(tmp_path / "podman")  # the same text: not written again
    assert path.stat().st_mtime_ns == mtime


def test_kube_play_changes_only_what_podman_needs_from_the_spec(home: Path) -> None:
    setup(home, SetupRequest(name="main", port=18789))
    setup(home, SetupRequest(name="rescue", port=18900, rescues="main"))
    specs = render_fleet(load_fleet(home), home)
    objects = [o for o in yaml.safe_load_all(export_kubernetes(home).stream) if o]
    kinds = [o["kind"] for o in objects]
    played = for_kube_play(objects, specs)
    assert [o["kind"] for o in played] == kinds  # the stream has no Secret to drop
    deployments = {o["metadata"]["name"]: o for o in played if o["kind"] == "Deployment"}
    for spec in specs:
        pod = deployments[spec.name]["spec"]["template"]["spec"]
        token = next(m for m in spec.mounts if m.role == "token")
        (volume,) = [v for v in pod["volumes"] if v["name"] == "token"]
        assert volume == {"name": "token", "hostPath": {"path": token.source, "type": "File"}}
        container = pod["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "token"]
        assert mount["mountPath"] == token.target
        published = sorted((p["hostIP"], p["hostPort"]) for p in container["ports"])
        assert published == sorted((b.host_ip, h) for b in spec.ports for _, h in b.expand())
        assert pod["restartPolicy"] == "OnFailure"
        tmp = [v["name"] for v in pod["volumes"] if "emptyDir" in v]
        assert tmp == [f"{spec.name}-tmp-0"]
        assert f"{spec.name}-tmp-0" in [m["name"] for m in container["volumeMounts"]]


def test_orch_runs_podman_itself_never_as_a_client_of_a_remote_service(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CONTAINER_HOST", "unix:///run/podman/podman.sock")
    monkeypatch.setenv("CONTAINER_CONNECTION", "somewhere")
    env = podman_env(tmp_path / "containers.conf")
    assert "CONTAINER_HOST" not in env and "CONTAINER_CONNECTION" not in env


def test_the_socket_is_container_hosts_else_podmans_default_for_root_or_user(
    tmp_path: Path, monkeypatch
) -> None:
    from orchestrator.docker import podman
    from orchestrator.errors import EngineUnavailable

    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/p.sock")
    assert podman.wanted_socket() == tmp_path / "p.sock"
    monkeypatch.setenv("CONTAINER_HOST", "tcp://10.0.0.1:8888")
    with pytest.raises(EngineUnavailable, match="not a unix socket"):
        podman.wanted_socket()
    monkeypatch.delenv("CONTAINER_HOST")
    monkeypatch.setattr(podman.os, "geteuid", lambda: 0)
    assert podman.wanted_socket() == Path("/run/podman/podman.sock")
    monkeypatch.setattr(podman.os, "geteuid", lambda: 1001)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert podman.wanted_socket() == tmp_path / "podman" / "podman.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")  # ignored, as the XDG spec says
    with pytest.raises(EngineUnavailable, match="XDG_RUNTIME_DIR"):
        podman.wanted_socket()


def test_only_rootless_podman_maps_the_users_uid_with_keep_id() -> None:
    from orchestrator.docker.podman_api import PodmanFacts

    rootless = PodmanFacts("4.3.1", True, "v1", ())
    rootful = PodmanFacts("4.3.1", False, "v1", ("cpu", "memory", "pids"))
    assert rootless.userns == "keep-id" and rootful.userns is None
    assert rootless.label == "Podman 4.3.1 (rootless, cgroup v1)"
