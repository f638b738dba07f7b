"""The S3 options through the real entry point, where no bucket is reached: bad
URLs and combinations are refused before anything is done, schedules are written
only where asked, and `orch status`'s newest backup reads only local files."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.core.model import Profile
from orchestrator.workflows import offsite as wf

from ..helpers import fleet_of, save_with_files, snapshot
from .test_cli import envelope, orch


def _home(home: Path) -> Path:
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    return home


def test_bad_urls_and_combinations_are_refused_and_change_nothing(home: Path) -> None:
    _home(home)
    before = snapshot(home)
    cases = [
        (("backup", "main", "--to", "/srv/x"), "not an s3:// URL"),
        (("backup", "main", "--to", "s3://UP/x"), "not a valid bucket name"),
        (("backup", "main", "--to", "s3://bk-1/x", "-o", "/tmp/x"), "not both"),
        (("backup", "ls", "--from", "s3://bk-1", "-o", "/tmp/x"), "not both"),
        (("backup", "verify", "s3://bk-1/x/"), "does not name an archive"),
        (("restore", "main", "--latest", "--yes"), "--latest --from"),
        (("restore", "main", "--from", "s3://bk-1/x", "--yes"), "--latest --from"),
        (("restore", "main", "s3://bk-1/a.tar.gz", "--latest", "--from", "s3://bk-1"), "not both"),
        (("restore", "main", "--yes"), "give an ARCHIVE"),
    ]
    for args, said in cases:
        proc = orch(home, *args, "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 2 and doc["ok"] is False, (args, proc.stdout, proc.stderr)
        assert said in doc["error"]["message"], (args, doc)
        assert "Traceback" not in proc.stderr
    assert snapshot(home) == before


def test_evacuating_to_another_node_needs_an_archive_in_a_bucket(home: Path) -> None:
    save_with_files(home, fleet_of(Profile(name="main", port=18789, node="orch-node2")))
    before = snapshot(home)
    cases = [
        (("restore", "main", "--node", "orch-node1", "--yes"), "--node brings a profile back"),
        (("restore", "main", "/srv/a.tar.gz", "--node", "orch-node1"), "from an archive in a"),
    ]
    for args, said in cases:
        proc = orch(home, *args, "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 2 and doc["ok"] is False, (args, proc.stdout, proc.stderr)
        assert said in doc["error"]["message"], (args, doc)
        assert "s3://" in doc["error"]["hint"] or "s3://" in doc["error"]["message"]
        assert doc["error"]["hint"], doc
    assert snapshot(home) == before


def test_schedule_writes_into_the_home_or_where_told_and_never_etc_unasked(
    home: Path, tmp_path: Path
) -> None:
    _home(home)
    env_url = "s3://bk-1/orch"
    data = envelope(
        orch(home, "backup", "schedule", "main", "--to", env_url, "--json"),
        "backup schedule",
        True,
    )["data"]
    assert Path(data["service"]).parent == home / "schedules"
    assert Path(data["timer"]).read_text().count("OnCalendar=*-*-* 03:00:00") == 1
    assert data["command"][1:] == ["backup", "main", "--to", env_url]
    assert Path(data["command"][0]).name == "orch"
    assert any("enable --now" in line for line in data["enable"])
    there = tmp_path / "units"
    data = envelope(
        orch(home, "backup", "schedule", "--dir", str(there), "--every", "hourly", "--json"),
        "backup schedule",
        True,
    )["data"]
    assert sorted(p.name for p in there.iterdir()) == [
        "orch-backup-all.service",
        "orch-backup-all.timer",
    ]
    refused = orch(home, "backup", "schedule", "main", "--dir", "/etc/systemd/system")
    assert refused.returncode == 2 and "--system" in refused.stderr
    for args, said in (
        (("--every", "25:00"), "HH:MM"),
        (("--env-file", str(tmp_path / "none.env")), "cannot read"),
    ):
        proc = orch(home, "backup", "schedule", "main", *args)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    loose = tmp_path / "loose.env"
    loose.write_text("AWS_SECRET_ACCESS_KEY=x\n")
    os.chmod(loose, 0o644)
    proc = orch(home, "backup", "schedule", "main", "--env-file", str(loose))
    assert proc.returncode == 2 and "chmod 600" in proc.stderr
    unknown = orch(home, "backup", "schedule", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_cron_prints_a_line_and_writes_nothing(home: Path) -> None:
    _home(home)
    before = snapshot(home)
    proc = orch(home, "backup", "schedule", "main", "--every", "02:30", "--cron")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(f"30 2 * * * ORCH_HOME={home} ") and line.endswith("backup main")
    assert snapshot(home) == before


def test_newest_backup_is_the_newest_of_local_names_and_the_last_upload(home: Path) -> None:
    from orchestrator.fleet import backup as bk

    _home(home)
    assert wf.newest_backup(home, "main") is None
    local = bk.default_dir(home, "main")
    local.mkdir(parents=True)
    (local / "main-20261201T100000.000000Z.tar.gz").write_bytes(b"")
    (local / "main-20261202T100000.000000Z-pre-upgrade.tar.gz").write_bytes(b"")
    (local / "other-20291202T100000.000000Z.tar.gz").write_bytes(b"")
    now = datetime(2026, 12, 4, 10, tzinfo=UTC).timestamp()
    newest = wf.newest_backup(home, "main", now)
    assert newest is not None and newest["archive"].endswith("Z-pre-upgrade.tar.gz")
    assert newest["age_s"] == 2 * 86400
    (local / wf.LAST_OFFSITE).write_text(
        json.dumps({"archive": "s3://bk-1/main-x.tar.gz", "created": "2026-12-03T10:00:00+00:00"})
    )
    newest = wf.newest_backup(home, "main", now)
    assert newest == {
        "archive": "s3://bk-1/main-x.tar.gz",
        "created": "2026-12-03T10:00:00+00:00",
        "age_s": 86400,
    }
    assert wf.human_age(90) == "1.5 min" and wf.human_age(7200) == "2.0 h"
