"""Browser profiles in the pure core: image, memory, pids, env; plain ones unchanged."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.model import BROWSER_MEMORY, BROWSER_PIDS, Fleet, Profile
from orchestrator.core.spec import managed_cdp_port, render
from orchestrator.core.versions import BROWSER_IMAGE, GATEWAY_IMAGE

HOME = Path("/home/u/.local/share/orch")


def _spec(**fields):
    profile = Profile(name="main", port=18789, user="1000:1000", **fields)
    return render(profile, Fleet(project="orch", profiles={"main": profile}), HOME)


def test_plain_profile_spec_hash_is_what_it_was_before_browsers():
    # Computed with the code before browser profiles existed: a plain profile's
    # container must not be recreated by this change. (Hardening came later and
    # changes it on purpose; opted out of, the hash is the old one again.)
    unhardened = {"cpus": 0, "read_only_root": False}
    assert _spec(**unhardened).spec_hash == "9b0879bcbf93240e"
    assert _spec(browser=False, **unhardened).spec_hash == "9b0879bcbf93240e"


def test_browser_profile_runs_the_browser_image_with_more_memory_and_pids():
    spec = _spec(browser=True)
    assert spec.image == BROWSER_IMAGE == f"{GATEWAY_IMAGE}-browser"
    assert spec.mem_limit == BROWSER_MEMORY
    assert spec.pids_limit == BROWSER_PIDS
    assert spec.env["OPENCLAW_EAGER_BROWSER_CONTROL_SERVER"] == "1"
    # Hardening stays.
    assert spec.cap_drop == ("ALL",) and spec.security_opt == ("no-new-privileges",)
    assert spec.user == "1000:1000"


def test_explicit_image_and_memory_are_kept_for_a_browser_profile():
    spec = _spec(browser=True, image="me/gw:1", memory="3g", pids=2048)
    assert (spec.image, spec.mem_limit, spec.pids_limit) == ("me/gw:1", "3g", 2048)


def test_published_cdp_range_is_relayed_to_loopback_and_starts_at_the_managed_port():
    spec = _spec(browser=True, publish=("gateway", "browser", "cdp"))
    assert "18800-18899:18800-18899" in spec.env["ORCH_RELAYS"]
    assert "18791:18791" in spec.env["ORCH_RELAYS"]
    profile = Profile(name="main", port=18789)
    assert managed_cdp_port(profile) == 18800  # control port 18791 + 9


def test_browser_flag_is_left_out_of_the_fleet_file_when_off():
    plain = Fleet(profiles={"a": Profile(name="a", port=20000)})
    assert "browser" not in plain.to_document()["profiles"]["a"]
    web = Fleet(profiles={"a": Profile(name="a", port=20000, browser=True)})
    assert web.to_document()["profiles"]["a"]["browser"] is True
