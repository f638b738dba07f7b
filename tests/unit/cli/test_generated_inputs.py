"""Generated input through the real entry point (hypothesis): fleet files (valid-ish
YAML with random keys, values and types, broken YAML, binary), option values and
environment values. Whatever comes in: no traceback, exit 0, 1 or 2 (1 or 2 with a
message when it fails), and nothing written by a command that only reads or fails.

Every path a generated value can name stays inside the example's sandbox: generated
text is relative (no leading '/' or '~', no '..') and the cwd is the sandbox, so no
example, however wild, can reach a dir of the host.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestrator.core.reference import image_problem
from orchestrator.fleet.store import load_fleet

from .helpers import invoke, said, tree

EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def no_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "ORCH_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)


@contextlib.contextmanager
def sandbox(fleet: str | bytes | None = None) -> Iterator[tuple[Path, dict[str, str | None]]]:
    """A fresh dir holding orch's home (with `fleet` as its fleet file), the host
    registry, the cache and HOME; the cwd while the example runs."""
    root = Path(tempfile.mkdtemp(prefix="orch-generated-"))
    (root / "registry").mkdir()
    (root / "user").mkdir()
    (root / "file").write_text("a regular file\n")
    if fleet is not None:
        (root / "home").mkdir()
        raw = fleet if isinstance(fleet, bytes) else fleet.encode("utf-8", "surrogatepass")
        (root / "home" / "fleet.yaml").write_bytes(raw)
    env: dict[str, str | None] = {
        "ORCH_HOME": str(root / "home"),
        "ORCH_REGISTRY_DIR": str(root / "registry"),
        "ORCH_CACHE_DIR": str(root / "cache"),
        "HOME": str(root / "user"),
    }
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root, env
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)


def assert_answered(result: Any, allowed: set[int] = frozenset({0, 1, 2})) -> None:
    """An exit code orch documents, and a failure says what failed."""
    assert result.exit_code in allowed, (result.exit_code, result.output)
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many got how far
    if result.exit_code != 0:
        message = said(result) or result.stdout
        assert message.strip(), result.output


# --- generated fleet files --------------------------------------------------------------

PROFILE_KEYS = [
    "port",
    "bind_ip",
    "image",
    "publish",
    "dirs",
    "user",
    "rescues",
    "memory",
    "pids",
    "browser",
    "browser_profiles",
    "allow_privileged_ports",
]
TOP_KEYS = ["version", "project", "profiles"]
keys = st.one_of(
    st.sampled_from(PROFILE_KEYS + TOP_KEYS + ["config", "state"]), st.text(max_size=8)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20).filter(lambda s: not s.startswith(("/", "~")) and ".." not in s),
    st.sampled_from(["20000", "::1", "0.0.0.0", "gateway", "main", "1g", "1000:1000"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def _mutated_fleet(profile: dict, top: dict) -> str:
    doc: dict[Any, Any] = {
        "version": 1,
        "profiles": {"main": {"port": 20000, **profile}, "rescue": {"port": 20200}},
    }
    doc.update(top)
    return yaml.safe_dump(doc, allow_unicode=True)


LINES = [
    "version: 1",
    "project: x",
    "profiles:",
    "  main:",
    "    port: 20000",
    "    port: x",
    "    image: 'A;B'",
    "    dirs: {state: ''}",
    "  - a",
    "{",
    "]",
    "a: &a [*a]",
    "!!python/object/apply:os.system ['true']",
    "\t",
    "? [a, b]",
    ": 1",
    "---",
]

fleet_files = st.one_of(
    st.builds(
        _mutated_fleet,
        st.dictionaries(st.sampled_from(PROFILE_KEYS), values, max_size=3),
        st.dictionaries(st.sampled_from(TOP_KEYS), values, max_size=1),
    ),
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.lists(st.sampled_from(LINES), max_size=8).map("\n".join),
    st.text(max_size=200),
    st.binary(max_size=200),
)
READ_ONLY = [
    ("ls",),
    ("ls", "--json"),
    ("check",),
    ("check", "--json"),
    ("ports",),
    ("render", "main"),
    ("render", "main", "--format", "json"),
    ("export", "compose"),
]


@EXAMPLES
@given(fleet=fleet_files, command=st.sampled_from(READ_ONLY))
def test_any_fleet_file_gets_an_answer_and_reading_it_writes_nothing(
    fleet: str | bytes, command: tuple[str, ...]
) -> None:
    with sandbox(fleet) as (root, env):
        before = tree(root)
        result = invoke(*command, env=env)
        assert_answered(result)
        assert tree(root) == before


# --- generated option values ------------------------------------------------------------

# What a shell can pass: no NUL, no lone surrogates.
argv_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


def mostly(valid: list[str], wild: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Three in four from `valid` (so that many setups get all the way), else `wild`."""
    return st.one_of(*[st.sampled_from(valid)] * 3, wild)


names = mostly(["main", "web", "rescue", "a-b_c"], st.one_of(argv_text, st.just("Main")))
ports = mostly(["auto", "21000", "30500"], st.one_of(st.integers(-10, 70_000).map(str), argv_text))
ips = mostly(["127.0.0.1", "0.0.0.0", "::1", "::"], st.one_of(st.just("localhost"), argv_text))
images = mostly(
    ["orch/openclaw-gateway:2026.9.6", "localhost:5000/gw@sha256:" + "a" * 64],
    st.one_of(st.just("UPPER CASE;rm -rf /"), argv_text),
)
publish = mostly(
    ["gateway", "gateway,browser,canvas", "gateway,cdp"],
    st.one_of(st.lists(st.sampled_from(["gateway", "cdp", "ssh", ""])).map(",".join), argv_text),
)


@st.composite
def setup_args(draw: st.DrawFn) -> list[str]:
    args = ["setup", draw(names)]
    for option, strategy in (
        ("--port", ports),
        ("--bind-ip", ips),
        ("--image", images),
        ("--publish", publish),
        ("--rescues", names),
    ):
        if draw(st.integers(0, 2)) == 0:
            args += [option, draw(strategy)]
    for flag in ("--browser", "--no-browser", "--allow-privileged-ports", "--force", "--json"):
        if draw(st.integers(0, 3)) == 0:
            args.append(flag)
    return args


EXISTING = "version: 1\nprofiles:\n  main:\n    port: 20000\n"


@EXAMPLES
@given(args=setup_args(), existing=st.booleans())
def test_any_setup_gets_an_answer_and_a_failed_one_writes_nothing(
    args: list[str], existing: bool
) -> None:
    with sandbox(EXISTING if existing else None) as (root, env):
        before = tree(root)
        result = invoke(*args, env=env)
        assert_answered(result)
        if result.exit_code != 0:
            assert tree(root) == before
            return
        fleet = load_fleet(root / "home")  # what was written reads back...
        for profile in fleet.profiles.values():  # ...and holds only what Docker takes
            assert image_problem(profile.image) is None
        assert_answered(invoke("check", env=env))


def _out_of_range(value: str, low: float, whole: bool) -> bool:
    try:
        number = float(value)
    except ValueError:
        return True
    return not math.isfinite(number) or number < low or (whole and number != int(number))


NUMBER_OPTIONS = [
    # (command, option, lowest valid, whole numbers only)
    (("up", "--dry-run"), "--timeout", math.nextafter(0, 1), False),
    (("restart", "main"), "--timeout", math.nextafter(0, 1), False),
    (("logs", "main"), "--tail", 0, True),
    (("backup", "main"), "--keep", 1, True),
]
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "0", "-0", "0.0", "1_000"]),
    argv_text.filter(lambda s: not s.startswith("-")),
)


@EXAMPLES
@given(which=st.sampled_from(NUMBER_OPTIONS), value=numbers)
def test_a_number_out_of_range_is_always_refused_before_the_command_runs(
    which: tuple[tuple[str, ...], str, float, bool], value: str
) -> None:
    command, option, low, whole = which
    with sandbox(EXISTING) as (root, env):
        before = tree(root)
        result = invoke(*command, option, value, env=env)
        # 4: the command itself needs an engine, and none answers in unit tests
        assert_answered(result, {0, 1, 2, 4})
        if _out_of_range(value.strip(), low, whole):
            assert result.exit_code == 2, result.output
            assert f"Invalid value for '{option}'" in result.stderr
        assert tree(root) == before


# --- generated environment values -------------------------------------------------------

# Relative text only (see the module's docstring), and paths of the kinds orch must refuse.
env_text = argv_text.filter(lambda s: not s.startswith(("/", "~")) and ".." not in s)
SPECIAL = [
    "{root}/file",
    "{root}/file/below",
    "{root}/new/dir",
    "/proc/self",
    "/proc/self/orch",
    "/dev/null",
    "/sys",
    "",
]
ENV_VARS = [
    "ORCH_HOME",
    "ORCH_REGISTRY_DIR",
    "ORCH_CACHE_DIR",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
    "HOME",
    "ORCH_PORT_START",
]


@EXAMPLES
@given(
    changes=st.dictionaries(
        st.sampled_from(ENV_VARS), st.one_of(st.sampled_from(SPECIAL), env_text), max_size=3
    ),
    unset_home=st.booleans(),
    command=st.sampled_from([("ls",), ("check", "--json"), ("setup", "web", "--port", "auto")]),
)
def test_any_environment_gets_an_answer_and_a_failure_writes_nothing(
    changes: dict[str, str], unset_home: bool, command: tuple[str, ...]
) -> None:
    with sandbox(EXISTING) as (root, env):
        for var, value in changes.items():
            # An empty HOME makes "~" the root dir, an empty ORCH_REGISTRY_DIR the host's
            # registry, a relative HOME the real user's home (the password database's,
            # as platformdirs falls back): all outside the sandbox, so they are left as
            # they are (a generated `setup web` wrote the real default home before).
            outside = var == "HOME" and not os.path.isabs(value.replace("{root}", str(root)))
            if (value.strip() or var not in ("HOME", "ORCH_REGISTRY_DIR")) and not outside:
                env[var] = value.replace("{root}", str(root))
        if unset_home and "ORCH_HOME" not in changes:
            env["ORCH_HOME"] = None  # the default home: from XDG_DATA_HOME or HOME
        before = tree(root)
        result = invoke(*command, env=env)
        assert_answered(result)
        if result.exit_code != 0 or command[0] != "setup":
            assert tree(root) == before, result.output


def test_the_json_answer_of_a_generated_failure_is_an_envelope() -> None:
    """The same property holds for --json: one envelope on stdout, ok false."""
    with sandbox("version: 1\nprofiles: [\n") as (_root, env):
        result = invoke("check", "--json", env=env)
        doc = json.loads(result.stdout)
        assert result.exit_code == 2 and doc["ok"] is False and "not valid YAML" in said(result)
