"""The convergence plan and the live-host port check, without Docker: live
containers and listening sockets are given as the API and /proc would give them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.model import Fleet, Profile
from orchestrator.core.observed import Listener, LiveContainer, Snapshot, live_problems
from orchestrator.core.plan import Kind, looping_restarts, plan_down, plan_up
from orchestrator.core.spec import LABEL_HASH, ContainerSpec, render
from orchestrator.docker.snapshot import _decode_ip


def specs(tmp_path: Path, **ports: int) -> list[ContainerSpec]:
    fleet = Fleet(profiles={n: Profile(name=n, port=p) for n, p in ports.items()})
    return [render(p, fleet, tmp_path) for p in fleet.select(None)]


def live(spec: ContainerSpec, state: str = "running", spec_hash: str | None = None, ports=()):
    labels = {**spec.labels, LABEL_HASH: spec_hash or spec.spec_hash}
    return LiveContainer(
        id=f"id-{spec.profile}",
        name=spec.name,
        state=state,
        status="Up 1 minute (healthy)",
        labels=labels,
        ports=tuple(ports),
    )


def test_a_profile_without_container_is_created(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    (action,) = plan_up([spec], {})
    assert (action.kind, action.reason) == (Kind.CREATE, "no container yet")


def test_a_running_container_with_the_same_hash_is_left_alone(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    (action,) = plan_up([spec], {"main": live(spec)})
    assert action.kind == Kind.NOOP


def test_a_changed_spec_is_recreated_and_the_reason_names_both_hashes(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    (action,) = plan_up([spec], {"main": live(spec, spec_hash="0ld")})
    assert action.kind == Kind.RECREATE
    assert action.reason == f"spec changed (0ld -> {spec.spec_hash})"


def test_a_stopped_container_with_the_same_hash_is_started_not_recreated(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    (action,) = plan_up([spec], {"main": live(spec, state="exited")})
    assert (action.kind, action.reason) == (Kind.START, "up to date but exited")


def test_each_profile_gets_its_own_action(tmp_path: Path) -> None:
    main, rescue = specs(tmp_path, main=18789, rescue=18900)
    actions = plan_up([main, rescue], {"main": live(main)})
    assert [(a.profile, a.kind) for a in actions] == [("main", Kind.NOOP), ("rescue", Kind.CREATE)]


def test_down_removes_what_exists_and_reports_the_rest(tmp_path: Path) -> None:
    (main,) = specs(tmp_path, main=18789)
    actions = plan_down(["main", "rescue"], {"main": [live(main, state="exited")]})
    assert [(a.profile, a.kind) for a in actions] == [("main", Kind.REMOVE), ("rescue", Kind.NOOP)]


def test_down_removes_a_profiles_network_left_without_a_container(tmp_path: Path) -> None:
    (action,) = plan_down(["main"], {}, {"main": ("net-1",)})
    assert action.kind == Kind.REMOVE and action.networks == ("net-1",)
    assert "removes 1 network" in action.reason


def test_down_removes_set_aside_containers_with_the_current_one(tmp_path: Path) -> None:
    (main,) = specs(tmp_path, main=18789)
    current, aside = live(main), set_aside(live(main, state="exited"))
    (action,) = plan_down(["main"], {"main": [current, aside]})
    assert action.container == current and action.cleanup == (aside,)


def set_aside(container: LiveContainer) -> LiveContainer:
    """What an interrupted recreate leaves: the old container under another name."""

    return container._replace(id="id-old", name=f"{container.name}-replaced-0123abcd")


def test_an_interrupted_recreate_converges_the_newest_container_wins(tmp_path: Path) -> None:
    (main,) = specs(tmp_path, main=18789)
    new, old = live(main), set_aside(live(main, state="exited", spec_hash="0ld"))
    (action,) = plan_up([main], {"main": new}, {"main": [old]})
    assert action.kind == Kind.NOOP and action.container == new
    assert action.cleanup == (old,) and "interrupted recreate" in action.reason
    assert action.to_json()["cleanup"] == [old.name]


def test_an_interrupted_recreate_before_the_new_container_finishes_it(tmp_path: Path) -> None:
    (main,) = specs(tmp_path, main=18789)
    old = set_aside(live(main, state="exited", spec_hash="0ld"))
    (action,) = plan_up([main], {}, {"main": [old]})
    assert action.kind == Kind.CREATE and action.cleanup == (old,)


def test_a_crash_looping_gateway_is_planned_for_a_restart_not_a_noop(tmp_path: Path) -> None:
    (main,) = specs(tmp_path, main=18789)
    looping = live(main, state="restarting")
    (action,) = plan_up([main], {"main": looping})
    assert action.kind == Kind.RESTART and "crash-looping" in action.reason


def inspected(status: str, health: str, restarts: int, probes: list[tuple[str, int]]) -> dict:
    """A `docker inspect` as the engine gives it (this run started at 15:27:46.425011049):
    the probe log keeps the runs before this one."""
    log = [{"Start": f"2026-12-01T{at}Z", "ExitCode": code} for at, code in probes]
    return {
        "RestartCount": restarts,
        "State": {
            "Status": status,
            "StartedAt": "2026-12-01T15:27:46.425011049Z",
            "Health": {"Status": health, "Log": log},
        },
    }


def test_a_gateway_restarted_after_one_crash_while_healthy_is_not_a_crash_loop() -> None:
    """Its health reads `starting` again until the new run's first probe (up to 5 s
    after it answers /readyz): `orch up` must not restart it a second time."""
    probes = [("15:27:32.736555257", 1), ("15:27:37.8637", 1), ("15:27:42.996174365", 0)]
    assert looping_restarts(inspected("running", "starting", 1, probes)) == 0


def test_runs_that_never_got_healthy_or_ended_unhealthy_are_a_crash_loop() -> None:
    never = [("15:27:32.7365", 1), ("15:27:40.1", 1)]  # exits before it gets healthy
    assert looping_restarts(inspected("running", "starting", 2, never)) == 2
    assert looping_restarts(inspected("running", "starting", 1, [])) == 1
    ended_unhealthy = [("15:27:30", 0), ("15:27:35", 1), ("15:27:40.5", 1)]
    assert looping_restarts(inspected("running", "starting", 3, ended_unhealthy)) == 3
    assert looping_restarts(inspected("running", "unhealthy", 3, [("15:27:30", 0)])) == 3
    assert looping_restarts(inspected("restarting", "starting", 4, [("15:27:30", 0)])) == 4


def test_a_healthy_or_never_restarted_container_is_not_a_crash_loop() -> None:
    assert looping_restarts(inspected("running", "healthy", 5, [])) == 0
    assert looping_restarts(inspected("running", "starting", 0, [])) == 0
    probes_of_this_run = [("15:27:50", 0)]  # passed after this run's start: only this run's
    assert looping_restarts(inspected("running", "starting", 1, probes_of_this_run)) == 1


def test_own_set_aside_containers_never_count_as_holding_the_profiles_ports(
    tmp_path: Path,
) -> None:
    (main,) = specs(tmp_path, main=18789)
    new = live(main, ports=[("127.0.0.1", 18789, "tcp"), ("127.0.0.1", 18791, "tcp")])
    old = set_aside(live(main, state="exited"))
    snap = Snapshot(
        ours={"main": new},
        aside={"main": [old]},
        listeners=[Listener("127.0.0.1", 18789, 0), Listener("127.0.0.1", 18791, 0)],
    )
    assert live_problems([main], snap) == []


def test_a_port_held_by_a_host_process_is_a_problem_naming_the_port(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    snap = Snapshot(listeners=[Listener("0.0.0.0", 18791, inode=0)])
    (problem,) = live_problems([spec], snap)
    assert problem.code == "port-in-use"
    assert problem.ports == (18791, 18791)
    assert "main browser port 18791 on 127.0.0.1 is already in use by" in problem.message


def test_a_listener_on_another_loopback_address_does_not_clash(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    snap = Snapshot(listeners=[Listener("127.0.0.2", 18789, inode=0)])
    assert live_problems([spec], snap) == []


def test_a_port_published_by_another_container_names_that_container(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    other = LiveContainer("x", "nginx-1", "running", "Up", {}, (("0.0.0.0", 18793, "tcp"),))
    snap = Snapshot(others=[other], listeners=[Listener("0.0.0.0", 18793, inode=0)])
    (problem,) = live_problems([spec], snap)
    assert problem.message.endswith("in use by container nginx-1")


def test_the_profiles_own_container_holding_its_ports_is_not_a_problem(tmp_path: Path) -> None:
    (spec,) = specs(tmp_path, main=18789)
    mine = live(spec, ports=[("127.0.0.1", 18789, "tcp"), ("127.0.0.1", 18791, "tcp")])
    snap = Snapshot(
        ours={"main": mine},
        listeners=[Listener("127.0.0.1", 18789, 0), Listener("127.0.0.1", 18791, 0)],
    )
    assert live_problems([spec], snap) == []


def test_proc_net_addresses_decode_for_ipv4_and_ipv4_mapped_ipv6() -> None:
    assert _decode_ip("0100007F", v6=False) == "127.0.0.1"
    assert _decode_ip("00000000", v6=False) == "0.0.0.0"
    assert _decode_ip("00000000000000000000000000000000", v6=True) == "::"
    assert _decode_ip("0000000000000000FFFF00000100007F", v6=True) == "127.0.0.1"
