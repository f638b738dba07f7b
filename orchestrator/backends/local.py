"""The local engine's backend (`LocalEngine`): up, down, status, restart, logs, exec
on this host's Docker engine, one container per profile.

Each verb takes the command's fleet handle (backends/project.py) and follows the
same pipeline: check the fleet (and the live host), plan against the snapshot of
live containers, and only then touch the engine.
The fleet lock is held throughout, so two `orch up` at once run one after the
other and both see the end state of the first.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from orchestrator.backends.base import (
    Backend,
    Outcome,
    PortState,
    ProfileStatus,
    Progress,
    UpOptions,
    UpResult,
    Write,
    seconds_since,
)
from orchestrator.backends.project import Project
from orchestrator.base.parallel import at_once
from orchestrator.core.exits import exit_meaning, last_error_line, last_exit_code
from orchestrator.core.model import Profile
from orchestrator.core.observed import LiveContainer, Snapshot, cpu_problems, live_problems
from orchestrator.core.paths import profile_dirs
from orchestrator.core.plan import (
    ASIDE_REASON,
    Action,
    Kind,
    looping_restarts,
    plan_down,
    plan_up,
)
from orchestrator.core.ports import Reservation
from orchestrator.core.spec import LABEL_HASH, LABEL_PROFILE, ContainerSpec, gateway_address
from orchestrator.docker import api as docker_http
from orchestrator.docker.containers import (
    Starting,
    _create_and_start,
    _discard,
    _remove_container,
    await_ready,
    engine_cpus,
    exec_in,
    http_status,
    log_tail,
    missing_images,
    require_images,
    starting,
    stream_logs,
    tcp_answers,
    wait_ready,
)
from orchestrator.docker.snapshot import exit_events
from orchestrator.errors import (
    CheckFailed,
    ImageError,
    Interrupted,
    NotFound,
    NotReady,
    OrchError,
    Terminated,
    UsageError,
)
from orchestrator.fleet import registry
from orchestrator.fleet.registry import publish_fleet
from orchestrator.fleet.store import locked, orphan_note

if TYPE_CHECKING:  # annotations only
    from concurrent.futures import Future, ThreadPoolExecutor


class PortMove(NamedTuple):
    """`orch up --port auto`: a profile moved off ports the live host already holds."""

    profile: str
    old_port: int
    new_port: int
    reason: str


def move_taken_ports(project: Project, names: list[str] | None, dry_run: bool) -> list[PortMove]:
    """`orch up --port auto`: for each selected profile whose ports something else on
    the host holds (a process, another container, another fleet's or a test run's
    footprint), the lowest base whose whole footprint avoids the fleet and the host,
    applied as `orch setup NAME --port N --force` does (config follows) unless
    `dry_run`. Profiles that are fine keep their ports, so a CI job can run
    `orch up --port auto` every time. Decided and applied under the fleet and the
    registry lock, so no other fleet picks the same base in between."""
    from orchestrator.core.check import check_fleet, problems_for  # --port auto only
    from orchestrator.fleet.provision import SetupRequest, _auto_port, setup  # --port auto only

    home = project.home
    with locked(home), registry.locked():
        fleet = project.fleet
        snap = project.snapshot(whole_host=True)
        foreign = registry.foreign_reservations(home)
        native = registry.native_reservations(
            skip=[d for p in fleet.profiles.values() for _, d in profile_dirs(p, home).items()]
        )
        moves = []
        for profile in fleet.select(names):
            problems = live_problems([project.spec(profile.name)], snap)
            problems += problems_for(check_fleet(fleet, home, foreign), [profile.name])
            problems = [p for p in problems if p.code in ("port-in-use", "port-foreign")]
            if not problems:
                continue
            host = [*foreign, *native, *_live_taken(snap, profile)]
            new = _auto_port(fleet, profile.name, profile.bind_ip, host)
            moves.append(PortMove(profile.name, profile.port, new, problems[0].message))
            fleet = fleet.with_profile(profile.model_copy(update={"port": new}))
        if not dry_run:
            for move in moves:
                setup(home, SetupRequest(name=move.profile, port=move.new_port), force=True)
            if moves:
                project.reload()  # the fleet file now says the new ports
        return moves


def _live_taken(snap: Snapshot, profile: Profile) -> list[Reservation]:
    """Ports held on the host on addresses that meet the profile's, but by its own container."""
    own = snap.ours.get(profile.name)
    own_ports = {port for _, port, _ in own.ports} if own else set()
    held = [(lst.host_ip, lst.port) for lst in snap.listeners if lst.port not in own_ports]
    for name, container in [*((None, c) for c in snap.others), *snap.ours.items()]:
        if name != profile.name:
            held += [(ip, port) for ip, port, _ in container.ports]
    return [Reservation(port, port, "the host", "in use", ip, True) for ip, port in held]


def apply_up(
    actions: list[Action],
    timeout: float,
    keep_failed: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Start the actions, at most `starts_at_once()` gateways starting at a time (one
    thread each: creating and starting are engine calls), and wait for them with one
    poller, starting the next as each one settles; raise CheckFailed when the engine
    refused a port, NotReady when a gateway did not get ready, Interrupted on
    Ctrl-C/SIGTERM (each profile rolled back or kept, as `_interrupted` says)."""
    say = progress or (lambda _p, _m: None)
    needs_image = [a.spec for a in actions if a.kind in CREATING and a.spec]
    require_images(needs_image)
    cancel = threading.Event()
    done: dict[str, Outcome] = {}
    futures: dict[str, Future | _Resolved] = {}
    pool = _start_pool(actions)
    limit = starts_at_once() if pool else len(actions)
    queue = list(actions)
    waiting: dict[int, _Started] = {}
    gateways: list[Starting] = []

    def admit() -> None:
        """Start queued actions until `limit` gateways are starting (or none is left)."""
        while queue and len(waiting) < limit:
            batch = [queue.pop(0) for _ in range(min(len(queue), limit - len(waiting)))]
            for action in batch:
                futures[action.profile] = (
                    pool.submit(_start_one, action, say, cancel)
                    if pool
                    else _Resolved(_start_one(action, say, cancel))
                )
            for action in batch:
                result = futures[action.profile].result()
                if isinstance(result, Outcome):
                    done[action.profile] = result
                else:
                    waiting[id(result.gateway)] = result
                    gateways.append(result.gateway)

    try:
        admit()
        # One poller for every starting gateway; `gateways` grows as `admit` starts more.
        for gateway, error in await_ready(gateways, timeout):
            one = waiting.pop(id(gateway))
            done[one.action.profile] = _settle(one, error, keep_failed, say)
            admit()
    except (KeyboardInterrupt, Terminated) as exc:
        cancel.set()
        raise _interrupted(actions, futures, done, exc) from None
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    outcomes = [done[a.profile] for a in actions]
    failed = [o for o in outcomes if o.error]
    if failed and all(o.problems for o in failed):
        problems = [p for o in failed for p in o.problems]
        raise CheckFailed(
            f"{len(problems)} published port(s) were refused by the engine; nothing was"
            " left of the new containers",
            problems,
            hint=problems[0].hint,
        )
    if failed:
        raise NotReady(
            "\n\n".join(o.error or "" for o in failed),
            hint="fix the cause shown in the log lines above, then run `orch up` again",
        )
    return outcomes


#: Threads of a fan-out: one per profile (engine calls that mostly wait), up to this.
MAX_THREADS = 64


def _start_pool(actions: list[Action]) -> ThreadPoolExecutor | None:
    """Threads for the engine calls that start gateways (one per profile), or None when
    every action leaves its gateway alone (a converged `up`: nothing to ask the engine,
    so no pool, nor concurrent.futures' import of logging and queue)."""
    if all(a.kind == Kind.NOOP for a in actions):
        return None
    from concurrent.futures import ThreadPoolExecutor  # start-up: see above

    return ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(actions))))


class _Resolved(NamedTuple):
    """A NOOP action's `_start_one`, run on the calling thread (it asks the engine
    nothing), read as its Future would be."""

    value: Outcome | _Started

    def result(self) -> Outcome | _Started:
        return self.value


class _Started(NamedTuple):
    """A profile `_start_one` started (or found running): what waiting for it needs,
    and for a recreate the old container set aside, to remove or put back."""

    action: Action
    gateway: Starting
    began: float
    old: LiveContainer | None = None
    old_was_running: bool = False


#: Gateways starting at once, per engine CPU. A start is CPU-bound (about 15-20 CPU
#: seconds on 2 cores) and the gateway has 5 s start-up deadlines of its own (its state
#: lease worker): 6 cold starts at once on a loaded 2-core host failed 2 of them for
#: good (exit 78, "state migration refused"). More at once gains nothing once the CPUs
#: are busy; a few per CPU keeps them busy through each start's idle waits.
STARTS_PER_CPU = 2


def starts_at_once() -> int:
    """How many gateways `up` starts at a time: ORCH_STARTS_AT_ONCE if set (0: all),
    else STARTS_PER_CPU per engine CPU."""
    raw = os.environ.get("ORCH_STARTS_AT_ONCE", "").strip()
    if raw.isdigit():
        return int(raw) or MAX_THREADS
    return max(2, STARTS_PER_CPU * engine_cpus())


def _settle(one: _Started, error: str | None, keep_failed: bool, say: Progress) -> Outcome:
    """The outcome of a profile once ready (`error` None) or failed, doing what that
    means: a replaced container is removed once its successor is ready; a new one that
    did not get ready is removed (unless `keep_failed`) and the old one put back."""
    action, spec, cid = one.action, one.gateway.spec, one.gateway.container_id
    seconds = seconds_since(one.began)
    if error is None:
        if one.old is not None:
            docker_http.remove_container(one.old.id)
        if action.kind != Kind.NOOP:
            say(spec.profile, f"ready in {seconds:.1f} s")
        return Outcome(spec.profile, action.kind, cid, True, seconds)
    _roll_back(one, keep_failed)
    return Outcome(spec.profile, action.kind, cid, False, seconds, error)


def _roll_back(one: _Started, keep_failed: bool) -> None:
    """Remove what a start made (unless `keep_failed`) and put a replaced container back."""
    action, spec, cid = one.action, one.gateway.spec, one.gateway.container_id
    if cid and action.kind in CREATING and not keep_failed:
        _discard(cid, spec if action.kind == Kind.CREATE else None)
    if one.old is not None and not keep_failed:
        docker_http.rename(one.old.id, one.old.name)
        if one.old_was_running:
            docker_http.start(one.old.id)


def _interrupted(
    actions: list[Action],
    futures: dict[str, Future | _Resolved],
    done: dict[str, Outcome],
    exc: BaseException,
) -> Interrupted:
    """Ctrl-C or SIGTERM during `up`: every profile not settled yet is rolled back (a
    new container removed, a replaced one put back), kept (a started one goes on
    starting) or not started; the error says which, per profile."""
    lines = []
    for action in actions:
        if action.profile in done:
            lines.append(f"{action.profile}: {_what_happened(done[action.profile])}")
            continue
        future = futures.get(action.profile)
        if future is None:
            lines.append(f"{action.profile}: not started")
            continue
        try:
            result = future.result()
        except Exception as err:  # noqa: BLE001 - reported, not raised: we are stopping
            lines.append(f"{action.profile}: {err}")
            continue
        if isinstance(result, Outcome):
            lines.append(f"{action.profile}: {_what_happened(result)}")
            continue
        note = {
            Kind.CREATE: "interrupted before it was ready: rolled back (its new container removed)",
            Kind.RECREATE: "interrupted: rolled back (the new container removed, the old one"
            " put back)",
        }.get(action.kind, "interrupted while starting: kept (its container goes on starting)")
        try:
            _roll_back(result, keep_failed=False)
        except OrchError as err:
            note = f"interrupted; rolling back failed: {err}"
        lines.append(f"{action.profile}: {note}")
    signum = Terminated.signum if isinstance(exc, Terminated) else 2
    return Interrupted(
        "orch up interrupted; per profile:\n" + "\n".join(f"  {x}" for x in lines),
        hint="run `orch up` again: it converges from here",
        signum=signum,
    )


def fan_out(
    actions: list[Action], one: Callable[[Action, threading.Event], Outcome], verb: str
) -> list[Outcome]:
    """Run `one` for every action in parallel, one thread each (they wait on the
    engine, not the CPU; a smaller pool staggers the profiles behind its size). On
    Ctrl-C or SIGTERM (raised in this, the main thread) tell the workers to stop (they
    look at `cancel` between steps), let each roll back or keep what it did, and raise
    Interrupted saying which, within a second or two."""
    from concurrent.futures import ThreadPoolExecutor  # start-up: status starts no pool

    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(actions))))
    futures = [pool.submit(one, action, cancel) for action in actions]
    try:
        return [f.result() for f in futures]
    except (KeyboardInterrupt, Terminated) as exc:
        cancel.set()
        signum = Terminated.signum if isinstance(exc, Terminated) else 2
        lines = []
        for action, future in zip(actions, futures, strict=True):
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - reported, not raised: we are stopping
                lines.append(f"{action.profile}: {err}")
                continue
            lines.append(f"{action.profile}: {_what_happened(outcome)}")
        raise Interrupted(
            f"orch {verb} interrupted; per profile:\n" + "\n".join(f"  {x}" for x in lines),
            hint=f"run `orch {verb}` again: it converges from here",
            signum=signum,
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _what_happened(outcome: Outcome) -> str:
    if outcome.note:
        return outcome.note
    if outcome.ready:
        return "ready"
    return outcome.error or outcome.action


def _start_one(action: Action, say: Progress, cancel: threading.Event) -> Outcome | _Started:
    """Create, start or restart one profile's container without waiting for it: the
    profile to wait for, or its Outcome when starting failed (nothing of it left)."""
    start = time.monotonic()
    spec = action.spec
    assert spec is not None
    container_id = action.container.id if action.container else None
    if cancel.is_set():
        return Outcome(spec.profile, action.kind, container_id, False, 0.0, note="not started")
    try:
        for leftover in action.cleanup:
            say(spec.profile, f"removing {leftover.name} ({ASIDE_REASON})")
            _remove_container(leftover.id)
        if action.kind == Kind.RECREATE:
            assert action.container is not None
            say(spec.profile, f"recreating: {action.reason}")
            replaced = _replace(action, spec, action.container, start)
            say(spec.profile, "waiting for /readyz")
            return replaced
        if action.kind == Kind.CREATE:
            say(spec.profile, "creating")
            container_id = _create_and_start(spec)
        elif action.kind == Kind.START:
            say(spec.profile, "starting")
            docker_http.start(container_id)
        elif action.kind == Kind.RESTART:
            say(spec.profile, "restarting (crash loop)")
            docker_http.restart(container_id, timeout=spec.stop_timeout_s)
        if action.kind != Kind.NOOP:
            say(spec.profile, "waiting for /readyz")
        gateway = starting(spec, container_id, fresh=action.kind != Kind.NOOP)
        return _Started(action, gateway, start)
    except CheckFailed as exc:
        return Outcome(
            spec.profile,
            action.kind,
            None,
            False,
            seconds_since(start),
            exc.message,
            problems=exc.problems,
        )
    except OrchError as exc:
        return Outcome(
            spec.profile, action.kind, container_id, False, seconds_since(start), exc.message
        )


def _replace(action: Action, spec: ContainerSpec, old: LiveContainer, began: float) -> _Started:
    """Stop and set aside the old container and start the new one; `_settle` removes
    the old one once the new one is ready, or puts it back. A kill in between leaves
    the set-aside container, which the next `orch up` removes (plan.ASIDE_REASON)."""
    was_running = old.state in ("running", "restarting")
    docker_http.stop(old.id, timeout=spec.stop_timeout_s)
    aside = f"{old.name}-replaced-{old.id[:8]}"
    docker_http.rename(old.id, aside)
    try:
        new_id = _create_and_start(spec)
    except OrchError:
        docker_http.rename(old.id, old.name)
        if was_running:
            docker_http.start(old.id)
        raise
    return _Started(action, starting(spec, new_id), began, old, was_running)


def apply_down(actions: list[Action], say: Progress | None = None) -> list[Outcome]:
    """Stop gracefully (the gateway needs about 2 s), remove containers, and each
    profile's network whether or not a container was left."""
    say = say or (lambda _p, _m: None)

    def one(action: Action, cancel: threading.Event) -> Outcome:
        start = time.monotonic()
        if cancel.is_set():
            return Outcome(action.profile, "kept", None, False, 0.0, note="not stopped")
        containers = ([action.container] if action.container else []) + list(action.cleanup)
        for container in containers:
            say(action.profile, f"stopping {container.name}")
            _remove_container(container.id)
        for network_id in action.networks:
            with contextlib.suppress(NotFound):
                docker_http.remove_network(network_id)
        if not containers:
            if not action.networks:
                return Outcome(action.profile, "noop", None, False, 0.0)
            note = f"removed {len(action.networks)} network(s) left without a container"
            return Outcome(action.profile, "removed", None, False, seconds_since(start), note=note)
        first = containers[0].id
        return Outcome(
            action.profile, "removed", first, False, seconds_since(start), note="removed"
        )

    return fan_out(actions, one, "down")


#: How long a restart waits for a gateway that is not healthy (crash-looping,
#: starting) to stop: it has nothing to drain, so the graceful wait is saved.
CRASHED_STOP_S = 2


def restart(
    container: LiveContainer, spec: ContainerSpec, timeout: float, any_state: bool = False
) -> None:
    """Graceful restart, then wait until ready; Ctrl-C while waiting keeps it starting.
    `any_state`: a gateway that is not healthy gets CRASHED_STOP_S to stop, and its
    restarts while it comes up are not a failure (its restart policy may be mid
    back-off)."""
    healthy = container.health == "healthy"
    stop = spec.stop_timeout_s if healthy or not any_state else CRASHED_STOP_S
    try:
        docker_http.restart(container.id, timeout=stop)
        wait_ready(spec, container.id, timeout, fresh=not any_state)
    except (KeyboardInterrupt, Terminated) as exc:
        signum = Terminated.signum if isinstance(exc, Terminated) else 2
        raise Interrupted(
            f"{spec.profile}: interrupted; its container was restarted and goes on starting",
            hint=f"`orch status {spec.profile}` shows when it is ready",
            signum=signum,
        ) from None


DEFAULT_TIMEOUT = 120.0


def up(project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
    """Check, plan, build the images that are missing (unless not `options.build`),
    create, wait ready."""
    progress = options.progress
    with locked(project.home):
        fleet = project.fleet
        # The engine's answers (I/O) come in while the gate checks files and configs
        # (CPU): a converged `up` is mostly these two.
        specs, snap = at_once(
            lambda: project.checked_specs(names), lambda: project.snapshot(whole_host=True)
        )
        publish_fleet(project.home, fleet)
        actions = plan_up(specs, snap.ours, snap.aside, _looping(snap))
        changing = [a.spec for a in actions if a.kind != Kind.NOOP and a.spec]
        problems = live_problems(changing, snap)
        if any(s.cpus for s in changing):
            problems += cpu_problems(changing, engine_cpus())
        if problems:
            raise CheckFailed(
                f"{len(problems)} problem(s) on the live host; nothing was created",
                problems,
                hint=problems[0].hint,
            )
        orphans = sorted(snap.orphans(fleet.profiles)) if names is None else []
        users: dict[str, list[str]] = {}
        for action in actions:
            if action.kind in CREATING and action.spec:
                users.setdefault(action.spec.image, []).append(action.spec.profile)
        missing = missing_images(list(users))
        if options.dry_run:
            images = [{"tag": tag, "action": "build", "seconds": 0.0} for tag in missing]
            return UpResult(actions, dry_run=True, orphans=orphans, images=images)
        images = provide_images({tag: users[tag] for tag in missing}, options.build, progress)
        if images:  # each config against the schema of the image just built
            project.checked_specs(names)
        outcomes = apply_up(actions, options.timeout, options.keep_failed, progress)
        remember_ready(project, outcomes)
        removing = options.remove_orphans and bool(orphans)
        if removing:
            outcomes += apply_down(plan_down(orphans, snap.orphans(fleet.profiles)), progress)
        if removing or any(a.kind != Kind.NOOP for a in actions):
            project.changed()  # the snapshot the plan was made from is no longer the host's
        # each outcome of apply_up is ready (else it raised): its /readyz just
        # answered, so the rows shown after it do not dial it again
        answered = {o.profile: True for o in outcomes if o.ready}
        rows = status(project, names, probe=False, ready=answered)
        return UpResult(actions, outcomes, orphans=orphans, status=rows, images=images)


CREATING = (Kind.CREATE, Kind.RECREATE)


def provide_images(
    missing: dict[str, list[str]], build: bool, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The images `up` is about to create containers of and the engine lacks (each
    with the profiles that run it): built (progress on stderr, as Compose builds on
    `up`), or, when not `build` (`--no-build`) or orch has no recipe for one, refused
    with nothing built or created."""
    if not missing:
        return []
    from orchestrator.host.images import build_missing, refuse_unbuildable  # start-up: rare

    refuse_unbuildable(list(missing), missing)
    if not build:
        profiles = ", ".join(p for users in missing.values() for p in users)
        raise ImageError(
            f"image {', '.join(missing)} (profile {profiles}) is not on this engine and"
            " --no-build was given; nothing was created",
            hint="run `orch up` without --no-build to build it",
        )
    say = (lambda line: progress("images", line)) if progress else None
    built = [r for r in build_missing(list(missing), say) if r.action == "built"]
    return [{"tag": r.tag, "action": r.action, "seconds": round(r.seconds, 1)} for r in built]


def remember_ready(project: Project, outcomes: list[Outcome]) -> None:
    """Keep the config of each gateway that just became ready: the history that
    `orch rescue --restore-last-good` can put back. Best effort: a full disk must
    not turn a successful `up` into a failure."""
    from orchestrator.fleet.config_history import remember_good  # start-up: a real up only

    for outcome in outcomes:
        if outcome.ready and outcome.profile in project.fleet.profiles:
            profile = project.fleet.profiles[outcome.profile]
            with contextlib.suppress(OSError):
                remember_good(project.dirs(profile.name), profile.uid, profile.gid)


def _looping(snap: Snapshot) -> dict[str, int]:
    """Restart counts of this fleet's containers that look crash-looping: one inspect
    for each that is not healthy, and none in the common case (everything healthy)."""
    out = {}
    for profile, container in snap.ours.items():
        if container.state in ("running", "restarting") and container.health != "healthy":
            with contextlib.suppress(NotFound):
                count = looping_restarts(docker_http.get(f"/containers/{container.id}/json"))
                if count:
                    out[profile] = count
    return out


def down(
    project: Project,
    names: list[str] | None = None,
    progress: Progress | None = None,
    remove_orphans: bool = False,
) -> list[Outcome]:
    """Take down the named profiles (all of the fleet's when none), each with every
    container it has (set-aside ones too) and its networks. Containers of this fleet
    whose profile is not in the fleet file (orphans: a file cut short, a hand edit)
    are kept and reported unless `remove_orphans`."""
    home = project.home
    with locked(home):
        fleet = project.fleet
        wanted = [p.name for p in fleet.select(names)]
        snap = project.snapshot()
        orphans = snap.orphans(fleet.profiles) if names is None else {}
        targets = wanted + (sorted(orphans) if remove_orphans else [])
        containers = {name: snap.all_of(name) for name in targets}
        networks = _networks_by_profile(snap)
        outcomes = apply_down(plan_down(targets, containers, networks), progress)
        if not remove_orphans:
            outcomes += [_kept_orphan(home, name, cs) for name, cs in orphans.items()]
        return outcomes


def _networks_by_profile(snap: Snapshot) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for net in snap.networks.values():
        profile = net.labels.get(LABEL_PROFILE)
        if profile:
            out.setdefault(profile, []).append(net.id)
    return {k: tuple(v) for k, v in out.items()}


def _kept_orphan(home: Path, name: str, containers: list[LiveContainer]) -> Outcome:
    return Outcome(name, "kept", containers[0].id, False, 0.0, note=orphan_note(home, name))


NOT_ANSWERING_WHY = {
    "browser": "browser control starts on demand (first browser use)",
    "browser-cdp": "nothing listens there unless browser.cdpUrl points at it",
    "extension": "the extension relay starts with a browser extension",
    "cdp": "managed Chrome starts with `openclaw browser start` or the first browser"
    " action, and only in a profile with browser: true (`orch setup NAME --browser`)",
}


def status(
    project: Project,
    names: list[str] | None = None,
    probe: bool = True,
    ready: dict[str, bool] | None = None,
) -> list[ProfileStatus]:
    """Status of each profile (and of this fleet's orphan containers when no names are
    given); without `probe`, ports are not dialled and containers not inspected (what
    `orch up` shows right after it checked /readyz, from the fleet and snapshot it
    already has when nothing changed). `ready`: profiles whose /readyz the caller has
    just seen answer (`up`), not dialled again."""
    fleet, snap, specs = project.fleet, project.snapshot(), project.specs(names)
    probed = _probe_all(specs, snap, probe, ready or {})
    rows = [_status_of(s, snap, probed.get(s.profile)) for s in specs]
    for row in rows:
        row.token_file = str(project.dirs(row.profile).token_file)
    if names is None:
        for name, containers in snap.orphans(fleet.profiles).items():
            rows.append(_orphan_status(project.home, name, containers[0]))
    return rows


@dataclass
class _Probed:
    """What dialling a profile's ports and asking the engine about its container told."""

    ready: bool = False
    answering: list[bool | None] | None = None
    info: dict[str, Any] | None = None
    events: list[dict] | None = None


def _probe_all(
    specs: list[ContainerSpec], snap: Snapshot, probe: bool, known: dict[str, bool]
) -> dict[str, _Probed]:
    """Every probe of every running profile at once (each port, /readyz, the inspect and
    the one engine events call), so status takes as long as its slowest probe."""
    running = [s for s in specs if (c := snap.ours.get(s.profile)) and c.state == "running"]
    inspected = [snap.ours[s.profile] for s in specs if s.profile in snap.ours] if probe else []
    # One thread per probe (each port or /readyz, each inspect, the events call): in
    # waves, a starved gateway would hold the wave behind its probe for 1 s.
    calls: list[Callable[[], Any]] = [partial(_exit_history, inspected)]

    def slot(call: Callable[[], Any]) -> int:
        calls.append(call)
        return len(calls) - 1

    ready: dict[str, int] = {}
    # None in place of a port's probe: the gateway port, which answers when /readyz
    # gets any HTTP answer at all
    ports: dict[str, list[int | None]] = {}
    for spec in running:
        host, port = gateway_address(spec)
        if host and spec.profile not in known:
            ready[spec.profile] = slot(partial(http_status, host, port, "/readyz", 1.0))
        if probe:
            ports[spec.profile] = [
                None
                if b.role == "gateway" and spec.profile in ready
                else slot(partial(tcp_answers, b.host_ip, b.host_port))
                for b in spec.ports
            ]
    infos = {c.id: slot(partial(_inspect, c.id)) for c in inspected}
    found_by = at_once(*calls)
    out = {}
    for spec in specs:
        current = snap.ours.get(spec.profile)
        found = _Probed()
        code = found_by[ready[spec.profile]] if spec.profile in ready else None
        if spec.profile in known:
            found.ready = known[spec.profile]
        elif spec.profile in ready:
            found.ready = code == 200
        elif current is not None and current.state == "running":
            found.ready = current.health == "healthy"  # not published: the healthcheck
        if probe:
            slots = ports.get(spec.profile) or [None for _ in spec.ports]
            found.answering = [found_by[i] if i is not None else code is not None for i in slots]
        if current is not None and current.id in infos:
            found.info = found_by[infos[current.id]]
            found.events = found_by[0].get(current.id, [])
        out[spec.profile] = found
    return out


def _inspect(container_id: str) -> dict[str, Any] | None:
    try:
        return docker_http.get(f"/containers/{container_id}/json")
    except NotFound:
        return None


def _exit_history(current: list[LiveContainer]) -> dict[str, list[dict]]:
    since = min((c.created for c in current), default=0)
    return exit_events([c.id for c in current], since)


def _status_of(spec: ContainerSpec, snap: Snapshot, probed: _Probed | None = None) -> ProfileStatus:
    """One profile's row from the snapshot and what its probes found (none: nothing
    dialled, a profile without a container, or a unit test)."""
    found = probed or _Probed()
    current = snap.ours.get(spec.profile)
    host, _ = gateway_address(spec)
    ports = []
    for i, binding in enumerate(spec.ports):
        span = (
            str(binding.host_port)
            if binding.count == 1
            else f"{binding.host_port}-{binding.host_end}"
        )
        answering = found.answering[i] if found.answering is not None else None
        note = (
            "" if answering or found.answering is None else NOT_ANSWERING_WHY.get(binding.role, "")
        )
        ports.append(PortState(binding.role, binding.host_ip, span, answering, note))
    row = ProfileStatus(
        profile=spec.profile,
        container=current.name if current else None,
        state=current.state if current else "absent",
        health=current.health if current else "none",
        ready=found.ready,
        uptime_s=None,
        image=current.image if current else None,
        drift=_drift(spec, current),
        url=spec.url(),
        ports=ports,
    )
    if current is None:
        row.ready_reason = f"no container: `orch up {spec.profile}` creates it"
        return row
    if found.info:
        _add_history(row, found.info, found.events or [])
    row.ready_reason = _ready_reason(row, host is not None)
    return row


def _add_history(row: ProfileStatus, info: dict[str, Any], events: list[dict]) -> None:
    state = info.get("State") or {}
    row.restarts = int(info.get("RestartCount") or 0)
    started = state.get("StartedAt") or ""
    if state.get("Status") == "running" and started and not started.startswith("0001"):
        row.uptime_s = _age(started)
    row.oom_kills = sum(1 for e in events if e.get("Action") == "oom")
    code, at = last_exit_code(events), None
    if code is not None:
        at = max(e.get("time", 0) for e in events if e.get("Action") == "die")
    elif state.get("Status") in ("exited", "dead", "restarting") or state.get("FinishedAt", "")[
        :4
    ] not in ("", "0001"):
        code, at = int(state.get("ExitCode") or 0), state.get("FinishedAt")
    if code is not None:
        oom = bool(state.get("OOMKilled")) or (row.oom_kills > 0 and code == 137)
        row.last_exit = {
            "code": code,
            "meaning": exit_meaning(code, oom),
            "oom_killed": oom,
            "at": at,
        }
    if row.restarts or row.state != "running":  # while it starts, its log is not news
        row.last_error = last_error_line(log_tail(info["Id"], 40))


def _ready_reason(row: ProfileStatus, published: bool) -> str:
    exit_text = ""
    if row.last_exit:
        exit_text = f"last exit {row.last_exit['code']}: {row.last_exit['meaning']}"
    if row.ready:
        reason = "answers /readyz" if published else "healthy (gateway port not published)"
        if row.restarts:
            reason += f"; restarted {row.restarts} time(s), {exit_text}"
        return reason
    if row.state == "restarting":
        return f"crash-looping: {row.restarts} restart(s), {exit_text}; `orch logs {row.profile}`"
    if row.state in ("exited", "dead", "created"):
        return (
            f"{row.state}, {exit_text or 'never started'}: not restarted by its policy"
            f" (the engine stopped, or docker stop); `orch up {row.profile}` starts it"
        )
    if row.health == "starting":
        return "starting: the gateway is not ready yet"
    return "running but not answering /readyz" + (f"; {exit_text}" if exit_text else "")


def _orphan_status(home: Path, name: str, container: LiveContainer) -> ProfileStatus:
    return ProfileStatus(
        profile=name,
        container=container.name,
        state=container.state,
        health=container.health,
        ready=False,
        uptime_s=None,
        image=container.image,
        drift=None,
        url=None,
        ports=[],
        ready_reason="orphan: not in the fleet file",
        orphan=True,
        note=orphan_note(home, name),
    )


def _age(iso: str) -> float:

    when = datetime.fromisoformat(iso[:26].rstrip("Z") + "+00:00")
    return round(time.time() - when.timestamp(), 1)


def _drift(spec: ContainerSpec, current: LiveContainer | None) -> str | None:
    if current is None:
        return None
    if current.labels.get(LABEL_HASH) != spec.spec_hash:
        return f"container runs spec {current.spec_hash}, fleet wants {spec.spec_hash}"
    return None


def container_of(project: Project, name: str) -> LiveContainer | None:
    project.fleet.get(name)  # an unknown profile is a clear error
    return project.snapshot().ours.get(name)


def refuse_if_container(project: Project, name: str) -> None:
    """`orch rm`: a profile removed while its container lives would leave an orphan.
    With no engine there is no container to leave."""
    from orchestrator.docker.daemon import engine_answers  # start-up: `orch rm` only

    if not engine_answers():
        return
    container = container_of(project, name)
    if container is not None:
        raise UsageError(
            f"profile '{name}' still has a container ({container.name}, {container.state});"
            " nothing was changed",
            hint=f"run `orch down {name}` first",
        )


def find_container(project: Project, name: str) -> tuple[ContainerSpec, LiveContainer]:
    spec = project.spec(name)
    current = project.snapshot().ours.get(name)
    if current is None or current.state not in ("running", "restarting"):
        raise NotReady(
            f"profile '{name}' has no running container", hint=f"start it with `orch up {name}`"
        )
    return spec, current


class LocalEngine(Backend):
    """The Docker engine of this host: one container per profile."""

    name = "docker"
    runs_here = True

    def up(self, project: Project, names: list[str] | None, options: UpOptions) -> UpResult:
        return up(project, names, options)

    def down(
        self,
        project: Project,
        names: list[str] | None = None,
        progress: Progress | None = None,
        remove_orphans: bool = False,
    ) -> list[Outcome]:
        return down(project, names, progress, remove_orphans)

    def status(self, project: Project, names: list[str] | None = None) -> list[ProfileStatus]:
        return status(project, names)

    def restart(self, project: Project, name: str, timeout: float, any_state: bool = False) -> None:
        if any_state:
            spec, container = project.spec(name), container_of(project, name)
            if container is None:
                raise NotReady(
                    f"profile '{name}' has no container", hint=f"start it with `orch up {name}`"
                )
        else:
            spec, container = find_container(project, name)
        restart(container, spec, timeout, any_state)
        project.changed()
        remember_ready(project, [Outcome(name, "restart", container.id, True, 0.0)])

    def stop(self, project: Project, name: str) -> str | None:
        container = container_of(project, name)
        if container is None or container.state not in ("running", "restarting"):
            return None
        docker_http.stop(container.id, timeout=project.spec(name).stop_timeout_s)
        project.changed()
        return container.id

    def start(self, project: Project, name: str, stopped: str, timeout: float) -> None:
        docker_http.start(stopped)
        project.changed()
        wait_ready(project.spec(name), stopped, timeout)

    def logs(self, project: Project, name: str, tail: int, follow: bool, write: Write) -> None:
        _, container = find_container(project, name)
        stream_logs(container, tail, follow, write)

    def exec(
        self,
        project: Project,
        name: str,
        command: list[str],
        write: Write,
        env: dict[str, str] | None = None,
        write_err: Write | None = None,
    ) -> int:
        _, container = find_container(project, name)
        return exec_in(container, command, write, env, write_err)
