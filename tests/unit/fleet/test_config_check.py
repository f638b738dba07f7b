"""Each profile's openclaw.json read from disk and checked, the gate refusing it, and the
rescue runbook's files: history of good configs and an atomic restore."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.core.gateway_config import relax_schema
from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.errors import CheckFailed
from orchestrator.fleet.config_check import config_problems
from orchestrator.fleet.config_history import (
    HISTORY_KEEP,
    history,
    last_good_candidates,
    remember_good,
    restore,
)
from orchestrator.fleet.gate import checked_specs
from orchestrator.host.gateway_schema import GatewaySchema
from orchestrator.workflows.rescue import mask_credentials, masked_diff

from ..core.test_gateway_config import SCHEMA
from ..helpers import fleet_of, save_with_files


def schema_of(_image: str) -> GatewaySchema:
    validator = jsonschema.Draft7Validator(relax_schema(SCHEMA))
    return GatewaySchema("sha256:x", "2026.9.6", lambda: validator)


@pytest.fixture
def fleet(home: Path):
    return save_with_files(
        home,
        fleet_of(
            Profile(name="main", port=18789),
            Profile(name="rescue", port=18900, rescues="main"),
        ),
    )


def edit(home: Path, fleet, name: str, change) -> Path:
    path = profile_dirs(fleet.profiles[name], home).config_file
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def test_what_setup_writes_passes(home: Path, fleet) -> None:
    assert config_problems(fleet, home, schema_of) == []


def test_a_broken_config_is_named_and_the_gate_refuses_it(home: Path, fleet) -> None:
    path = edit(home, fleet, "main", lambda d: d["gateway"].update(mode="bogus-mode"))
    problems = config_problems(fleet, home, schema_of)
    (problem,) = problems  # one per key: orch's own check does not repeat the schema's
    assert problem.file == str(path) and problem.line == 3 and problem.key == "gateway.mode"
    with pytest.raises(CheckFailed) as err:
        checked_specs(fleet, home, None, files=True, schema_of=schema_of)
    assert err.value.problems == problems
    # the rescue itself is not held back by main's broken config
    assert checked_specs(fleet, home, ["rescue"], files=True, schema_of=schema_of)


def test_an_unparsable_config_says_so(home: Path, fleet) -> None:
    path = profile_dirs(fleet.profiles["main"], home).config_file
    path.write_text("{ gateway: { port: 1,, } ")
    (problem,) = config_problems(fleet, home, schema_of)
    assert problem.code == "config-unparsable" and str(path) in problem.message


def test_a_rescue_copying_mains_telegram_bot_is_refused(home: Path, fleet) -> None:
    token = "4242:AA-secret-token-of-main"
    for name in ("main", "rescue"):
        edit(home, fleet, name, lambda d: d.update(channels={"telegram": {"botToken": token}}))
    (problem,) = config_problems(fleet, home, schema_of)
    assert problem.code == "credential-shared" and problem.owners == ("main", "rescue")
    assert token not in json.dumps(problem.to_json())
    assert "rescue rescues main" in problem.hint


def test_a_config_whose_schema_cannot_be_had_is_reported_unchecked_not_clean(
    home: Path, fleet
) -> None:
    """`orch check` with no engine, or a profile whose image is not here, did not apply
    the gateway's schema: it says so per profile (what, why, how to make it checkable)."""
    from orchestrator.core.model import Profile
    from orchestrator.fleet.config_check import SchemaGap, config_report

    fleet = save_with_files(
        home, fleet.with_profile(Profile(name="other", port=19100, image="orch/absent:1"))
    )
    gap = SchemaGap("image orch/absent:1 is not on this engine", "build or pull it")
    edit(home, fleet, "other", lambda d: d.update(channels={"telegram": {"dmPolicy": 5}}))
    report = config_report(
        fleet, home, lambda image: gap if "absent" in image else schema_of(image)
    )
    assert report.problems == []  # nothing it checked is wrong...
    (unchecked,) = report.unchecked  # ...and the one config it could not check is named
    path = profile_dirs(fleet.profiles["other"], home).config_file
    assert unchecked.owners == ("other",) and unchecked.file == str(path)
    assert unchecked.message == (
        f"other {path} against the gateway's schema: not checked, image orch/absent:1 is not"
        " on this engine"
    )
    assert unchecked.hint == "build or pull it"
    # The same config against a schema that is there: the schema's problem is found.
    (problem,) = config_report(fleet, home, schema_of).problems
    assert problem.key == "channels.telegram.dmPolicy"


def test_a_config_nested_too_deeply_is_unparsable_not_a_crash(home: Path, fleet) -> None:
    path = profile_dirs(fleet.profiles["main"], home).config_file
    path.write_text("[" * 100_000 + "]" * 100_000)
    (problem,) = config_problems(fleet, home, schema_of)
    assert problem.code == "config-unparsable" and "nested too deeply" in problem.message


def test_history_is_bounded_and_newest_first(home: Path, fleet) -> None:
    dirs = profile_dirs(fleet.profiles["main"], home)
    for port in range(HISTORY_KEEP + 2):
        edit(home, fleet, "main", lambda d, port=port: d["gateway"].update(port=30000 + port))
        assert remember_good(dirs)
        assert not remember_good(dirs)  # the same config twice is one entry
    kept = history(dirs)
    assert len(kept) == HISTORY_KEEP
    assert json.loads(kept[0].text)["gateway"]["port"] == 30000 + HISTORY_KEEP + 1
    assert all(g.path.stat().st_mode & 0o777 == 0o600 for g in kept)


def test_restore_keeps_the_broken_one_aside_atomically(home: Path, fleet) -> None:
    dirs = profile_dirs(fleet.profiles["main"], home)
    good_text = dirs.config_file.read_text()
    (dirs.config / "openclaw.json.last-good").write_text(good_text)
    edit(home, fleet, "main", lambda d: d["gateway"].update(mode="bogus-mode"))
    broken_text = dirs.config_file.read_text()
    good = last_good_candidates(dirs)[0]
    assert good.source == "gateway"
    aside = restore(dirs, good, 1000, 1000)
    assert dirs.config_file.read_text() == good_text
    assert aside is not None and aside.read_text() == broken_text
    assert aside.name.startswith("openclaw.json.broken-")
    assert (
        aside.stat().st_mode & 0o777 == 0o600 and dirs.config_file.stat().st_mode & 0o777 == 0o600
    )
    leftovers = [p.name for p in dirs.config.iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_a_diff_never_shows_a_credential() -> None:
    good = '{\n  "botToken": "111:secret-a",\n  "mode": "local"\n}\n'
    bad = '{\n  "botToken": "222:secret-b",\n  "mode": "bogus"\n}\n'
    diff = masked_diff(bad, good, "openclaw.json", "openclaw.json.last-good")
    assert "secret-a" not in diff and "secret-b" not in diff and "<hidden sha256:" in diff
    assert '-  "mode": "local"' in diff and '+  "mode": "bogus"' in diff
    assert mask_credentials("{maxTokens: 5, apiKey: 'k-1'}") == (
        "{maxTokens: 5, apiKey: '<hidden sha256:"
        + __import__("hashlib").sha256(b"k-1").hexdigest()[:8]
        + ">'}"
    )


def test_the_rescuer_is_the_profile_rescuing_the_target(home: Path, fleet) -> None:
    from orchestrator.errors import UsageError
    from orchestrator.workflows.rescue import rescuer_of

    assert rescuer_of(fleet, "main", None).name == "rescue"
    assert rescuer_of(fleet, "main", "rescue").name == "rescue"
    with pytest.raises(UsageError, match="no profile rescues 'rescue'") as err:
        rescuer_of(fleet, "rescue", None)
    assert "orch setup rescue --rescues rescue" in (err.value.hint or "")
    with pytest.raises(UsageError, match="does not rescue"):
        rescuer_of(fleet, "rescue", "main")
