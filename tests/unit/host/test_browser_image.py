"""The browser image's recipe hash: its own inputs plus the gateway's."""

from __future__ import annotations

from orchestrator.host import images


def test_browser_hash_changes_with_the_gateway_recipe(monkeypatch):
    before = images.browser_context_hash()
    assert len(before) == 16 and before == images.browser_context_hash()
    monkeypatch.setattr(images, "gateway_context_hash", lambda version: "0" * 16)
    assert images.browser_context_hash() != before


def test_browser_tag_is_the_gateway_tag_with_a_suffix():
    assert images.browser_tag("1.2.3") == "orch/openclaw-gateway:1.2.3-browser"


def test_browser_context_ships_its_dockerfile():
    assert (images.BROWSER_DIR / "Dockerfile").is_file()
    assert "chromium-headless-shell" in (images.BROWSER_DIR / "Dockerfile").read_text()


def test_a_fleet_with_a_browser_profile_on_the_default_image_wants_the_variant(home):
    from orchestrator.core.model import Profile
    from orchestrator.fleet.store import save_fleet

    from ..helpers import fleet_of

    assert images.fleet_wants_browser(home) is False  # no fleet file yet
    save_fleet(home, fleet_of(Profile(name="main", port=18789)))
    assert images.fleet_wants_browser(home) is False
    save_fleet(home, fleet_of(Profile(name="web", port=18789, browser=True)))
    assert images.fleet_wants_browser(home) is True
    own = Profile(name="web", port=18789, browser=True, image="example/gateway:1")
    save_fleet(home, fleet_of(own))  # an image the user named is taken as given
    assert images.fleet_wants_browser(home) is False


def test_a_fleet_file_that_does_not_load_wants_no_variant(home):
    home.mkdir()
    (home / "fleet.yaml").write_text("profiles: [not, a, mapping\n")
    assert images.fleet_wants_browser(home) is False
