"""What `orch up` refuses, and that a refusal or a failure leaves nothing behind."""

from __future__ import annotations

import json
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


def test_missing_image_orch_cannot_build_is_refused_with_what_to_do(orch, engine):
    orch.run("setup", "main", "--port", str(free_base()), "--image", "orch/absent:0")
    result = orch.json("up", ok=False)
    assert result["error"]["type"] == "ImageError"
    assert "orch/absent:0" in result["error"]["message"]
    hint = result["error"]["hint"]
    assert "docker load" in hint and "orch setup main --image orch/openclaw-gateway:" in hint
    assert leftovers(engine, orch.project) == ([], [])


@pytest.mark.gateway
def test_a_config_only_the_gateways_own_schema_refuses_is_refused_before_start(
    orch, engine, gateway_image
):
    """A wrong type deep in a section orch does not manage: orch's own checks of the
    keys it manages find nothing, so only the gateway's schema, read from the image,
    can refuse it. If the schema were not applied, check would say ok and up would
    start the gateway."""
    orch.run("setup", "main", "--port", str(free_base()))
    config = orch.home / "profiles" / "main" / "config" / "openclaw.json"
    doc = json.loads(config.read_text())
    doc.setdefault("agents", {}).setdefault("defaults", {})["maxConcurrent"] = "lots"
    config.write_text(json.dumps(doc, indent=2) + "\n")
    written = config.read_text()
    line = next(n for n, text in enumerate(written.splitlines(), 1) if '"maxConcurrent"' in text)
    check = orch.json("check", ok=False)
    assert check["data"]["unchecked"] == [], "the engine answers and has the image"
    (problem,) = check["data"]["problems"]
    assert problem["code"] == "config-invalid", problem  # the schema's, not orch's own
    assert (problem["key"], problem["line"]) == ("agents.defaults.maxConcurrent", line)
    proc = orch.run("up", "--timeout", "90", ok=False)
    assert proc.returncode == 1  # refused before anything starts
    assert f"openclaw.json:{line}" in proc.stderr and "agents.defaults.maxConcurrent" in proc.stderr
    assert leftovers(engine, orch.project) == ([], [])
    assert config.read_text() == written, "the user's file is kept as it was"


def test_check_names_a_config_it_could_not_check_against_a_missing_images_schema(orch, engine):
    orch.run("setup", "main", "--port", str(free_base()), "--image", "orch/absent:0")
    check = orch.json("check")  # exit 0: nothing it checked is wrong...
    assert check["data"]["problems"] == []
    (unchecked,) = check["data"]["unchecked"]  # ...and it says what it did not check
    assert unchecked["owners"] == ["main"]
    assert unchecked["why"].startswith("image orch/absent:0 is not on this engine")
    assert "orch images build" in unchecked["hint"]
    text = orch.run("check").stdout
    assert text.startswith("ok: no problems in 1 profile; 1 item not checked\nnot checked:\n")
