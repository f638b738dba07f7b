"""`orch export kubernetes`: the fleet as a kustomization a cluster applies as it is
(`kubectl apply -k DIR`), rendered from the ContainerSpecs `orch up` applies: every
port, path, uid, limit and label comes from the spec, none is derived here.

Per profile (one file `<name>.yaml`):
- ConfigMap `<name>-seed`: the openclaw.json orch writes for the profile, only the
  keys orch manages (the file on disk may hold the user's channel credentials, so it
  is never exported). An init container copies it into the config volume when
  openclaw.json is missing there, and never overwrites it: `openclaw config set`
  and the rescue profile's edits survive every restart and re-apply.
- PersistentVolumeClaims `<name>-config|state|workspace` (ReadWriteOnce, the
  cluster's default storage class), or, with `storage="hostpath"` for single-node
  clusters, hostPath volumes on the spec's own host dirs (type Directory: the dir
  must exist, as with Compose; nothing creates a root-owned one).
- Deployment `<name>`, replicas 1, strategy Recreate. Why not a StatefulSet: both keep
  one writer during rollouts (Recreate stops the old pod before the new one starts),
  and the ReadWriteOnce claims keep the pod on one node; a Deployment is also what
  `podman kube play` runs, so the manifests proven here are the ones a cluster gets
  (podman 4.3 ignores StatefulSets). The pod's hostname is the spec's fixed
  hostname: the gateway binds its state-dir owner lease to the hostname, so a
  replacement pod takes the lease over at once instead of waiting up to 5 minutes
  (a StatefulSet would name it `<name>-0`).
- Secret `<name>-token`: NOT in the export. In the directory, a kustomize
  secretGenerator reads `secrets/<name>.token`, a file the user copies from orch's
  0600 token file at apply time (`secrets/.gitignore` keeps it out of git); in the
  stream (`-o -`) the header gives the `kubectl create secret` command. Mounted
  read-only at the spec's token path, as `orch up` mounts the file.
- Service `<name>` (ClusterIP) with one named port per published port of the spec,
  and a NetworkPolicy that admits only those ports (every other ingress denied;
  egress stays open: the gateway calls model APIs and channels).
- Hardening from the spec: runAsNonRoot with the spec's uid/gid, fsGroup (with
  OnRootMismatch: no recursive chown of a large claim on every start), seccomp
  RuntimeDefault, allowPrivilegeEscalation false (no-new-privileges), the spec's
  dropped capabilities, readOnlyRootFilesystem with a memory-backed emptyDir at
  /tmp of the spec's tmpfs size (memory-backed as the spec's tmpfs is, and because
  a tmpfs root is mode 1777: the gateway refuses a temp root that is world-writable
  without the sticky bit, which a disk emptyDir's 0777 is), no service-account
  token, no service links;
  memory request = limit = the spec's limit (the gateway idles at ~730 MiB: a lower
  request lets a node overcommit into OOM kills), the spec's CPU limit.
  Not expressible per pod: the pids limit (a kubelet setting, podPidsLimit).
- Probes on the gateway's own endpoints: startup /startupz (the spec's start period),
  readiness /readyz, liveness /healthz, with the spec's interval, timeout and retries.
- Rescue: the profile that rescues another mounts that profile's config claim at the
  spec's rescue path. The claims are ReadWriteOnce (one NODE, any number of pods on
  it), so the rescue pod has a required pod affinity to the rescued profile's pod:
  it is scheduled on the node that has the claim attached, and stays Pending while
  the rescued profile has no pod at all. With hostPath both use the same host dir.

Labels: app.kubernetes.io/{name,instance,component,part-of,managed-by,version} plus
orch's fleet labels (orch.managed, orch.project, orch.profile); what is not a valid
label value (orch's home path, a test run's record) and the spec hash are
annotations. The pod template carries the spec hash, so a changed spec rolls the pod.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core.model import Fleet
from orchestrator.core.ports import Role
from orchestrator.core.spec import (
    LABEL_HASH,
    LABEL_HOME,
    ContainerSpec,
    Mount,
    memory_bytes,
    resource_labels,
)
from orchestrator.errors import ExportError, UsageError
from orchestrator.export.compose import _Dumper
from orchestrator.export.stack import RESCUE_ROLE, TOKEN_ROLE
from orchestrator.fleet.openclaw_config import managed_config

STORAGE_KINDS = ("pvc", "hostpath")
DIR_ROLES = ("config", "state", "workspace")
TOKEN_KEY = "gateway_token"
SEED_DIR = "/orch-seed"
SECRETS_DIR = "secrets"
KUSTOMIZATION = "kustomization.yaml"
# Requested sizes: config holds one JSON file and its backups; state grows with the
# gateway's SQLite DB and caches (56 MB at first start); upstream asks 10Gi for both.
CLAIM_SIZES = {"config": "1Gi", "state": "10Gi", "workspace": "10Gi"}
CPU_REQUEST = 0.25  # upstream's baseline request; never above the spec's limit
INIT_MEMORY = "64Mi"
APP_NAME = "openclaw-gateway"
# A DNS-1035 label: what a Service name must be (the strictest name used here).
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

HEADER = """\
# Generated by `orch export kubernetes` from the fleet of project '{project}'. Do not
# edit: change the fleet (`orch setup`, `orch check`) and export again.
# No secret is in these files. {secret_note}
{secret_lines}
# Services are cluster-internal (ClusterIP): reach a gateway with
#   kubectl port-forward svc/NAME PORT   (or an Ingress of your own).
"""
DIR_SECRET_NOTE = """Before `kubectl apply -k DIR`, copy each profile's token
# file into DIR/secrets (kustomize makes the Secret from it; .gitignore keeps it out of git):"""
STREAM_SECRET_NOTE = """Create each profile's token Secret first:"""


def k8s_name(spec: ContainerSpec) -> str:
    """The object name of a profile: its container name, with '_' (not allowed in
    Kubernetes names) as '-'."""
    return spec.name.replace("_", "-")


def checked_names(specs: list[ContainerSpec]) -> dict[str, str]:
    """profile -> object name; refused when one is not a valid Service name (a
    DNS-1035 label of at most 63 characters) or two profiles end up with the same."""
    names: dict[str, str] = {}
    for spec in specs:
        name = k8s_name(spec)
        if not _DNS_LABEL.fullmatch(name):
            raise UsageError(
                f"profile {spec.profile}: its Kubernetes name {name!r} is not a DNS label"
                " (a letter first, then letters, digits or '-', at most 63 characters)",
                hint="rename the project or the profile (`orch setup` with a shorter name)",
            )
        taken = next((p for p, n in names.items() if n == name), None)
        if taken:
            raise UsageError(
                f"profiles {taken} and {spec.profile} both become {name!r} in Kubernetes"
                " ('_' is written '-')",
                hint=f"rename one of them, e.g. `orch setup {spec.profile}-2 ...`",
            )
        names[spec.profile] = name
    return names


def quantity(limit: str) -> str:
    """Docker's '1280m' (MiB) as a Kubernetes quantity ('1280Mi'; 'm' there is milli)."""
    n = memory_bytes(limit)
    for unit, size in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def port_name(role: str, index: int | None) -> str:
    """An IANA service name (at most 15 characters): the role, and the index within
    a range ('cdp-0'..'cdp-99')."""
    base = role.replace("_", "-")
    return base if index is None else f"{base}-{index}"


def container_ports(spec: ContainerSpec) -> list[dict[str, Any]]:
    out = []
    for binding in spec.ports:
        ranged = binding.count > 1
        for i, (cport, _hport) in enumerate(binding.expand()):
            out.append(
                {
                    "name": port_name(binding.role, i if ranged else None),
                    "containerPort": cport,
                    "protocol": binding.proto.upper(),
                }
            )
    return out


def labels(spec: ContainerSpec, name: str, project: str) -> dict[str, str]:
    """app.kubernetes.io/* and orch's fleet labels (those that are valid label values)."""
    rescued = _rescued(spec)
    last = spec.image.rpartition("/")[2]  # a registry's port is not a tag
    tag = last.rpartition(":")[2] if ":" in last else ""
    out = {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "rescue" if rescued else "gateway",
        "app.kubernetes.io/part-of": project,
        "app.kubernetes.io/managed-by": "orch",
    }
    if tag and _LABEL_VALUE.fullmatch(tag):
        out["app.kubernetes.io/version"] = tag
    notes = annotations(spec)
    out.update({k: v for k, v in resource_labels(spec).items() if k not in notes})
    return out


def annotations(spec: ContainerSpec) -> dict[str, str]:
    """What cannot be a label: orch's home (a path), a test run's record."""
    return {
        k: v
        for k, v in resource_labels(spec).items()
        if k == LABEL_HOME or not _LABEL_VALUE.fullmatch(v) or len(k) > 63
    }


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": name}


def meta(name: str, lab: dict[str, str], notes: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "labels": dict(lab), "annotations": dict(notes)}


def _rescued(spec: ContainerSpec) -> list[Mount]:
    return [m for m in spec.mounts if m.role.startswith(RESCUE_ROLE)]


def _mount(spec: ContainerSpec, role: str) -> Mount:
    return next(m for m in spec.mounts if m.role == role)


def claim_name(name: str, role: str) -> str:
    return f"{name}-{role}"


def secret_name(name: str) -> str:
    return f"{name}-token"


def seed_name(name: str) -> str:
    return f"{name}-seed"


def config_map(name: str, lab, notes, seed: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(seed_name(name), lab, notes),
        "data": {"openclaw.json": json.dumps(seed, indent=2) + "\n"},
    }


def claims(name: str, lab, notes) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(claim_name(name, role), lab, notes),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": CLAIM_SIZES[role]}},
            },
        }
        for role in DIR_ROLES
    ]


def dir_volume(mount: Mount, claim: str, storage: str) -> dict[str, Any]:
    """A config/state/workspace volume: the profile's claim, or the spec's host dir."""
    if storage == "hostpath":
        return {"hostPath": {"path": mount.source, "type": "Directory"}}
    return {"persistentVolumeClaim": {"claimName": claim}}


def volumes(
    spec: ContainerSpec, name: str, names: dict[str, str], storage: str
) -> list[dict[str, Any]]:
    token = _mount(spec, TOKEN_ROLE)
    out = [
        {"name": role, **dir_volume(_mount(spec, role), claim_name(name, role), storage)}
        for role in DIR_ROLES
    ]
    for mount in _rescued(spec):
        target = names[mount.role.removeprefix(RESCUE_ROLE)]
        out.append(
            {
                "name": _volume_name(mount),
                **dir_volume(mount, claim_name(target, "config"), storage),
            }
        )
    out.append(
        {
            "name": TOKEN_ROLE,
            "secret": {
                "secretName": secret_name(name),
                # Owned by root, group fsGroup: the group must read it.
                "defaultMode": 0o440,
                "items": [{"key": TOKEN_KEY, "path": os.path.basename(token.target)}],
            },
        }
    )
    out.append({"name": "seed", "configMap": {"name": seed_name(name)}})
    for i, tmpfs in enumerate(spec.tmpfs):
        out.append(
            {
                "name": f"tmp-{i}",
                "emptyDir": {"medium": "Memory", "sizeLimit": quantity(tmpfs.size)},
            }
        )
    return out


def _volume_name(mount: Mount) -> str:
    return "rescue-" + mount.role.removeprefix(RESCUE_ROLE).replace("_", "-")


def volume_mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    out = [{"name": role, "mountPath": _mount(spec, role).target} for role in DIR_ROLES]
    for mount in _rescued(spec):
        out.append({"name": _volume_name(mount), "mountPath": mount.target})
    token = _mount(spec, TOKEN_ROLE)
    out.append({"name": TOKEN_ROLE, "mountPath": os.path.dirname(token.target), "readOnly": True})
    for i, tmpfs in enumerate(spec.tmpfs):
        out.append({"name": f"tmp-{i}", "mountPath": tmpfs.target})
    return out


def container_security(spec: ContainerSpec) -> dict[str, Any]:
    uid, gid = (int(x) for x in spec.user.split(":"))
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "allowPrivilegeEscalation": "no-new-privileges" not in spec.security_opt,
        "readOnlyRootFilesystem": spec.read_only,
        "capabilities": {"drop": list(spec.cap_drop)},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def probes(spec: ContainerSpec) -> dict[str, Any]:
    """startup /startupz for the spec's start period, then readiness /readyz and
    liveness /healthz with the spec's interval, timeout and retries."""
    hc = spec.healthcheck

    def probe(path: str, threshold: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port_name(Role.GATEWAY.value, None)},
            "periodSeconds": hc.interval_s,
            "timeoutSeconds": hc.timeout_s,
            "failureThreshold": threshold,
        }

    return {
        "startupProbe": probe("/startupz", max(1, math.ceil(hc.start_period_s / hc.interval_s))),
        "readinessProbe": probe("/readyz", hc.retries),
        "livenessProbe": probe("/healthz", hc.retries),
    }


def resources(spec: ContainerSpec) -> dict[str, Any]:
    memory = quantity(spec.mem_limit)
    out: dict[str, Any] = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    request = min(CPU_REQUEST, spec.cpus) if spec.cpus else CPU_REQUEST
    out["requests"]["cpu"] = f"{round(request * 1000)}m"
    if spec.cpus:
        out["limits"]["cpu"] = f"{round(spec.cpus * 1000)}m"
    return out


def seed_script(config_dir: str, seed_dir: str = SEED_DIR) -> str:
    """Copy the seed into the config dir only when openclaw.json is missing there;
    written beside it and renamed, so a gateway never sees half a file."""
    target = f"{config_dir}/openclaw.json"
    return (
        f'if [ -e "{target}" ]; then echo "orch-seed: {target} kept"; exit 0; fi\n'
        f'cp "{seed_dir}/openclaw.json" "{target}.orch-seed"\n'
        f'chmod 0600 "{target}.orch-seed"\n'
        f'mv "{target}.orch-seed" "{target}"\n'
        f'echo "orch-seed: {target} seeded"\n'
    )


def deployment(
    spec: ContainerSpec, name: str, names: dict[str, str], storage: str, lab, notes
) -> dict[str, Any]:
    uid, gid = (int(x) for x in spec.user.split(":"))
    if uid == 0:
        raise UsageError(
            f"profile {spec.profile} runs as uid 0, which the export refuses (runAsNonRoot)",
            hint=f"orch setup {spec.profile} --user 1000:1000 --force",
        )
    config_dir = _mount(spec, "config").target
    security = container_security(spec)
    pod: dict[str, Any] = {
        "hostname": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.stop_timeout_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [
            {
                "name": "seed-config",
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", seed_script(config_dir)],
                "securityContext": {**security, "readOnlyRootFilesystem": True},
                "resources": {
                    "requests": {"memory": INIT_MEMORY, "cpu": "50m"},
                    "limits": {"memory": INIT_MEMORY, "cpu": "100m"},
                },
                "volumeMounts": [
                    {"name": "config", "mountPath": config_dir},
                    {"name": "seed", "mountPath": SEED_DIR, "readOnly": True},
                ],
            }
        ],
        "containers": [
            {
                "name": "gateway",
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                **({"args": list(spec.command)} if spec.command else {}),
                "env": [{"name": k, "value": v} for k, v in spec.env.items()],
                "ports": container_ports(spec),
                "resources": resources(spec),
                **probes(spec),
                "securityContext": security,
                "volumeMounts": volume_mounts(spec),
            }
        ],
        "volumes": volumes(spec, name, names, storage),
    }
    rescued = _rescued(spec)
    if rescued:
        pod["affinity"] = {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {
                            "matchLabels": selector(names[m.role.removeprefix(RESCUE_ROLE)])
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                    for m in rescued
                ]
            }
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, lab, notes),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(name)},
            "template": {
                "metadata": {
                    "labels": dict(lab),
                    "annotations": {**notes, LABEL_HASH: spec.spec_hash},
                },
                "spec": pod,
            },
        },
    }


def service(spec: ContainerSpec, name: str, lab, notes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, lab, notes),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [
                {
                    "name": p["name"],
                    "port": p["containerPort"],
                    "targetPort": p["name"],
                    "protocol": p["protocol"],
                }
                for p in container_ports(spec)
            ],
        },
    }


def network_policy(spec: ContainerSpec, name: str, lab, notes) -> dict[str, Any]:
    """Ingress only to the published ports (from anywhere in or out of the cluster);
    a pod selected by a policy with Ingress in its types accepts nothing else."""
    ports = [{"protocol": p["protocol"], "port": p["name"]} for p in container_ports(spec)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, lab, notes),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": ports}] if ports else [],
        },
    }


def profile_objects(
    spec: ContainerSpec, seed: dict[str, Any], names: dict[str, str], project: str, storage: str
) -> list[dict[str, Any]]:
    """Every object of one profile except its token Secret."""
    name = names[spec.profile]
    lab, notes = labels(spec, name, project), annotations(spec)
    objects = [config_map(name, lab, notes, seed)]
    if storage == "pvc":
        objects += claims(name, lab, notes)
    objects += [
        deployment(spec, name, names, storage, lab, notes),
        service(spec, name, lab, notes),
        network_policy(spec, name, lab, notes),
    ]
    return objects


def kustomization(specs: list[ContainerSpec], names: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{names[s.profile]}.yaml" for s in specs],
        "secretGenerator": [
            {
                "name": secret_name(names[s.profile]),
                "type": "Opaque",
                "files": [f"{TOKEN_KEY}={SECRETS_DIR}/{names[s.profile]}.token"],
                "options": {"labels": _secret_labels(s)},
            }
            for s in specs
        ],
    }


def _secret_labels(spec: ContainerSpec) -> dict[str, str]:
    notes = annotations(spec)
    return {k: v for k, v in resource_labels(spec).items() if k not in notes}


def dump_all(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(
        objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096
    )


def header(project: str, specs: list[ContainerSpec], names: dict[str, str], stream: bool) -> str:
    if stream:
        lines = [
            f"#   kubectl create secret generic {secret_name(names[s.profile])}"
            f" --from-file={TOKEN_KEY}={_mount(s, TOKEN_ROLE).source}"
            for s in specs
        ]
    else:
        lines = [
            f"#   install -m 0600 {_mount(s, TOKEN_ROLE).source}"
            f" DIR/{SECRETS_DIR}/{names[s.profile]}.token"
            for s in specs
        ]
    note = STREAM_SECRET_NOTE if stream else DIR_SECRET_NOTE
    return HEADER.format(project=project, secret_note=note, secret_lines="\n".join(lines))


@dataclass(frozen=True)
class Rendered:
    """The export in memory: the kustomization's files (relative path -> text), and
    the one-stream form (`-o -`), which has no secretGenerator and so no Secret."""

    files: dict[str, str]
    stream: str


def render_kubernetes(fleet: Fleet, specs: list[ContainerSpec], storage: str = "pvc") -> Rendered:
    """The kustomization's files and the stream, from checked specs."""
    if storage not in STORAGE_KINDS:
        raise UsageError(
            f"unknown storage {storage!r}", hint=f"use one of: {', '.join(STORAGE_KINDS)}"
        )
    _rescue_targets_present(specs)
    names = checked_names(specs)
    per_profile = {
        s.profile: profile_objects(
            s, managed_config(fleet.profiles[s.profile]), names, fleet.project, storage
        )
        for s in specs
    }
    files = {f"{names[s.profile]}.yaml": dump_all(per_profile[s.profile]) for s in specs}
    files[KUSTOMIZATION] = header(fleet.project, specs, names, stream=False) + dump_all(
        [kustomization(specs, names)]
    )
    files[f"{SECRETS_DIR}/.gitignore"] = "# the token files: never commit them\n*\n!.gitignore\n"
    stream = header(fleet.project, specs, names, stream=True) + dump_all(
        [o for s in specs for o in per_profile[s.profile]]
    )
    return Rendered(files, stream)


def _rescue_targets_present(specs: list[ContainerSpec]) -> None:
    """A rescue profile needs the profile it rescues in the same export: it mounts
    that profile's claim and is scheduled beside its pod."""
    exported = {s.profile for s in specs}
    for spec in specs:
        for mount in _rescued(spec):
            target = mount.role.removeprefix(RESCUE_ROLE)
            if target not in exported:
                raise UsageError(
                    f"profile {spec.profile} rescues {target}, which is not exported with it",
                    hint=f"export both: orch export kubernetes {target} {spec.profile} -o DIR",
                )


MARK = "# Generated by `orch export kubernetes`"
TOKEN_SUFFIX = ".token"


def earlier_export(path: Path) -> list[Path]:
    """The token files of an earlier export in `path`, when `path` holds nothing but
    what that export wrote (its kustomization, the files it lists, secrets/ with its
    .gitignore and token files); UsageError naming anything else found there."""
    kustomization = path / KUSTOMIZATION
    try:
        text = kustomization.read_text(encoding="utf-8")
        listed = yaml.safe_load(text).get("resources", []) if text.startswith(MARK) else None
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        listed = None
    if listed is None:
        raise ExportError(
            f"cannot write {path}: the directory is not empty and holds no earlier"
            " `orch export kubernetes`; nothing was written",
            hint="name a new or empty directory",
        )
    ours = {KUSTOMIZATION, SECRETS_DIR, *map(str, listed)}
    secrets = path / SECRETS_DIR
    found = [p for p in path.iterdir() if p.name not in ours]
    tokens: list[Path] = []
    if secrets.is_dir():
        for entry in secrets.iterdir():
            if entry.name.endswith(TOKEN_SUFFIX) and entry.is_file():
                tokens.append(entry)
            elif entry.name != ".gitignore":
                found.append(entry)
    if found:
        raise ExportError(
            f"cannot write {path}: it holds an earlier export and files orch did not"
            f" write: {', '.join(sorted(str(p) for p in found)[:5])}; nothing was written",
            hint="move those files away, or name a new directory",
        )
    return tokens


def write_directory(files: dict[str, str], output: Path) -> Path:
    """Write the kustomization whole or not at all: into a temp dir beside `output`,
    then renamed into place. An earlier export there is replaced, keeping the token
    files the user placed in its secrets/; a dir with anything else is refused."""
    path = Path(os.path.abspath(output))
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"cannot write {path}: it exists and is not a directory",
            hint="name a new directory: -o DIR (or -o - to print)",
        )
    replacing = path.is_dir() and any(path.iterdir())
    tokens = earlier_export(path) if replacing else []
    if not path.parent.is_dir():
        raise ExportError(
            f"cannot write {path}: {path.parent} is not an existing directory; nothing was written",
            hint="create the parent directory first, or choose another path",
        )
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise ExportError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was written",
            hint="choose a writable place, or -o - to print to stdout",
        ) from None
    try:
        os.chmod(tmp, 0o755)
        for rel, text in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        os.chmod(tmp / SECRETS_DIR, 0o700)
        for token in tokens:
            shutil.copy2(token, tmp / SECRETS_DIR / token.name)
        if replacing:
            _swap(tmp, path)
        else:
            os.rename(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was written",
            hint="choose a writable place, or -o - to print to stdout",
        ) from None
    return path


def _swap(new: Path, path: Path) -> None:
    """Put `new` where the earlier export `path` is: the old one is renamed aside
    first and removed only once the new one is in place (put back if that fails)."""
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    os.rename(path, old / "export")
    try:
        os.rename(new, path)
    except OSError:
        os.rename(old / "export", path)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_kubernetes(home: Path, names: list[str] | None = None, storage: str = "pvc") -> Rendered:
    """The rendered export of `names` (all when None); refused like `orch up` when
    `orch check` finds a problem involving them."""
    from orchestrator.fleet.gate import checked_specs
    from orchestrator.fleet.store import load_fleet

    fleet = load_fleet(home)
    return render_kubernetes(fleet, checked_specs(fleet, home, names), storage)
