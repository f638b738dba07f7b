"""What keeps every command short: nothing heavy is imported or rebuilt unless used."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema

import orchestrator.cli
from orchestrator.core.gateway_config import relax_schema
from orchestrator.host.gateway_schema import GatewaySchema

from ..core.test_gateway_config import SCHEMA


def test_no_module_with_commands_postpones_its_annotations() -> None:
    """typer evaluates postponed (string) annotations of every command at every start:
    43 ms for orch's 27 commands, against 7 ms for real ones."""
    folder = Path(orchestrator.cli.__file__).parent
    with_commands = [p for p in folder.glob("*.py") if ".command(" in p.read_text()]
    assert len(with_commands) >= 5
    postponed = [
        p.name for p in with_commands if "from __future__ import annotations" in p.read_text()
    ]
    assert postponed == []


def test_the_commands_of_a_converged_fleet_load_neither_the_docker_sdk_nor_jsonschema() -> None:
    code = (
        "import sys, orchestrator.cli, orchestrator.backends.local, orchestrator.docker.snapshot;"
        "print(sorted(m for m in ('docker', 'jsonschema', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def _schema(passed: Path, built: list[int]) -> GatewaySchema:
    def make() -> jsonschema.Draft7Validator:
        built.append(1)
        return jsonschema.Draft7Validator(relax_schema(SCHEMA))

    return GatewaySchema("sha256:x", "2026.9.6", make, passed_file=passed)


def test_a_config_that_passed_the_schema_is_not_validated_again(tmp_path: Path) -> None:
    passed, built = tmp_path / "x.passed", []
    text = json.dumps({"gateway": {"port": 18789}})
    assert _schema(passed, built).problems("main", "f", text, json.loads(text)) == []
    assert built == [1]
    # A later command (a new schema object, as in a new process) needs no validator.
    assert _schema(passed, built).problems("main", "f", text, json.loads(text)) == []
    assert built == [1]


def test_a_changed_or_broken_config_is_validated_every_time(tmp_path: Path) -> None:
    passed, built = tmp_path / "x.passed", []
    good = json.dumps({"gateway": {"port": 18789}})
    bad = json.dumps({"gateway": {"port": "not a port"}})
    assert _schema(passed, built).problems("main", "f", good, json.loads(good)) == []
    for _ in range(2):
        assert _schema(passed, built).problems("main", "f", bad, json.loads(bad)) != []
    assert built == [1, 1, 1]
    assert passed.read_text().split() == [hashlib.sha256(good.encode()).hexdigest()]


def _names(app) -> list[str]:
    from orchestrator.cli.app import _command_name

    return [_command_name(c) for c in app.registered_commands] + [
        g.name for g in app.registered_groups
    ]


def test_a_command_line_that_names_a_command_builds_only_that_one() -> None:
    from orchestrator.cli.app import app, narrowed

    assert _names(narrowed(app, ["up"])) == ["up"]
    assert _names(narrowed(app, ["exec"])) == ["exec"]  # a command named apart from its function
    assert _names(narrowed(app, ["backup"])) == ["backup"]  # a group: with its own commands
    for first in ([], ["--version"], ["upp"]):  # the whole app, for its help and suggestions
        assert narrowed(app, first) is app
    assert len(_names(app)) > 20  # the full app is left as it was


def test_a_narrowed_command_parses_helps_and_fails_as_in_the_whole_app(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.app import app, narrowed

    runner = CliRunner()
    env = {"ORCH_HOME": str(tmp_path / "none"), "COLUMNS": "120"}
    for args in (
        ["up", "--help"],
        ["status", "-h"],
        ["backup", "key", "--help"],
        ["up", "--timeout", "soon"],
        ["status", "--no-such-option"],
        ["logs"],
        ["check", "--json"],
    ):
        whole = runner.invoke(app, args, env=env)
        one = runner.invoke(narrowed(app, args[:1]), args, env=env)
        assert (one.exit_code, one.output) == (whole.exit_code, whole.output), args


def test_a_plain_down_does_not_load_what_only_purge_uses(tmp_path: Path) -> None:
    """The provisioning module is about a tenth of `orch down`'s imports; only
    --purge deletes dirs with it. Run here without an engine (the down stops there,
    past the point where it used to be imported)."""
    (tmp_path / "fleet.yaml").write_text("version: 1\nproject: p\nprofiles: {}\n")
    code = (
        "import sys\nsys.argv = ['orch', 'down']\nfrom orchestrator.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', 'orchestrator.fleet.provision' in sys.modules)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "ORCH_HOME": str(tmp_path),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "no Docker engine answers" in out.stderr
    assert out.stdout.strip().splitlines()[-1] == "LOADED False"
