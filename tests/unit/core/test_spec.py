"""The container spec every backend consumes, and its drift hash (orchestrator/spec.py)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.core.ports import Role
from orchestrator.core.spec import (
    CONFIG_DIR,
    LABEL_HASH,
    TOKEN_PATH,
    ContainerSpec,
    nano_cpus,
    render,
    render_fleet,
)
from orchestrator.fleet.provision import SetupRequest, setup
from orchestrator.fleet.store import load_fleet

from ..helpers import fleet_of


def spec_of(home: Path, **fields) -> ContainerSpec:
    profile = Profile(**{"name": "main", "port": 18789, **fields})
    return render(profile, fleet_of(profile), home)


def bindings(spec: ContainerSpec) -> dict[str, tuple[str, int, int, int]]:
    return {p.role: (p.host_ip, p.host_port, p.container_port, p.count) for p in spec.ports}


# --- the hash ---------------------------------------------------------------------------


def test_render_is_deterministic(home: Path) -> None:
    first, second = spec_of(home), spec_of(home)
    assert first == second
    assert first.spec_hash == second.spec_hash
    assert len(first.spec_hash) == 16
    assert first.labels[LABEL_HASH] == first.spec_hash


def test_render_does_not_depend_on_the_order_of_the_fleet(home: Path) -> None:
    a, b = Profile(name="a", port=18789), Profile(name="b", port=18900)
    one = render(a, fleet_of(a, b), home)
    other = render(a, fleet_of(b, a), home)
    assert one.spec_hash == other.spec_hash


def test_the_hash_changes_when_the_port_changes(home: Path) -> None:
    assert spec_of(home).spec_hash != spec_of(home, port=18900).spec_hash


def test_the_hash_changes_with_image_publish_bind_ip_and_memory(home: Path) -> None:
    hashes = {
        spec_of(home).spec_hash,
        spec_of(home, image="orch/openclaw-gateway:other").spec_hash,
        spec_of(home, publish=["gateway"]).spec_hash,
        spec_of(home, bind_ip="127.0.0.2").spec_hash,
        spec_of(home, memory="2g").spec_hash,
    }
    assert len(hashes) == 5


def test_the_hash_does_not_depend_on_the_hash_label(home: Path) -> None:
    from orchestrator.core.spec import spec_hash

    spec = spec_of(home)
    relabelled = spec.model_copy(update={"labels": {**spec.labels, LABEL_HASH: "bogus"}})
    assert spec_hash(relabelled) == spec.spec_hash


# --- ports ------------------------------------------------------------------------------


def test_only_the_published_roles_get_port_bindings(home: Path) -> None:
    spec = spec_of(home)  # default publish: gateway, browser, canvas
    assert bindings(spec) == {
        "gateway": ("127.0.0.1", 18789, 18789, 1),
        "browser": ("127.0.0.1", 18791, 18791, 1),
        "canvas": ("127.0.0.1", 18793, 18793, 1),
    }


def test_publishing_cdp_binds_the_whole_range_of_100_ports(home: Path) -> None:
    spec = spec_of(home, publish=["gateway", "cdp"])
    assert bindings(spec)["cdp"] == ("127.0.0.1", 18800, 18800, 100)
    cdp = next(p for p in spec.ports if p.role == Role.CDP.value)
    assert (cdp.host_end, cdp.container_end) == (18899, 18899)
    assert cdp.expand()[0] == (18800, 18800) and cdp.expand()[-1] == (18899, 18899)


def test_ports_bind_127_0_0_1_by_default_and_the_chosen_address_otherwise(home: Path) -> None:
    assert {p.host_ip for p in spec_of(home).ports} == {"127.0.0.1"}
    assert {p.host_ip for p in spec_of(home, bind_ip="192.168.7.7").ports} == {"192.168.7.7"}


def test_the_url_is_the_gateway_port_on_a_reachable_address(home: Path) -> None:
    assert spec_of(home).url() == "http://127.0.0.1:18789"
    assert spec_of(home, bind_ip="0.0.0.0").url() == "http://127.0.0.1:18789"
    assert spec_of(home, bind_ip="::1").url() == "http://[::1]:18789"


def test_the_gateway_port_is_passed_to_the_gateway(home: Path) -> None:
    assert spec_of(home, port=20000).env["OPENCLAW_GATEWAY_PORT"] == "20000"


# --- hardening --------------------------------------------------------------------------


def test_all_capabilities_are_dropped_and_privileges_cannot_grow(home: Path) -> None:
    spec = spec_of(home)
    assert spec.cap_drop == ("ALL",)
    assert any(opt.startswith("no-new-privileges") for opt in spec.security_opt)


def test_memory_and_pids_are_limited(home: Path) -> None:
    spec = spec_of(home, memory="2g", pids=256)
    assert (spec.mem_limit, spec.pids_limit) == ("2g", 256)


def test_each_profile_gets_its_own_container_hostname_and_network(home: Path) -> None:
    a, b = Profile(name="a", port=18789), Profile(name="b", port=18900)
    specs = render_fleet(fleet_of(a, b), home)
    assert len({s.name for s in specs}) == len({s.hostname for s in specs}) == 2
    assert len({s.network for s in specs}) == 2


# --- mounts and the token ---------------------------------------------------------------


def test_the_token_is_mounted_read_only_as_a_file_and_its_value_is_nowhere(home: Path) -> None:
    result = setup(home, SetupRequest(name="main"))
    token = result.dirs.token_file.read_text().strip()
    fleet = load_fleet(home)
    spec = render(fleet.get("main"), fleet, home)
    mount = next(m for m in spec.mounts if m.target == TOKEN_PATH)
    assert mount.read_only
    assert mount.source == str(result.dirs.token_file)
    assert token not in spec.model_dump_json()
    assert all(token not in value for value in spec.env.values())


def test_config_state_and_workspace_are_mounted_read_write_from_the_profile_dirs(
    home: Path,
) -> None:
    profile = Profile(name="main", port=18789)
    spec = render(profile, fleet_of(profile), home)
    dirs = profile_dirs(profile, home)
    mounts = {m.role: (m.source, m.read_only) for m in spec.mounts}
    assert mounts["config"] == (str(dirs.config), False)
    assert mounts["state"] == (str(dirs.state), False)
    assert mounts["workspace"] == (str(dirs.workspace), False)


def test_the_rescue_mount_is_only_the_rescued_profiles_config_dir(home: Path) -> None:
    main = Profile(name="main", port=18789)
    rescue = Profile(name="rescue", port=18900, rescues="main")
    fleet = fleet_of(main, rescue)
    spec = render(rescue, fleet, home)
    main_dirs = profile_dirs(main, home)
    rescue_mounts = [m for m in spec.mounts if m.role.startswith("rescue")]
    assert len(rescue_mounts) == 1
    assert rescue_mounts[0].source == str(main_dirs.config)
    assert rescue_mounts[0].target.endswith("/main/config")
    assert rescue_mounts[0].target != CONFIG_DIR
    sources = {m.source for m in spec.mounts}
    assert str(main_dirs.state) not in sources
    assert str(main_dirs.workspace) not in sources
    assert str(main_dirs.token_file) not in sources  # never the other gateway's token


def test_a_profile_that_rescues_nobody_mounts_nothing_of_others(home: Path) -> None:
    main = Profile(name="main", port=18789)
    other = Profile(name="other", port=18900)
    spec = render(other, fleet_of(main, other), home)
    assert [m.role for m in spec.mounts] == ["config", "state", "workspace", "token"]
    assert all("/main" not in m.source for m in spec.mounts)


def test_the_project_names_the_containers(home: Path) -> None:
    profile = Profile(name="main", port=18789)
    fleet = Fleet(project="team", profiles={"main": profile})
    spec = render(profile, fleet, home)
    assert spec.name == "team-main"
    assert spec.labels["orch.project"] == "team"


def test_the_root_is_read_only_with_a_small_noexec_tmpfs_tmp_and_one_cpu(home: Path) -> None:
    spec = spec_of(home)
    assert spec.read_only is True and spec.cpus == 1.0
    (tmp,) = spec.tmpfs
    assert (tmp.target, tmp.size) == ("/tmp", "256m")
    assert tmp.options == "rw,noexec,nosuid,nodev,size=256m,mode=1777"


def test_a_browser_profile_gets_a_larger_tmp_for_chromiums_shared_memory(home: Path) -> None:
    (tmp,) = spec_of(home, browser=True).tmpfs
    assert tmp.size == "512m"


def test_a_writable_root_keeps_the_images_tmp_and_no_cpu_limit_is_zero(home: Path) -> None:
    spec = spec_of(home, read_only_root=False, cpus=0)
    assert (spec.read_only, spec.tmpfs, spec.cpus) == (False, (), 0)


def test_the_hash_changes_with_the_cpu_limit_and_the_read_only_root(home: Path) -> None:
    hashes = {
        spec_of(home).spec_hash,
        spec_of(home, cpus=1.5).spec_hash,
        spec_of(home, cpus=0).spec_hash,
        spec_of(home, read_only_root=False).spec_hash,
    }
    assert len(hashes) == 4


def test_docker_reads_a_cpu_limit_as_nano_cpus() -> None:
    assert [nano_cpus(c) for c in (0, 0.01, 1, 1.5, 2)] == [
        0,
        10_000_000,
        1_000_000_000,
        1_500_000_000,
        2_000_000_000,
    ]


def test_a_cpu_limit_above_the_engines_cpus_is_a_problem_naming_the_fix(home: Path) -> None:
    from orchestrator.core.observed import cpu_problems

    fits, too_many, unlimited = (
        spec_of(home, cpus=2),
        spec_of(home, cpus=2.5),
        spec_of(home, cpus=0),
    )
    (problem,) = cpu_problems([fits, too_many, unlimited], host_cpus=2)
    assert problem.code == "cpus-over-host"
    assert problem.message == (
        "main asks for cpus 2.5, more than the 2 CPU(s) of this engine; Docker refuses such a limit"
    )
    assert problem.hint == "orch setup main --cpus 2 --force (or --cpus 0: no limit)"
