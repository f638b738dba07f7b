"""Docker Swarm: the engine for fleets that outgrow one host.

`orch up --engine swarm` checks the fleet and the swarm (a manager, node labels
for placement, network names, ports of other services and of this host) and only
then deploys the stack file of `orch export stack` (compose.py) as the stack
named like the fleet's project; `orch down --engine swarm` and `orch status
--engine swarm` work on that stack's services, found by label.

Why the docker CLI deploys (docker/stack.py; not the SDK's services API): the stack file is the
one translation of a spec for Swarm. Deploying it with `docker stack deploy`
means what orch runs is byte for byte what `orch export stack` prints and what a
user can deploy by hand; a second translation into ServiceSpecs could drift from
it. Removal needs no translation (services, networks and secrets are found by
label), so it goes through the API and waits for the tasks to stop gracefully.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import (
    Backend,
    Outcome,
    PortState,
    Progress,
    UpOptions,
    UpResult,
    Write,
    seconds_since,
)
from orchestrator.backends.project import Project
from orchestrator.core.check import node_down_problems
from orchestrator.core.observed import Snapshot, live_problems, owned_by
from orchestrator.core.placement import SwarmNode
from orchestrator.core.plan import Action, Kind
from orchestrator.core.problem import Problem
from orchestrator.core.spec import (
    LABEL_HASH,
    LABEL_HOME,
    LABEL_PROFILE,
    LABEL_PROJECT,
    ContainerSpec,
)
from orchestrator.docker import api as docker_http
from orchestrator.docker.containers import (
    http_status,
    log_tail,
    require_images,
    service_logs,
    tcp_answers,
)
from orchestrator.docker.node_jobs import JOB_LABEL
from orchestrator.docker.snapshot import SERVICE_KIND, SwarmInfo, _listed, swarm_info, take_snapshot
from orchestrator.docker.stack import deploy, docker_cli
from orchestrator.docker.swarm_nodes import node_from_api, require_nodes
from orchestrator.errors import (
    CheckFailed,
    EngineRefused,
    NotFound,
    NotReady,
    OrchError,
    StackTaken,
    SwarmUnavailable,
    UsageError,
)
from orchestrator.export.stack import (
    STACK_LABEL,
    dirs_held,
    placement_label,
    service_name,
    stack_specs,
    stack_text,
)
from orchestrator.fleet.store import locked

SERVICE_ID_LABEL = "com.docker.swarm.service.id"


# Task states after which a task never runs again (docker/api/types/swarm TaskState).
TERMINAL_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
FAILED_STATES = frozenset({"failed", "rejected"})
UP_STATES = frozenset({"starting", "running"})
DEPLOY_TIMEOUT_S = 120.0
REMOVE_TIMEOUT_S = 90.0
POLL_S = 0.2
STOP_WAIT_S = 120.0
LOG_TAIL = 40


def require_manager() -> SwarmInfo:
    info = swarm_info()
    if info.state != "active":
        raise SwarmUnavailable(
            f"this Docker engine is not part of a swarm (swarm state: {info.state});"
            " nothing was changed",
            hint="start one with `docker swarm init` (or join one), or leave out --engine swarm",
        )
    if not info.manager:
        raise SwarmUnavailable(
            "this Docker engine is a swarm worker; stacks are deployed and listed from a"
            " manager; nothing was changed",
            hint="run orch on a manager node",
        )
    return info


def stack_services(stack: str) -> list[dict[str, Any]]:
    return _listed("/services", {"label": [f"{STACK_LABEL}={stack}"]})


def require_own_stack(stack: str, project: str, services: list[dict[str, Any]], home: Path) -> None:
    """Refuse a stack name used by services orch did not create for this fleet
    (this project AND this home: another fleet's stack is never taken over)."""
    foreign = []
    homes = set()
    for service in services:
        labels = service["Spec"].get("Labels") or {}
        if not owned_by(labels, project, home):
            foreign.append(service["Spec"]["Name"])
            if labels.get(LABEL_HOME):
                homes.add(labels[LABEL_HOME])
    if foreign:
        whose = f" (the fleet in {', '.join(sorted(homes))})" if homes else ""
        raise StackTaken(
            f"stack '{stack}' is taken by something orch did not create for this fleet"
            f" (project '{project}' in {home}): service(s) {', '.join(sorted(foreign))}"
            f"{whose}; nothing was changed",
            hint=(
                f"remove that stack (docker stack rm {stack}) if it is yours, or give this"
                " fleet another `project:` in fleet.yaml"
            ),
        )


def _by_profile(services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        (s["Spec"].get("Labels") or {}).get(LABEL_PROFILE, ""): s
        for s in services
        if (s["Spec"].get("Labels") or {}).get(LABEL_PROFILE)
    }


def placement(
    specs: list[ContainerSpec], nodes: list[dict[str, Any]]
) -> tuple[list[Problem], dict[str, dict[str, Any]]]:
    """Each profile's node, found by the labels of the dirs it mounts.

    A profile needs exactly one node per label, one node for all its labels (a
    rescue and the profile it repairs), and that node ready and active.
    """
    problems: list[Problem] = []
    node_of: dict[str, dict[str, Any]] = {}
    for spec in specs:
        chosen: dict[str, dict[str, Any]] = {}
        for name in dirs_held(spec):
            label = placement_label(name)
            holders = [n for n in nodes if (n["Spec"].get("Labels") or {}).get(label) == "true"]
            if len(holders) == 1:
                chosen[name] = holders[0]
                continue
            problems.append(_label_problem(spec, name, label, holders))
        hosts = {n["ID"]: n for n in chosen.values()}
        if len(hosts) > 1:
            where = ", ".join(f"{name} on {_hostname(n)}" for name, n in chosen.items())
            problems.append(
                Problem(
                    code="swarm-placement",
                    message=(
                        f"{spec.profile} mounts dirs that are on different nodes ({where});"
                        " one container cannot run on two nodes"
                    ),
                    owners=(spec.profile,),
                    hint="keep a rescue profile's dirs on the node of the profile it repairs",
                )
            )
        elif len(hosts) == 1 and len(chosen) == len(dirs_held(spec)):
            node_of[spec.profile] = next(iter(hosts.values()))
    down = node_down_problems({p: node_from_api(n) for p, n in node_of.items()})
    for problem in down:
        node_of.pop(problem.owners[0])
    return problems + down, node_of


def _label_problem(
    spec: ContainerSpec, name: str, label: str, holders: list[dict[str, Any]]
) -> Problem:
    if not holders:
        message = (
            f"no swarm node is labelled {label}=true, so Swarm cannot know which node"
            f" holds {name}'s dirs (needed by {spec.profile})"
        )
        hint = f"on a manager: docker node update --label-add {label}=true NODE_WITH_THE_DIRS"
    else:
        names = ", ".join(_hostname(n) for n in holders)
        message = (
            f"{len(holders)} nodes are labelled {label}=true ({names}): {name}'s state"
            " must live on one node"
        )
        hint = f"docker node update --label-rm {label} NODE on all but one of them"
    return Problem(code="swarm-placement", message=message, owners=(spec.profile,), hint=hint)


def _hostname(node: dict[str, Any]) -> str:
    return (node.get("Description") or {}).get("Hostname") or node["ID"][:12]


def local_dir_problems(specs: list[ContainerSpec]) -> list[Problem]:
    """Dirs and token files that a profile placed on this node needs and that are missing.

    Only this node can be looked at: on other nodes a missing dir shows up as a
    rejected task when orch waits for it."""
    problems = []
    for spec in specs:
        for mount in spec.mounts:
            if not Path(mount.source).exists():
                problems.append(
                    Problem(
                        code="swarm-dirs",
                        message=(
                            f"{spec.profile} {mount.role} {mount.source} does not exist on this"
                            " node, which is labelled to hold it"
                        ),
                        owners=(spec.profile,),
                        hint=f"run `orch setup {spec.profile}` here, or move the node label",
                        paths=(mount.source,),
                    )
                )
    return problems


def network_problems(specs: list[ContainerSpec], stack: str) -> list[Problem]:
    """A profile's network name already used outside the stack (a bridge of `orch up`
    or Compose on this host): the deploy would fail half-way."""
    wanted = {s.network: s for s in specs}
    problems = []
    for net in _listed("/networks"):
        spec = wanted.get(net.get("Name", ""))
        if spec is None or (net.get("Labels") or {}).get(STACK_LABEL) == stack:
            continue
        problems.append(
            Problem(
                code="network-taken",
                message=(
                    f"network {spec.network} already exists ({net.get('Driver')},"
                    f" {net.get('Scope')} scope) and is not part of stack {stack}"
                ),
                owners=(spec.profile,),
                hint=(
                    "hand the profile over first: `orch down` (single host) or"
                    " `docker compose down` (Compose) removes that network"
                ),
            )
        )
    return problems


def port_problems(
    specs: list[ContainerSpec], stack: str, node_of: dict[str, dict[str, Any]], local_node: str
) -> list[Problem]:
    """Ports the stack's services would publish that something else already holds.

    Every address counts, because that is what Swarm publishes on. For a profile on
    this node: host sockets, containers (also those of `orch up` and Compose) and
    other services; for one on another node only other services (orch cannot see
    that node's sockets and containers)."""

    if not specs:
        return []
    snap = take_snapshot(specs[0].labels[LABEL_PROJECT], Path(specs[0].labels[LABEL_HOME]))
    seen = [*snap.others, *snap.ours.values()]
    foreign = [c for c in seen if c.labels.get(STACK_LABEL) != stack]
    ours = {
        c.labels[LABEL_PROFILE]: c
        for c in seen
        if c.kind != SERVICE_KIND
        and c.state == "running"
        and c.labels.get(STACK_LABEL) == stack
        and c.labels.get(LABEL_PROFILE)
    }
    wide = [_on_all_addresses(s) for s in specs]
    here = [s for s in wide if node_of[s.profile]["ID"] == local_node]
    there = [s for s in wide if node_of[s.profile]["ID"] != local_node]
    problems = live_problems(here, Snapshot(ours=ours, others=foreign, listeners=snap.listeners))
    services = [c for c in foreign if c.kind == SERVICE_KIND]
    return problems + live_problems(there, Snapshot(others=services))


def _on_all_addresses(spec: ContainerSpec) -> ContainerSpec:
    ports = tuple(b.model_copy(update={"host_ip": "0.0.0.0"}) for b in spec.ports)
    return spec.model_copy(update={"ports": ports})


def plan_stack(specs: list[ContainerSpec], services: list[dict[str, Any]]) -> list[Action]:
    """create (no service), recreate (spec hash changed: Swarm replaces the task), start
    (scaled to 0 and left there) or noop."""
    current = _by_profile(services)
    actions = []
    for spec in specs:
        service = current.get(spec.profile)
        if service is None:
            actions.append(Action(Kind.CREATE, spec.profile, "no service yet", spec))
            continue
        old = (service["Spec"].get("Labels") or {}).get(LABEL_HASH)
        mode = (service["Spec"].get("Mode") or {}).get("Replicated") or {}
        if old == spec.spec_hash and mode.get("Replicas", 1) == 0:
            # A backup or restore on its node scales it to 0 for the copy; one that was
            # killed half-way leaves it there. The stack file says 1 replica.
            reason = "scaled to 0 (a backup or restore was interrupted); deployed again"
            actions.append(Action(Kind.START, spec.profile, reason, spec))
        elif old != spec.spec_hash:
            reason = (
                f"spec changed ({old or 'no hash'} -> {spec.spec_hash}); Swarm replaces the task"
            )
            actions.append(Action(Kind.RECREATE, spec.profile, reason, spec))
        else:
            actions.append(Action(Kind.NOOP, spec.profile, "service up to date", spec))
    return actions


def up(project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
    """Check everything, deploy the changed profiles as one stack, wait for /readyz.

    Nothing is deployed while a check fails. A stack that did not exist before and
    does not get ready is removed again (unless keep_failed); an update that does
    not get ready is rolled back by Swarm (update_config.failure_action).
    """
    from orchestrator.backends import swarm_placement

    home, timeout, keep_failed = project.home, options.timeout, options.keep_failed
    if swarm_placement.is_placed(project.fleet, names):  # profiles pinned to nodes
        return swarm_placement.up_placed(
            project, names, options.registry, options.dry_run, timeout, options.all_addresses,
            options.progress,
        )  # fmt: skip
    say = options.progress or (lambda _p, _m: None)
    with locked(home):
        fleet = project.fleet
        stack = fleet.project
        specs = stack_specs(fleet, home, names, options.all_addresses)
        info = require_manager()
        docker = docker_cli()
        services = stack_services(stack)
        require_own_stack(stack, fleet.project, services, home)
        problems, node_of = placement(specs, _listed("/nodes"))
        problems += network_problems(specs, stack)
        actions = plan_stack(specs, services)
        changing = [a.spec for a in actions if a.kind != Kind.NOOP and a.spec]
        placed = [s for s in changing if s.profile in node_of]
        local = [s for s in placed if node_of[s.profile]["ID"] == info.node_id]
        problems += local_dir_problems(local)
        problems += port_problems(placed, stack, node_of, info.node_id)
        if problems:
            raise CheckFailed(
                f"{len(problems)} problem(s) stop the deploy to the swarm; nothing was changed",
                problems,
                hint=problems[0].hint,
            )
        if options.dry_run:
            return UpResult(actions, dry_run=True)
        # No registry to pull from: every node needs its own copy (--resolve-image never).
        require_images(
            local,
            where="this node; nothing was deployed",
            hint="build it with `orch images build` on every node that runs a profile",
        )
        current = _by_profile(services)
        before = {p: _task_ids(current[p]["ID"]) if p in current else set() for p in node_of}
        if changing:
            for spec in changing:
                say(spec.profile, f"deploying service {service_name(stack, spec.profile)}")
            try:
                deploy(docker, stack, stack_text(changing, stack))
            except OrchError:
                if not services:
                    _remove(stack, None, say)  # what the CLI created before it failed
                raise
        outcomes = [
            _wait(a, stack, node_of, info.node_id, before[a.profile], timeout, say) for a in actions
        ]
        failed = [o for o in outcomes if o.error]
        if failed:
            if not services and not keep_failed:
                _remove(stack, None, say)
            raise NotReady(
                "\n\n".join(o.error or "" for o in failed),
                hint=(
                    "fix the cause shown above, then run `orch up --engine swarm` again"
                    + ("; the new stack was removed" if not services and not keep_failed else "")
                ),
            )
        return UpResult(actions, outcomes, status=status(project, names))


def fleet_jobs(project: str, home: Path) -> list[dict[str, Any]]:
    """The one-shot job services orch started for this fleet (docker/node_jobs.py)."""
    labels = [JOB_LABEL, f"{LABEL_PROJECT}={project}", f"{LABEL_HOME}={home}"]
    return _listed("/services", {"label": labels})


def tasks_of(service: str) -> list[dict[str, Any]]:
    """Tasks of an existing service (name or ID), the old ones included."""
    return _listed("/tasks", {"service": [service]})


def _service_id(project: Project, name: str) -> str:
    """The ID of the profile's service on the swarm; NotReady when it has none."""
    project.fleet.get(name)  # an unknown profile is a clear error
    try:
        return docker_http.get(f"/services/{service_name(project.project, name)}")["ID"]
    except NotFound:
        raise NotReady(
            f"profile '{name}' has no service on the swarm",
            hint=f"deploy it with `orch up --engine swarm {name}`",
        ) from None


def replicas_of(service: dict[str, Any]) -> int:
    return ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)


def stop_service(service_id: str) -> str | None:
    """Scale a service to 0 and wait (at most STOP_WAIT_S) until its tasks ended: Swarm
    stops the gateway gracefully, within its stop grace period. Its ID, None when it
    was at 0 already."""
    if replicas_of(docker_http.get(f"/services/{service_id}")) == 0:
        return None
    docker_http.scale_service(service_id, 0)
    deadline = time.monotonic() + STOP_WAIT_S
    while any(_state(t) not in TERMINAL_STATES for t in tasks_of(service_id)):
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return service_id


def _task_ids(service: str) -> set[str]:
    return {t["ID"] for t in tasks_of(service)}


def _wait(
    action: Action,
    stack: str,
    node_of: dict[str, dict[str, Any]],
    local_node: str,
    old_tasks: set[str],
    timeout: float,
    say: Progress,
) -> Outcome:
    """Wait until a task of this spec runs (Swarm says running once the healthcheck
    passes) and /readyz answers on its node; fail fast on a failed or rejected task."""

    spec = action.spec
    assert spec is not None
    name = service_name(stack, spec.profile)
    start = time.monotonic()
    if action.kind != Kind.NOOP:
        say(spec.profile, "waiting for /readyz")
    port = next((b.host_port for b in spec.ports if b.role == "gateway"), None)
    while True:
        tasks = [t for t in tasks_of(name) if _task_hash(t) == spec.spec_hash]
        failed = [t for t in tasks if t["ID"] not in old_tasks and _state(t) in FAILED_STATES]
        if failed:
            # The first failure is the cause; later tasks may only fail on its leftovers
            # (its host-mode port not yet released).
            first = min(failed, key=lambda t: t.get("CreatedAt", ""))
            return _not_ready(action, name, start, _task_failure(first))
        # "starting": the container runs, Swarm waits for the healthcheck; /readyz of
        # a task with this hash is the new gateway (stop-first: the old one is gone).
        running = [t for t in tasks if _state(t) in UP_STATES and t["DesiredState"] == "running"]
        if running and port is not None:
            host = node_address(running[0]["NodeID"], local_node, node_of.get(spec.profile))
            if http_status(host, port, "/readyz", 1.0) == 200:
                if action.kind != Kind.NOOP:
                    say(spec.profile, f"ready in {time.monotonic() - start:.1f} s")
                return Outcome(spec.profile, action.kind, name, True, seconds_since(start))
        if time.monotonic() - start > timeout:
            states = ", ".join(f"{t['ID'][:12]} {_state(t)}" for t in tasks) or "no task yet"
            why = f"not ready after {timeout:.0f} s (tasks: {states})"
            return _not_ready(action, name, start, why)
        time.sleep(POLL_S)


def _not_ready(action: Action, service: str, start: float, why: str) -> Outcome:
    message = f"{action.profile}: service {service} {why}"
    return Outcome(action.profile, action.kind, service, False, seconds_since(start), message)


def _task_hash(task: dict[str, Any]) -> str | None:
    container = (task.get("Spec") or {}).get("ContainerSpec") or {}
    return (container.get("Labels") or {}).get(LABEL_HASH)


def _state(task: dict[str, Any]) -> str:
    return (task.get("Status") or {}).get("State", "")


def _task_failure(task: dict[str, Any]) -> str:
    """The task's error and, when its container is on this node, its log tail."""

    status = task.get("Status") or {}
    error = status.get("Err") or status.get("Message")
    why = f"task {task['ID'][:12]} {status.get('State')}: {error}"
    container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
    if container_id:
        tail = log_tail(container_id, LOG_TAIL)
        why += "; last log lines:\n" + "\n".join(f"    {line}" for line in tail.splitlines())
    return why


def node_address(node_id: str, local_node: str, node: dict[str, Any] | None) -> str:
    """Where a host-mode port of a task answers: loopback here, else the node's address."""
    if node_id == local_node:
        return "127.0.0.1"
    if node is None or node["ID"] != node_id:
        node = docker_http.get(f"/nodes/{node_id}")
    return (node.get("Status") or {}).get("Addr") or "127.0.0.1"


def down(
    project: Project, names: list[str] | None = None, progress: Progress | None = None
) -> list[Outcome]:
    """Remove the profiles' services (Swarm stops each task gracefully, within its
    stop_grace_period), then their networks and secrets; dirs and tokens stay. With
    no names, the stack goes whole: services of profiles no longer in the fleet too."""

    home = project.home
    say = progress or (lambda _p, _m: None)
    with locked(home):
        fleet = project.fleet
        wanted = [p.name for p in fleet.select(names)] if names else None
        require_manager()
        stack = fleet.project
        services = stack_services(stack)
        require_own_stack(stack, fleet.project, services, home)
        current = _by_profile(services)
        targets = wanted if wanted is not None else sorted(set(fleet.profiles) | set(current))
        start = time.monotonic()
        _remove(stack, targets if wanted is not None else None, say, home)
        return [
            Outcome(n, "removed", service_name(stack, n), False, seconds_since(start))
            if n in current
            else Outcome(n, "noop", None, False, 0.0)
            for n in targets
        ]


def _remove(
    stack: str, profiles: list[str] | None, say: Progress, home: Path | None = None
) -> None:
    """Remove the stack's services of `profiles` (all when None) and, given the fleet's
    `home`, any one-shot job orch left of this fleet (a killed `up`, backup or restore:
    jobs only run under the fleet's lock, so none of them is still working); wait until
    their tasks stopped, then remove their networks, secrets and configs. Only objects
    labelled as this stack's (or this fleet's jobs: project and home) are touched."""

    def mine(labels: dict[str, str] | None) -> bool:
        return profiles is None or (labels or {}).get(LABEL_PROFILE) in profiles

    services = [s for s in stack_services(stack) if mine(s["Spec"].get("Labels"))]
    if home is not None:
        services += fleet_jobs(stack, home)
    ids = {s["ID"] for s in services}
    for service in services:
        labels = service["Spec"].get("Labels") or {}
        what = "removing a one-shot job left behind" if JOB_LABEL in labels else "removing service"
        say(labels.get(LABEL_PROFILE, "-"), what)
        docker_http.remove_service(service["ID"])
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while any(
        t["ServiceID"] in ids and _state(t) not in TERMINAL_STATES for t in _listed("/tasks")
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    stack_filter = {"label": [f"{STACK_LABEL}={stack}"]}
    for net in _listed("/networks", stack_filter):
        if mine(net.get("Labels")):
            _retry(lambda n=net: docker_http.remove_network(n["Id"]), deadline)
    for secret in _listed("/secrets", stack_filter):
        if mine((secret.get("Spec") or {}).get("Labels")):
            _retry(lambda s=secret: docker_http.remove_secret(s["ID"]), deadline)
    for config in _listed("/configs", stack_filter):
        if mine((config.get("Spec") or {}).get("Labels")):
            _retry(lambda c=config: docker_http.remove_config(c["ID"]), deadline)
    if home is not None:  # a killed job's secret (a presigned URL, expired by now)
        jobs_filter = {"label": [JOB_LABEL, f"{LABEL_PROJECT}={stack}", f"{LABEL_HOME}={home}"]}
        for secret in _listed("/secrets", jobs_filter):
            _retry(lambda s=secret: docker_http.remove_secret(s["ID"]), deadline)
    # Swarm removes the stopped task containers shortly after; wait for those on
    # this node, so that a `down` leaves nothing behind when it returns.
    while time.monotonic() < deadline and any(
        (c.get("Labels") or {}).get(SERVICE_ID_LABEL) in ids
        for c in docker_http.containers({"label": [f"{STACK_LABEL}={stack}"]})
    ):
        time.sleep(POLL_S)


def _retry(remove: Any, deadline: float) -> None:
    """A network or secret stays 'in use' until Swarm has removed the tasks' containers."""
    while True:
        try:
            remove()
            return
        except NotFound:
            return
        except EngineRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


@dataclass
class TaskStatus:
    id: str
    name: str
    node: str
    desired: str
    state: str
    error: str
    since: str


@dataclass
class ServiceStatus:
    """A profile's row in `orch status --engine swarm`: its service, the node it runs
    on (or is pinned to) and that node's state, its current task (state, desired
    state, last error), and its published ports dialled from the manager."""

    profile: str
    service: str | None
    state: str
    replicas: str
    ready: bool
    drift: str | None
    url: str
    tasks: list[TaskStatus]
    node: str | None = None
    node_state: str | None = None  # ready, down, unknown, disconnected; or "drain", "pause"
    desired: str | None = None
    error: str = ""
    ports: list[PortState] = field(default_factory=list)
    ready_reason: str = ""

    @property
    def should_run(self) -> bool:
        """It has a service (orch up deployed it): then not being ready is a failure."""
        return self.service is not None

    def to_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["tasks"] = [t.__dict__ for t in self.tasks]
        data["ports"] = [p.__dict__ for p in self.ports]
        return data


def status(project: Project, names: list[str] | None = None) -> list[ServiceStatus]:
    """Each profile's service: its node and the node's state, its tasks, its ports
    dialled from here, readiness (/readyz on its node) and drift. All probes at once."""
    fleet, home, specs = project.fleet, project.home, project.specs(names)
    require_manager()
    mine = [
        s
        for s in stack_services(fleet.project)
        if owned_by(s["Spec"].get("Labels") or {}, fleet.project, home)
    ]
    current = _by_profile(mine)
    nodes = {n.id: n for n in require_nodes()}
    rows = [
        _status_of(s, fleet.project, current.get(s.profile), nodes, fleet.profiles[s.profile].node)
        for s in specs
    ]
    _probe(rows, specs, nodes)
    return rows


def _status_of(
    spec: ContainerSpec,
    stack: str,
    service: dict[str, Any] | None,
    nodes: dict[str, SwarmNode],
    pinned: str | None,
) -> ServiceStatus:
    """The row as the manager's records tell it; `_probe` then dials its ports."""
    if service is None:
        row = ServiceStatus(spec.profile, None, "absent", "0/0", False, None, spec.url(), [])
        row.node = pinned
        row.ready_reason = f"no service: `orch up --engine swarm {spec.profile}` deploys it"
        return row
    name = service["Spec"]["Name"]
    tasks = sorted(tasks_of(name), key=lambda t: t.get("CreatedAt", ""), reverse=True)
    running = [t for t in tasks if _state(t) == "running" and t["DesiredState"] == "running"]
    desired = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
    wanted = [t for t in tasks if t["DesiredState"] == "running"]
    # The task that matters: the one meant to run now (running, or pending a node).
    task = (running or wanted or tasks or [None])[0]
    old = (service["Spec"].get("Labels") or {}).get(LABEL_HASH)
    drift = (
        None if old == spec.spec_hash else f"service runs spec {old}, fleet wants {spec.spec_hash}"
    )
    rows = [
        TaskStatus(
            id=t["ID"][:12],
            name=f"{name}.{t.get('Slot', '?')}",
            node=nodes[t["NodeID"]].hostname if t.get("NodeID") in nodes else "-",
            desired=t.get("DesiredState", ""),
            state=_state(t),
            error=(t.get("Status") or {}).get("Err", ""),
            since=(t.get("Status") or {}).get("Timestamp", ""),
        )
        for t in tasks
    ]
    node = nodes.get(task.get("NodeID", "")) if task else None
    if node is None and pinned:
        node = next((n for n in nodes.values() if n.hostname == pinned), None)
    row = ServiceStatus(
        spec.profile,
        name,
        _state(task) if task else "no task",
        f"{len(running)}/{desired}",
        False,
        drift,
        spec.url(),
        rows,
        node=node.hostname if node else pinned,
        node_state=_node_state(node),
        desired=task.get("DesiredState") if task else None,
        error=next((r.error for r in rows if r.error), ""),
    )
    if node is not None:
        row.url = f"http://{reach(node)}:{_gateway_port(spec)}"
    return row


def _node_state(node: SwarmNode | None) -> str | None:
    if node is None:
        return None
    return node.state if node.state != "ready" else node.availability.replace("active", "ready")


def _gateway_port(spec: ContainerSpec) -> int:
    return next((b.host_port for b in spec.ports if b.role == "gateway"), spec.base_port)


def reach(node: SwarmNode) -> str:
    """Where orch (on the manager) dials a host-mode port of a task on `node`."""
    return "127.0.0.1" if node.current else node.address


def _probe(rows: list[ServiceStatus], specs: list[ContainerSpec], nodes: dict) -> None:
    """Dial every published port of every deployed profile and ask /readyz of each
    gateway, all at once, on the address of the node its task runs (or ran) on; then
    decide each row's readiness and say why."""
    by_name = {n.hostname: n for n in nodes.values()}
    with ThreadPoolExecutor(max_workers=16) as pool:
        probes = {}
        for row, spec in zip(rows, specs, strict=True):
            node = by_name.get(row.node or "")
            if row.service is None or node is None:
                continue
            host = reach(node)
            ports = [pool.submit(tcp_answers, host, b.host_port) for b in spec.ports]
            ready = pool.submit(http_status, host, _gateway_port(spec), "/readyz", 1.0)
            probes[row.profile] = (host, ports, ready)
        for row, spec in zip(rows, specs, strict=True):
            if row.profile not in probes:
                continue
            host, ports, ready = probes[row.profile]
            row.ports = [
                PortState(b.role, host, _span(b), f.result())
                for b, f in zip(spec.ports, ports, strict=True)
            ]
            _decide(row, ready.result() == 200)


def _span(binding: Any) -> str:
    return (
        str(binding.host_port) if binding.count == 1 else f"{binding.host_port}-{binding.host_end}"
    )


def _decide(row: ServiceStatus, answers: bool) -> None:
    """Ready: its node is ready, its task runs there (Swarm's "starting" is a task
    whose container runs while Swarm waits for the first healthcheck: /readyz decides,
    as `up` decides) and /readyz answers. A node that is down may still have the old
    container answering (a killed engine leaves its containers running): not ready,
    because the swarm no longer manages it."""
    up_task = row.state in UP_STATES and row.desired == "running"
    if row.replicas.endswith("/0"):
        row.ready_reason = (
            "scaled to 0 (a backup or restore on its node was interrupted):"
            f" `orch up --engine swarm {row.profile}` deploys it again"
        )
    elif row.node_state not in (None, "ready"):
        row.ready_reason = (
            f"node {row.node} is {row.node_state}: its task cannot run, and Swarm starts it"
            " on no other node (it is pinned to the node that holds its dirs)"
        )
        if answers:
            row.ready_reason += "; the old container still answers there, unmanaged"
    elif not up_task:
        why = f": {row.error}" if row.error else ""
        row.ready_reason = f"task {row.state} (desired {row.desired}){why}"
    elif not answers:
        row.ready_reason = f"task {row.state} on {row.node}, /readyz does not answer yet"
    else:
        row.ready = True
        row.ready_reason = f"answers /readyz on {row.node}"


class Swarm(Backend):
    """A Docker Swarm: the fleet as one stack, one service per profile."""

    name = "swarm"
    runs_here = False

    def up(self, project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
        return up(project, names, options)

    def down(
        self,
        project: Project,
        names: list[str] | None = None,
        progress: Progress | None = None,
        remove_orphans: bool = False,
    ) -> list[Outcome]:
        return down(project, names, progress)  # a stack goes whole: orphans are removed

    def status(self, project: Project, names: list[str] | None = None) -> list[ServiceStatus]:
        return status(project, names)

    def restart(self, project: Project, name: str, timeout: float, any_state: bool = False) -> None:
        """Scale the service to 0 (Swarm stops its task within its stop grace period)
        and back to 1, then wait for /readyz on its node. A service already at 0 (a
        backup killed half-way) is started too, with or without `any_state`: Swarm has
        no crash back-off to wait out."""
        stopped = self.stop(project, name)
        self.start(project, name, stopped or _service_id(project, name), timeout)

    def stop(self, project: Project, name: str) -> str | None:
        """Scale the profile's service to 0 and wait until its task ended: the
        service's ID, None when it is not deployed or already at 0."""
        try:
            return stop_service(_service_id(project, name))
        except NotReady:
            return None

    def start(self, project: Project, name: str, stopped: str, timeout: float) -> None:
        """Scale the service `stopped` names (back) to 1 and wait until its task runs on
        its node and /readyz answers there."""
        # placement imports this module (tasks_of, ...): the one arrow back is on use
        from orchestrator.backends.swarm_placement import start_placed

        start_placed(project, name, stopped, timeout)

    def logs(self, project: Project, name: str, tail: int, follow: bool, write: Write) -> None:
        project.fleet.get(name)  # an unknown profile is a clear error
        try:
            service_logs(service_name(project.project, name), tail, follow, write)
        except NotFound:
            raise NotReady(
                f"profile '{name}' has no service on the swarm",
                hint=f"deploy it with `orch up --engine swarm {name}`",
            ) from None

    def exec(
        self,
        project: Project,
        name: str,
        command: list[str],
        write: Write,
        env: dict[str, str] | None = None,
        write_err: Write | None = None,
    ) -> int:
        raise UsageError(
            f"orch exec --engine swarm: a task runs on some node of the swarm (profile '{name}')",
            hint="`orch status --engine swarm` names the node; run `docker exec` there",
        )
