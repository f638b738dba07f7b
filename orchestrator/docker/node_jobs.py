"""One-shot tasks pinned to one swarm node: how orch does work on a node it has no
other way to reach (no SSH, no shared filesystem assumed).

A job is a swarm service with one replica, constrained to `node.hostname==NODE`,
restart condition `none` (its task runs once), no healthcheck (the image's would
hold the task in "starting"); orch waits for the task to end, reads its state,
error (and output, when asked), and removes the service. Not Swarm's
`replicated-job` mode: removing a job service there leaves its tasks in the store
and their containers on the node, a running one still running (found on 20.10);
removing a replicated service removes both. Its labels carry
the fleet's project, so a job left by a killed orch is found like the rest of the
fleet's objects.

Uses: does a node get an image (the task must pull it and start it), and making a
profile's dirs on the node that runs it (backends/swarm_placement.py).

A job's `secrets` (file name -> bytes, e.g. a presigned S3 URL) go to the node as
swarm secrets made for that one job: mounted at /run/secrets/NAME (tmpfs, mode 0400,
root's), never in the service spec, its labels, `docker inspect` or the job's
command line, and removed with the job.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from orchestrator.docker import api as docker_http
from orchestrator.errors import EngineRefused, NotFound

JOB_LABEL = "orch.job"
JOB_TIMEOUT_S = 300.0
POLL_S = 0.2
TERMINAL = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
JOB_MEMORY = 64 * 1024 * 1024
JOB_STOP_GRACE_NS = 2_000_000_000  # a job removed while it runs: a stray one
SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str
    read_only: bool = False


@dataclass
class Job:
    """What to run on which node; `labels` mark it as the fleet's."""

    node: str
    image: str
    command: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[BindMount] = field(default_factory=list)
    user: str | None = None
    memory: int = JOB_MEMORY
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class JobResult:
    node: str
    state: str  # complete, failed, rejected, ... or "timeout"
    error: str
    seconds: float
    output: str = ""  # the job's stdout, when asked for

    @property
    def ok(self) -> bool:
        return self.state == "complete"


def job_spec(job: Job, name: str, secret_ids: dict[str, str] | None = None) -> dict[str, Any]:
    """The ServiceSpec of a one-task job pinned to `job.node`; `secret_ids`: file name
    -> ID of the swarm secret made for it (the spec names the ID, never the data)."""
    labels = {**job.labels, JOB_LABEL: "true"}
    container: dict[str, Any] = {
        "Image": job.image,
        # Command replaces the image's entrypoint: the job runs just this.
        "Command": list(job.command),
        "Labels": labels,
        "Healthcheck": {"Test": ["NONE"]},
        "StopGracePeriod": JOB_STOP_GRACE_NS,
        "Mounts": [
            {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
            for m in job.mounts
        ],
    }
    if job.user:
        container["User"] = job.user
    if secret_ids:
        container["Secrets"] = [
            {
                "SecretID": sid,
                "SecretName": f"{name}-{file}",
                "File": {"Name": file, "UID": "0", "GID": "0", "Mode": 0o400},
            }
            for file, sid in secret_ids.items()
        ]
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Placement": {"Constraints": [f"node.hostname=={job.node}"]},
            "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
            "Resources": {"Limits": {"MemoryBytes": job.memory}},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
    }


def start_job(job: Job, prefix: str = "orch-job") -> str:
    """Create the job's service (a job with secrets: `run_job`); its ID."""
    assert not job.secrets, "a job with secrets runs through run_job, which removes them"
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return docker_http.request("POST", "/services/create", body=job_spec(job, name))["ID"]


def wait_job(
    service_id: str, node: str, timeout: float = JOB_TIMEOUT_S, capture: bool = False
) -> JobResult:
    """Wait until the job's task ended (or `timeout`), then remove the service;
    `capture`: with what it printed on stdout (read through the manager, which asks
    the node's engine)."""
    started = time.monotonic()
    try:
        while True:
            task = _task_of(service_id)
            status = (task or {}).get("Status") or {}
            state = status.get("State", "")
            if state in TERMINAL:
                error = status.get("Err") or ("" if state == "complete" else status.get("Message"))
                output = job_output(service_id) if capture else ""
                return JobResult(node, state, error or "", time.monotonic() - started, output)
            if time.monotonic() - started > timeout:
                seen = f"{state} ({status.get('Message', '')})" if task else "not scheduled"
                why = f"no result after {timeout:.0f} s; its task is {seen}"
                return JobResult(node, "timeout", why, time.monotonic() - started)
            time.sleep(POLL_S)
    finally:
        remove_job(service_id)


def run_jobs(jobs: list[Job], timeout: float = JOB_TIMEOUT_S) -> list[JobResult]:
    """Start every job, then wait for each: nodes work at the same time."""
    ids = [start_job(job) for job in jobs]
    return [wait_job(sid, job.node, timeout) for sid, job in zip(ids, jobs, strict=True)]


def run_job(job: Job, timeout: float = JOB_TIMEOUT_S, capture: bool = False) -> JobResult:
    """Run one job and wait for it; its secrets exist only while it does."""
    if not job.secrets:
        return wait_job(start_job(job), job.node, timeout, capture)
    name = f"orch-job-{uuid.uuid4().hex[:8]}"
    ids: dict[str, str] = {}
    try:
        for file, data in job.secrets.items():
            ids[file] = create_secret(f"{name}-{file}", data, {**job.labels, JOB_LABEL: "true"})
        service = docker_http.request("POST", "/services/create", body=job_spec(job, name, ids))
        return wait_job(service["ID"], job.node, timeout, capture)
    finally:
        for sid in ids.values():
            _remove_secret(sid)


def create_secret(name: str, data: bytes, labels: dict[str, str]) -> str:
    body = {"Name": name, "Labels": labels, "Data": base64.b64encode(data).decode()}
    return docker_http.request("POST", "/secrets/create", body=body)["ID"]


def _remove_secret(secret_id: str) -> None:
    """The job's service is gone; Swarm may still count its task for a moment."""
    deadline = time.monotonic() + 10
    while True:
        try:
            docker_http.remove_secret(secret_id)
            return
        except NotFound:
            return
        except EngineRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


def job_output(service_id: str) -> str:
    """Everything the job's task wrote on stdout and stderr."""
    from orchestrator.docker.containers import service_logs

    chunks: list[bytes] = []
    with contextlib.suppress(NotFound, EngineRefused):
        service_logs(service_id, 10_000, False, chunks.append)
    return b"".join(chunks).decode(errors="replace")


def remove_job(service_id: str) -> None:
    with contextlib.suppress(NotFound):
        docker_http.request("DELETE", f"/services/{service_id}")


def _task_of(service_id: str) -> dict[str, Any] | None:
    import json

    try:
        tasks = docker_http.get("/tasks", {"filters": json.dumps({"service": [service_id]})})
    except EngineRefused:
        return None
    return max(tasks or [], key=lambda t: t.get("CreatedAt", ""), default=None)
