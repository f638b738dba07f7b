"""Browser profiles on the real gateway with real Chromium (images/gateway-browser).

One module-scoped pair of browser profiles serves every check (each needs ~0.75 GiB
and a Chromium): browser status, browser control and CDP from the host through the
relay, `orch status` answers, and isolation between the two.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import free_base, http_get, new_home, remove_fleet, wait_for

from orchestrator.core.versions import OPENCLAW_VERSION
from orchestrator.host.images import browser_context_hash

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
        assert host["ReadonlyRootfs"] is True and host["NanoCpus"] == 1_000_000_000
        assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=512m,mode=1777"}


def test_chromium_renders_a_page_on_the_read_only_root(browsers):
    """A screenshot needs Chromium's renderer, GPU process (SwiftShader) and shared
    memory, which it keeps in /tmp (--disable-dev-shm-usage): the tmpfs."""
    out = browsers.run("exec", "web1", "--", "openclaw", "browser", "screenshot", timeout=300)
    path = out.stdout.strip().splitlines()[-1]
    assert path.startswith("/openclaw/state/")
    png = browsers.state_dir("web1") / path.removeprefix("/openclaw/state/")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    denied = browsers.run("exec", "web1", "--", "touch", "/probe", ok=False)
    assert "Read-only file system" in denied.stdout + denied.stderr


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


# --- `orch up` builds a missing browser variant (as Compose builds on `up`) -------------


@pytest.fixture
def own_version(gateway_image, browser_image):
    """A gateway version of orch's own whose browser variant is missing: the shared
    gateway image under a version tag of this test's (a tag, nothing rebuilt), so `orch
    up` has a variant to build while the shared tags stay as they are. The variant's
    apt layer comes from the shared variant's build cache: a build of seconds."""
    version = f"{OPENCLAW_VERSION}-it.{uuid.uuid4().hex[:8]}"
    gateway, variant = (
        f"orch/openclaw-gateway:{version}",
        f"orch/openclaw-gateway:{version}-browser",
    )
    subprocess.run(["docker", "tag", gateway_image, gateway], check=True)
    yield version, variant
    subprocess.run(["docker", "rmi", variant, gateway], capture_output=True, check=False)


def test_up_builds_a_missing_variant_with_progress_and_no_build_refuses(own_version, orch, engine):
    # own_version first: set up before the fleet, removed after it (an image a
    # container still uses cannot be removed).
    version, variant = own_version
    orch.run("setup", "web", "--port", str(free_base()), "--browser", "--image", variant)
    ours = {"label": f"orch.project={orch.project}"}

    refused = orch.run("up", "--no-build", ok=False)
    assert refused.returncode == 6, refused.stderr
    assert f"image {variant} (profile web) is not on this engine and --no-build" in refused.stderr
    assert "without --no-build" in refused.stderr
    assert engine.containers.list(all=True, filters=ours) == []
    assert engine.images.list(name=variant) == []

    built = orch.run("up", "--timeout", "420", timeout=900)
    assert f"images: {variant} is not on this engine: building it" in built.stderr
    assert "images: Step 1/" in built.stderr  # docker build's own progress, on stderr
    assert f"image {variant}: built in" in built.stdout
    labels = engine.images.get(variant).labels
    assert labels["orch.image.context-hash"] == browser_context_hash(version)
    (container,) = engine.containers.list(filters=ours)
    assert container.attrs["Config"]["Image"] == variant
    assert http_get(_profile(orch, "web")["port"], "/readyz")[0] == 200
    again = orch.json("up")["data"]
    assert again["images"] == [] and [a["action"] for a in again["plan"]] == ["noop"]
