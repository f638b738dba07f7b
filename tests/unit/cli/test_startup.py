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
from orchestrator.core.model import Profile
from orchestrator.host.gateway_schema import GatewaySchema

from ..core.test_gateway_config import SCHEMA
from ..helpers import fleet_of, save_with_files


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


# Run a command (its argv after the code) in a fresh process; print the modules it loaded.
RUN_AND_LIST = (
    "import sys\n"
    "sys.argv = ['orch', *sys.argv[1:]]\n"
    "from orchestrator.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print('\\nMODULES', *sorted(sys.modules))\n"
)


def _loaded_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules `orch ARGS` loads on a fleet of two profiles, with no engine there
    (DOCKER_HOST names no socket: the command stops where it needs one, or says what
    it could not check)."""
    home = tmp_path / "home"
    if not home.exists():
        save_with_files(
            home, fleet_of(Profile(name="a", port=20000), Profile(name="b", port=20200))
        )
    env = {
        "PATH": "/usr/bin:/bin",
        "ORCH_HOME": str(home),
        "ORCH_REGISTRY_DIR": str(tmp_path / "registry"),
        "ORCH_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path / "user"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
    }
    run = [sys.executable, "-c", RUN_AND_LIST, *args]
    out = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60).stdout
    return set(out.rsplit("\nMODULES", 1)[1].split())


def test_check_runs_no_thread_pool_and_opens_no_tar_archive(tmp_path: Path) -> None:
    """A snapshot's few engine calls run on plain threads (concurrent.futures loads
    logging and queue), and tarfile comes only when a schema is copied out of an image."""
    loaded = _loaded_by(tmp_path, "check")
    assert "orchestrator.core.check" in loaded  # it did check
    assert loaded & {"concurrent.futures", "logging", "queue", "tarfile"} == set()


def test_status_and_down_load_none_of_the_checks() -> None:
    """Results carry problems (core/problem.py) without the checks that find them:
    status and down render no new specs and check nothing."""
    code = (
        "import sys, orchestrator.backends.local, orchestrator.cli.views;"
        "print(sorted(m for m in ('orchestrator.core.check', 'orchestrator.core.placement',"
        " 'orchestrator.core.adoption', 'tarfile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_down_without_purge_loads_no_provisioning(tmp_path: Path) -> None:
    loaded = _loaded_by(tmp_path, "down")
    assert "orchestrator.cli.lifecycle" in loaded
    assert loaded & {"orchestrator.fleet.provision", "orchestrator.core.check"} == set()


def test_status_runs_its_probes_on_plain_threads() -> None:
    """Status dials every port at once with base/parallel.at_once; the pools of `up`
    and `down` (concurrent.futures, which loads logging and queue) load with them."""
    code = (
        "import sys, orchestrator.backends.local, orchestrator.cli.views;"
        "print(sorted(m for m in ('concurrent.futures', 'logging', 'queue') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_command_ends_with_its_objects_out_of_the_collectors_reach(tmp_path: Path) -> None:
    """Python's collections at exit would walk every object the command made (25-40
    ms of every command here); `main` freezes them first, also when it fails."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('FROZEN', gc.get_freeze_count()))\n"
        "sys.argv = ['orch', *sys.argv[1:]]\n"
        "from orchestrator.cli import main\n"
        "main()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "ORCH_HOME": str(tmp_path / "no-home")}
    for args, code_expected in ((["--version"], 0), (["status", "--no-such-option"], 2)):
        run = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
        )
        assert run.returncode == code_expected, run.stderr
        frozen = int(run.stdout.rsplit("FROZEN", 1)[1])
        assert frozen > 10_000  # typer, pydantic and orch's modules: all of them
