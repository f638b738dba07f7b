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


from support import SharedPair, free_base, new_home, remove_fleet  # noqa: E402


@pytest.fixture
def orch(tmp_path, engine):
    fleet = new_home(tmp_path / "home")
    yield fleet
    remove_fleet(engine, fleet)


@pytest.fixture(scope="session")
def shared_pair(tmp_path_factory, engine, gateway_image):
    """main + rescue brought up by `orch up` once for the whole session: a cold pair
    costs 20-40 s of this 2-core machine, and many modules only need one running.
    A module (or test) that uses it and changes it (restarts, a broken config, down)
    ends with `shared_pair.restore(engine)`, which checks that it is the pair it was
    made as (files, containers running, /readyz) and makes it again when not."""
    fleet = new_home(tmp_path_factory.mktemp("shared-pair") / "home")
    try:
        fleet.run("setup", "main", "--port", str(free_base()))
        fleet.run("setup", "rescue", "--port", "auto", "--rescues", "main")
        result = fleet.json("up", "--timeout", "300", timeout=400)
        assert result["ok"], result
        yield SharedPair(fleet)
    finally:
        fleet.run("down", ok=False)
        remove_fleet(engine, fleet)


@pytest.fixture(scope="session")
def browser_image(gateway_image) -> str:
    """The browser variant, built (or found current) the way `orch images build
    --browser` does, so a fresh machine gets it."""
    from orchestrator.core.versions import BROWSER_IMAGE
    from orchestrator.host.images import build_browser_image

    build_browser_image()
    return BROWSER_IMAGE
