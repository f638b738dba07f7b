"""What `orch up` refuses, and that a refusal or a failure leaves nothing behind."""

from __future__ import annotations

import os
import socket

import pytest
from support import free_base

pytestmark = pytest.mark.docker


def leftovers(engine, project: str) -> tuple[list, list]:
    label = f"orch.project={project}"
    return (
        engine.containers.list(all=True, filters={"label": label}),
        engine.networks.list(filters={"label": label}),
    )


def test_port_held_by_a_host_process_is_refused_before_anything_is_created(orch, engine):
    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", base + 2))
        holder.listen()
        result = orch.json("up", ok=False)
    assert result["ok"] is False
    assert result["error"]["type"] == "CheckFailed"
    assert result["error"]["exit_code"] == 1
    (problem,) = result["error"]["problems"]
    assert problem["ports"] == [base + 2, base + 2]
    assert (
        f"port {base + 2} on 127.0.0.1 is already in use by pid {os.getpid()}"
        in (problem["message"])
    )
    assert leftovers(engine, orch.project) == ([], [])


def test_port_held_by_another_container_is_refused_naming_that_container(orch, engine):
    from testcontainers.core.container import DockerContainer

    base = free_base()
    orch.run("setup", "main", "--port", str(base))
    squatter = (
        DockerContainer("orch/debian:bookworm")
        .with_command("sleep 300")
        .with_bind_ports(base, base)  # 0.0.0.0 clashes with our 127.0.0.1
    )
    with squatter:
        name = squatter.get_wrapped_container().name
        proc = orch.run("up", ok=False)
    assert proc.returncode == 1
    assert f"in use by container {name}" in proc.stderr
    assert "nothing was created" in proc.stderr
    assert leftovers(engine, orch.project) == ([], [])


def test_missing_image_is_refused_with_the_build_command(orch, engine):
    orch.run("setup", "main", "--port", str(free_base()), "--image", "orch/absent:0")
    result = orch.json("up", ok=False)
    assert result["error"]["type"] == "ImageError"
    assert "orch images build" in result["error"]["hint"]
    assert leftovers(engine, orch.project) == ([], [])


@pytest.mark.gateway
def test_gateway_with_broken_config_is_refused_before_start_and_leaves_nothing(
    orch, engine, gateway_image
):
    orch.run("setup", "main", "--port", str(free_base()))
    config = orch.home / "profiles" / "main" / "config" / "openclaw.json"
    config.write_text('{"gateway": {"mode": "local", "port": "not a port", "bind": "lan"}}\n')
    proc = orch.run("up", "--timeout", "90", ok=False)
    assert proc.returncode == 1  # the gateway's own checks, before anything starts
    assert "openclaw.json:1" in proc.stderr and "gateway.port" in proc.stderr
    assert leftovers(engine, orch.project) == ([], [])
    assert config.read_text().startswith('{"gateway"'), "the user's file is kept as it was"
