"""fleet.journal: the record an upgrade or rollback keeps of how far it got, and the
test-only kill hook; plus what `up`/`upgrade`/`rollback` make of a journal or history
that is damaged (no engine needed: they refuse before asking for one)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core.model import Profile
from orchestrator.fleet import journal as jr
from orchestrator.workflows.upgrade import history_path, interrupted
from tests.unit.cli.test_cli import envelope, orch
from tests.unit.helpers import fleet_of, save_with_files, snapshot


def _journal(**kw) -> jr.Journal:
    fields = {"op": "upgrade", "profile": "main", "from_image": "a:1", "to_image": "b:2"}
    return jr.Journal(**{**fields, "running": True, **kw})


def test_begin_writes_the_journal_first_0600_and_refuses_a_second(home: Path) -> None:
    j = jr.begin(home, _journal())
    path = jr.journal_path(home, "main")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["step"] == "begun"
    j.reached(home, "backed-up", archive="/x/main-pre-upgrade.tar.gz")
    again = jr.read(path)
    assert (again.step, again.archive) == ("backed-up", "/x/main-pre-upgrade.tar.gz")
    with pytest.raises(jr.JournalError, match="interrupted upgrade of 'main'") as caught:
        jr.begin(home, _journal())
    assert "orch up" in caught.value.hint
    assert [x.profile for x in jr.pending(home)] == ["main"]
    assert jr.pending(home, ["rescue"]) == []
    j.clear(home)
    assert jr.pending(home) == []


def test_what_the_next_command_would_do_follows_the_step(home: Path) -> None:
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    for step, action in [
        ("begun", "would undo"),
        ("new-created", "would undo"),
        ("ready", "would finish"),
        ("old-removed", "would finish"),
    ]:
        _journal(step=step).save(home)
        (row,) = interrupted(home)
        assert (row.step, row.action) == (step, action)
        assert row.reason and step in row.describe()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"op": "upgrade"}', "a damaged journal"),
        (json.dumps({**_journal().__dict__, "step": "teleported"}), "a damaged journal"),
        (json.dumps({**_journal().__dict__, "profile": "rescue"}), "under another name"),
    ],
)
def test_a_damaged_journal_is_a_clear_error(home: Path, content: str, why: str) -> None:
    path = jr.journal_path(home, "main")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(jr.JournalError, match=why):
        jr.pending(home)


def test_the_kill_hook_sigkills_right_after_its_step_is_journaled(home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from orchestrator.fleet import journal as jr;"
        "j = jr.Journal(op='upgrade', profile='main', from_image='a', to_image='b',"
        " running=True); j.save(Path(sys.argv[1]));"
        "j.reached(Path(sys.argv[1]), 'old-stopped'); j.reached(Path(sys.argv[1]), 'ready')"
    )
    env = {**os.environ, jr.KILL_ENV: "upgrade:old-stopped"}
    proc = subprocess.run([sys.executable, "-c", code, str(home)], env=env, timeout=60)
    assert proc.returncode == -9
    assert jr.read(jr.journal_path(home, "main")).step == "old-stopped"


def test_up_upgrade_and_rollback_refuse_a_damaged_journal_or_history(home: Path) -> None:
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    path = jr.journal_path(home, "main")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    before = snapshot(home)
    for args in (("up",), ("upgrade", "--image", "x:1"), ("rollback", "main", "--yes")):
        proc = orch(home, *args, "--json")
        error = envelope(proc, args[0], False)["error"]
        assert proc.returncode == 2 and "not a journal of orch's" in error["message"], args
        assert "remove the file" in error["hint"]
    assert snapshot(home) == before
    path.unlink()
    history_path(home, "main").parent.mkdir(parents=True)
    history_path(home, "main").write_text('[{"from_image": 1}]')
    proc = orch(home, "rollback", "main", "--yes", "--json")
    assert proc.returncode == 2
    assert "damaged upgrade history" in envelope(proc, "rollback", False)["error"]["message"]


def test_a_journal_of_a_profile_no_longer_in_the_fleet_is_a_clear_error(home: Path) -> None:
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    _journal(profile="ghost").save(home)
    proc = orch(home, "up", "ghost", "--json")
    error = envelope(proc, "up", False)["error"]
    assert proc.returncode == 2 and "no such profile any more" in error["message"]
    assert str(jr.journal_path(home, "ghost")) in error["hint"]
