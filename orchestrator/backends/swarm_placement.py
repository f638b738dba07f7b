"""`up --engine swarm` of a fleet placed on swarm nodes (`node:` of a profile).

Each step is a small function of its own, in the order `up_placed` runs them, so
they can move onto the Backend interface as they are:

1. `placement_of`: each profile's node (its `node:`, else the manager orch talks
   to), checked against the live node list by the same `check_fleet` as
   `orch check` (ports per node, unknown nodes, rescues away from their target);
2. `pin_images`: with `--registry HOST:PORT`, each image is pushed there and the
   stack runs it by digest; `require_image_on` then proves every node that runs a
   profile gets its image, and names each node that cannot;
3. `make_node_dirs`: the dirs (and a missing openclaw.json) made on the node that
   runs the profile, by a one-shot task pinned to it (docker/node_jobs.py): no
   SSH, no shared filesystem assumed. Only what is missing is made, with the
   gateway's uid:gid and 0700, as `orch setup` does here; nothing existing is
   changed;
4. the stack file of export/stack_placement.py (what `orch export stack` prints for
   a placed fleet): each service constrained to `node.hostname==NODE`, its image
   pinned; ports in host mode (no routing mesh needed), the token a swarm secret
   read from the 0600 file on the manager (never in the file nor `docker inspect`);
5. deploy with `docker stack deploy` (backends/swarm.py's `deploy`), then
   `wait_placed`: each profile's task running on its node and /readyz answering
   on that node's address.
"""

from __future__ import annotations

import base64
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Outcome, Progress, UpResult, seconds_since
from orchestrator.backends.project import Project
from orchestrator.core.check import check_fleet, node_down_problems, problems_for
from orchestrator.core.model import Fleet
from orchestrator.core.placement import SwarmNode, manager_of, node_of
from orchestrator.core.plan import Action, Kind
from orchestrator.core.spec import LABEL_HASH, LABEL_HOME, LABEL_PROJECT, ContainerSpec
from orchestrator.docker.node_jobs import BindMount, Job, run_jobs
from orchestrator.docker.registry import PinnedImage, push_image, require_image_on
from orchestrator.errors import CheckFailed, EngineRefused, NotReady, UsageError
from orchestrator.export.stack import TOKEN_ROLE, service_name
from orchestrator.export.stack_placement import placed_text

HOST_ROOT = "/host"
POLL_S = 0.5


@dataclass(frozen=True)
class Placed:
    """A spec and the node it runs on."""

    spec: ContainerSpec
    node: SwarmNode


def is_placed(fleet: Fleet, names: list[str] | None) -> bool:
    """Whether `up` takes this path: a selected profile names its node."""
    return any(p.node for p in fleet.select(names))


def placement_of(
    fleet: Fleet, home: Path, specs: list[ContainerSpec], nodes: list[SwarmNode]
) -> list[Placed]:
    """Each spec with its node; refused as `orch check` would with the live nodes,
    and when a node cannot run a task now (down, drained, paused)."""
    problems = problems_for(check_fleet(fleet, home, nodes=nodes), [s.profile for s in specs])
    by_name = {n.hostname: n for n in nodes}
    manager = manager_of(nodes)
    placed = []
    for spec in specs:
        node = by_name.get(node_of(fleet.profiles[spec.profile], manager) or "")
        if node is not None:  # else check_fleet named it (node-unknown)
            placed.append(Placed(spec, node))
    problems += node_down_problems({p.spec.profile: p.node for p in placed})
    if problems:
        raise CheckFailed(
            f"{len(problems)} problem(s) stop the deploy to the swarm; nothing was changed",
            problems,
            hint=problems[0].hint,
        )
    return placed


def pin_images(placed: list[Placed], registry: str | None) -> dict[str, PinnedImage]:
    """Push each image to `registry` once; image -> where the stack runs it from."""
    if registry is None:
        return {}
    return {image: push_image(image, registry) for image in {p.spec.image for p in placed}}


def image_of(spec: ContainerSpec, pinned: dict[str, PinnedImage]) -> str:
    return pinned[spec.image].reference if spec.image in pinned else spec.image


def require_images(placed: list[Placed], pinned: dict[str, PinnedImage], labels: dict) -> None:
    """Each node gets each image it runs (a job per node and image), or an error
    names the nodes that cannot."""
    wanted: dict[str, list[str]] = {}
    for p in placed:
        wanted.setdefault(image_of(p.spec, pinned), []).append(p.node.hostname)
    for reference, hostnames in wanted.items():
        require_image_on(reference, hostnames, labels)


def dirs_script(spec: ContainerSpec, config: bytes) -> str:
    """The shell of the dirs job: make each missing dir of the spec under the node's
    root (mounted at HOST_ROOT) with the gateway's owner and 0700, and openclaw.json
    when it is missing. Anything that exists is left as it is."""
    owner = spec.user
    steps = []
    for mount in spec.mounts:
        if mount.role == TOKEN_ROLE or mount.role.startswith("rescue:"):
            continue  # the token is a secret; a rescued dir is its own profile's job
        path = shlex.quote(HOST_ROOT + mount.source)
        steps.append(
            f"[ -d {path} ] || {{ mkdir -p {path} && chown {owner} {path} && chmod 0700 {path}; }}"
        )
        if mount.role == "config":
            cfg = shlex.quote(f"{HOST_ROOT}{mount.source}/openclaw.json")
            data = base64.b64encode(config).decode()
            steps.append(
                f"[ -e {cfg} ] || {{ printf %s {data} | base64 -d > {cfg}.orch-tmp"
                f" && chown {owner} {cfg}.orch-tmp && chmod 0600 {cfg}.orch-tmp"
                f" && mv {cfg}.orch-tmp {cfg}; }}"
            )
    return " && ".join(steps) or "true"


def make_node_dirs(
    placed: list[Placed], fleet: Fleet, home: Path, pinned: dict[str, PinnedImage]
) -> None:
    """One job per profile on its node (all at once); an error names each node that
    could not make them."""
    jobs = [_dirs_job(p, fleet, home, pinned) for p in placed]
    failed = [r for r in run_jobs(jobs) if not r.ok]
    if failed:
        raise EngineRefused(
            "could not make the profiles' dirs on their nodes; nothing was deployed:\n"
            + "\n".join(f"  node {r.node}: {r.state}: {r.error}" for r in failed),
            hint="see the node's engine log (journalctl -u docker) for the task's error",
        )


def _dirs_job(p: Placed, fleet: Fleet, home: Path, pinned: dict[str, PinnedImage]) -> Job:
    from orchestrator.core.paths import profile_dirs
    from orchestrator.fleet.openclaw_config import managed_config

    profile = fleet.profiles[p.spec.profile]
    local = profile_dirs(profile, home).config_file
    if local.is_file():
        config = local.read_bytes()
    else:
        import json

        config = (json.dumps(managed_config(profile), indent=2) + "\n").encode()
    return Job(
        node=p.node.hostname,
        image=image_of(p.spec, pinned),
        command=["sh", "-c", dirs_script(p.spec, config)],
        labels=_fleet_labels(p.spec),
        mounts=[BindMount("/", HOST_ROOT)],
        user="0:0",
    )


def _fleet_labels(spec: ContainerSpec) -> dict[str, str]:
    return {k: spec.labels[k] for k in (LABEL_PROJECT, LABEL_HOME) if k in spec.labels}


def node_names(placed: list[Placed]) -> dict[str, str]:
    return {p.spec.profile: p.node.hostname for p in placed}


def images_of(pinned: dict[str, PinnedImage]) -> dict[str, str]:
    return {image: p.reference for image, p in pinned.items()}


def wait_placed(
    placed: Placed,
    stack: str,
    timeout: float,
    say: Progress,
    kind: str,
    old: set[str],
    image: str,
) -> Outcome:
    """Until a task of this spec and `image` (the old task of a re-pinned service has
    the same spec) runs on its node and /readyz answers on the node's address
    (host-mode ports answer there, from every node); a task that failed before this
    deploy (`old`) is not this deploy's failure."""
    from orchestrator.backends.swarm import FAILED_STATES, tasks_of
    from orchestrator.docker.containers import http_status

    spec, name = placed.spec, service_name(stack, placed.spec.profile)
    port = next(b.host_port for b in spec.ports if b.role == "gateway")
    start = time.monotonic()
    say(spec.profile, f"waiting for /readyz on {placed.node.hostname}")
    while True:
        tasks = [t for t in tasks_of(name) if _hash(t) == spec.spec_hash and _image(t) == image]
        states = {(t.get("Status") or {}).get("State") for t in tasks}
        up = bool(states & {"running", "starting"})
        if up and http_status(placed.node.address, port, "/readyz", 1.0) == 200:
            say(spec.profile, f"ready on {placed.node.hostname} in {seconds_since(start)} s")
            return Outcome(spec.profile, kind, name, True, seconds_since(start))
        failed = [
            t
            for t in tasks
            if t["ID"] not in old and (t.get("Status") or {}).get("State") in FAILED_STATES
        ]
        if failed or time.monotonic() - start > timeout:
            why = (
                (failed[0].get("Status") or {}).get("Err", "failed")
                if failed
                else f"not ready after {timeout:.0f} s"
            )
            message = f"{spec.profile}: service {name} on {placed.node.hostname}: {why}"
            return Outcome(spec.profile, kind, name, False, seconds_since(start), message)
        time.sleep(POLL_S)


def node_for(project: Project, name: str) -> SwarmNode:
    """The live node the profile runs on (its `node:`, else the manager)."""
    from orchestrator.docker.swarm_nodes import node_named, require_nodes

    nodes = require_nodes()
    hostname = node_of(project.fleet.get(name), manager_of(nodes)) or ""
    node = node_named(nodes, hostname)
    if node is None:
        raise UsageError(
            f"{name} is placed on node {hostname}, which this swarm does not have",
            hint="`docker node ls` lists the nodes; `orch check` says what else is off",
        )
    return node


def start_placed(
    project: Project,
    name: str,
    service_id: str,
    timeout: float,
    node: SwarmNode | None = None,
    say: Progress | None = None,
) -> None:
    """Scale the profile's service (back) to 1 and wait until its task runs on its node
    (`node`, else looked up) and /readyz answers there (Swarm.start)."""
    from orchestrator.backends.swarm import tasks_of
    from orchestrator.docker import api as docker_http

    placed = Placed(project.spec(name), node or node_for(project, name))
    service = docker_http.get(f"/services/{service_id}")
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    old = {t["ID"] for t in tasks_of(service_id)}
    docker_http.scale_service(service_id, 1)
    outcome = wait_placed(
        placed, project.project, timeout, say or (lambda _p, _m: None), "start", old, image
    )
    if not outcome.ready:
        raise NotReady(outcome.error or f"{name} not ready")


def moved(
    actions: list[Action], placed: list[Placed], services: list[dict[str, Any]]
) -> list[Action]:
    """A service pinned to another node than its profile names now (the profile was
    moved: `orch restore --node`, or `node:` edited) is recreated there: its spec hash
    does not name the node, its placement constraint does."""
    from orchestrator.backends.swarm import _by_profile

    current, wanted = _by_profile(services), node_names(placed)
    out = []
    for action in actions:
        service = current.get(action.profile)
        node = wanted.get(action.profile)
        if action.kind == Kind.NOOP and service is not None and node is not None:
            task = service["Spec"].get("TaskTemplate") or {}
            constraints = (task.get("Placement") or {}).get("Constraints") or []
            if f"node.hostname=={node}" not in constraints:
                pinned = ", ".join(constraints) or "no node"
                reason = f"moved to node {node} (the service is pinned to {pinned})"
                action = Action(Kind.RECREATE, action.profile, reason, action.spec)
        out.append(action)
    return out


def _task_ids(stack: str, profile: str) -> set[str]:
    from orchestrator.backends.swarm import tasks_of

    try:
        return {t["ID"] for t in tasks_of(service_name(stack, profile))}
    except EngineRefused:  # no such service yet
        return set()


def _hash(task: dict[str, Any]) -> str | None:
    labels = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    return labels.get(LABEL_HASH)


def _image(task: dict[str, Any]) -> str | None:
    return ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image")


def up_placed(
    project: Project,
    names: list[str] | None = None,
    registry: str | None = None,
    dry_run: bool = False,
    timeout: float = 300.0,
    all_addresses: bool = False,
    progress: Progress | None = None,
) -> UpResult:
    """Steps 1-5 of the module doc, under the fleet's lock; nothing is deployed while
    a check, an image or a node's dirs fail."""
    from orchestrator.backends.swarm import (
        deploy,
        docker_cli,
        network_problems,
        plan_stack,
        require_manager,
        require_own_stack,
        stack_services,
    )
    from orchestrator.docker.swarm_nodes import require_nodes
    from orchestrator.export.stack import stack_specs
    from orchestrator.fleet.store import locked

    home = project.home
    say = progress or (lambda _p, _m: None)
    with locked(home):
        fleet = project.fleet
        stack = fleet.project
        require_manager()
        specs = stack_specs(fleet, home, names, all_addresses)
        nodes = require_nodes()
        placed = placement_of(fleet, home, specs, nodes)
        services = stack_services(stack)
        require_own_stack(stack, fleet.project, services, home)
        problems = network_problems(specs, stack)
        if problems:
            raise CheckFailed("the swarm has networks in the way; nothing was changed", problems)
        actions = moved(plan_stack(specs, services), placed, services)
        if dry_run:
            return UpResult(actions, dry_run=True)
        changing = {a.profile for a in actions if a.kind != Kind.NOOP}
        pinned = pin_images(placed, registry)
        # What gets a new task: the changed profiles, or all when images are pinned.
        moving = placed if pinned else [p for p in placed if p.spec.profile in changing]
        require_images(moving, pinned, _fleet_labels(specs[0]))
        make_node_dirs(moving, fleet, home, pinned)
        before = {p.spec.profile: _task_ids(stack, p.spec.profile) for p in placed}
        if changing or pinned:  # a pinned digest may be new even when the spec is not
            manager = manager_of(nodes) or "?"
            text = placed_text(specs, node_names(placed), stack, manager, images_of(pinned))
            deploy(docker_cli(), stack, text)
        kinds = {a.profile: a.kind for a in actions}
        outcomes = [
            wait_placed(
                p,
                stack,
                timeout,
                say,
                kinds[p.spec.profile],
                before[p.spec.profile],
                image_of(p.spec, pinned),
            )
            for p in placed
        ]
        failed = [o for o in outcomes if o.error]
        if failed:
            raise NotReady(
                "\n\n".join(o.error or "" for o in failed),
                hint="`orch status --engine swarm` shows each task, its node and its error",
            )
        return UpResult(actions, outcomes)
