"""Browser profiles on the real gateway with real Chromium (images/gateway-browser).

One module-scoped pair of browser profiles serves every check (each needs ~0.75 GiB
and a Chromium): browser status, browser control and CDP from the host through the
relay, `orch status` answers, and isolation between the two.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import free_base, http_get, new_home, remove_fleet, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]


PUBLISH = "gateway,browser,cdp"


@pytest.fixture(scope="module")
def browsers(tmp_path_factory, engine, browser_image):
    fleet = new_home(tmp_path_factory.mktemp("browsers") / "home")
    fleet.run("setup", "web1", "--port", str(free_base()), "--browser", "--publish", PUBLISH)
    fleet.run("setup", "web2", "--port", "auto", "--browser", "--publish", PUBLISH)
    # A cold gateway needs 20-30 s alone; on a loaded 2-core CI box two took >120 s.
    result = fleet.json("up", "--timeout", "420", timeout=600)
    assert result["ok"], result
    with ThreadPoolExecutor(max_workers=2) as pool:  # both Chromiums start at once
        starts = [
            pool.submit(fleet.run, "exec", name, "--", "openclaw", "browser", "start", timeout=300)
            for name in ("web1", "web2")
        ]
        for start in starts:
            start.result()
    yield fleet
    fleet.run("down", ok=False, timeout=300)
    remove_fleet(engine, fleet)


def _profile(fleet, name: str) -> dict:
    return next(p for p in fleet.json("ls")["data"]["profiles"] if p["name"] == name)


def _cdp(fleet, name: str) -> int:
    return _profile(fleet, name)["port"] + 11


def _get_json(port: int, path: str, method: str = "GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_browser_profiles_run_the_browser_image_hardened(browsers, engine):
    for name in ("web1", "web2"):
        attrs = browsers.container(engine, name).attrs
        assert attrs["Config"]["Image"] == "orch/openclaw-gateway:2026.9.6-browser"
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == 2 * 1024**3
        assert attrs["Config"]["User"] == _profile(browsers, name)["user"]


def test_images_build_and_ls_cover_the_variant_a_browser_fleet_needs(browsers, browser_image):
    built = {r["tag"]: r["action"] for r in browsers.json("images", "build")["data"]["images"]}
    assert built[browser_image] == "current"  # built by the fixture: not rebuilt
    rows = {r["tag"]: r for r in browsers.json("images", "ls")["data"]["images"]}
    assert rows[browser_image]["role"] == "browser"
    assert rows[browser_image]["present"] is True and rows[browser_image]["current"] is True
    plain = browsers.json("images", "build", "--no-browser")["data"]["images"]
    assert browser_image not in {r["tag"] for r in plain}


def test_browser_status_reports_a_running_headless_browser(browsers):
    out = browsers.run("exec", "web1", "--", "openclaw", "browser", "status", timeout=300).stdout
    assert "running: true" in out and "headless: true" in out
    assert f"cdpPort: {_cdp(browsers, 'web1')}" in out


def test_cdp_answers_from_the_host_with_a_chrome_version(browsers):
    for name in ("web1", "web2"):
        version = wait_for(
            lambda n=name: (
                http_get(_cdp(browsers, n), "/json/version")[0] == 200
                and _get_json(_cdp(browsers, n), "/json/version")
            ),
            60,
            f"{name} CDP /json/version",
        )
        assert "Chrome/" in version["Browser"]


def test_browser_control_answers_from_the_host(browsers):
    port = _profile(browsers, "web1")["port"] + 2
    status, _ = http_get(port, "/")
    assert status == 401  # the gateway's auth, reached through the relay
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {browsers.token('web1')}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_status_says_answers_for_browser_and_cdp(browsers):
    rows = browsers.json("status")["data"]["profiles"]
    for row in rows:
        answering = {p["role"]: p["answering"] for p in row["ports"]}
        assert answering == {"gateway": True, "browser": True, "cdp": True}, row


def test_two_browser_profiles_are_isolated(browsers):
    one, two = _cdp(browsers, "web1"), _cdp(browsers, "web2")
    assert one != two
    for name in ("web1", "web2"):
        assert (browsers.state_dir(name) / "browser" / "openclaw" / "user-data").is_dir()
    tab = _get_json(one, "/json/new?about:blank%23orch-isolation-web1", method="PUT")
    try:
        urls_one = {t["url"] for t in _get_json(one, "/json/list")}
        urls_two = {t["url"] for t in _get_json(two, "/json/list")}
        assert "about:blank#orch-isolation-web1" in urls_one
        assert "about:blank#orch-isolation-web1" not in urls_two
    finally:
        urllib.request.urlopen(f"http://127.0.0.1:{one}/json/close/{tab['id']}", timeout=10)
