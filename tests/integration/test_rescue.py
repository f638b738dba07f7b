"""The gateway's own config checked before start, and the rescue bot bringing main back,
on the real gateway: one fleet (main + rescue, the session's pair, conftest.py
`shared_pair`) for the whole module, the cases in order; it is put back at the end.

main's config is broken -> `orch check` names the line, `orch up` refuses and leaves the
running main alone; main restarted on it crash-loops (exit 78, in `orch status`, which
exits 5, and `orch up --dry-run` refuses its config, never a `noop`); then
`orch rescue main --restore-last-good --restart` brings it back ready, state and token
kept. The time is printed beside the 46 s the restart policy alone took (openclaw.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support import wait_for


@pytest.fixture(scope="module")
def fleet(shared_pair, engine):
    try:
        yield shared_pair.fleet
    finally:
        shared_pair.restore(engine)


def config_file(orch):
    return orch.home / "profiles" / "main" / "config" / "openclaw.json"


def break_main(orch) -> str:
    path = config_file(orch)
    text = path.read_text()
    assert '"mode": "local"' in text
    path.write_text(text.replace('"mode": "local"', '"mode": "bogus-mode"'))
    return text


def test_a_broken_config_is_named_with_its_line_and_up_refuses_it(fleet, engine):
    before = fleet.container(engine, "main").id
    break_main(fleet)
    check = fleet.json("check", ok=False)
    (problem,) = [p for p in check["data"]["problems"] if "main" in p["owners"]]
    assert problem["code"] == "config-invalid" and problem["key"] == "gateway.mode"
    assert problem["line"] == 3 and problem["file"] == str(config_file(fleet))
    assert "openclaw.json:3 - gateway.mode" in problem["message"]
    assert "bogus-mode" in problem["message"]

    up = fleet.json("up", ok=False)
    assert up["ok"] is False and up["error"]["exit_code"] == 1
    container = fleet.container(engine, "main")
    assert container.id == before and container.status == "running"
    row = fleet.json("status", "main")["data"]["profiles"][0]
    assert row["ready"] is True


def test_main_crash_looping_shows_restarts_and_exit_78_and_its_config_refused(fleet, engine):
    fleet.container(engine, "main").restart(timeout=15)

    def looping():
        rows = fleet.json("status", "main", ok=False)["data"]["profiles"]
        row = rows[0]
        return row if row["restarts"] >= 2 and row["last_exit"] else None

    row = wait_for(looping, 180, "main crash-looping")
    assert row["last_exit"]["code"] == 78 and "configuration" in row["last_exit"]["meaning"]
    assert "bogus-mode" in (row["last_error"] or "")
    assert "Gateway start blocked" in row["last_error"]
    assert row["ready"] is False
    status = fleet.run("status", "main", "--json", ok=False)
    assert status.returncode == 5  # a profile not ready
    refused = fleet.json("up", "--dry-run", ok=False)  # never a `noop` for it
    assert refused["error"]["exit_code"] == 1 and "gateway.mode" in json.dumps(refused)


def test_rescue_restores_the_last_good_config_and_brings_main_back(fleet, engine):
    token = fleet.token("main")
    state_before = sorted(p.name for p in fleet.state_dir("main").iterdir())
    broken = config_file(fleet).read_text()
    shown = fleet.json("rescue", "main", timeout=200)["data"]
    assert shown["state"]["restarts"] >= 2 and shown["validate"]["ran"] is True
    assert shown["validate"]["ok"] is False
    assert '+    "mode": "bogus-mode"' in shown["last_good"]["diff"]
    assert config_file(fleet).read_text() == broken  # only shown, nothing changed

    start = time.monotonic()
    done = fleet.json("rescue", "main", "--restore-last-good", "--restart", timeout=400)["data"]
    seconds = time.monotonic() - start
    print(
        f"\norch rescue main --restore-last-good --restart: main ready after {seconds:.1f} s"
        f" (restart {done['restart']['seconds']} s); the restart policy alone: 46 s"
    )
    assert done["restart"]["ready"] is True and done["restored"]["changed"] is True
    aside = done["restored"]["broken_kept_at"]
    assert aside and Path(aside).read_text() == broken
    assert '"mode": "local"' in config_file(fleet).read_text()
    assert oct(config_file(fleet).stat().st_mode & 0o777) == "0o600"
    row = fleet.json("status", "main")["data"]["profiles"][0]
    assert row["ready"] is True
    assert fleet.token("main") == token
    assert set(state_before) <= {p.name for p in fleet.state_dir("main").iterdir()}
    assert token not in json.dumps(done)
