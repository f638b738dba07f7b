"""The backup commands through the real entry point: `orch backup verify|ls` and the
refusals of restore, upgrade and rollback that need no engine."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.fleet import backup as bk
from orchestrator.fleet.archive_keys import signing_key

from ..helpers import fleet_of, save_with_files, snapshot
from .test_cli import envelope, orch


def _archive(home: Path) -> Path:
    profile = Profile(name="main", port=18789)
    save_with_files(home, fleet_of(profile, Profile(name="rescue", port=18900)))
    meta = {"image": "img", "openclaw_version": "2026.9.6"}
    dirs = profile_dirs(profile, home)
    key = signing_key(home)
    return bk.create_backup(profile, dirs, bk.default_dir(home, "main"), meta, key)[0]


def test_verify_and_ls(home: Path) -> None:
    path = _archive(home)
    data = envelope(orch(home, "backup", "verify", str(path), "--json"), "backup verify", True)
    assert data["data"]["profile"] == "main" and data["data"]["file_count"] > 0
    listed = envelope(orch(home, "backup", "ls", "--json"), "backup ls", True)
    assert [a["archive"] for a in listed["data"]["archives"]] == [str(path)]
    foreign = orch(home, "backup", "verify", str(path), "--profile", "rescue", "--json")
    assert foreign.returncode == 1
    assert "not 'rescue'" in envelope(foreign, "backup verify", False)["error"]["message"]


def test_restore_asks_first_and_changes_nothing(home: Path) -> None:
    path = _archive(home)
    before = snapshot(home)
    proc = orch(home, "restore", "main", str(path), "--json")
    assert proc.returncode == 2
    assert "--yes" in envelope(proc, "restore", False)["error"]["hint"]
    assert snapshot(home) == before


def test_upgrade_needs_one_target_and_rollback_an_upgrade(home: Path) -> None:
    _archive(home)
    proc = orch(home, "upgrade", "--json")
    assert proc.returncode == 2 and "exactly one" in proc.stdout
    proc = orch(home, "rollback", "main", "--yes", "--json")
    assert proc.returncode == 2 and "no upgrade to roll back" in proc.stdout


def test_a_missing_archive_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    proc = orch(home, "backup", "verify", str(tmp_path / "nope.tar.gz"))
    assert proc.returncode == 1 and "no such file" in proc.stderr
