"""fleet.offsite: S3 URLs, completion markers, what counts as a backup, what a prune
removes, how S3 errors read, and a download that hits a full disk (a fake client:
no network). The real bucket is tests/integration/test_offsite.py's."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from botocore import exceptions as bx

from orchestrator.errors import OffsiteFailed, UsageError
from orchestrator.fleet import backup as bk
from orchestrator.fleet import offsite
from orchestrator.fleet.backup import Manifest

T = offsite.Target("my-backups", "orch/host-a")


def _manifest(created: str = "2026-12-01T10:00:00+00:00", profile: str = "main") -> Manifest:
    return Manifest(
        profile=profile,
        created=created,
        mode="online",
        openclaw_version="2026.9.6",
        image="img",
        image_id=None,
        spec_hash=None,
        dirs=["config", "state", "workspace"],
    )


def _marker(name: str, data: bytes, **kw) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    return offsite.make_marker(name, digest, len(data), _manifest(**kw), "k1")


@pytest.mark.parametrize(
    ("text", "bucket", "prefix"),
    [
        ("s3://my-backups", "my-backups", ""),
        ("s3://my-backups/", "my-backups", ""),
        ("s3://my-backups/orch/host-a/", "my-backups", "orch/host-a"),
    ],
)
def test_targets_parse(text: str, bucket: str, prefix: str) -> None:
    assert offsite.parse_target(text, "--to") == offsite.Target(bucket, prefix)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("/srv/backups", "not an s3:// URL"),
        ("s3://Bad_Bucket/x", "not a valid bucket name"),
        ("s3://ab", "not a valid bucket name"),
        ("s3://my-backups/a//b", "empty, . or .."),
        ("s3://my-backups/a/../b", "empty, . or .."),
    ],
)
def test_bad_targets_are_usage_errors(text: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        offsite.parse_target(text, "--to")


def test_archive_urls_name_an_archive() -> None:
    target, name = offsite.parse_archive_url("s3://my-backups/orch/host-a/main-1.tar.gz")
    assert (target, name) == (T, "main-1.tar.gz")
    assert target.url(name) == "s3://my-backups/orch/host-a/main-1.tar.gz"
    with pytest.raises(UsageError, match="does not name an archive"):
        offsite.parse_archive_url("s3://my-backups/orch/host-a/")


def test_only_an_archive_with_a_matching_marker_is_a_backup() -> None:
    data = b"archive-bytes"
    objects = {"main-a.tar.gz": len(data), "main-b.tar.gz": len(data), "main-c.tar.gz": 5}
    markers: dict[str, bytes | None] = {
        "main-a.tar.gz": _marker("main-a.tar.gz", data, created="2026-12-01T10:00:00+00:00"),
        "main-b.tar.gz": _marker("main-b.tar.gz", data, created="2026-12-02T10:00:00+00:00"),
        "main-c.tar.gz": _marker("main-c.tar.gz", data),  # its object is shorter
    }
    objects["main-d.tar.gz"] = 9  # no marker: an upload that never finished
    objects["main-e.tar.gz"] = 9
    markers["main-e.tar.gz"] = b"{not json"
    rows = offsite.classify(T, objects, markers)
    assert [(r.name, r.complete) for r in rows] == [
        ("main-b.tar.gz", True),  # newest first
        ("main-a.tar.gz", True),
        ("main-c.tar.gz", False),
        ("main-d.tar.gz", False),
        ("main-e.tar.gz", False),
    ]
    errors = {r.name: r.error for r in rows}
    assert "size differs" in str(errors["main-c.tar.gz"])
    assert "no completion marker" in str(errors["main-d.tar.gz"])
    assert "malformed" in str(errors["main-e.tar.gz"])
    assert offsite.newest(rows, "main") is rows[0]
    assert offsite.newest(rows, "rescue") is None
    row = rows[0].to_json()
    assert row["archive"] == "s3://my-backups/orch/host-a/main-b.tar.gz" and row["complete"]
    assert row["profile"] == "main" and "format" not in row


def test_a_marker_for_another_archive_is_refused() -> None:
    data = b"x"
    with pytest.raises(ValueError, match="malformed"):
        offsite.parse_marker(_marker("main-a.tar.gz", data), "main-b.tar.gz")


def test_prune_keeps_the_newest_complete_and_never_touches_incomplete() -> None:
    data = b"x"
    names = [f"main-2026120{i}.tar.gz" for i in range(1, 5)]
    objects = {n: 1 for n in names} | {"main-x-pre-upgrade.tar.gz": 1, "main-y.tar.gz": 1}
    markers: dict[str, bytes | None] = {
        n: _marker(n, data, created=f"2026-12-0{i + 1}T00:00:00+00:00") for i, n in enumerate(names)
    }
    markers["main-x-pre-upgrade.tar.gz"] = _marker(
        "main-x-pre-upgrade.tar.gz", data, created="2026-11-01T00:00:00+00:00"
    )
    markers["rescue-1.tar.gz"] = _marker("rescue-1.tar.gz", data, profile="rescue")
    objects["rescue-1.tar.gz"] = 1
    rows = offsite.classify(T, objects, markers)
    gone = [r.name for r in offsite.to_prune(rows, "main", 2)]
    assert gone == [names[1], names[0]]  # the two oldest of four; not pre-upgrade, y, rescue


def _client_error(code: str, status: int) -> bx.ClientError:
    return bx.ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListObjectsV2",
    )


@pytest.mark.parametrize(
    ("exc", "said", "hint"),
    [
        (bx.NoCredentialsError(), "no S3 credentials", "AWS_ACCESS_KEY_ID"),
        (bx.EndpointConnectionError(endpoint_url="http://h:1"), "does not answer", "ENDPOINT"),
        (_client_error("NoSuchBucket", 404), "does not exist", "aws s3 mb s3://my-backups"),
        (_client_error("SignatureDoesNotMatch", 403), "refused the credentials", "SECRET"),
        (_client_error("InvalidAccessKeyId", 403), "refused the credentials", "SECRET"),
        (_client_error("AccessDenied", 403), "refused the credentials", "SECRET"),
        (_client_error("SlowDown", 503), "answered SlowDown", ""),
    ],
)
def test_s3_errors_say_what_where_and_how_to_fix(exc, said: str, hint: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shown")
    err = offsite.explain(exc, T, "list")
    assert isinstance(err, OffsiteFailed) and err.exit_code == 1
    assert said in err.message and "s3://my-backups/orch/host-a" in err.message
    assert hint in err.hint
    assert "s3cr3t" not in err.message + err.hint


def test_a_missing_bucket_on_head_reads_as_missing() -> None:
    err = offsite.explain(_client_error("404", 404), T, "reach")
    assert "does not exist" in err.message


def test_other_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        offsite.explain(KeyError("x"), T, "list")


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_chunks(self, size: int):
        for i in range(0, len(self.data), size):
            yield self.data[i : i + size]


class _Client:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 - boto3's names
        return {"Body": _Body(self.data)}


def _entry(data: bytes, sha: str | None = None) -> offsite.Remote:
    marker = json.loads(_marker("main-a.tar.gz", data))
    if sha:
        marker["sha256"] = sha
    return offsite.Remote(T, "main-a.tar.gz", len(data), marker)


def test_download_checks_the_marker_sha256_and_leaves_nothing_when_it_differs(
    tmp_path: Path,
) -> None:
    data = os.urandom(3 << 20)
    bucket = offsite.Bucket(T)
    bucket._client = _Client(data)
    path = bucket.download(_entry(data), tmp_path)
    assert path.read_bytes() == data and path.stat().st_mode & 0o777 == 0o600
    path.unlink()
    with pytest.raises(OffsiteFailed, match="sha256 of its completion marker"):
        bucket.download(_entry(data, sha="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_download_is_clear_and_leaves_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    data = os.urandom(2 << 20)
    bucket = offsite.Bucket(T)
    bucket._client = _Client(data)

    class Full:
        """The temp file on a disk that is full: every write fails with ENOSPC."""

        def __init__(self, fd: int, *_a, **_kw) -> None:
            self.fd = fd

        def write(self, chunk: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc) -> None:
            os.close(self.fd)

    fdopen = Full
    monkeypatch.setattr(offsite.os, "fdopen", fdopen)
    with pytest.raises(OffsiteFailed) as caught:
        bucket.download(_entry(data), tmp_path)
    assert "No space left on device" in caught.value.message
    assert str(tmp_path) in caught.value.message and "free some space" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_archive_is_never_downloaded(tmp_path: Path) -> None:
    bucket = offsite.Bucket(T)
    entry = offsite.Remote(T, "main-a.tar.gz", 3, error="no completion marker")
    with pytest.raises(OffsiteFailed, match="not a complete backup"):
        bucket.download(entry, tmp_path)


def test_a_restored_copy_drops_the_gateway_owner_lease_only(tmp_path: Path) -> None:
    db_path = tmp_path / bk.STATE_DB
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    db.execute("create table state_leases (scope text, lease_key text, owner text)")
    db.execute("insert into state_leases values ('gateway-owner', 'global', 'other-host')")
    db.execute("insert into state_leases values ('other', 'k', 'x')")
    db.commit()
    db.close()
    assert bk.release_copied_lease(tmp_path) is True
    db = sqlite3.connect(db_path)
    assert db.execute("select scope from state_leases").fetchall() == [("other",)]
    db.close()
    assert bk.release_copied_lease(tmp_path) is False
    assert bk.release_copied_lease(tmp_path / "none") is False


def test_boto3s_upload_failure_is_explained_by_its_cause() -> None:
    from boto3.exceptions import S3UploadFailedError

    try:
        try:
            raise _client_error("AccessDenied", 403)
        except bx.ClientError as inner:
            raise S3UploadFailedError(f"Failed to upload: {inner}") from None
    except S3UploadFailedError as exc:
        caught = exc
    caught.__context__ = _client_error("AccessDenied", 403)
    err = offsite.explain(caught, T, "upload to")
    assert "refused the credentials" in err.message
    plain = offsite.explain(S3UploadFailedError("Failed to upload: boom"), T, "upload to")
    assert plain.message == "cannot upload to s3://my-backups/orch/host-a: Failed to upload: boom"
