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

Off the host (workflows/node_offsite.py): the node moves the archive itself, with
Node.js of the gateway image and a presigned URL (fleet/offsite.py) that the job gets
as a swarm secret (docker/node_jobs.py): `upload_script` PUTs an archive and removes
its temp dir on the node; `restore_on_node(..., fetch=URL)` GETs it first.

A backup or restore killed half-way can leave the service at 0 replicas: `orch up
--engine swarm` deploys it again (its plan says why), and `orch status` says so.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.backends.project import Project
from orchestrator.backends.swarm import Swarm, replicas_of, require_manager
from orchestrator.backends.swarm_placement import node_for
from orchestrator.core.paths import DIR_KINDS
from orchestrator.core.placement import SwarmNode
from orchestrator.core.spec import LABEL_HOME, LABEL_PROJECT, ContainerSpec
from orchestrator.docker import api as docker_http
from orchestrator.docker.node_jobs import JOB_MEMORY, BindMount, Job, JobResult, run_job
from orchestrator.errors import BackupFailed, NotFound, NotReady, OrchError
from orchestrator.export.stack import service_name
from orchestrator.fleet.backup import default_dir, utc_stamp
from orchestrator.fleet.store import locked

HOST_ROOT = "/host"
SOURCE_ROOT = "/orch-src"
SUFFIX = ".node.tar.gz"
DEFAULT_TIMEOUT = 300.0
# The backend of a profile placed on a node, whatever --engine the command was given
# (`orch backup` of the local engine's fleet reaches its placed profiles too).
SWARM = Swarm()
RESULT = re.compile(r"^orch-archive (\d+) ([0-9a-f]{64})$", re.MULTILINE)
UPLOADED = re.compile(r"^orch-uploaded (\d+)$", re.MULTILINE)
URL_SECRET = "orch-s3-url"
# A job that runs Node.js (the transfer) needs more than a shell's 64 MiB.
NODE_JOB_MEMORY = 256 * 1024 * 1024
# PUT (a file, streamed, with its length) or GET (into a new 0600 file) the one
# object a presigned URL names, read from the job's secret. Prints no URL: S3's
# error answers are cut down to their <Code>.
TRANSFER_JS = r"""
const fs = require("fs"), http = require("http"), https = require("https");
const [verb, file] = process.argv.slice(1);
const url = new URL(fs.readFileSync("/run/secrets/orch-s3-url", "utf8").trim()); // URL_SECRET
const lib = url.protocol === "https:" ? https : http;
const fail = (m) => { console.error(m); process.exit(1); };
const answer = (res, ok) => {
  let body = "";
  res.on("data", (d) => { if (body.length < 4096) body += d; });
  res.on("end", () => {
    if (res.statusCode !== 200) {
      const code = (/<Code>([^<]{1,100})<\/Code>/.exec(body) || [])[1] || "";
      fail(`the bucket answered HTTP ${res.statusCode} ${code}`.trim());
    }
    ok();
  });
};
if (verb === "put") {
  const size = fs.statSync(file).size;
  const req = lib.request(url, { method: "PUT", headers: { "content-length": size } },
    (res) => answer(res, () => console.log(`orch-uploaded ${size}`)));
  req.setTimeout(120000, () => req.destroy(new Error("no answer in 120 s")));
  req.on("error", (e) => fail(`cannot upload to the bucket: ${e.message}`));
  fs.createReadStream(file).on("error", (e) => fail(e.message)).pipe(req);
} else {
  const req = lib.get(url, (res) => {
    if (res.statusCode !== 200) return answer(res, () => {});
    const out = fs.createWriteStream(file, { mode: 0o600, flags: "wx" });
    res.on("error", (e) => fail(`download cut short: ${e.message}`));
    res.pipe(out).on("finish", () => console.log("orch-downloaded"));
  });
  req.setTimeout(120000, () => req.destroy(new Error("no answer in 120 s")));
  req.on("error", (e) => fail(`cannot download from the bucket: ${e.message}`));
}
"""


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


def transfer(verb: str, path: str) -> str:
    """The shell step of a job that moves `path` (on the node) to or from the bucket."""
    return f"node -e {shlex.quote(TRANSFER_JS)} {verb} {shlex.quote(HOST_ROOT + path)}"


def runs_elsewhere(project: Project, name: str) -> bool:
    """Whether the profile is placed on a swarm node (its dirs are not here)."""
    return project.fleet.get(name).node is not None


def locate(project: Project, name: str) -> OnNode:
    """The profile's spec, node and service, as the manager sees them; refused when its
    node is not there or cannot run jobs now."""
    require_manager()
    node = node_for(project, name)
    hostname = node.hostname
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
        stopped = _stop(project, where, say)
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


def upload_from_node(project: Project, archive: NodeArchive, url: str, temp_dir: Path) -> int:
    """PUT an archive from its node to the presigned `url`, then remove `temp_dir` (its
    dir on the node) whatever happened; the size the node sent."""
    where = locate(project, archive.profile)
    script = upload_script(archive.archive, temp_dir)
    job = _job(where, script, memory=NODE_JOB_MEMORY, secrets={URL_SECRET: url.encode()})
    result = run_job(job, capture=True)
    sent = UPLOADED.search(result.output)
    if not result.ok or sent is None:
        raise BackupFailed(
            f"{archive.profile}: the upload from {archive.node} failed ({_why(result)});"
            " no completion marker was written, so it is not a backup",
            hint="the node must reach the S3 endpoint (AWS_ENDPOINT_URL as the manager"
            " sees it); try again",
        )
    return int(sent.group(1))


def upload_script(archive: str, temp_dir: Path) -> str:
    gone = shlex.quote(HOST_ROOT + str(temp_dir))
    return f"set -eu; trap 'rm -rf {gone}' EXIT; {transfer('put', archive)}"


def discard_on_node(project: Project, name: str, paths: list[str]) -> None:
    """Remove what a failed step left on the profile's node (best effort)."""
    with contextlib.suppress(OrchError):
        run_job(_job(locate(project, name), discard_script(paths)))


# ---------------------------------------------------------------- restore


def restore_on_node(
    project: Project,
    name: str,
    archive: str,
    sha256: str | None = None,
    keep_old: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    fetch: str | None = None,
) -> NodeRestore:
    """Restore `archive` (a path on the profile's node) into its dirs there; see the
    module doc. `sha256`: the sum the backup reported (default: the .sha256 beside
    the archive on the node). `fetch`: a presigned URL the job first downloads the
    archive from, to that path (removed again once unpacked)."""
    with locked(project.home):
        where = locate(project, name)
        return restore_into(project, where, archive, sha256, keep_old, timeout, progress, fetch)


def restore_into(
    project: Project,
    where: OnNode,
    archive: str,
    sha256: str | None,
    keep_old: bool,
    timeout: float,
    progress: Progress | None,
    fetch: str | None = None,
) -> NodeRestore:
    """The restore on `where.node` (the caller holds the fleet lock). With no service
    (`where.service` None: not deployed, or being moved to this node) nothing is
    stopped or started: the dirs are put in place."""
    name = where.spec.profile
    say = _say(progress, name)
    start = time.monotonic()
    stamp = utc_stamp().replace(".", "")
    hostname = where.node.hostname
    say(f"{'downloading, ' if fetch else ''}checking and unpacking {archive} on {hostname}")
    script = stage_script(where, archive, sha256, stamp, fetch is not None)
    secrets = {URL_SECRET: fetch.encode()} if fetch else {}
    memory = NODE_JOB_MEMORY if fetch else JOB_MEMORY
    staged = run_job(_job(where, script, memory=memory, secrets=secrets), capture=True)
    if not staged.ok:
        run_job(_job(where, discard_script(_staged_dirs(where, stamp))))
        raise BackupFailed(
            f"{name}: cannot restore {hostname}:{archive} ({_why(staged)}); nothing was changed",
            hint="`orch backup --engine swarm` says where each archive is",
        )
    _stop(project, where, say)
    swapped = run_job(_job(where, swap_script(where, stamp)), capture=True)
    ready_error, downtime = None, None
    try:
        downtime = _start(project, where, timeout, say)
    except NotReady as exc:
        ready_error = exc
    if not swapped.ok or ready_error is not None:
        _stop(project, where, say)
        run_job(_job(where, unswap_script(where, stamp)))
        _start(project, where, timeout, say)
        why = _why(swapped) if not swapped.ok else (ready_error.message if ready_error else "")
        raise NotReady(
            f"{name}: the gateway did not get ready on the restored dirs on"
            f" {hostname}; its previous dirs are back and it runs again.\n{why}",
            hint="restore an older archive, or look at `orch logs --engine swarm " + name + "`",
        )
    kept = [f"{where.dir_of(k)}.orch-old-{stamp}" for k in DIR_KINDS]
    replaced = "replaced" in swapped.output
    if not keep_old or not replaced:
        run_job(_job(where, discard_script(kept)))
        kept = []
    return NodeRestore(
        name,
        hostname,
        archive,
        True,
        round(time.monotonic() - start, 3),
        downtime,
        kept,
        note=""
        if where.service
        else f"restored; no service runs it: `orch up --engine swarm {name}` starts it",
    )


def _staged_dirs(where: OnNode, stamp: str) -> list[str]:
    return [f"{where.dir_of(k)}.orch-restore-{stamp}" for k in DIR_KINDS]


def stage_script(
    where: OnNode, archive: str, sha256: str | None, stamp: str, fetch: bool = False
) -> str:
    """(`fetch`: download the archive to its path first, and remove it on exit.) Check
    the archive's sum, then unpack each dir beside the current one (same filesystem:
    the swap is a rename), with the current dir's owner and mode; where there is no
    current dir (a node the profile moves to), the gateway's owner and 0700."""
    a = shlex.quote(HOST_ROOT + archive)
    check = (
        f"echo {shlex.quote(sha256)}'  '{a} | sha256sum -c --status"
        if sha256
        else f"(cd $(dirname {a}) && sha256sum -c --status $(basename {a}).sha256)"
    )
    steps = ["set -eu"]
    if fetch:
        steps += [
            f"trap 'rm -f {a}' EXIT",
            "umask 077",
            f"mkdir -p $(dirname {a})",
            transfer("get", archive),
        ]
    steps += [
        f"[ -f {a} ] || {{ echo 'no such archive on this node' >&2; exit 3; }}",
        f"{check} || {{ echo 'the archive does not match its sha256' >&2; exit 4; }}",
    ]
    owner = shlex.quote(where.spec.user)
    for kind in DIR_KINDS:
        d = shlex.quote(HOST_ROOT + where.dir_of(kind))
        s = shlex.quote(f"{HOST_ROOT}{where.dir_of(kind)}.orch-restore-{stamp}")
        steps += [
            f"mkdir -p $(dirname {d})",
            f"mkdir {s}",
            f"tar -xzf {a} -C {s} --numeric-owner --same-owner --strip-components=1 {kind}",
            f"if [ -d {d} ]; then chown --reference={d} {s}; chmod --reference={d} {s};"
            f" else chown {owner} {s}; chmod 0700 {s}; fi",
        ]
    return "; ".join(steps)


def swap_script(where: OnNode, stamp: str) -> str:
    """Each staged dir into place; a current one moves aside first (and the job
    says "replaced")."""
    steps = ["set -eu"]
    for kind in DIR_KINDS:
        d = HOST_ROOT + where.dir_of(kind)
        steps.append(
            f"if [ -e {shlex.quote(d)} ]; then mv {shlex.quote(d)}"
            f" {shlex.quote(d + '.orch-old-' + stamp)}; echo replaced; fi;"
            f" mv {shlex.quote(d + '.orch-restore-' + stamp)} {shlex.quote(d)}"
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


def _stop(project: Project, where: OnNode, say: Any) -> str | None:
    """Stop the gateway through the swarm's Backend (scaled to 0, its task ended); what
    `_start` needs, None when it has no service or it was at 0 already."""
    if where.service is None:
        return None
    if replicas_of(docker_http.get(f"/services/{where.service['ID']}")) > 0:  # as it is now
        say(f"stopping the gateway on {where.node.hostname}")
    return SWARM.stop(project, where.spec.profile)


def _start(project: Project, where: OnNode, timeout: float, say: Any) -> float | None:
    """Start the service (back) through the swarm's Backend, whether `_stop` stopped it
    or it was at 0 already, and wait for /readyz on its node; the seconds it took
    (None: the profile has no service)."""
    if where.service is None:
        return None
    say(f"starting the gateway on {where.node.hostname}; waiting for /readyz")
    began = time.monotonic()
    SWARM.start(project, where.spec.profile, where.service["ID"], timeout)
    return round(time.monotonic() - began, 3)


def _job(
    where: OnNode,
    script: str,
    with_sources: bool = False,
    memory: int = JOB_MEMORY,
    secrets: dict[str, bytes] | None = None,
) -> Job:
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
        memory=memory,
        secrets=secrets or {},
    )


def _why(result: JobResult) -> str:
    tail = result.output.strip().splitlines()[-3:]
    return "; ".join([f"{result.state}: {result.error}".strip(": "), *tail])


def _say(progress: Progress | None, name: str) -> Any:
    return (lambda m: progress(name, m)) if progress else (lambda _m: None)
