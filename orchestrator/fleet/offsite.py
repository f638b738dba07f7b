"""Backup archives off the host: an S3-compatible bucket (AWS S3, MinIO, SeaweedFS...).

The archive is the one a local backup writes (fleet/backup.py), uploaded as is; the
bucket only stores it. Layout under `s3://BUCKET/PREFIX/`:

- `NAME-TIME.tar.gz`: the archive;
- `NAME-TIME.tar.gz.complete.json`: its completion marker, written last, once the
  uploaded object was read back and its sha256 matched. It holds that sha256, the
  size and the manifest's summary (profile, time, mode, openclaw version).

A profile placed on a swarm node is archived *on that node* (workflows/node_backup.py:
a tar.gz of its dirs, no manifest inside) and the node's job uploads it through a
presigned URL: `NAME-TIME.node.tar.gz`. Its marker says `"kind": "node"`, the node and
the sha256 the node reported, which the manager confirmed by reading the object
back; and it carries an HMAC of the whole marker with this home's backup key
(fleet/archive_keys.py), as a local archive's manifest does: the marker vouches for
the sha256, the sha256 for every byte of the archive.

Only an archive with a marker is a backup: an upload that was killed, failed or is
still running leaves at most an archive without one, which `ls` shows as incomplete
and `--latest`, `verify` and `restore` never use. Prune removes a marker before its
archive for the same reason.

Endpoint, region and credentials come from where the AWS tools take them
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE
and ~/.aws/config, ~/.aws/credentials): boto3 reads them; orch never stores or prints
them. boto3 is imported only here, and only when an s3:// URL is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import ArchiveUnauthenticated, OffsiteFailed, UsageError
from orchestrator.fleet.archive_keys import MARKER_DOMAIN, BackupKey, Keyring
from orchestrator.fleet.backup import (
    CHUNK,
    PRE_UPGRADE,
    SUFFIX,
    TEMP_PREFIX,
    TRUST_HINT,
    Manifest,
)

SCHEME = "s3://"
MARKER_SUFFIX = ".complete.json"
MARKER_FORMAT = "orch-offsite/1"
MAX_MARKER = 64 << 10
# Bucket names as S3 allows them (3-63 chars, lowercase, digits, dots, hyphens).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile of"
    " ~/.aws/credentials (and AWS_ENDPOINT_URL for a server other than AWS)"
)
KILL_ENV = "ORCH_TEST_KILL_AT"  # test-only, as in fleet/journal.py
NODE_SUFFIX = ".node.tar.gz"
NODE_KIND = "node"
# How long a presigned URL a node job gets is valid: S3 checks it when the request
# starts, so this bounds the wait before the transfer, not the transfer itself.
PRESIGN_S = 600

Say = Callable[[str], None]


def is_url(text: str | os.PathLike[str]) -> bool:
    return str(text).startswith(SCHEME)


@dataclass(frozen=True)
class Target:
    """A bucket and a prefix (no leading or trailing slash; may be empty)."""

    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str = "") -> str:
        path = "/".join(p for p in (self.prefix, name) if p)
        return f"{SCHEME}{self.bucket}/{path}" if path else f"{SCHEME}{self.bucket}"


def parse_target(text: str, option: str) -> Target:
    """`s3://BUCKET[/PREFIX]`: where archives go or are listed from."""
    if not is_url(text):
        raise UsageError(
            f"{option}: {text!r} is not an s3:// URL", hint="e.g. s3://my-backups/orch"
        )
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(
            f"{option}: {bucket!r} is not a valid bucket name",
            hint="3-63 lowercase letters, digits, dots and hyphens: s3://my-backups/orch",
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UsageError(
            f"{option}: the prefix {prefix!r} has an empty, . or .. part",
            hint="e.g. s3://my-backups/orch/host-a",
        )
    return Target(bucket, prefix)


def parse_archive_url(text: str, option: str = "ARCHIVE") -> tuple[Target, str]:
    """`s3://BUCKET/PREFIX/NAME-TIME.tar.gz`: one archive."""
    target = parse_target(text, option)
    prefix, _, name = target.prefix.rpartition("/")
    if not name.endswith(SUFFIX):
        raise UsageError(
            f"{option}: {text!r} does not name an archive (*{SUFFIX})",
            hint="`orch backup ls --from s3://BUCKET/PREFIX` lists them",
        )
    return Target(target.bucket, prefix), name


# ---------------------------------------------------------------- markers and listing


@dataclass
class Remote:
    """One archive in the bucket: complete (with a valid marker) or not."""

    target: Target
    name: str
    size: int | None = None
    marker: dict[str, Any] | None = None
    error: str | None = None  # why it is not a backup

    @property
    def complete(self) -> bool:
        return self.marker is not None and self.error is None

    @property
    def url(self) -> str:
        return self.target.url(self.name)

    @property
    def profile(self) -> str | None:
        if self.marker is not None:
            return str(self.marker.get("profile"))
        return None

    @property
    def created(self) -> str:
        return str((self.marker or {}).get("created", ""))

    @property
    def on_node(self) -> bool:
        """An archive a swarm node made of a profile placed there (see the module doc)."""
        return is_node_marker(self.marker or {})

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in (self.marker or {}).items() if k not in ("format", "mac")}
        data.update(archive=self.url, complete=self.complete)
        if self.error:
            data["error"] = self.error
        return data


def make_marker(name: str, digest: str, size: int, manifest: Manifest, key_id: str) -> bytes:
    doc = {
        **manifest.summary(),
        "format": MARKER_FORMAT,
        "archive": name,
        "sha256": digest,
        "archive_bytes": size,
        "uploaded": datetime.now(UTC).isoformat(),
        "key_id": key_id,
    }
    return json.dumps(doc, indent=1).encode()


def make_node_marker(
    name: str,
    digest: str,
    size: int,
    *,
    profile: str,
    created: str,
    node: str,
    image: str,
    openclaw_version: str | None,
    key: BackupKey,
) -> bytes:
    """The marker of a node archive, its HMAC over all the rest (see the module doc)."""
    doc: dict[str, Any] = {
        "format": MARKER_FORMAT,
        "kind": NODE_KIND,
        "archive": name,
        "profile": profile,
        "created": created,
        "mode": "offline",
        "node": node,
        "image": image,
        "openclaw_version": openclaw_version,
        "sha256": digest,
        "archive_bytes": size,
        "uploaded": datetime.now(UTC).isoformat(),
        "key_id": key.key_id,
    }
    doc["mac"] = key.mac(_signed(doc), MARKER_DOMAIN)
    return json.dumps(doc, indent=1).encode()


def _signed(doc: dict[str, Any]) -> bytes:
    """The bytes a node marker's MAC covers: every field but the MAC, canonical JSON."""
    rest = {k: v for k, v in doc.items() if k != "mac"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()


def is_node_marker(marker: dict[str, Any]) -> bool:
    return marker.get("kind") == NODE_KIND


def authenticate_node_marker(marker: dict[str, Any], keys: Keyring, url: str) -> str:
    """Which key vouches for a node archive's marker (so for its sha256), or
    ArchiveUnauthenticated: a marker written elsewhere, or changed since."""
    if keys.trust:
        return "not checked (--trust)"
    key = keys.find(marker.get("key_id"))
    mac = marker.get("mac")
    if (
        key is None
        or not isinstance(mac, str)
        or not key.matches(_signed(marker), mac, MARKER_DOMAIN)
    ):
        raise ArchiveUnauthenticated(
            f"{url}: not authenticated: its completion marker was written by another orch"
            " home, or changed after it was written; nothing was changed",
            hint=TRUST_HINT,
        )
    return keys.describe(key)


def parse_marker(data: bytes, name: str) -> dict[str, Any]:
    """The marker's JSON, checked enough to trust its sha256 and size for the download
    (the archive's own manifest and MAC are checked after it)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != MARKER_FORMAT
        or doc.get("archive") != name
        or not re.fullmatch(r"[0-9a-f]{64}", str(doc.get("sha256")))
        or not isinstance(doc.get("archive_bytes"), int)
        or not isinstance(doc.get("profile"), str)
    ):
        raise ValueError("its completion marker is malformed")
    return doc


def classify(
    target: Target, objects: dict[str, int], markers: dict[str, bytes | None]
) -> list[Remote]:
    """Archives (name -> size) and the markers read for them: newest complete first,
    then the incomplete ones (no marker, a bad one, or a size it does not match)."""
    complete, incomplete = [], []
    for name, size in sorted(objects.items()):
        raw = markers.get(name)
        if raw is None:
            incomplete.append(
                Remote(
                    target,
                    name,
                    size,
                    error="no completion marker: an upload that never"
                    " finished (killed, failed or still running); not a backup",
                )
            )
            continue
        try:
            marker = parse_marker(raw, name)
        except ValueError as exc:
            incomplete.append(Remote(target, name, size, error=str(exc)))
            continue
        if marker["archive_bytes"] != size:
            incomplete.append(
                Remote(
                    target,
                    name,
                    size,
                    marker,
                    "its size differs from its completion marker's (replaced or truncated since)",
                )
            )
            continue
        complete.append(Remote(target, name, size, marker))
    complete.sort(key=lambda r: r.created, reverse=True)
    return complete + incomplete


def to_prune(entries: list[Remote], profile: str, keep: int) -> list[Remote]:
    """The profile's complete archives beyond the newest `keep` (pre-upgrade snapshots
    are never pruned, nor what is incomplete: it may be an upload still running)."""
    ours = [r for r in entries if r.complete and r.profile == profile and PRE_UPGRADE not in r.name]
    return ours[keep:]


def newest(entries: list[Remote], profile: str) -> Remote | None:
    return next((r for r in entries if r.complete and r.profile == profile), None)


# ---------------------------------------------------------------- errors


def explain(exc: BaseException, target: Target, doing: str) -> OffsiteFailed:
    """A boto3/botocore error as what failed, where, and how to fix it; never the
    credentials. Pure (it only reads the exception), so unit tests build them."""
    from botocore import exceptions as bx

    where = target.url()
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (no AWS_ENDPOINT_URL set)"
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return OffsiteFailed(
            f"cannot {doing} {where}: no S3 credentials found", hint=CREDENTIALS_HINT
        )
    if isinstance(exc, bx.ProfileNotFound):
        return OffsiteFailed(
            f"cannot {doing} {where}: {exc}",
            hint="name a profile of ~/.aws/credentials in AWS_PROFILE, or unset it",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return OffsiteFailed(
            f"cannot {doing} {where}: the S3 endpoint {endpoint} does not answer ({exc})",
            hint="check AWS_ENDPOINT_URL (scheme, host and port) and that the server runs",
        )
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and doing == "reach"):
            return OffsiteFailed(
                f"cannot {doing} {where}: the bucket {target.bucket!r} does not exist at"
                f" {endpoint}",
                hint=f"create it (e.g. `aws s3 mb s3://{target.bucket}`) or fix the URL",
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status in (
            401,
            403,
        ):
            return OffsiteFailed(
                f"cannot {doing} {where}: {endpoint} refused the credentials"
                f" ({code or status}: {err.get('Message', '')})",
                hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and"
                " that they may read and write this bucket",
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return OffsiteFailed(
                f"cannot {doing} {where}: no such object",
                hint="`orch backup ls --from URL` lists the archives",
            )
        return OffsiteFailed(
            f"cannot {doing} {where}: {endpoint} answered {code or status}:"
            f" {err.get('Message', '')}",
        )
    cause = exc.__context__
    if cause is not None and _from_boto(cause) and not _from_boto_only(exc):
        return explain(cause, target, doing)  # boto3's S3UploadFailedError wraps the cause
    if _from_boto(exc):
        return OffsiteFailed(f"cannot {doing} {where}: {exc}")
    raise exc


def _from_boto(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("botocore", "boto3", "s3transfer"))


def _from_boto_only(exc: BaseException) -> bool:
    """botocore's own errors, explained above (their context is an internal detail)."""
    return type(exc).__module__.startswith("botocore")


# ---------------------------------------------------------------- the bucket


class Bucket:
    """One bucket and prefix, through boto3: every error an OffsiteFailed."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise UsageError(
                    "s3:// targets need boto3, which is not installed",
                    hint="pip install 'orch[s3]' (or pip install boto3)",
                ) from None
            with self._errors("reach"):
                session = boto3.session.Session()
                self._client = session.client(
                    "s3",
                    config=Config(
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=10,
                        read_timeout=60,
                        signature_version="s3v4",  # what presigned URLs need
                    ),
                )
        return self._client

    @contextlib.contextmanager
    def _errors(self, doing: str):
        try:
            yield
        except Exception as exc:
            if _from_boto(exc):
                raise explain(exc, self.target, doing) from None
            raise

    def check(self) -> None:
        """Reach the bucket once before the work starts: a wrong endpoint, bad
        credentials or a missing bucket say so before anything is copied."""
        with self._errors("reach"):
            self.client.head_bucket(Bucket=self.target.bucket)

    def upload(self, path: Path, digest: str, say: Say | None = None) -> int:
        """Upload the archive, then read it back and compare its sha256: what the
        bucket holds is what was written. Returns its size."""
        key = self.target.key(path.name)
        size = path.stat().st_size
        if say:
            say(f"uploading {path.name} ({size / 1e6:.1f} MB) to {self.target.url()}")
        with self._errors("upload to"):
            self.client.upload_file(str(path), self.target.bucket, key)
        _kill_point("offsite:uploaded")
        self.check_uploaded(path.name, digest, size, say)
        return size

    def check_uploaded(self, name: str, digest: str, size: int, say: Say | None = None) -> None:
        """Read the object back and compare its sha256 and size with what was sent."""
        if say:
            say("reading it back to check its sha256")
        back, got = self._hash_object(self.target.key(name))
        if (back, got) != (digest, size):
            raise OffsiteFailed(
                f"{self.target.url(name)}: what the bucket holds differs from what was"
                f" uploaded (sha256 {back[:12]}..., {got} bytes; sent {digest[:12]}...,"
                f" {size} bytes); no completion marker was written, so it is not a backup",
                hint="try again; if it keeps failing, check the S3 server",
            )

    def presign(self, method: str, name: str, expires: int = PRESIGN_S) -> str:
        """A URL that lets whoever holds it PUT or GET this one object for `expires`
        seconds, and nothing else: what a node job gets instead of the credentials."""
        operation = {"PUT": "put_object", "GET": "get_object"}[method]
        params = {"Bucket": self.target.bucket, "Key": self.target.key(name)}
        with self._errors("sign a URL for"):
            return self.client.generate_presigned_url(operation, Params=params, ExpiresIn=expires)

    def _hash_object(self, key: str) -> tuple[str, int]:
        sha, size = hashlib.sha256(), 0
        with self._errors("read back"):
            body = self.client.get_object(Bucket=self.target.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                sha.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), size

    def put_marker(self, name: str, data: bytes) -> None:
        with self._errors("write the completion marker to"):
            self.client.put_object(
                Bucket=self.target.bucket,
                Key=self.target.key(name + MARKER_SUFFIX),
                Body=data,
                ContentType="application/json",
            )

    def list(self) -> list[Remote]:
        """Every archive right under the prefix, complete ones newest first."""
        objects: dict[str, int] = {}
        marker_keys: set[str] = set()
        prefix = self.target.key("") if self.target.prefix else ""
        with self._errors("list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.target.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name.endswith(SUFFIX + MARKER_SUFFIX):
                        marker_keys.add(name[: -len(MARKER_SUFFIX)])
                    elif name.endswith(SUFFIX) and not name.startswith("."):
                        objects[name] = int(obj["Size"])
        markers = {name: self._read_marker(name) for name in objects if name in marker_keys}
        return classify(self.target, objects, markers)

    def _read_marker(self, name: str) -> bytes | None:
        with self._errors("read the completion marker of"):
            try:
                body = self.client.get_object(
                    Bucket=self.target.bucket, Key=self.target.key(name + MARKER_SUFFIX)
                )["Body"]
            except self.client.exceptions.NoSuchKey:
                return None
            return body.read(MAX_MARKER + 1)

    def find(self, name: str) -> Remote:
        """One archive, with its marker: the marker is what makes it a backup."""
        with self._errors("read"):
            try:
                head = self.client.head_object(Bucket=self.target.bucket, Key=self.target.key(name))
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise OffsiteFailed(
                        f"{self.target.url(name)}: no such archive",
                        hint=f"`orch backup ls --from {self.target.url()}` lists them",
                    ) from None
                raise
        return classify(
            self.target, {name: int(head["ContentLength"])}, {name: self._read_marker(name)}
        )[0]

    def download(self, entry: Remote, dest_dir: Path, say: Say | None = None) -> Path:
        """Download a complete archive into a 0600 temp file in `dest_dir` (named so a
        killed download is cleaned by the next backup there), checking its sha256
        against the marker. The caller removes the file."""
        if not entry.complete:
            raise OffsiteFailed(
                f"{entry.url}: not a complete backup: {entry.error}",
                hint="use an archive `orch backup ls --from URL` lists as complete",
            )
        assert entry.marker is not None
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if say:
            say(f"downloading {entry.url} ({entry.marker['archive_bytes'] / 1e6:.1f} MB)")
        fd, tmp = tempfile.mkstemp(
            dir=dest_dir, prefix=f"{TEMP_PREFIX}{os.getpid()}-download-", suffix=SUFFIX
        )
        path = Path(tmp)
        try:
            os.fchmod(fd, 0o600)
            sha, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, self._errors("download"):
                body = self.client.get_object(
                    Bucket=self.target.bucket, Key=self.target.key(entry.name)
                )["Body"]
                for chunk in body.iter_chunks(CHUNK):
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise OffsiteFailed(
                f"cannot download {entry.url} into {dest_dir}: {exc.strerror or exc}",
                hint="free some space there (or fix the permission), then try again;"
                " nothing was changed",
            ) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if (sha.hexdigest(), size) != (entry.marker["sha256"], entry.marker["archive_bytes"]):
            path.unlink(missing_ok=True)
            raise OffsiteFailed(
                f"{entry.url}: does not match the sha256 of its completion marker (tampered"
                " or corrupt in the bucket); nothing was changed",
                hint="use another archive",
            )
        return path

    def delete(self, entry: Remote) -> None:
        """Marker first: a prune cut short leaves an incomplete archive, never a
        marker that vouches for nothing."""
        with self._errors("delete from"):
            self.client.delete_object(
                Bucket=self.target.bucket, Key=self.target.key(entry.name + MARKER_SUFFIX)
            )
            self.client.delete_object(Bucket=self.target.bucket, Key=self.target.key(entry.name))


def _kill_point(where: str) -> None:
    """Test-only: SIGKILL this process at the boundary named in $ORCH_TEST_KILL_AT."""
    if os.environ.get(KILL_ENV) == where:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
