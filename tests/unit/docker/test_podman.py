"""orchestrator/docker/podman.py, the parts that need no podman: orch's own
containers.conf and the changes `podman kube play` 4.3.1 needs, made from the spec.
The real runs are in tests/integration/test_kubernetes_podman.py."""

from __future__ import annotations

from pathlib import Path

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
