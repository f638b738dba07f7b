"""Archives you can trust: the per-home key, the MAC of the manifest, and what verify
and stage refuse (real archives, real files; no engine)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.errors import UsageError
from orchestrator.fleet import archive_keys as ak
from orchestrator.fleet import backup as bk
from tests.unit.helpers import fleet_of, save_with_files

META = {"image": "img:1", "image_id": "sha256:abc", "openclaw_version": "2026.9.6"}
NOT_AUTHENTICATED = "not authenticated: made by another orch home, or changed after it was written"


@pytest.fixture
def profile(home: Path) -> Profile:
    p = Profile(name="main", port=18789)
    save_with_files(home, fleet_of(p))
    (profile_dirs(p, home).workspace / "notes.md").write_text("marker-1\n")
    return p


def _backup(home: Path, profile: Profile, out: Path | None = None) -> Path:
    dirs = profile_dirs(profile, home)
    key = ak.signing_key(home)
    return bk.create_backup(profile, dirs, out or home / "out", META, key)[0]


def _repack(src: Path, dst: Path, change) -> None:
    """Copy an archive member by member; `change(name, data)` returns the new bytes of
    a file member, or None to drop it."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            if not member.isfile():
                tout.addfile(member)
                continue
            data = change(member.name, tin.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))


def _rewrite_file_and_checksum(src: Path, dst: Path, name: str, data: bytes) -> None:
    """What an attacker with the archive can do: change a file, fix its checksum and
    size in the manifest, pack again."""

    def change(member: str, old: bytes) -> bytes:
        if member == name:
            return data
        if member == bk.MANIFEST:
            doc = json.loads(old)
            doc["files"][name].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            return json.dumps(doc, indent=1).encode()
        return old

    _repack(src, dst, change)


def test_the_key_is_made_on_first_use_0600_and_never_goes_into_an_archive(
    home: Path, profile: Profile
) -> None:
    assert ak.own_key(home) is None
    path = _backup(home, profile)
    key_file = ak.key_path(home)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    key = ak.own_key(home)
    assert key is not None and ak.signing_key(home) == key  # made once, then reused
    with tarfile.open(path) as tar:
        names = tar.getnames()
        contents = b"".join(tar.extractfile(m).read() for m in tar if m.isfile())
    assert names[:2] == [bk.MANIFEST, bk.SIGNATURE]
    assert key.secret not in contents and key.secret.hex().encode() not in contents
    manifest, vouched = bk.verify(path, ak.keyring(home))
    assert vouched == "this home's key" and manifest.profile == "main"


def test_a_file_and_its_checksum_rewritten_and_repacked_is_refused(
    home: Path, profile: Profile, tmp_path: Path
) -> None:
    path = _backup(home, profile)
    forged = tmp_path / "forged.tar.gz"
    _rewrite_file_and_checksum(path, forged, "workspace/notes.md", b"evil\n")
    # The checksums agree with the forged manifest: only the MAC tells.
    assert bk.verify(forged, ak.keyring(home, trust=True))[1] == "not checked (--trust)"
    with pytest.raises(bk.ArchiveUnauthenticated, match=NOT_AUTHENTICATED) as caught:
        bk.verify(forged, ak.keyring(home))
    assert "orch backup key import" in caught.value.hint and "--trust" in caught.value.hint
    dirs = profile_dirs(profile, home)
    before = sorted(p.name for p in dirs.workspace.parent.iterdir())
    with pytest.raises(bk.ArchiveUnauthenticated):
        bk.stage(forged, profile, dirs, ak.keyring(home))
    assert sorted(p.name for p in dirs.workspace.parent.iterdir()) == before
    assert (dirs.workspace / "notes.md").read_text() == "marker-1\n"


def test_a_forged_mac_under_this_homes_key_id_is_refused(
    home: Path, profile: Profile, tmp_path: Path
) -> None:
    path = _backup(home, profile)
    forged = tmp_path / "forged.tar.gz"
    other = ak.BackupKey(os.urandom(32))

    def change(name: str, data: bytes) -> bytes:
        if name == bk.SIGNATURE:
            doc = json.loads(data)
            with tarfile.open(path) as tar:
                raw = tar.extractfile(bk.MANIFEST).read()
            doc["mac"] = other.mac(raw)  # right key id, wrong key
            return json.dumps(doc).encode()
        return data

    _repack(path, forged, change)
    with pytest.raises(bk.ArchiveUnauthenticated, match=NOT_AUTHENTICATED):
        bk.verify(forged, ak.keyring(home))


def test_an_archive_of_another_home_needs_its_key_or_trust(
    home: Path, profile: Profile, tmp_path: Path
) -> None:
    other_home = tmp_path / "other-home"
    save_with_files(other_home, fleet_of(profile))
    (profile_dirs(profile, other_home).workspace / "notes.md").write_text("elsewhere\n")
    theirs = _backup(other_home, profile, tmp_path / "theirs")
    _backup(home, profile)  # this home has a key of its own
    with pytest.raises(bk.ArchiveUnauthenticated, match=NOT_AUTHENTICATED):
        bk.verify(theirs, ak.keyring(home))
    assert bk.verify(theirs, ak.keyring(home, trust=True))[1] == "not checked (--trust)"

    exported = tmp_path / "theirs.key"
    key = ak.export_key(other_home, exported)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    with pytest.raises(UsageError, match="exists"):
        ak.export_key(other_home, exported)
    assert ak.import_key(home, exported.read_text(), str(exported)) == (key, "added")
    assert ak.import_key(home, exported.read_text(), str(exported)) == (key, "known")
    own = ak.own_key(home)
    assert own is not None and ak.import_key(home, own.text(), "own")[1] == "own"
    trusted = ak.keys_dir(home) / ak.TRUSTED_DIR / f"{key.key_id}.key"
    assert stat.S_IMODE(trusted.stat().st_mode) == 0o600
    manifest, vouched = bk.verify(theirs, ak.keyring(home))
    assert vouched == f"trusted key {key.key_id}" and manifest.profile == "main"
    # Removing the file stops trusting it.
    trusted.unlink()
    with pytest.raises(bk.ArchiveUnauthenticated):
        bk.verify(theirs, ak.keyring(home))


def test_an_unsigned_archive_of_an_older_orch_is_refused_with_a_hint(
    home: Path, profile: Profile, tmp_path: Path
) -> None:
    path = _backup(home, profile)
    old = tmp_path / "old.tar.gz"
    _repack(path, old, lambda name, data: None if name == bk.SIGNATURE else data)
    with pytest.raises(bk.ArchiveUnauthenticated, match="no signature") as caught:
        bk.verify(old, ak.keyring(home))
    assert "--trust" in caught.value.hint
    assert bk.verify(old, ak.keyring(home, trust=True))[0].profile == "main"


def test_a_damaged_signature_is_a_clear_error(home: Path, profile: Profile, tmp_path: Path) -> None:
    path = _backup(home, profile)
    bad = tmp_path / "bad.tar.gz"
    _repack(path, bad, lambda name, data: b"[1, 2" if name == bk.SIGNATURE else data)
    with pytest.raises(bk.ArchiveInvalid, match="manifest.hmac is malformed"):
        bk.verify(bad, ak.keyring(home))


def test_a_key_file_readable_by_others_or_malformed_is_refused(
    home: Path, profile: Profile
) -> None:
    _backup(home, profile)
    key_file = ak.key_path(home)
    key_file.chmod(0o644)
    with pytest.raises(ak.KeyFileError, match="readable by others") as caught:
        ak.keyring(home)
    assert caught.value.hint == f"chmod 600 {key_file}"
    key_file.chmod(0o600)
    key_file.write_text("not a key\n")
    with pytest.raises(ak.KeyFileError, match="not an orch backup key"):
        ak.keyring(home)
    with pytest.raises(ak.KeyFileError, match="not an orch backup key"):
        ak.import_key(home, "orch-backup-key/1 1234\n", "stdin")


def test_reading_the_keyring_never_creates_a_key(home: Path) -> None:
    keys = ak.keyring(home)
    assert keys.keys == {} and keys.own_id is None
    assert not ak.keys_dir(home).exists()
