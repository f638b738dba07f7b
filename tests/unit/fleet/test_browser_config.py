"""The browser keys orch writes into openclaw.json, and takes back out again."""

from __future__ import annotations

import json

from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.core.versions import BROWSER_EXECUTABLE
from orchestrator.fleet.openclaw_config import managed_config, planned_config


def test_plain_profile_config_has_no_browser_keys():
    assert "browser" not in managed_config(Profile(name="a", port=20000))


def test_browser_profile_points_the_gateway_at_the_images_headless_chromium():
    browser = managed_config(Profile(name="a", port=20000, browser=True))["browser"]
    assert browser == {
        "enabled": True,
        "executablePath": BROWSER_EXECUTABLE,
        "headless": True,
        "noSandbox": True,
    }
    # No user data dir or CDP port: the gateway's defaults are the profile's own
    # (state dir, base+11).
    assert "profiles" not in browser


def test_turning_browser_off_drops_orchs_keys_and_keeps_the_users(tmp_path):
    profile = Profile(name="a", port=20000)
    dirs = profile_dirs(profile, tmp_path)
    dirs.config.mkdir(parents=True)
    on = managed_config(Profile(name="a", port=20000, browser=True))
    on["browser"]["extraArgs"] = ["--lang=de"]
    dirs.config_file.write_text(json.dumps(on))
    wanted, changed = planned_config(profile, dirs)
    assert changed
    assert wanted["browser"] == {"extraArgs": ["--lang=de"]}
