"""Integration fixtures: a real Docker engine and the real gateway image.

The engine is made available the way a user gets it (`ensure_engine`), the image
is built or reused (`build_images`), and orch is driven through its real entry
point in a subprocess, with its home in a temp dir and a project name of its own,
so nothing here touches a user's fleet. Anything a test leaves is removed by label.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
# `--port auto` of test fleets starts above the ports a user's own fleet takes
# (18789, 18900, ...), so tests run first never take the main job's ports.
os.environ.setdefault("ORCH_PORT_START", "20000")


@pytest.fixture(scope="session")
def engine():
    from orchestrator.docker.daemon import ensure_engine
    from orchestrator.docker.sdk import docker_client

    ensure_engine()
    return docker_client()


@pytest.fixture(scope="session")
def gateway_image(engine) -> str:
    from orchestrator.core.versions import GATEWAY_IMAGE
    from orchestrator.host.images import build_images

    build_images()
    return GATEWAY_IMAGE


from support import new_home, remove_fleet  # noqa: E402


@pytest.fixture
def orch(tmp_path, engine):
    fleet = new_home(tmp_path / "home")
    yield fleet
    remove_fleet(engine, fleet)


@pytest.fixture(scope="session")
def browser_image(gateway_image) -> str:
    """The browser variant, built (or found current) the way `orch images build
    --browser` does, so a fresh machine gets it."""
    from orchestrator.core.versions import BROWSER_IMAGE
    from orchestrator.host.images import build_browser_image

    build_browser_image()
    return BROWSER_IMAGE
