"""Backup and restore of a profile whose gateway runs on another swarm node.

Its dirs live on that node only (orch makes them there, by the same paths as on the
manager), and orch reaches the node through the engine alone: no SSH, no shared
filesystem. So the archive is made, kept and restored *on the node*, by one-shot
jobs pinned to it (docker/node_jobs.py) that run the profile's own gateway image
(every node that runs the profile has it) as root with the node's filesystem at
/host:

- backup: the service is scaled to 0 (Swarm stops the gateway gracefully, within its
  stop grace period: a consistent copy of SQLite and every other file), a job tars
  config/, state/ and workspace/ (as `orch backup` lays them out, numeric owners
  kept) into a temp file in the archive dir on the node, mode 0600, renamed when
  whole, with a `.sha256` file beside it; the service is scaled back to 1 and orch
  waits for /readyz on the node. The result names the node and the path there, the
  size and the sha256, and how long the gateway was down.
- restore: the job checks the archive's sha256 on the node, unpacks each dir beside
  the current one, then (service at 0) swaps them by rename; the gateway starts on
  the restored dirs and orch waits for /readyz. If it does not get ready, the
  previous dirs are swapped back and it is started again; else they are deleted
  (or kept with `keep_old`).

This is the offline mode of `orch backup` (the gateway is down for the copy), and
the archive has no manifest: only the sha256 of the whole file vouches for it. What
other work builds on (offsite copies, moving a profile to another node): the
functions `backup_on_node` and `restore_on_node`, and `NodeArchive`, which says
where an archive is.

A backup or restore killed half-way can leave the service at 0 replicas: `orch up
--engine swarm` deploys it again (its plan says why), and `orch status` says so.
"""

from __future__ import annotations

import re
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.backends.project import Project
from orchestrator.backends.swarm import TERMINAL_STATES, require_manager, tasks_of
from orchestrator.backends.swarm_placement import Placed, wait_placed
from orchestrator.core.paths import DIR_KINDS
from orchestrator.core.placement import SwarmNode, manager_of, node_of
from orchestrator.core.spec import LABEL_HOME, LABEL_PROJECT, ContainerSpec
from orchestrator.docker import api as docker_http
from orchestrator.docker.node_jobs import BindMount, Job, JobResult, run_job
from orchestrator.docker.swarm_nodes import node_named, require_nodes
from orchestrator.errors import BackupFailed, NotFound, NotReady, UsageError
from orchestrator.export.stack import service_name
from orchestrator.fleet.backup import default_dir, utc_stamp
from orchestrator.fleet.store import locked

HOST_ROOT = "/host"
SOURCE_ROOT = "/orch-src"
SUFFIX = ".node.tar.gz"
DEFAULT_TIMEOUT = 300.0
POLL_S = 0.2
RESULT = re.compile(r"^orch-archive (\d+) ([0-9a-f]{64})$", re.MULTILINE)


@dataclass
class NodeArchive:
    """An archive of a profile, on the node that runs it."""

    profile: str
    node: str
    archive: str  # its path on `node`
    bytes: int
    sha256: str
    seconds: float
    downtime_s: float | None
    mode: str = "offline"

    @property
    def where(self) -> str:
        return f"{self.node}:{self.archive}"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "where": self.where}


@dataclass
class NodeRestore:
    profile: str
    node: str
    archive: str
    ok: bool
    seconds: float
    downtime_s: float | None
    kept: list[str]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class OnNode:
    """A profile, the node its dirs live on, and its service (None: not deployed)."""

    spec: ContainerSpec
    node: SwarmNode
    service: dict[str, Any] | None

    @property
    def image(self) -> str:
        if self.service is None:
            return self.spec.image
        return self.service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    def dir_of(self, kind: str) -> str:
        return next(m.source for m in self.spec.mounts if m.role == kind)


def runs_elsewhere(project: Project, name: str) -> bool:
    """Whether the profile is placed on a swarm node (its dirs are not here)."""
    return project.fleet.get(name).node is not None


def locate(project: Project, name: str) -> OnNode:
    """The profile's spec, node and service, as the manager sees them; refused when its
    node is not there or cannot run jobs now."""
    require_manager()
    profile = project.fleet.get(name)
    nodes = require_nodes()
    hostname = node_of(profile, manager_of(nodes)) or ""
    node = node_named(nodes, hostname)
    if node is None:
        raise UsageError(
            f"{name} is placed on node {hostname}, which this swarm does not have",
            hint="`docker node ls` lists the nodes; `orch check` says what else is off",
        )
    if node.state != "ready":
        raise BackupFailed(
            f"{name}'s node {hostname} is {node.state}: its dirs cannot be reached now;"
            " nothing was changed",
            hint=f"bring {hostname}'s engine back, then try again",
        )
    try:
        service = docker_http.get(f"/services/{service_name(project.project, name)}")
    except NotFound:
        service = None
    return OnNode(project.spec(name), node, service)


# ---------------------------------------------------------------- backup


def backup_on_node(
    project: Project,
    name: str,
    out_dir: Path | None = None,
    tag: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> NodeArchive:
    """Archive the profile's dirs on its node (see the module doc); where it is."""
    say = _say(progress, name)
    start = time.monotonic()
    with locked(project.home):
        where = locate(project, name)
        out = out_dir or default_dir(project.home, name)
        path = out / f"{name}-{utc_stamp()}{'-' + tag if tag else ''}{SUFFIX}"
        stopped = _stop(where, say)
        try:
            say(f"archiving on {where.node.hostname}")
            result = run_job(_job(where, backup_script(out, path), with_sources=True), capture=True)
        finally:
            downtime = _start(project, where, timeout, say) if stopped else None
        found = RESULT.search(result.output)
        if not result.ok or found is None:
            raise BackupFailed(
                f"{name}: the backup job on {where.node.hostname} failed ({_why(result)});"
                f" the gateway runs again; no archive was kept",
                hint="see the job's error above; the node needs room in " + str(out),
            )
        return NodeArchive(
            profile=name,
            node=where.node.hostname,
            archive=str(path),
            bytes=int(found.group(1)),
            sha256=found.group(2),
            seconds=round(time.monotonic() - start, 3),
            downtime_s=downtime,
        )


def backup_script(out: Path, path: Path) -> str:
    """Tar the dirs mounted at SOURCE_ROOT into a 0600 temp file beside `path` on the
    node, then rename it, write the .sha256 beside it and print size and sum."""
    out_q = shlex.quote(HOST_ROOT + str(out))
    final = shlex.quote(HOST_ROOT + str(path))
    tmp = shlex.quote(f"{HOST_ROOT}{out}/.orch-backup-{uuid.uuid4().hex[:8]}.tmp")
    kinds = " ".join(DIR_KINDS)
    return (
        f"set -eu; umask 077; mkdir -p {out_q}; "
        f"tar -C {SOURCE_ROOT} --numeric-owner -czf {tmp} {kinds}; "
        f"sum=$(sha256sum {tmp} | cut -d' ' -f1); size=$(stat -c %s {tmp}); "
        f"mv {tmp} {final}; "
        f'printf "%s  %s\\n" "$sum" {shlex.quote(path.name)} > {final}.sha256; '
        'echo "orch-archive $size $sum"'
    )


# ---------------------------------------------------------------- restore


def restore_on_node(
    project: Project,
    name: str,
    archive: str,
    sha256: str | None = None,
    keep_old: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> NodeRestore:
    """Restore `archive` (a path on the profile's node) into its dirs there; see the
    module doc. `sha256`: the sum the backup reported (default: the .sha256 beside
    the archive on the node)."""
    say = _say(progress, name)
    start = time.monotonic()
    stamp = utc_stamp().replace(".", "")
    with locked(project.home):
        where = locate(project, name)
        say(f"checking and unpacking {archive} on {where.node.hostname}")
        staged = run_job(_job(where, stage_script(where, archive, sha256, stamp)), capture=True)
        if not staged.ok:
            raise BackupFailed(
                f"{name}: cannot restore {where.node.hostname}:{archive} ({_why(staged)});"
                " nothing was changed",
                hint="`orch backup --engine swarm` says where each archive is",
            )
        _stop(where, say)
        swapped = run_job(_job(where, swap_script(where, stamp)), capture=True)
        ready_error, downtime = None, None
        try:
            downtime = _start(project, where, timeout, say)
        except NotReady as exc:
            ready_error = exc
        if not swapped.ok or ready_error is not None:
            _stop(where, say)
            run_job(_job(where, unswap_script(where, stamp)))
            _start(project, where, timeout, say)
            why = _why(swapped) if not swapped.ok else (ready_error.message if ready_error else "")
            raise NotReady(
                f"{name}: the gateway did not get ready on the restored dirs on"
                f" {where.node.hostname}; its previous dirs are back and it runs again.\n{why}",
                hint="restore an older archive, or look at `orch logs --engine swarm " + name + "`",
            )
        kept = [f"{where.dir_of(k)}.orch-old-{stamp}" for k in DIR_KINDS]
        if not keep_old:
            run_job(_job(where, discard_script(kept)))
            kept = []
        return NodeRestore(
            name,
            where.node.hostname,
            archive,
            True,
            round(time.monotonic() - start, 3),
            downtime,
            kept,
            note=""
            if where.service
            else f"restored; no service runs it: `orch up --engine swarm {name}` starts it",
        )


def stage_script(where: OnNode, archive: str, sha256: str | None, stamp: str) -> str:
    """Check the archive's sum, then unpack each dir beside the current one (same
    filesystem: the swap is a rename), with the current dir's owner and mode."""
    a = shlex.quote(HOST_ROOT + archive)
    check = (
        f"echo {shlex.quote(sha256)}'  '{a} | sha256sum -c --status"
        if sha256
        else f"(cd $(dirname {a}) && sha256sum -c --status $(basename {a}).sha256)"
    )
    steps = [
        "set -eu",
        f"[ -f {a} ] || {{ echo 'no such archive on this node' >&2; exit 3; }}",
        f"{check} || {{ echo 'the archive does not match its sha256' >&2; exit 4; }}",
    ]
    for kind in DIR_KINDS:
        d = shlex.quote(HOST_ROOT + where.dir_of(kind))
        s = shlex.quote(f"{HOST_ROOT}{where.dir_of(kind)}.orch-restore-{stamp}")
        steps += [
            f"mkdir {s}",
            f"tar -xzf {a} -C {s} --numeric-owner --same-owner --strip-components=1 {kind}",
            f"chown --reference={d} {s}",
            f"chmod --reference={d} {s}",
        ]
    return "; ".join(steps)


def swap_script(where: OnNode, stamp: str) -> str:
    steps = ["set -eu"]
    for kind in DIR_KINDS:
        d = HOST_ROOT + where.dir_of(kind)
        steps.append(
            f"mv {shlex.quote(d)} {shlex.quote(d + '.orch-old-' + stamp)}"
            f" && mv {shlex.quote(d + '.orch-restore-' + stamp)} {shlex.quote(d)}"
        )
    return "; ".join(steps)


def unswap_script(where: OnNode, stamp: str) -> str:
    """Put the previous dirs back (the restored ones are kept, renamed, for a look)."""
    steps = []
    for kind in DIR_KINDS:
        d = HOST_ROOT + where.dir_of(kind)
        old, failed = (
            shlex.quote(d + ".orch-old-" + stamp),
            shlex.quote(d + ".orch-failed-" + stamp),
        )
        steps.append(
            f"if [ -d {old} ]; then mv {shlex.quote(d)} {failed}; mv {old} {shlex.quote(d)}; fi"
        )
    return "; ".join(steps)


def discard_script(paths: list[str]) -> str:
    return "rm -rf " + " ".join(shlex.quote(HOST_ROOT + p) for p in paths)


# ---------------------------------------------------------------- the service


def _stop(where: OnNode, say: Any) -> bool:
    """Scale the service to 0 and wait until its task ended; whether it had one."""
    if where.service is None or _replicas(where.service["ID"]) == 0:
        return False
    say(f"stopping the gateway on {where.node.hostname}")
    docker_http.scale_service(where.service["ID"], 0)
    deadline = time.monotonic() + 120
    while any(_state(t) not in TERMINAL_STATES for t in tasks_of(where.service["ID"])):
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return True


def _start(project: Project, where: OnNode, timeout: float, say: Any) -> float | None:
    """Scale the service (back) to 1 and wait for /readyz on its node; the seconds it
    took (None: the profile has no service)."""
    if where.service is None:
        return None
    began = time.monotonic()
    old = {t["ID"] for t in tasks_of(where.service["ID"])}
    docker_http.scale_service(where.service["ID"], 1)
    outcome = wait_placed(
        Placed(where.spec, where.node),
        project.project,
        timeout,
        lambda _p, m: say(m),
        "start",
        old,
        where.image,
    )
    if not outcome.ready:
        raise NotReady(outcome.error or f"{where.spec.profile} not ready")
    return round(time.monotonic() - began, 3)


def _replicas(service_id: str) -> int:
    service = docker_http.get(f"/services/{service_id}")
    return ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)


def _state(task: dict[str, Any]) -> str:
    return (task.get("Status") or {}).get("State", "")


def _job(where: OnNode, script: str, with_sources: bool = False) -> Job:
    mounts = [BindMount("/", HOST_ROOT)]
    if with_sources:
        mounts += [
            BindMount(where.dir_of(k), f"{SOURCE_ROOT}/{k}", read_only=True) for k in DIR_KINDS
        ]
    labels = {
        k: where.spec.labels[k] for k in (LABEL_PROJECT, LABEL_HOME) if k in where.spec.labels
    }
    return Job(
        node=where.node.hostname,
        image=where.image,
        command=["sh", "-c", script],
        labels=labels,
        mounts=mounts,
        user="0:0",
    )


def _why(result: JobResult) -> str:
    tail = result.output.strip().splitlines()[-3:]
    return "; ".join([f"{result.state}: {result.error}".strip(": "), *tail])


def _say(progress: Progress | None, name: str) -> Any:
    return (lambda m: progress(name, m)) if progress else (lambda _m: None)
