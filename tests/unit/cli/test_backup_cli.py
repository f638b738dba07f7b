"""The backup commands through the real entry point: `orch backup verify|ls` and the
refusals of restore, upgrade and rollback that need no engine."""

from __future__ import annotations

import json
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


def _damaged(good: Path, folder: Path) -> dict[str, Path]:
    """One archive of each kind of damage, beside a good one."""
    import gzip
    import io
    import tarfile

    data = good.read_bytes()
    out = {
        "truncated": data[: len(data) // 2],
        "not gzip": b"this is not a gzip'd tar\n" * 10,
        "gzip, not tar": gzip.compress(b"plain text, no tar header\n" * 50),
    }

    def tar_with_manifest(payload: bytes) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(bk.MANIFEST)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        return buf.getvalue()

    out["manifest not JSON"] = tar_with_manifest(b"{not json")
    out["manifest wrong types"] = tar_with_manifest(
        b'{"format": "orch-backup/1", "profile": 5, "files": []}'
    )
    out["path outside"] = tar_with_manifest(
        json.dumps(
            {
                "format": "orch-backup/1",
                "profile": "main",
                "created": "x",
                "mode": "online",
                "openclaw_version": None,
                "image": "img",
                "image_id": None,
                "spec_hash": None,
                "files": {"../../etc/passwd": {"sha256": "0" * 64, "size": 10**30, "mode": 420}},
            }
        ).encode()
    )
    paths = {}
    for i, (what, blob) in enumerate(out.items()):
        path = folder / f"main-2000010{i}T000000.000000Z.tar.gz"
        path.write_bytes(blob)
        paths[what] = path
    return paths


def test_one_bad_archive_never_hides_the_others_in_ls(home: Path) -> None:
    good = _archive(home)
    bad = _damaged(good, good.parent)
    before = snapshot(home)
    proc = orch(home, "backup", "ls", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)  # ok false, with the listing: not an error envelope
    assert doc["command"] == "backup ls" and doc["ok"] is False
    assert [a["archive"] for a in doc["data"]["archives"]] == [str(good)]
    assert doc["data"]["archives"][0]["authenticated"] == "this home's key"
    reasons = {u["archive"]: u["error"] for u in doc["data"]["unreadable"]}
    assert set(reasons) == {str(p) for p in bad.values()}
    assert "truncated or corrupt" in reasons[str(bad["truncated"])]
    assert "not a readable gzip'd tar" in reasons[str(bad["not gzip"])]
    assert "not JSON" in reasons[str(bad["manifest not JSON"])]
    assert "profile: Input should be a valid string" in reasons[str(bad["manifest wrong types"])]
    assert "outside the profile's dirs" in reasons[str(bad["path outside"])]
    text = orch(home, "backup", "ls", "main")
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert str(good) in text.stdout and text.stdout.count("unreadable  ") == len(bad)
    assert snapshot(home) == before


def test_malformed_archives_are_clear_errors_for_verify_and_restore(home: Path) -> None:
    good = _archive(home)
    bad = _damaged(good, good.parent)
    before = snapshot(home)
    for what, path in bad.items():
        for args in (("backup", "verify", str(path)), ("restore", "main", str(path), "--yes")):
            proc = orch(home, *args)
            assert proc.returncode == 1, (what, args, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr and str(path) in proc.stderr, (what, proc.stderr)
    assert snapshot(home) == before


def _forged(good: Path, dst: Path) -> None:
    """workspace/notes.md and its checksum rewritten, then packed again."""
    import hashlib
    import io
    import tarfile

    evil = b"evil\n"
    with tarfile.open(good) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            data = tin.extractfile(member).read() if member.isfile() else None
            if member.name == bk.MANIFEST:
                doc = json.loads(data)
                name = next(n for n in doc["files"] if n.startswith("config/"))
                doc["files"][name].update(sha256=hashlib.sha256(evil).hexdigest(), size=5)
                data = json.dumps(doc).encode()
            elif member.isfile() and member.name.startswith("config/"):
                data = evil if member.name == name else data
            if data is None:
                tout.addfile(member)
            else:
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))


def test_a_forged_archive_is_refused_by_verify_and_restore_unless_trusted(
    home: Path, tmp_path: Path
) -> None:
    good = _archive(home)
    forged = tmp_path / "forged.tar.gz"
    _forged(good, forged)
    before = snapshot(home)
    for args in (("backup", "verify", str(forged)), ("restore", "main", str(forged), "--yes")):
        proc = orch(home, *args, "--json")
        assert proc.returncode == 1, proc.stdout
        error = envelope(proc, args[0] if args[0] == "restore" else "backup verify", False)
        assert (
            "not authenticated: made by another orch home, or changed after it was written"
            in (error["error"]["message"])
        )
        assert "--trust" in error["error"]["hint"]
    assert snapshot(home) == before
    trusted = orch(home, "backup", "verify", str(forged), "--trust")
    assert trusted.returncode == 0, trusted.stderr
    assert "who made this archive was not checked" in trusted.stderr
    assert "authenticated: not checked (--trust)" in trusted.stdout


def test_key_export_and_import_make_another_homes_archive_verify(
    home: Path, tmp_path: Path
) -> None:
    import os
    import stat
    import subprocess

    from .test_cli import ORCH

    theirs = _archive(home)
    other = tmp_path / "other-home"
    refused = orch(other, "backup", "verify", str(theirs))
    assert refused.returncode == 1 and "not authenticated" in refused.stderr

    exported = tmp_path / "home.key"
    out = orch(home, "backup", "key", "export", str(exported), "--json")
    data = envelope(out, "backup key export", True)["data"]
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    secret = exported.read_text().split()[1]
    assert secret not in out.stdout + out.stderr  # never echoed
    again = orch(home, "backup", "key", "export", str(exported))
    assert again.returncode == 2 and "exists" in again.stderr

    imported = orch(other, "backup", "key", "import", str(exported), "--json")
    assert envelope(imported, "backup key import", True)["data"] == {
        "key_id": data["key_id"],
        "status": "added",
    }
    ok = orch(other, "backup", "verify", str(theirs), "--json")
    assert envelope(ok, "backup verify", True)["data"]["authenticated"] == (
        f"trusted key {data['key_id']}"
    )
    listed = envelope(orch(other, "backup", "key", "ls", "--json"), "backup key ls", True)
    assert listed["data"]["trusted"] == [data["key_id"]] and secret not in json.dumps(listed)

    # `-` writes to a pipe, and refuses a terminal unless --show.
    piped = orch(home, "backup", "key", "export", "-")
    assert piped.returncode == 0 and piped.stdout.split()[1] == secret
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [*ORCH, "backup", "key", "export", "-"],
            env={**os.environ, "ORCH_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(follower)
        follower = -1
        printed = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            printed += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert proc.returncode == 2 and "refusing to print the backup key" in proc.stderr
    assert secret.encode() not in printed
