"""The CI pieces without Docker: the pytest plugin's import cost, the container made
from the same create call as `orch up`, the cross-process port registry, run records
and `orch gc`'s verdicts, the in-container checks and `orch up --port auto`'s plan
(orchestrator/testing.py, pytest_plugin.py, gc.py, incontainer.py, provision.py)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.base.owner import process_start
from orchestrator.core.ports import MAX_BASE
from orchestrator.docker.incontainer import ContainerView, own_container_id, path_problems
from orchestrator.errors import EngineUnavailable, OrchError, UsageError
from orchestrator.testing import factory as testing
from orchestrator.testing.factory import (
    LABEL_RUN_ID,
    GatewayFactory,
    Owner,
    PortRegistry,
    check_request,
)
from orchestrator.testing.gc import verdict
from orchestrator.testing.runs import LABEL_RUN_CREATED, current_run_id, run_labels

REPO = Path(__file__).resolve().parents[3]


def labels_of(owner: Owner, run: str = "r1", created: float | None = None) -> dict[str, str]:
    labels = run_labels(run, owner)
    if created is not None:
        labels[LABEL_RUN_CREATED] = str(int(created))
    return labels


def dead_owner() -> Owner:
    """The owner record of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"])
    proc.wait()
    here = Owner.current()
    return Owner(here.host, here.pidns, proc.pid, "1")


def nothing_taken() -> list[tuple[str, int, int]]:
    return []


# --- the plugin: registered, and free for suites that do not use it ---------------------


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert {(p.name, p.value) for p in points} >= {("orch", "orchestrator.testing.plugin")}


def test_a_suite_that_uses_no_gateway_never_imports_docker_or_testcontainers(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_nothing_heavy_was_imported(request):
                assert request.config.pluginmanager.has_plugin("orch")
                heavy = [m for m in sys.modules if m.split(".")[0] in ("docker", "testcontainers")]
                assert heavy == []
                assert "orchestrator.testing.factory" not in sys.modules
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"  # touching Docker would fail
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_pytest_lists_the_gateway_fixtures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    for name in (
        "openclaw_gateway ",
        "openclaw_gateways ",
        "openclaw_session_gateway ",
        "openclaw_session_gateways ",
    ):
        assert name in proc.stdout
    assert (
        "--openclaw-image"
        in subprocess.run(
            [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120
        ).stdout
    )


# --- the container: the same create call as `orch up` -----------------------------------


class _FakeApi:
    """Records what the container asks of the engine."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def create_network(self, name: str, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("create_network", {"name": name, **kwargs}))
        return {"Id": "net1"}

    def create_container_from_config(self, config: dict, name: str) -> dict[str, str]:
        self.calls.append(("create_container", {"config": config, "name": name}))
        return {"Id": "c1"}

    def start(self, container_id: str) -> None:
        self.calls.append(("start", container_id))


class _FakeDockerClient:
    def __init__(self, **_: Any) -> None:
        from types import SimpleNamespace

        self.api = _FakeApi()
        self.client = SimpleNamespace(
            api=self.api,
            images=SimpleNamespace(get=lambda image: image),
            containers=SimpleNamespace(get=lambda cid: SimpleNamespace(id=cid)),
        )


@pytest.fixture
def a_spec(home: Path):
    from orchestrator.core.spec import render
    from orchestrator.fleet.provision import SetupRequest, setup
    from orchestrator.fleet.store import load_fleet

    setup(home, SetupRequest(name="main", port=20000))
    fleet = load_fleet(home)
    spec = render(fleet.profiles["main"], fleet, home)
    return spec.model_copy(update={"labels": {**spec.labels, **labels_of(Owner.current())}})


def test_the_container_is_created_by_the_same_call_as_orch_up(
    a_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import testcontainers.core.container as tc

    from orchestrator.docker.containers import create_body

    monkeypatch.setattr(tc, "DockerClient", _FakeDockerClient)
    monkeypatch.setattr(tc.c, "ryuk_disabled", True)
    container = testing.OpenClawGatewayContainer(a_spec).launch()
    api = container.get_docker_client().client.api
    calls = dict(api.calls)
    expected = create_body(a_spec)
    created = calls["create_container"]["config"]
    assert calls["create_container"]["name"] == a_spec.name
    assert {k: v for k, v in created.items() if k != "Labels"} == {
        k: v for k, v in expected.items() if k != "Labels"
    }
    # orch's labels (run record included) plus testcontainers' session labels.
    assert created["Labels"].items() >= a_spec.labels.items()
    assert created["Labels"]["org.testcontainers.session-id"]
    assert created["HostConfig"]["PortBindings"]["20000/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": "20000"}
    ]
    token = [m for m in created["HostConfig"]["Mounts"] if m["Target"].startswith("/run/")]
    assert token[0]["ReadOnly"] is True
    network = calls["create_network"]
    assert network["name"] == a_spec.network
    assert network["labels"][LABEL_RUN_ID] == "r1"
    assert calls["start"] == "c1"


def test_a_reaper_that_cannot_start_is_a_clear_error_with_the_fix(
    a_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import testcontainers.core.container as tc

    def no_registry(cls: Any) -> None:
        raise RuntimeError("pull access denied for testcontainers/ryuk")

    monkeypatch.setattr(tc, "DockerClient", _FakeDockerClient)
    monkeypatch.setattr(tc.c, "ryuk_disabled", False)
    monkeypatch.setattr(tc.Reaper, "get_instance", classmethod(no_registry))
    container = testing.OpenClawGatewayContainer(a_spec)
    with pytest.raises(OrchError, match="reaper .Ryuk. cannot start: pull access") as caught:
        container.launch()
    assert "TESTCONTAINERS_RYUK_DISABLED=true" in caught.value.hint
    assert container.get_docker_client().client.api.calls == []


def test_a_missing_image_is_an_image_error_before_anything_is_created(
    a_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import testcontainers.core.container as tc
    from docker.errors import ImageNotFound

    from orchestrator.errors import ImageError

    def missing(image: str) -> None:
        raise ImageNotFound(image)

    monkeypatch.setattr(tc, "DockerClient", _FakeDockerClient)
    monkeypatch.setattr(tc.c, "ryuk_disabled", True)
    container = testing.OpenClawGatewayContainer(a_spec)
    container.get_docker_client().client.images.get = missing
    with pytest.raises(ImageError, match="not on this engine") as caught:
        container.launch()
    assert caught.value.exit_code == 6 and "orch images build" in caught.value.hint
    assert container.get_docker_client().client.api.calls == []


# --- run records -----------------------------------------------------------------------


def test_an_owner_is_alive_while_its_process_runs_and_dead_after() -> None:
    me = Owner.current()
    assert Owner.parse(str(me)) == me
    assert me.alive() is True
    assert dead_owner().alive() is False


def test_a_killed_process_not_yet_reaped_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    here = Owner.current()
    try:
        start = process_start(proc.pid)
        assert start is not None
        owner = Owner(here.host, here.pidns, proc.pid, start)
        assert owner.alive() is True
        proc.kill()
        time.sleep(0.5)  # a zombie until wait() reaps it
        assert owner.alive() is False
    finally:
        proc.wait()


def test_a_reused_pid_is_not_the_same_owner() -> None:
    me = Owner.current()
    assert Owner(me.host, me.pidns, me.pid, "12345").alive() is False


def test_an_owner_on_another_host_or_pid_namespace_cannot_be_judged() -> None:
    me = Owner.current()
    assert Owner("elsewhere", me.pidns, me.pid, me.start).alive() is None
    assert Owner(me.host, "1", me.pid, me.start).alive() is None


@pytest.mark.parametrize("text", ["", "garbage", "a:b:c", "host:ns:notapid:1", None])
def test_an_unreadable_owner_record_is_none(text: str | None) -> None:
    assert Owner.parse(text) is None


def test_the_run_id_comes_from_orch_run_id_then_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_RUN_ID", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "0123456789abcdef0123")
    assert current_run_id() == "0123456789ab"
    monkeypatch.setenv("ORCH_RUN_ID", "gl-4242")
    assert current_run_id() == "gl-4242"


def test_a_run_id_that_cannot_be_a_label_and_dir_name_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_RUN_ID", "../etc")
    with pytest.raises(UsageError, match="not a valid run id"):
        current_run_id()


# --- the port registry -----------------------------------------------------------------


def test_reservations_never_overlap_and_avoid_ports_in_use(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path)
    in_use = [("127.0.0.1", 20005, 20005), ("0.0.0.0", 20200, 20200), ("10.1.2.3", 20300, 20300)]
    first = registry.reserve(2, "127.0.0.1", labels_of(Owner.current()), 20000, lambda: in_use)
    second = registry.reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, lambda: in_use)
    # 20005 and the wildcard 20200 block; another address does not.
    assert first == [20006, 20201]
    assert second == [20312]
    assert [e["base"] for e in registry.entries()] == [20006, 20201, 20312]


def test_a_running_orch_gateway_holds_its_whole_footprint_not_only_its_published_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.docker import api as docker_http
    from orchestrator.docker import snapshot as live

    def port(ip: str, number: int) -> dict[str, Any]:
        return {"IP": ip, "PrivatePort": number, "PublicPort": number, "Type": "tcp"}

    leftover = {
        "Id": "a",
        "Names": ["/orchtest-x-gw"],
        "State": "running",
        "Labels": {"orch.managed": "true"},
        "Ports": [port("127.0.0.1", 20000), port("127.0.0.1", 20002)],
    }
    other = {
        "Id": "b",
        "Names": ["/web"],
        "State": "running",
        "Labels": {},
        "Ports": [port("0.0.0.0", 8080)],
    }
    inspect = {"Config": {"Env": ["PATH=/bin", "OPENCLAW_GATEWAY_PORT=20000"]}}
    monkeypatch.setattr(docker_http, "containers", lambda filters=None: [leftover, other])
    monkeypatch.setattr(docker_http, "get", lambda path, params=None: inspect)
    monkeypatch.setattr(live, "host_listeners", lambda: [live.Listener("127.0.0.1", 2024, 1)])
    held = testing.live_ports()
    assert ("127.0.0.1", 20000, 20110) in held and ("0.0.0.0", 8080, 8080) in held
    registry = PortRegistry(Path(os.environ["ORCH_HOME"]))
    assert registry.reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, lambda: held) == [
        20111
    ]


def test_a_dead_processs_reservation_is_reclaimed(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path)
    registry.reserve(1, "127.0.0.1", labels_of(dead_owner()), 20000, nothing_taken)
    assert registry.reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, nothing_taken) == [
        20000
    ]


def test_a_reservation_of_another_host_is_respected(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path)
    stranger = Owner("elsewhere", "1", 1, "1")
    registry.reserve(1, "127.0.0.1", labels_of(stranger), 20000, nothing_taken)
    mine = registry.reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, nothing_taken)
    assert mine == [20111]


def test_release_removes_only_the_owners_reservations(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path)
    stranger = Owner("elsewhere", "1", 1, "1")
    registry.reserve(1, "127.0.0.1", labels_of(stranger), 20000, nothing_taken)
    mine = registry.reserve(1, "127.0.0.1", labels_of(Owner.current()), 20000, nothing_taken)
    registry.release([20000, *mine], Owner.current())
    assert [e["base"] for e in registry.entries()] == [20000]


def test_no_free_footprint_left_is_a_clear_error(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path)
    with pytest.raises(OrchError, match="no free port footprint") as caught:
        registry.reserve(
            1,
            "127.0.0.1",
            labels_of(Owner.current()),
            MAX_BASE,
            lambda: [("0.0.0.0", 65500, 65500)],
        )
    assert "ORCH_TEST_PORT_START" in caught.value.hint


RESERVE_AND_HOLD = """
import sys
from pathlib import Path
from orchestrator.testing import Owner, PortRegistry, run_labels
bases = PortRegistry(Path(sys.argv[1])).reserve(
    2, "127.0.0.1", run_labels("r", Owner.current()), 20000, lambda: []
)
print(" ".join(map(str, bases)), flush=True)
sys.stdin.read()  # stay alive (and so keep the reservation) until the test is done
"""


def test_processes_reserving_at_the_same_moment_get_disjoint_footprints(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESERVE_AND_HOLD, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        bases = [int(b) for p in procs for b in p.stdout.readline().split()]  # type: ignore[union-attr]
    finally:
        for p in procs:
            p.communicate("", timeout=30)
    assert sorted(bases) == [20000 + 111 * i for i in range(12)]


# --- factory requests ------------------------------------------------------------------


def test_a_factory_request_names_its_gateways() -> None:
    assert check_request(None, None, None) == (["gw"], {})
    assert check_request(None, 3, None) == (["gw1", "gw2", "gw3"], {})
    assert check_request(["main", "rescue"], None, {"rescue": "main"}) == (
        ["main", "rescue"],
        {"rescue": "main"},
    )


@pytest.mark.parametrize(
    ("names", "n", "rescues", "message"),
    [
        (["a"], 2, None, "either names or n"),
        ("main", None, None, "a list of names"),
        (None, 0, None, "at least 1"),
        ([], None, None, "no gateway names"),
        (["Main"], None, None, "uppercase"),
        (["a", "b", "a"], None, None, "given twice: a"),
        (["main", "rescue"], None, {"rescue": "mian"}, "'mian' is not one of the gateways"),
    ],
)
def test_a_bad_factory_request_is_a_clear_usage_error(
    names: Any, n: Any, rescues: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        check_request(names, n, rescues)


def test_with_no_engine_the_factory_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    factory = GatewayFactory(root=tmp_path / "root")
    with pytest.raises(EngineUnavailable, match="no Docker engine answers") as caught:
        factory(["main"])
    assert caught.value.exit_code == 4
    assert not (tmp_path / "root").exists()


# --- orch gc's verdicts ----------------------------------------------------------------


def test_gc_keeps_a_live_run_and_removes_a_dead_one() -> None:
    now = time.time()
    assert verdict(labels_of(Owner.current()), now, None)[0] is False
    assert verdict(labels_of(Owner.current()), now, 0)[0] is False  # never a live run
    assert verdict(labels_of(dead_owner()), now, None) == (True, "its run is over")


def test_gc_removes_a_run_it_cannot_judge_only_when_older_than_asked() -> None:
    now = time.time()
    stranger = Owner("elsewhere", "1", 1, "1")
    keep, why = verdict(labels_of(stranger, created=now - 7200), now, None)
    assert keep is False and "--older-than" in why
    assert verdict(labels_of(stranger, created=now - 7200), now, 3600)[0] is True
    assert verdict(labels_of(stranger, created=now - 60), now, 3600)[0] is False
    assert verdict(labels_of(dead_owner(), created=now - 60), now, 3600)[0] is False


def test_gc_removes_the_dirs_and_reservations_of_dead_runs_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.docker import api as docker_http
    from orchestrator.testing.gc import collect_gc
    from orchestrator.testing.runs import new_run_dir

    monkeypatch.setattr(docker_http, "containers", lambda filters=None: [])
    monkeypatch.setattr(docker_http, "get", lambda path, params=None: [])
    dead, live = labels_of(dead_owner(), "dead"), labels_of(Owner.current(), "live")
    dead_dir, live_dir = new_run_dir(tmp_path, dead), new_run_dir(tmp_path, live)
    registry = PortRegistry(tmp_path)
    registry.reserve(1, "127.0.0.1", live, 20000, nothing_taken)
    registry.reserve(1, "127.0.0.1", dead, 20000, nothing_taken)  # its owner exits after

    planned = collect_gc(root=tmp_path, dry_run=True, registry=tmp_path)
    assert [(x.kind, x.run_id) for x in planned.removed] == [("dir", "dead"), ("ports", "dead")]
    assert dead_dir.exists()
    result = collect_gc(root=tmp_path, registry=tmp_path)
    assert [(x.kind, x.name) for x in result.removed] == [
        ("dir", str(dead_dir)),
        ("ports", "20111-20221"),
    ]
    assert [(x.kind, x.run_id) for x in result.kept] == [("dir", "live")]
    assert not dead_dir.exists() and live_dir.exists()
    assert [e[LABEL_RUN_ID] for e in registry.entries()] == ["live"]


def test_gc_with_a_bad_age_exits_2_before_touching_the_engine(home: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "gc", "--older-than", "soon", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["message"].startswith("--older-than")


# --- orch in a container ---------------------------------------------------------------

CID = "ab" * 32
CONTAINER_MOUNTINFO = f"""\
600 500 0:50 / / rw,relatime - overlay overlay rw
612 600 254:0 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
613 600 254:0 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""
HOST_MOUNTINFO = f"""\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 22 0:60 / /var/lib/docker/containers/{CID}/mounts/shm rw - tmpfs shm rw
"""


def test_the_container_orch_runs_in_is_found_by_its_hostname_mount() -> None:
    assert own_container_id(CONTAINER_MOUNTINFO) == CID
    assert own_container_id(HOST_MOUNTINFO) is None  # shm mounts of containers on a host


def test_bind_sources_must_be_the_same_path_on_the_host() -> None:
    view = ContainerView(
        "ci", (("/srv/orch", "/srv/orch"), ("/home/ci/data", "/data"), ("/x", "/data/x")), "host"
    )
    assert path_problems(["/srv/orch/profiles/a/state", "/srv/orch"], view) == []
    assert path_problems(["/data/x/y"], view) == [
        "/data/x/y is /x/y on the host, not the same path"
    ]
    assert path_problems(["/data/a"], view) == [
        "/data/a is /home/ci/data/a on the host, not the same path"
    ]
    assert path_problems(["/tmp/orch-test/r"], view) == [
        "/tmp/orch-test/r exists only inside container ci"
    ]
    assert path_problems(["/srv/orchard"], view) == ["/srv/orchard exists only inside container ci"]


# --- orch up --port auto ---------------------------------------------------------------


def test_up_port_auto_moves_only_profiles_whose_ports_are_taken(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.backends.local import move_taken_ports
    from orchestrator.backends.project import Project
    from orchestrator.core.observed import Listener, LiveContainer, Snapshot
    from orchestrator.docker import snapshot
    from orchestrator.fleet.provision import SetupRequest, setup
    from orchestrator.fleet.store import load_fleet

    setup(home, SetupRequest(name="main", port=18789))
    setup(home, SetupRequest(name="rescue", port=18900))
    other = LiveContainer("x", "nginx", "running", "Up", {}, (("0.0.0.0", 19011, "tcp"),))
    own = LiveContainer("y", "orch-rescue", "running", "Up", {}, (("127.0.0.1", 18900, "tcp"),))
    snap = Snapshot(
        ours={"rescue": own},
        others=[other],
        listeners=[Listener("127.0.0.1", 18791, 1), Listener("127.0.0.1", 18900, 2)],
    )
    monkeypatch.setattr(snapshot, "take_snapshot", lambda project, home, *_a, **_k: snap)
    moves = move_taken_ports(Project.open(home), None, dry_run=True)
    assert load_fleet(home).profiles["main"].port == 18789  # a dry run moves nothing
    # main's browser port 18791 is held; rescue's 18900 only by its own container. The
    # first footprint clear of the listener, rescue and another container's 19011: 19012.
    assert [(m.profile, m.old_port, m.new_port) for m in moves] == [("main", 18789, 19012)]
    assert "18791" in moves[0].reason
    assert move_taken_ports(Project.open(home), None, dry_run=False) == moves
    main = load_fleet(home).profiles["main"]
    assert main.port == 19012
    config = json.loads((home / "profiles" / "main" / "config" / "openclaw.json").read_text())
    assert config["gateway"]["port"] == 19012


def test_up_port_auto_moves_a_profile_past_the_ephemeral_range(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port there that an outgoing connection left in TIME-WAIT cannot be published."""
    from orchestrator.backends.local import move_taken_ports
    from orchestrator.backends.project import Project
    from orchestrator.core.observed import Listener, Snapshot
    from orchestrator.docker import snapshot
    from orchestrator.fleet.provision import SetupRequest, setup

    proc = Path(os.environ["ORCH_HOST_PROC"]) / "sys" / "net" / "ipv4"
    proc.mkdir(parents=True)
    (proc / "ip_local_port_range").write_text("18800\t60999\n")
    setup(home, SetupRequest(name="main", port=18789))
    snap = Snapshot(listeners=[Listener("127.0.0.1", 18789, 1)])
    monkeypatch.setattr(snapshot, "take_snapshot", lambda project, home, *_a, **_k: snap)
    (move,) = move_taken_ports(Project.open(home), None, dry_run=True)
    assert move.new_port == 61000
