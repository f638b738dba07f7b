"""orch's pytest plugin: real, isolated OpenClaw gateways as fixtures.

Registered through the `pytest11` entry point, so pytest imports this module in
every run of every suite where orch is installed. It therefore imports only
pytest and the stdlib: Docker, testcontainers and orch's core are imported by
the fixtures, when a test asks for a gateway.

Fixtures (each gateway a `orchestrator.testing.Gateway`: url, port, token,
token_file, dirs, footprint, exec(cmd) -> (exit code, output)):

- `openclaw_gateway`: one ready gateway for this test;
- `openclaw_gateways`: a factory for this test: `openclaw_gateways(["main", "rescue"],
  rescues={"rescue": "main"})` or `openclaw_gateways(n=3)`;
- `openclaw_session_gateway`, `openclaw_session_gateways`: the same, started once
  per session (per xdist worker) and shared by its tests.

Everything is removed at the end of the fixture's scope, also when a test fails
or the run is interrupted (Ctrl-C, SIGTERM); `orch gc` removes what a killed run
left behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orch", "OpenClaw gateways (orch)")
    group.addoption(
        "--openclaw-image",
        default=None,
        help="gateway image of the fixtures (default $ORCH_TEST_IMAGE, else orch's gateway image)",
    )
    group.addoption(
        "--openclaw-timeout",
        type=float,
        default=float(os.environ.get("ORCH_TEST_TIMEOUT", "120")),
        help="seconds a gateway may take to answer /readyz (default 120)",
    )


def _factory(config: pytest.Config) -> Any:
    from orchestrator.testing.factory import GatewayFactory

    return GatewayFactory(
        image=config.getoption("openclaw_image"),
        timeout=config.getoption("openclaw_timeout"),
    )


@pytest.fixture
def openclaw_gateways(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Factory of gateways that live until the end of this test."""
    factory = _factory(request.config)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def openclaw_gateway(openclaw_gateways: Any) -> Any:
    """One ready gateway for this test."""
    return openclaw_gateways()[0]


@pytest.fixture(scope="session")
def openclaw_session_gateways(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Factory of gateways that live until the end of the session (of this xdist worker)."""
    factory = _factory(request.config)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def openclaw_session_gateway(openclaw_session_gateways: Any) -> Any:
    """One ready gateway shared by every test of the session (of this xdist worker)."""
    return openclaw_session_gateways()[0]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last resort after an interrupted session: remove what no finalizer removed.
    Only when a fixture was used (the module is loaded), so nothing else pays."""
    testing = sys.modules.get("orchestrator.testing.factory")
    if testing is not None:
        testing.close_all()
