"""Backup archives of a profile's dirs: the online copy, the manifest, verification,
unpacking into a staging dir, listing and pruning. Files only, no engine.

An archive is a gzip'd tar: `manifest.json` first, then `config/`, `state/`,
`workspace/` (and `token/gateway_token` only when asked). The manifest lists every
file with its sha256, so `verify` can tell a tampered, truncated or foreign
archive before anything of the profile is touched.

The copy is consistent while the gateway runs: SQLite databases go through
SQLite's own backup API (which reads a snapshot that includes the WAL), every other
file is copied and its stat compared before and after (a file that changed during
the copy is copied again, then the backup fails clearly). Archives are written to a
temp file and renamed, mode 0600: a full disk or a kill never leaves a half archive
under an archive's name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.dataclasses import dataclass as checked_dataclass
from typing_extensions import TypedDict

from orchestrator import __version__
from orchestrator.base.owner import pid_alive
from orchestrator.core.model import NAME_RE, Profile
from orchestrator.core.paths import DIR_KINDS, TOKEN_FILE, ProfileDirs
from orchestrator.errors import (
    ArchiveInvalid,
    ArchiveUnauthenticated,
    BackupFailed,
    UnpackFailed,
)
from orchestrator.fleet.archive_keys import ALGORITHM, BackupKey, Keyring
from orchestrator.fleet.backup_names import BACKUPS_DIR as BACKUPS_DIR
from orchestrator.fleet.backup_names import SUFFIX
from orchestrator.fleet.backup_names import default_dir as default_dir

FORMAT = "orch-backup/1"
MANIFEST = "manifest.json"
TOKEN_MEMBER = f"token/{TOKEN_FILE}"
PRE_UPGRADE = "pre-upgrade"
SQLITE_MAGIC = b"SQLite format 3\x00"
# Files SQLite keeps beside a database; the backup API already covers their content.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
COPY_ATTEMPTS = 3
CHUNK = 1 << 20
GZIP_LEVEL = 6  # what `tar czf` (gzip -6) uses
TEMP_PREFIX = ".orch-backup-"
SIGNATURE = "manifest.hmac"
MAX_MANIFEST = 64 << 20  # bytes: about 400,000 files
MAX_SIGNATURE = 4096
MAX_FILE_SIZE = 1 << 50  # no real file is larger; a manifest that says so is malformed

Say = Callable[[str], None]


def _safe_name(name: str) -> str:
    """A member name inside one of the profile's dirs: relative, no `..`, `.` or `//`."""
    parts = name.split("/")
    if (
        name.startswith("/")
        or parts[0] not in (*DIR_KINDS, "token")
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in name
    ):
        raise ValueError(f"{name!r} points outside the profile's dirs")
    return name


def _safe_link(target: str) -> str:
    if target.startswith("/") or ".." in target.split("/") or "\x00" in target or not target:
        raise ValueError(f"link target {target!r} points outside the profile's dirs")
    return target


MemberName = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_safe_name)]
LinkTarget = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_safe_link)]
Text = Annotated[str, StringConstraints(max_length=512)]


class FileEntry(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0, le=MAX_FILE_SIZE)]
    mode: Annotated[int, Field(ge=0, le=0o7777)]


# Strict and closed: a manifest that is not exactly what `orch backup` writes (wrong
# types, unknown keys, paths out of the dirs, numbers past any real file) is refused
# with the field that is wrong, before anything trusts a value in it.
@checked_dataclass(config=ConfigDict(strict=True, extra="forbid"))
class Manifest:
    profile: Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]
    created: Text
    mode: Literal["online", "offline"]
    openclaw_version: Text | None
    image: Text
    image_id: Text | None
    spec_hash: Text | None
    orch_version: Text = __version__
    include_token: bool = False
    files: dict[MemberName, FileEntry] = field(default_factory=dict)
    dirs: list[MemberName] = field(default_factory=list)
    links: dict[MemberName, LinkTarget] = field(default_factory=dict)
    format: Literal["orch-backup/1"] = FORMAT

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files.values())

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("files", "dirs", "links")}
        return {**data, "file_count": len(self.files), "bytes": self.size}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Manifest:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ArchiveInvalid(
                f"{where}: not an orch backup (manifest format {_short(found)},"
                f" expected {FORMAT!r})",
                hint="pass an archive written by `orch backup`",
            )
        try:
            manifest = cls(**{str(k): v for k, v in doc.items()})
        except ValidationError as exc:
            raise ArchiveInvalid(
                f"{where}: its manifest is malformed: {_first_errors(exc)}",
                hint="the archive is damaged or was not written by `orch backup`",
            ) from None
        manifest._check_layout(where)
        return manifest

    def _check_layout(self, where: str) -> None:
        """Each path once, and the three dirs there as dirs."""
        names = [*self.files, *self.dirs, *self.links]
        if len(set(names)) != len(names):
            twice = sorted(n for n in set(names) if names.count(n) > 1)[0]
            raise ArchiveInvalid(f"{where}: its manifest lists {twice!r} twice (malformed)")
        missing = [k for k in DIR_KINDS if k not in self.dirs]
        if missing:
            raise ArchiveInvalid(f"{where}: its manifest has no {missing[0]}/ dir (malformed)")


def _short(value: Any) -> str:
    return _clip(repr(value))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    out = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"] if p != "[key]") or "(top level)"
        out.append(f"{_clip(loc)}: {_clip(err['msg'].removeprefix('Value error, '), 200)}")
    more = exc.error_count() - limit
    return "; ".join(out) + (f" (and {more} more)" if more > 0 else "")


def utc_stamp(now: float | None = None) -> str:
    when = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return when.strftime("%Y%m%dT%H%M%S.%fZ")


# ---------------------------------------------------------------- the online copy


def _sha256_copy(src: Path, dst: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _sqlite_copy(src: Path, dst: Path) -> None:
    """SQLite's backup API: one consistent snapshot of the database and its WAL, taken
    while the gateway goes on writing. Sidecar files SQLite may create for us (-shm)
    get the database's owner, or the gateway (another uid) could not open them."""
    before = {s: (src.parent / (src.name + s)).exists() for s in SQLITE_SIDECARS}
    # Read-write: a read-only connection fails ("disk I/O error") on a WAL database
    # whose -wal/-shm are not there (one the gateway does not hold open right now).
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    owner = src.stat()
    for suffix, existed in before.items():
        side = src.parent / (src.name + suffix)
        if not existed and side.exists() and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.chown(side, owner.st_uid, owner.st_gid)
    for suffix in SQLITE_SIDECARS:  # the copy is one self-contained file
        with contextlib.suppress(FileNotFoundError):
            (dst.parent / (dst.name + suffix)).unlink()


def _sqlite_or_fail(src: Path, dst: Path) -> None:
    try:
        _sqlite_copy(src, dst)
    except sqlite3.Error as exc:
        raise BackupFailed(
            f"cannot copy the SQLite database {src}: {exc}",
            hint="try again, or take the backup with --offline; no archive was left",
        ) from None


def _stable_copy(src: Path, dst: Path) -> tuple[str, int]:
    """Copy a plain file; copy again when its stat changed during the copy."""
    for _ in range(COPY_ATTEMPTS):
        before = os.stat(src)
        digest, size = _sha256_copy(src, dst)
        after = os.stat(src)
        same = (before.st_size, before.st_mtime_ns, before.st_ino) == (
            after.st_size,
            after.st_mtime_ns,
            after.st_ino,
        )
        if same and size == after.st_size:
            return digest, size
        time.sleep(0.05)
    raise BackupFailed(
        f"{src} kept changing during the copy ({COPY_ATTEMPTS} attempts)",
        hint="try again, or take the backup with --offline (the gateway stops for the copy)",
    )


def _is_sidecar(path: Path) -> bool:
    for suffix in SQLITE_SIDECARS:
        if path.name.endswith(suffix):
            base = path.with_name(path.name[: -len(suffix)])
            if is_sqlite(base):
                return True
    return False


def snapshot_dirs(
    dirs: ProfileDirs, staging: Path, manifest: Manifest, say: Say | None = None
) -> None:
    """Copy the profile's dirs into `staging/<kind>/`, recording every file in the
    manifest. A file that vanished during the walk (the gateway removes temp files)
    is skipped: it was not part of any state the gateway relies on."""
    say = say or (lambda _m: None)
    copied = 0
    for kind, root in dirs.items():
        if not root.is_dir():
            raise BackupFailed(f"the {kind} dir {root} is missing", hint="`orch setup` repairs it")
        for path, rel in _walk(root, kind):
            target = staging / rel
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    target.mkdir(mode=0o700, exist_ok=True)
                    manifest.dirs.append(rel)
                elif stat.S_ISLNK(st.st_mode):
                    manifest.links[rel] = os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    if _is_sidecar(path):
                        continue
                    if is_sqlite(path):
                        _sqlite_or_fail(path, target)
                        digest, size = _sha256_file(target)
                    else:
                        digest, size = _stable_copy(path, target)
                    manifest.files[rel] = {
                        "sha256": digest,
                        "size": size,
                        "mode": stat.S_IMODE(st.st_mode),
                    }
                    copied += size
            except FileNotFoundError:
                continue
        say(f"copied {kind}: {len(manifest.files)} files, {copied / 1e6:.1f} MB so far")


def _walk(root: Path, kind: str) -> Iterator[tuple[Path, str]]:
    """The dir itself, then everything under it (sorted), with archive names."""
    yield root, kind
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        rel = base.relative_to(root).as_posix()
        prefix = kind if rel == "." else f"{kind}/{rel}"
        for name in dirnames + sorted(filenames):
            yield base / name, f"{prefix}/{name}"


# ---------------------------------------------------------------- writing the archive


def _temp_name(out_dir: Path, what: str) -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-{what}-"


def clean_stale_temps(out_dir: Path) -> list[Path]:
    """Remove temp files and staging dirs a killed backup left (their pid is gone)."""
    removed = []
    if not out_dir.is_dir():
        return removed
    for entry in out_dir.iterdir():
        match = re.match(re.escape(TEMP_PREFIX) + r"(\d+)-", entry.name)
        if match and not pid_alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def archive_name(profile: str, stamp: str, tag: str = "") -> str:
    return f"{profile}-{stamp}{'-' + tag if tag else ''}{SUFFIX}"


def write_archive(
    staging: Path, manifest: Manifest, out_dir: Path, name: str, key: BackupKey
) -> Path:
    """tar.gz `staging` with the manifest first and its MAC second, into a 0600 temp
    file, fsync, rename."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = out_dir / name
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=_temp_name(out_dir, "archive"), suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
                _write_tar(gz, staging, manifest, key)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final


def _write_tar(fileobj: Any, staging: Path, manifest: Manifest, key: BackupKey) -> None:
    raw = json.dumps(manifest.to_json(), indent=1).encode()
    signature = {"alg": ALGORITHM, "key_id": key.key_id, "mac": key.mac(raw)}
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, raw)
        _add_bytes(tar, SIGNATURE, json.dumps(signature, indent=1).encode())
        for rel in manifest.dirs:
            info = tarfile.TarInfo(rel)
            info.type, info.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(info)
        for rel, target in manifest.links.items():
            info = tarfile.TarInfo(rel)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for rel, meta in manifest.files.items():
            info = tarfile.TarInfo(rel)
            info.size, info.mode = meta["size"], meta["mode"]
            with open(staging / rel, "rb") as fh:
                tar.addfile(info, fh)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    tar.addfile(info, io.BytesIO(data))


def create_backup(
    profile: Profile,
    dirs: ProfileDirs,
    out_dir: Path,
    meta: dict[str, Any],
    key: BackupKey,
    include_token: bool = False,
    tag: str = "",
    say: Say | None = None,
) -> tuple[Path, Manifest]:
    """Copy the profile's dirs (online-consistent), then write the archive atomically,
    its manifest authenticated with `key`. `meta` holds what the engine knows (image,
    image_id, openclaw_version, spec_hash, mode). Nothing is left in `out_dir` but the
    finished archive, also on failure."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    clean_stale_temps(out_dir)
    now = time.time()
    manifest = Manifest(
        profile=profile.name,
        created=datetime.fromtimestamp(now, UTC).isoformat(),
        mode=meta.get("mode", "online"),
        openclaw_version=meta.get("openclaw_version"),
        image=meta.get("image", profile.image),
        image_id=meta.get("image_id"),
        spec_hash=meta.get("spec_hash"),
        include_token=include_token,
    )
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=_temp_name(out_dir, "stage")))
    try:
        snapshot_dirs(dirs, staging, manifest, say)
        if include_token:
            (staging / "token").mkdir()
            digest, size = _sha256_copy(dirs.token_file, staging / TOKEN_MEMBER)
            manifest.files[TOKEN_MEMBER] = {"sha256": digest, "size": size, "mode": 0o600}
        if say:
            say(f"writing the archive ({manifest.size / 1e6:.1f} MB to compress)")
        name = archive_name(profile.name, utc_stamp(now), tag)
        path = write_archive(staging, manifest, out_dir, name, key)
    except OSError as exc:
        raise BackupFailed(
            f"cannot write the backup of '{profile.name}' into {out_dir}:"
            f" {exc.strerror or exc} ({exc.filename or out_dir})",
            hint="free some space or choose another dir with -o; no archive was left",
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path, manifest


# ---------------------------------------------------------------- reading and verifying

# What reading a damaged archive raises, from tarfile, gzip and zlib.
READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)


@dataclass
class Head:
    """The start of an archive: its manifest, the exact bytes the MAC covers, and the
    signature (None in archives of an orch that did not sign them)."""

    manifest: Manifest
    raw: bytes
    signature: dict[str, str] | None


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a tar, every read error of it an ArchiveInvalid. Only regular
    files: opening a FIFO or a device named *.tar.gz would block or read forever."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArchiveInvalid(
            f"{path}: no such file", hint="`orch backup ls` lists archives"
        ) from None
    except OSError as exc:
        raise ArchiveInvalid(f"{path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArchiveInvalid(f"{path}: not a regular file", hint="pass an archive file")
    try:
        tar = tarfile.open(path, mode="r:gz")  # noqa: SIM115 - closed by the with below
    except READ_ERRORS as exc:
        raise ArchiveInvalid(f"{path}: not a readable gzip'd tar ({exc})") from None
    try:
        with tar:
            yield tar
    except OSError as exc:
        if exc.errno is None:  # gzip's BadGzipFile and the like: the archive's fault
            raise ArchiveInvalid(f"{path}: truncated or corrupt ({exc})") from None
        raise UnpackFailed(
            f"cannot unpack {path}: {exc.strerror} ({exc.filename or 'the staging dir'})",
            hint="free some space (or fix the permission), then try again;"
            " nothing of the profile was changed",
        ) from None
    except READ_ERRORS as exc:
        raise ArchiveInvalid(f"{path}: truncated or corrupt ({exc})") from None


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, what: str) -> bytes:
    if member.size > limit:
        raise ArchiveInvalid(f"{tar.name}: its {what} is too large ({member.size} bytes)")
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file, checked by the caller
    return fh.read(limit + 1)


def _read_head(tar: tarfile.TarFile, path: Path) -> tuple[Head, tarfile.TarInfo | None]:
    """The manifest (first member) and the signature (second, when there is one); also
    the first member after them, already read from the stream."""
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise ArchiveInvalid(
            f"{path}: no {MANIFEST} at its start: not an orch backup",
            hint="pass an archive written by `orch backup`",
        )
    raw = _member_bytes(tar, first, MAX_MANIFEST, "manifest")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ArchiveInvalid(f"{path}: its manifest is not JSON ({exc})") from None
    manifest = Manifest.from_json(doc, str(path))
    after = tar.next()
    if after is None or after.name != SIGNATURE:
        return Head(manifest, raw, None), after
    if not after.isfile():
        raise ArchiveInvalid(f"{path}: its {SIGNATURE} is not a file (malformed)")
    sig = _parse_signature(_member_bytes(tar, after, MAX_SIGNATURE, "signature"), path)
    return Head(manifest, raw, sig), tar.next()


def _parse_signature(data: bytes, path: Path) -> dict[str, str]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    keys = ("alg", "key_id", "mac")
    if (
        not isinstance(doc, dict)
        or set(doc) != set(keys)
        or not all(isinstance(doc[k], str) for k in keys)
        or doc["alg"] != ALGORITHM
    ):
        raise ArchiveInvalid(
            f"{path}: its {SIGNATURE} is malformed (expected {ALGORITHM} with key_id and mac)",
            hint="the archive is damaged or was not written by `orch backup`",
        )
    return doc


def read_head(path: Path) -> Head:
    """Manifest and signature alone: cheap, for `ls` and the checks before a restore;
    `verify` checks the files against them."""
    with _open(path) as tar:
        head, _ = _read_head(tar, path)
    return head


def read_manifest(path: Path) -> Manifest:
    return read_head(path).manifest


TRUST_HINT = (
    "if you trust where it came from, import the key of the orch home that made it"
    " (there: `orch backup key export FILE`; here: `orch backup key import FILE`), or pass"
    " --trust to check its checksums only"
)


def authenticate(path: Path, head: Head, keys: Keyring) -> str:
    """Which key vouches for the archive ("this home's key", "trusted key ID"), or
    "not checked (--trust)"; ArchiveUnauthenticated when none does."""
    if keys.trust:
        return "not checked (--trust)"
    if head.signature is None:
        raise ArchiveUnauthenticated(
            f"{path}: not authenticated: it carries no signature (written by an orch"
            " before archives were signed, or stripped)",
            hint=TRUST_HINT,
        )
    key = keys.find(head.signature["key_id"])
    if key is None or not key.matches(head.raw, head.signature["mac"]):
        raise ArchiveUnauthenticated(
            f"{path}: not authenticated: made by another orch home, or changed after it"
            " was written; nothing was changed",
            hint=TRUST_HINT,
        )
    return keys.describe(key)


def check_authentic(path: Path, keys: Keyring) -> tuple[Manifest, str]:
    """The cheap refusal before anything is unpacked or stopped."""
    head = read_head(path)
    return head.manifest, authenticate(path, head, keys)


def iter_verified(path: Path, keys: Keyring, dest: Path | None = None) -> tuple[Manifest, str]:
    """Read the whole archive once: authenticate its manifest, then check every member
    against it (name, type, size, sha256, nothing missing, nothing extra, no path out
    of its dir); with `dest`, also extract it there. Raises ArchiveInvalid on the first
    mismatch. Returns the manifest and who vouched for it."""
    seen: set[str] = set()
    with _open(path) as tar:
        head, pending = _read_head(tar, path)
        vouched = authenticate(path, head, keys)
        manifest = head.manifest
        member = pending
        while member is not None:
            _check_member(path, manifest, member)
            if member.name in seen:
                raise ArchiveInvalid(f"{path}: member {member.name!r} appears twice")
            seen.add(member.name)
            if member.isfile():
                _check_file(path, manifest, tar, member, dest)
            elif dest is not None:
                tar.extract(member, dest, filter="data")
            member = tar.next()
    missing = (set(manifest.files) | set(manifest.dirs) | set(manifest.links)) - seen
    if missing:
        raise ArchiveInvalid(
            f"{path}: {len(missing)} file(s) of the manifest are missing, e.g. {sorted(missing)[0]}"
        )
    return manifest, vouched


def _check_member(path: Path, manifest: Manifest, member: tarfile.TarInfo) -> None:
    name = member.name
    try:
        _safe_name(name)
    except ValueError:
        raise ArchiveInvalid(
            f"{path}: member {_short(name)} points outside the profile's dirs"
        ) from None
    if member.isfile():
        ok = name in manifest.files
    elif member.isdir():
        ok = name in manifest.dirs
    elif member.issym():
        ok = manifest.links.get(name) == member.linkname  # the manifest's are checked safe
    else:
        ok = False
    if not ok:
        raise ArchiveInvalid(f"{path}: member {_short(name)} is not in its manifest (tampered?)")


def _check_file(
    path: Path, manifest: Manifest, tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path | None
) -> None:
    want = manifest.files[member.name]
    mismatch = ArchiveInvalid(
        f"{path}: {member.name} does not match its checksum (tampered or corrupt)",
        hint="use another archive; nothing was changed",
    )
    if member.size != want["size"]:
        raise mismatch
    fh = tar.extractfile(member)
    assert fh is not None
    digest, size = hashlib.sha256(), 0
    out = None
    if dest is not None:
        target = dest / member.name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = open(target, "wb")  # noqa: SIM115 - closed below
    try:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
            os.chmod(dest / member.name, want["mode"] & 0o755)
    if size != want["size"] or digest.hexdigest() != want["sha256"]:
        raise mismatch


def verify(path: Path, keys: Keyring, profile: str | None = None) -> tuple[Manifest, str]:
    """Check an archive without restoring it; with `profile`, also that it is that
    profile's (a backup of `main` is refused for `rescue`)."""
    manifest, vouched = iter_verified(path, keys)
    if profile is not None:
        check_profile(path, manifest, profile)
    return manifest, vouched


def check_profile(path: Path, manifest: Manifest, profile: str) -> None:
    if manifest.profile != profile:
        raise ArchiveInvalid(
            f"{path} is a backup of profile '{manifest.profile}', not '{profile}'",
            hint=f"restore it with `orch restore {manifest.profile} {path}`",
        )


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    try:
        return tuple(int(x) for x in re.split(r"[.-]", version) if x.isdigit())
    except ValueError:
        return None


def check_version(path: Path, manifest: Manifest, image_version: str | None, image: str) -> None:
    """Refuse state written by a newer openclaw than the image would run it with:
    the older gateway cannot read a migrated state."""
    have, want = version_tuple(image_version), version_tuple(manifest.openclaw_version)
    if have is not None and want is not None and want > have:
        raise ArchiveInvalid(
            f"{path} holds state of openclaw {manifest.openclaw_version}, newer than the"
            f" {image_version} of the profile's image {image}",
            hint="upgrade the profile first (`orch upgrade NAME --openclaw VERSION`)",
        )


# ---------------------------------------------------------------- listing and pruning


@dataclass
class Listed:
    """One archive of a listing: its head, or why it cannot be read."""

    path: Path
    head: Head | None = None
    error: str | None = None


def list_archives(out_dir: Path, profile: str | None = None) -> list[Listed]:
    """The archives in `out_dir`, newest first, then those that cannot be read (one
    bad archive never hides the others). With `profile`, only its archives, and of the
    unreadable ones those named like its (their manifest cannot say whose they are)."""
    rows: list[Listed] = []
    bad: list[Listed] = []
    if not out_dir.is_dir():
        return rows
    for entry in sorted(out_dir.glob(f"*{SUFFIX}")):
        if entry.name.startswith("."):
            continue
        try:
            head = read_head(entry)
        except ArchiveInvalid as exc:
            if profile is None or entry.name.startswith(f"{profile}-"):
                bad.append(Listed(entry, error=exc.message))
            continue
        if profile is None or head.manifest.profile == profile:
            rows.append(Listed(entry, head))
    rows.sort(key=lambda r: r.head.manifest.created if r.head else "", reverse=True)
    return rows + bad


def prune(out_dir: Path, profile: str, keep: int) -> list[Path]:
    """Remove the profile's archives beyond the newest `keep` (pre-upgrade snapshots,
    which `orch rollback` needs, are never pruned; nor is what cannot be read)."""
    ours = [
        r.path
        for r in list_archives(out_dir, profile)
        if r.head is not None and PRE_UPGRADE not in r.path.name
    ]
    removed = []
    for path in ours[keep:]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# ---------------------------------------------------------------- restoring files


@dataclass
class Staged:
    """An archive unpacked beside the profile's dirs (same filesystem: the swap is a
    rename), with what the swap set aside, so it can be undone."""

    dirs: ProfileDirs
    root: dict[str, Path]
    token: Path | None = None
    aside: dict[str, Path] = field(default_factory=dict)
    swapped: bool = False

    def swap(self) -> None:
        """Current dirs aside, staged dirs in: renames only, undone on failure."""
        stamp = f"{os.getpid()}-{int(time.time())}"
        targets = dict(self.dirs.items())
        try:
            for kind, staged in self.root.items():
                current = targets[kind]
                if os.path.lexists(current):  # gone: a killed swap left nothing to set aside
                    aside = current.with_name(f".{current.name}.replaced-{stamp}")
                    os.rename(current, aside)
                    self.aside[kind] = aside
                os.rename(staged, current)
            if self.token is not None:
                aside = self.dirs.token_file.with_name(f".{TOKEN_FILE}.replaced-{stamp}")
                os.rename(self.dirs.token_file, aside)
                self.aside["token"] = aside
                os.rename(self.token, self.dirs.token_file)
        except OSError:
            self.unswap()
            raise
        self.swapped = True

    def unswap(self) -> None:
        """Put the set-aside dirs back; the restored ones return to staging."""
        targets = dict(self.dirs.items())
        targets["token"] = self.dirs.token_file
        for kind, aside in list(self.aside.items()):
            current = targets[kind]
            staged = self.root.get(kind) if kind != "token" else self.token
            if current.exists() and staged is not None and not staged.exists():
                os.rename(current, staged)
            elif current.exists():
                _remove(current)
            os.rename(aside, current)
            del self.aside[kind]
        self.swapped = False

    def discard_old(self) -> list[Path]:
        """The restored gateway is ready: remove what was set aside."""
        gone = list(self.aside.values())
        for path in gone:
            _remove(path)
        self.aside.clear()
        return gone

    def cleanup(self) -> None:
        """Remove staging left over (after a failure, or an unswap)."""
        for path in [*self.root.values(), *([self.token] if self.token else [])]:
            if path.exists():
                _remove(path)
        for kind in list(self.root):
            parent = self.root[kind].parent
            if parent.name.startswith(TEMP_PREFIX):
                shutil.rmtree(parent, ignore_errors=True)


_ASIDE = re.compile(r"^\.(?P<name>.+)\.replaced-(?P<pid>\d+)-\d+$")


def clean_stale_swaps(dirs: ProfileDirs) -> list[Path]:
    """What a killed restore, upgrade or rollback left beside the profile's dirs (its
    pid is gone): staging dirs go; a set-aside dir goes when the dir it replaced is
    in place (the swap got that far), else it is renamed back (the only copy)."""
    targets = [path for _, path in dirs.items()] + [dirs.token_file]
    changed = []
    for parent in dict.fromkeys(t.parent for t in targets):
        changed += clean_stale_temps(parent)
    for target in targets:
        if not target.parent.is_dir():
            continue
        for entry in sorted(target.parent.iterdir()):
            match = _ASIDE.match(entry.name)
            if not match or match["name"] != target.name or pid_alive(int(match["pid"])):
                continue
            if os.path.lexists(target):
                _remove(entry)
            else:
                os.rename(entry, target)
            changed.append(entry)
    return changed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def stage(
    path: Path, profile: Profile, dirs: ProfileDirs, keys: Keyring, say: Say | None = None
) -> tuple[Staged, Manifest]:
    """Verify and unpack the archive into staging dirs beside the profile's dirs (one
    pass: every file is checked against the manifest as it is written), owned by the
    gateway's user. Nothing of the profile is touched; on failure nothing is left."""
    targets = dict(dirs.items())
    staging_roots: dict[str, Path] = {}
    made: list[Path] = []
    try:
        clean_stale_swaps(dirs)
        for kind, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            top = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temp_name(target.parent, kind)))
            made.append(top)
            staging_roots[kind] = top
        # One extraction into the first staging root, then each kind moved to its own
        # (a rename: same filesystem unless the user split the dirs across mounts).
        first = staging_roots[DIR_KINDS[0]]
        if say:
            say(f"verifying and unpacking {path.name}")
        manifest, _ = iter_verified(path, keys, first / "x")
        check_profile(path, manifest, profile.name)
        roots: dict[str, Path] = {}
        for kind in DIR_KINDS:
            unpacked = first / "x" / kind
            if not unpacked.is_dir():
                raise ArchiveInvalid(f"{path}: it has no {kind}/ dir")
            dest = staging_roots[kind] / "restored"
            if kind == DIR_KINDS[0]:
                os.rename(unpacked, dest)
            else:
                try:
                    os.rename(unpacked, dest)
                except OSError:
                    shutil.move(unpacked, dest)
            roots[kind] = dest
        token = None
        if (first / "x" / TOKEN_MEMBER).exists():
            token = dirs.token_file.with_name(f"{TEMP_PREFIX}{os.getpid()}-{TOKEN_FILE}")
            shutil.move(first / "x" / TOKEN_MEMBER, token)
            os.chmod(token, 0o600)
            made.append(token)
        release_copied_lease(roots["state"])
        if os.geteuid() == 0:
            for root in roots.values():
                _chown_tree(root, profile.uid, profile.gid)
            if token is not None:
                os.chown(token, profile.uid, profile.gid)
        for kind, root in roots.items():
            os.chmod(root, stat.S_IMODE(os.stat(targets[kind]).st_mode) or 0o700)
        shutil.rmtree(first / "x", ignore_errors=True)
        return Staged(dirs, roots, token), manifest
    except BaseException as exc:
        for top in made:
            with contextlib.suppress(OSError):
                _remove(top)
        if isinstance(exc, OSError):
            raise UnpackFailed(
                f"cannot unpack {path} beside the dirs of '{profile.name}':"
                f" {exc.strerror or exc} ({exc.filename or dirs.state.parent})",
                hint="free some space (or fix the permission), then try again;"
                " nothing of the profile was changed",
            ) from None
        raise


# The gateway's owner lease on its state dir: a row of its state DB, bound to the
# hostname of the gateway that held it (see /readyz's "Another Gateway owner lease is
# still active", up to 5 minutes).
STATE_DB = "state/openclaw.sqlite"
LEASE_SCOPE = "gateway-owner"


def release_copied_lease(state_root: Path) -> bool:
    """A restored state dir is a new copy that no gateway holds: drop the owner lease
    the copy carries from the gateway that ran when the archive was taken. Without
    this, a gateway of another host name (another home, another node) refuses the
    restored dir for minutes. True when one was dropped."""
    db_path = state_root / STATE_DB
    if not is_sqlite(db_path):
        return False
    try:
        db = sqlite3.connect(db_path, timeout=30)
        try:
            with db:
                found = db.execute(
                    "select count(*) from sqlite_master where type='table' and name='state_leases'"
                ).fetchone()[0]
                if not found:
                    return False
                gone = db.execute("delete from state_leases where scope = ?", (LEASE_SCOPE,))
                return gone.rowcount > 0
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UnpackFailed(
            f"cannot release the copied gateway lease in {db_path}: {exc}",
            hint="the archive's state DB may be damaged; nothing of the profile was changed",
        ) from None


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirnames, filenames in os.walk(path):
        for entry in dirnames + filenames:
            os.chown(os.path.join(root, entry), uid, gid, follow_symlinks=False)


def changes_since(manifest: Manifest, dirs: ProfileDirs) -> dict[str, int]:
    """How much differs between the profile's dirs now and the archive: what a
    rollback to it would lose (files changed, added, removed)."""
    now: dict[str, str] = {}
    for kind, root in dirs.items():
        for path, rel in _walk(root, kind):
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink() and not _is_sidecar(path):
                    now[rel] = "" if is_sqlite(path) else _sha256_file(path)[0]
    old = {k: v["sha256"] for k, v in manifest.files.items() if k != TOKEN_MEMBER}
    changed = sum(1 for k in now.keys() & old.keys() if now[k] and now[k] != old[k])
    sqlite = sum(1 for k in now.keys() & old.keys() if not now[k])
    return {
        "changed": changed,
        "added": len(now.keys() - old.keys()),
        "removed": len(old.keys() - now.keys()),
        "databases": sqlite,
    }
