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
