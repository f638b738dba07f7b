"""fleet.backup: the archive, its manifest and verification, staging and the swap,
with real files and a real SQLite database in WAL mode (no engine)."""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.fleet import backup as bk
from orchestrator.fleet.archive_keys import Keyring, keyring, signing_key
from tests.unit.helpers import fleet_of, save_with_files

META = {"image": "img:1", "image_id": "sha256:abc", "openclaw_version": "2026.9.6"}


@pytest.fixture
def profile(home: Path) -> Profile:
    p = Profile(name="main", port=18789)
    save_with_files(home, fleet_of(p))
    dirs = profile_dirs(p, home)
    (dirs.workspace / "notes.md").write_text("marker-1\n")
    (dirs.state / "sub").mkdir()
    (dirs.state / "sub" / "cache.bin").write_bytes(os.urandom(100_000))
    return p


def _db(home: Path, profile: Profile) -> sqlite3.Connection:
    db = sqlite3.connect(profile_dirs(profile, home).state / "openclaw.sqlite")
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists kv (k text primary key, v text)")
    db.commit()
    return db


def _backup(home: Path, profile: Profile, **kw):
    key = signing_key(home)
    return bk.create_backup(profile, profile_dirs(profile, home), home / "out", META, key, **kw)


def _keys(home: Path, trust: bool = False) -> Keyring:
    return keyring(home, trust)


def test_archive_has_manifest_checksums_and_mode_0600(home: Path, profile: Profile) -> None:
    db = _db(home, profile)
    db.execute("insert into kv values ('marker', 'one')")
    db.commit()  # in the WAL only: no checkpoint yet
    path, manifest = _backup(home, profile)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert manifest.profile == "main" and manifest.openclaw_version == "2026.9.6"
    assert "workspace/notes.md" in manifest.files and "config/openclaw.json" in manifest.files
    assert not any(name.endswith(("-wal", "-shm")) for name in manifest.files)
    assert bk.TOKEN_MEMBER not in manifest.files  # the token only when asked
    assert bk.verify(path, _keys(home), "main")[0].files == manifest.files
    db.close()
    # The database in the archive holds the row that was only in the WAL.
    staged, _ = bk.stage(path, profile, profile_dirs(profile, home), _keys(home))
    copy = sqlite3.connect(staged.root["state"] / "openclaw.sqlite")
    assert copy.execute("select v from kv where k='marker'").fetchone() == ("one",)
    copy.close()
    staged.cleanup()


def test_token_only_with_include_token(home: Path, profile: Profile) -> None:
    path, manifest = _backup(home, profile, include_token=True)
    assert bk.TOKEN_MEMBER in manifest.files
    with tarfile.open(path) as tar:
        assert tar.getnames()[0] == bk.MANIFEST


def test_online_copy_while_sqlite_is_written(home: Path, profile: Profile) -> None:
    db = _db(home, profile)
    stop = threading.Event()

    def writer() -> None:
        w = sqlite3.connect(profile_dirs(profile, home).state / "openclaw.sqlite")
        n = 0
        while not stop.is_set():
            w.execute("insert or replace into kv values (?, ?)", (f"k{n}", "x" * 500))
            w.commit()
            n += 1
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        path, _ = _backup(home, profile)
    finally:
        stop.set()
        thread.join()
        db.close()
    staged, _ = bk.stage(path, profile, profile_dirs(profile, home), _keys(home))
    copy = sqlite3.connect(staged.root["state"] / "openclaw.sqlite")
    assert copy.execute("pragma integrity_check").fetchone() == ("ok",)
    copy.close()
    staged.cleanup()


def test_a_file_that_keeps_changing_fails_clearly(
    home: Path, profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = profile_dirs(profile, home).workspace / "notes.md"
    real = bk._sha256_copy

    def copy_and_touch(src: Path, dst: Path):
        out = real(src, dst)
        if src == target:
            with open(src, "a") as fh:
                fh.write("more\n")
        return out

    monkeypatch.setattr(bk, "_sha256_copy", copy_and_touch)
    with pytest.raises(bk.BackupFailed, match="kept changing"):
        _backup(home, profile)
    assert list((home / "out").iterdir()) == []


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy an archive member by member through `change(name, data) -> data | None`."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            data = tin.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
            else:
                tout.addfile(member)


def test_tampered_truncated_and_foreign_archives_are_refused(
    home: Path, profile: Profile, tmp_path: Path
) -> None:
    path, _ = _backup(home, profile)
    bad = tmp_path / "bad.tar.gz"
    _rewrite(path, bad, lambda n, d: b"evil\n" if n == "workspace/notes.md" else d)
    with pytest.raises(bk.ArchiveInvalid, match="checksum"):
        bk.verify(bad, _keys(home))
    _rewrite(path, bad, lambda n, d: None if n == "workspace/notes.md" else d)
    with pytest.raises(bk.ArchiveInvalid, match="missing"):
        bk.verify(bad, _keys(home))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(bk.ArchiveInvalid):
        bk.verify(cut, _keys(home))
    with pytest.raises(bk.ArchiveInvalid, match="not 'rescue'"):
        bk.verify(path, _keys(home), "rescue")
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.add(profile_dirs(profile, home).workspace, "workspace")
    with pytest.raises(bk.ArchiveInvalid, match="not an orch backup"):
        bk.verify(plain, _keys(home))


def _with_manifest_and_link(src: Path, dst: Path, doc: dict | None, link: str) -> None:
    """`src` with its manifest replaced by `doc` (when given) and a symlink member
    state/escape -> `link` added after the head."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            if member.name == bk.MANIFEST and doc is not None:
                data = json.dumps(doc).encode()
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
            elif member.isfile():
                tout.addfile(member, tin.extractfile(member))
            else:
                tout.addfile(member)
            if member.name == bk.SIGNATURE:
                escape = tarfile.TarInfo("state/escape")
                escape.type, escape.linkname = tarfile.SYMTYPE, link
                tout.addfile(escape)


def test_members_outside_the_dirs_are_refused(home: Path, profile: Profile, tmp_path: Path) -> None:
    path, manifest = _backup(home, profile)
    evil = tmp_path / "evil.tar.gz"
    doc = manifest.to_json()
    doc["links"]["state/escape"] = "../../etc"
    _with_manifest_and_link(path, evil, doc, "../../etc")
    # Even with --trust (no authentication), a manifest may not point out of the dirs.
    with pytest.raises(bk.ArchiveInvalid, match="outside the profile's dirs"):
        bk.verify(evil, _keys(home, trust=True))
    # An authentic manifest, and a member it does not list.
    _with_manifest_and_link(path, evil, None, "sub")
    with pytest.raises(bk.ArchiveInvalid, match="not in its manifest"):
        bk.verify(evil, _keys(home))


def test_newer_openclaw_is_refused(home: Path, profile: Profile) -> None:
    path, manifest = _backup(home, profile)
    with pytest.raises(bk.ArchiveInvalid, match="newer"):
        bk.check_version(path, manifest, "2026.8.1", "img:old")
    bk.check_version(path, manifest, "2026.10.0", "img:new")
    bk.check_version(path, manifest, None, "img:unlabelled")


def test_disk_full_while_writing_leaves_nothing(
    home: Path, profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = gzip.GzipFile.write
    written = {"n": 0}

    def full(self, data):  # type: ignore[no-untyped-def]
        written["n"] += len(data)
        if written["n"] > 20_000:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", full)
    with pytest.raises(bk.BackupFailed, match="No space left"):
        _backup(home, profile)
    assert list((home / "out").iterdir()) == []


def test_a_killed_backup_leaves_no_archive_and_is_cleaned(home: Path, profile: Profile) -> None:
    out = home / "out"
    out.mkdir(parents=True)
    dead = 2**22 + 12345  # above pid_max: no such process
    (out / f"{bk.TEMP_PREFIX}{dead}-archive-x.tmp").write_bytes(b"half")
    (out / f"{bk.TEMP_PREFIX}{dead}-stage-y").mkdir()
    assert bk.list_archives(out) == []
    path, _ = _backup(home, profile)
    assert sorted(p.name for p in out.iterdir()) == [path.name]


def test_restore_swap_and_undo(home: Path, profile: Profile) -> None:
    dirs = profile_dirs(profile, home)
    path, _ = _backup(home, profile)
    (dirs.workspace / "notes.md").write_text("marker-2\n")
    (dirs.workspace / "new.md").write_text("new\n")
    staged, _ = bk.stage(path, profile, dirs, _keys(home))
    assert (dirs.workspace / "notes.md").read_text() == "marker-2\n"  # untouched until swap
    staged.swap()
    assert (dirs.workspace / "notes.md").read_text() == "marker-1\n"
    assert not (dirs.workspace / "new.md").exists()
    staged.unswap()
    assert (dirs.workspace / "notes.md").read_text() == "marker-2\n"
    staged.swap()
    staged.discard_old()
    staged.cleanup()
    assert (dirs.workspace / "notes.md").read_text() == "marker-1\n"
    leftovers = [p.name for p in dirs.workspace.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_tampered_archive_stages_nothing(home: Path, profile: Profile, tmp_path: Path) -> None:
    dirs = profile_dirs(profile, home)
    path, _ = _backup(home, profile)
    bad = tmp_path / "bad.tar.gz"
    _rewrite(path, bad, lambda n, d: b"evil\n" if n == "workspace/notes.md" else d)
    before = sorted(p.name for p in dirs.workspace.parent.iterdir())
    with pytest.raises(bk.ArchiveInvalid):
        bk.stage(bad, profile, dirs, _keys(home))
    assert sorted(p.name for p in dirs.workspace.parent.iterdir()) == before


def test_prune_keeps_the_newest_and_pre_upgrade(home: Path, profile: Profile) -> None:
    paths = [_backup(home, profile)[0] for _ in range(3)]
    snap, _ = _backup(home, profile, tag=bk.PRE_UPGRADE)
    removed = bk.prune(home / "out", "main", 1)
    assert sorted(removed) == sorted(paths[:2])
    left = {r.path for r in bk.list_archives(home / "out")}
    assert left == {paths[2], snap}


def test_changes_since(home: Path, profile: Profile) -> None:
    dirs = profile_dirs(profile, home)
    _, manifest = _backup(home, profile)
    (dirs.workspace / "notes.md").write_text("changed\n")
    (dirs.workspace / "added.md").write_text("x\n")
    lost = bk.changes_since(manifest, dirs)
    assert lost["changed"] == 1 and lost["added"] == 1 and lost["removed"] == 0
