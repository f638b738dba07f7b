"""main and rescue as a stack on a real single-node swarm, deployed from orch's specs.

The swarm is started by this module (`docker swarm init` advertising 127.0.0.1)
and left again at the end, with the networks Swarm adds; an engine that is
already in a swarm is not touched (the tests skip). Refusals come first and
leave nothing behind; then one deploy serves the rest, and `orch down --engine
swarm` comes last.
"""

from __future__ import annotations

import json
import socket

import pytest
from support import Orch, free_base, http_get, new_home, remove_fleet, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]

STACK_LABEL = "com.docker.stack.namespace"


def swarm_state(engine) -> str:
    return engine.info()["Swarm"]["LocalNodeState"]


def stack_leftovers(engine, stack: str) -> dict[str, list[str]]:
    label = {"label": f"{STACK_LABEL}={stack}"}
    return {
        "services": [s.name for s in engine.services.list(filters=label)],
        "networks": [n.name for n in engine.networks.list(filters=label)],
        "secrets": [s.name for s in engine.secrets.list(filters=label)],
        "containers": [c.name for c in engine.containers.list(all=True, filters=label)],
    }


NOTHING = {"services": [], "networks": [], "secrets": [], "containers": []}


def test_deploying_to_an_engine_that_is_no_swarm_is_refused(orch, engine):
    if swarm_state(engine) != "inactive":
        pytest.skip("this engine is in a swarm already")
    orch.run("setup", "main", "--port", str(free_base()))
    for args in (("up", "--all-addresses"), ("down",), ("status",)):
        result = orch.json(*args, "--engine", "swarm", ok=False)
        assert result["error"]["type"] == "SwarmUnavailable"
        assert result["error"]["exit_code"] == 4
        assert "not part of a swarm (swarm state: inactive)" in result["error"]["message"]
        assert "docker swarm init" in result["error"]["hint"]
    assert swarm_state(engine) == "inactive"
    assert engine.containers.list(all=True, filters={"label": f"orch.project={orch.project}"}) == []


@pytest.fixture(scope="module")
def swarm(engine):
    """A single-node swarm of this engine, on loopback only; left again afterwards."""
    if swarm_state(engine) != "inactive":
        pytest.skip("this engine is in a swarm the tests did not start; not touching it")
    had_gwbridge = bool(engine.networks.list(names=["docker_gwbridge"]))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine.swarm.init(advertise_addr="127.0.0.1", listen_addr=f"127.0.0.1:{port}")
    try:
        yield engine.info()["Swarm"]["NodeID"]
    finally:
        engine.swarm.leave(force=True)
        if not had_gwbridge:
            for net in engine.networks.list(names=["docker_gwbridge"]):
                net.remove()
        assert swarm_state(engine) == "inactive"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, engine, gateway_image, swarm):
    fleet = new_home(tmp_path_factory.mktemp("swarm") / "home")
    fleet.run("setup", "main", "--port", str(free_base()))
    fleet.run("setup", "rescue", "--port", "auto", "--rescues", "main")
    yield fleet
    fleet.run("down", "--engine", "swarm", ok=False)
    remove_fleet(engine, fleet)


def label_node(engine, node_id: str, fleet: Orch, *profiles: str) -> None:
    node = engine.nodes.get(node_id)
    spec = node.attrs["Spec"]
    labels = spec.get("Labels") or {}
    labels.update({f"orch.dirs.{fleet.project}-{p}": "true" for p in profiles})
    node.update({**spec, "Labels": labels})


def ports_of(fleet: Orch) -> dict[str, int]:
    return {p["name"]: p["port"] for p in fleet.json("ls")["data"]["profiles"]}


# --- refusals: a clear error, nothing deployed ------------------------------------------


def test_a_loopback_fleet_is_refused_unless_all_addresses_are_accepted(fleet, engine):
    result = fleet.json("up", "--engine", "swarm", ok=False)
    assert result["error"]["type"] == "CheckFailed"
    assert {p["code"] for p in result["error"]["problems"]} == {"swarm-address"}
    assert "--all-addresses" in result["error"]["hint"]
    assert stack_leftovers(engine, fleet.project) == NOTHING


def test_an_unlabelled_node_is_refused_naming_the_label_to_add(fleet, engine):
    result = fleet.json("up", "--engine", "swarm", "--all-addresses", ok=False)
    problems = result["error"]["problems"]
    assert {p["code"] for p in problems} == {"swarm-placement"}
    label = f"orch.dirs.{fleet.project}-main"
    assert f"no swarm node is labelled {label}=true" in problems[0]["message"]
    assert f"docker node update --label-add {label}=true" in result["error"]["hint"]
    assert stack_leftovers(engine, fleet.project) == NOTHING


def test_a_stack_name_taken_by_services_orch_did_not_create_is_refused(fleet, engine, swarm):
    from docker.types import ServiceMode

    label_node(engine, swarm, fleet, "main", "rescue")
    foreign = engine.services.create(
        "orch/debian:bookworm",
        ["sleep", "1"],
        name=f"{fleet.project}_theirs",
        labels={STACK_LABEL: fleet.project},
        mode=ServiceMode("replicated", replicas=0),
    )
    try:
        for args in (("up", "--all-addresses"), ("down",)):
            result = fleet.json(*args, "--engine", "swarm", ok=False)
            assert result["error"]["type"] == "StackTaken"
            assert result["error"]["exit_code"] == 1
            assert f"stack '{fleet.project}' is taken" in result["error"]["message"]
            assert f"{fleet.project}_theirs" in result["error"]["message"]
        left = stack_leftovers(engine, fleet.project)
        assert left == {**NOTHING, "services": [f"{fleet.project}_theirs"]}
    finally:
        foreign.remove()


def test_ports_of_an_existing_swarm_service_are_checked(fleet, engine, swarm):
    from docker.types import EndpointSpec, ServiceMode

    label_node(engine, swarm, fleet, "main", "rescue")
    browser = ports_of(fleet)["main"] + 2
    squatter = engine.services.create(
        "orch/debian:bookworm",
        ["sleep", "1"],
        name=f"{fleet.project}-squatter",
        mode=ServiceMode("replicated", replicas=0),
        endpoint_spec=EndpointSpec(ports={browser: 80}),
    )
    try:
        for args in (("up", "main"), ("up", "main", "--engine", "swarm", "--all-addresses")):
            result = fleet.json(*args, ok=False)
            (problem,) = result["error"]["problems"]
            assert problem["code"] == "port-in-use"
            assert problem["ports"] == [browser, browser]
            assert f"in use by swarm service {fleet.project}-squatter" in problem["message"]
        assert stack_leftovers(engine, fleet.project) == NOTHING
    finally:
        squatter.remove()


def test_a_missing_dir_on_the_labelled_node_is_refused(tmp_path, engine, swarm):
    other = new_home(tmp_path / "home")
    other.run("setup", "solo", "--port", str(free_base()), "--bind-ip", "0.0.0.0")
    label_node(engine, swarm, other, "solo")
    workspace = other.workspace_dir("solo")
    workspace.rename(workspace.with_name("moved"))
    result = other.json("up", "--engine", "swarm", ok=False)
    (problem,) = result["error"]["problems"]
    assert problem["code"] == "swarm-dirs"
    assert f"{workspace} does not exist on this node" in problem["message"]
    assert stack_leftovers(engine, other.project) == NOTHING


def test_a_gateway_that_fails_is_reported_with_its_log_and_the_new_stack_removed(
    tmp_path, engine, swarm
):
    other = new_home(tmp_path / "home")
    other.run("setup", "broken", "--port", str(free_base()), "--bind-ip", "0.0.0.0")
    label_node(engine, swarm, other, "broken")
    config = other.home / "profiles" / "broken" / "config" / "openclaw.json"
    config.write_text('{"gateway": {"port": "not a number"}}\n')  # the gateway exits 78
    try:
        result = other.json("up", "--engine", "swarm", ok=False)
        error = result["error"]
        assert (error["type"], error["exit_code"]) == ("NotReady", 5)
        assert f"broken: service {other.project}_broken task" in error["message"]
        assert "failed: task: non-zero exit (78)" in error["message"]
        assert "last log lines:" in error["message"]
        assert "the new stack was removed" in error["hint"]
        assert stack_leftovers(engine, other.project) == NOTHING
    finally:
        other.run("down", "--engine", "swarm", ok=False)


# --- one deploy ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(fleet, engine, swarm):
    label_node(engine, swarm, fleet, "main", "rescue")
    result = fleet.json("up", "--engine", "swarm", "--all-addresses")
    assert result["ok"], result
    return result


def task_container(engine, fleet: Orch, profile: str):
    name = f"{fleet.project}_{profile}"
    (container,) = engine.containers.list(
        filters={"label": f"com.docker.swarm.service.name={name}", "status": "running"}
    )
    return container


def test_main_and_rescue_are_deployed_and_ready_on_their_own_ports(deployed, fleet):
    assert [(a["profile"], a["action"]) for a in deployed["data"]["plan"]] == [
        ("main", "create"),
        ("rescue", "create"),
    ]
    assert all(o["ready"] for o in deployed["data"]["outcomes"])
    for port in ports_of(fleet).values():
        status, body = http_get(port, "/readyz")
        assert status == 200 and '"ready":true' in body


def test_status_shows_each_service_with_its_running_task(deployed, fleet):
    rows = fleet.json("status", "--engine", "swarm")["data"]["profiles"]
    for row in rows:
        assert row["service"] == f"{fleet.project}_{row['profile']}"
        # Right after up, Swarm may still say "starting" (its healthcheck has not run
        # yet): /readyz answering is what makes the row ready, as it made up return.
        assert (row["ready"], row["drift"]) == (True, None)
        assert (row["state"], row["replicas"]) in (("running", "1/1"), ("starting", "0/1"))
        (task,) = row["tasks"]
        assert (task["state"], task["desired"], task["error"]) == (row["state"], "running", "")


def test_a_second_up_changes_nothing(deployed, fleet, engine):
    before = {p: task_container(engine, fleet, p).id for p in ("main", "rescue")}
    result = fleet.json("up", "--engine", "swarm", "--all-addresses")
    assert [a["action"] for a in result["data"]["plan"]] == ["noop", "noop"]
    assert {p: task_container(engine, fleet, p).id for p in ("main", "rescue")} == before


def test_main_token_is_refused_by_rescue(deployed, fleet, engine):
    rescue = task_container(engine, fleet, "rescue")
    url = f"ws://127.0.0.1:{ports_of(fleet)['rescue']}"
    call = ["openclaw", "gateway", "call", "health", "--url", url, "--token"]
    wrong = rescue.exec_run([*call, fleet.token("main")])
    assert "token mismatch" in wrong.output.decode()
    right = rescue.exec_run([*call, fleet.token("rescue")])
    assert right.exit_code == 0 and '"ok": true' in right.output.decode()


def test_tokens_are_swarm_secrets_and_in_no_service_or_container_spec(deployed, fleet, engine):
    for profile in ("main", "rescue"):
        token = fleet.token(profile)
        service = engine.services.get(f"{fleet.project}_{profile}")
        container = task_container(engine, fleet, profile)
        assert token not in json.dumps(service.attrs)
        assert token not in json.dumps(container.attrs)
        (secret,) = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
        assert secret["File"]["Name"] == "/run/secrets/openclaw_gateway_token"
        listing = container.exec_run(["ls", "-ln", "/run/secrets/openclaw_gateway_token"])
        assert listing.output.decode().startswith("-r-------- 1 1000 1000")


def test_each_task_keeps_the_specs_isolation(deployed, fleet, engine):
    for profile in ("main", "rescue"):
        spec = fleet.json("render", profile)["data"]
        attrs = task_container(engine, fleet, profile).attrs
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert host["PidsLimit"] == spec["pids_limit"]
        assert host["Memory"] == 1280 * 1024 * 1024
        assert host["NanoCpus"] == round(spec["cpus"] * 1e9) == 1_000_000_000
        assert host["ReadonlyRootfs"] is spec["read_only"] is True
        (tmp,) = [m for m in attrs["Mounts"] if m["Type"] == "tmpfs"]
        assert tmp["Destination"] == "/tmp"
        assert (attrs["Config"]["User"], attrs["Config"]["Hostname"]) == (
            spec["user"],
            spec["hostname"],
        )
        assert list(attrs["NetworkSettings"]["Networks"]) == [spec["network"]]
        bound = {(m["Source"], m["Destination"]) for m in attrs["Mounts"] if m["Type"] == "bind"}
        wanted = {(m["source"], m["target"]) for m in spec["mounts"] if m["role"] != "token"}
        assert bound == wanted
        assert "orch.managed" not in attrs["Config"]["Labels"]  # `orch up` leaves it alone


def test_down_of_one_profile_removes_only_its_service_network_and_secret(deployed, fleet, engine):
    result = fleet.json("down", "rescue", "--engine", "swarm")
    assert [(o["profile"], o["action"]) for o in result["data"]["outcomes"]] == [
        ("rescue", "removed")
    ]
    project = fleet.project
    assert stack_leftovers(engine, project) == {
        "services": [f"{project}_main"],
        "networks": [f"{project}-main"],
        "secrets": [f"{project}_main_token"],
        "containers": [task_container(engine, fleet, "main").name],
    }
    assert http_get(ports_of(fleet)["main"], "/readyz")[0] == 200


def test_down_removes_services_networks_and_secrets_and_keeps_dirs(deployed, fleet, engine):
    token = fleet.token("main")
    result = fleet.json("down", "--engine", "swarm")
    assert {o["profile"]: o["action"] for o in result["data"]["outcomes"]} == {
        "main": "removed",
        "rescue": "noop",
    }
    wait_for(lambda: stack_leftovers(engine, fleet.project) == NOTHING, 30, "the stack to go")
    assert fleet.state_dir("main").is_dir() and fleet.workspace_dir("rescue").is_dir()
    assert fleet.token("main") == token
    for port in ports_of(fleet).values():
        assert http_get(port, "/readyz")[0] is None
    again = fleet.json("down", "--engine", "swarm")
    assert {o["action"] for o in again["data"]["outcomes"]} == {"noop"}
