"""Who made a backup archive: one secret key per orch home, and the keys it trusts.

The manifest of an archive lists every file's sha256, so checking the files against
it proves the archive is whole, but anyone can rewrite a file and its checksum and
pack it again. An HMAC-SHA256 of the manifest with a key only this home holds proves
the manifest (and so every file) is the one this home wrote. The key lives in
$ORCH_HOME/keys/backup.key (mode 0600, created on first use, never in an archive and
never printed unless asked); keys imported from other homes (`orch backup key
import`) go to $ORCH_HOME/keys/trusted/ID.key, so their archives verify here too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.base.atomic import atomic_write
from orchestrator.errors import KeyFileError, UsageError

KEYS_DIR = "keys"
KEY_FILE = "backup.key"
TRUSTED_DIR = "trusted"
KEY_FORMAT = "orch-backup-key/1"
ALGORITHM = "hmac-sha256"
# The MAC covers this prefix too: a key of orch's never signs anything else's bytes.
DOMAIN = b"orch-backup/1 manifest\n"
# What the MAC of a node archive's completion marker covers (fleet/offsite.py).
MARKER_DOMAIN = b"orch-backup/1 node-archive marker\n"
KEY_ID_LABEL = b"orch-backup key id"
MAX_KEY_FILE = 4096
_LINE = re.compile(rf"^{re.escape(KEY_FORMAT)} ([0-9a-f]{{64}})\s*$")


@dataclass(frozen=True)
class BackupKey:
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """A name for the key that says nothing about it (an HMAC of a fixed label)."""
        return hmac.new(self.secret, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self, manifest: bytes, domain: bytes = DOMAIN) -> str:
        return hmac.new(self.secret, domain + manifest, hashlib.sha256).hexdigest()

    def matches(self, manifest: bytes, mac: str, domain: bytes = DOMAIN) -> bool:
        return hmac.compare_digest(self.mac(manifest, domain), mac)

    def text(self) -> str:
        """The key file's content: what export writes and import reads."""
        return f"{KEY_FORMAT} {self.secret.hex()}\n"


@dataclass(frozen=True)
class Keyring:
    """The keys whose archives this home accepts; `trust`: accept any archive without
    checking who made it (`--trust`: the checksums are still checked)."""

    keys: dict[str, BackupKey] = field(default_factory=dict, repr=False)
    own_id: str | None = None
    trust: bool = False

    def find(self, key_id: object) -> BackupKey | None:
        return self.keys.get(key_id) if isinstance(key_id, str) else None

    def describe(self, key: BackupKey) -> str:
        return "this home's key" if key.key_id == self.own_id else f"trusted key {key.key_id}"


def keys_dir(home: Path) -> Path:
    return home / KEYS_DIR


def key_path(home: Path) -> Path:
    return keys_dir(home) / KEY_FILE


def parse_key(text: str, where: str) -> BackupKey:
    match = _LINE.match(text.strip())
    if not match:
        raise KeyFileError(
            f"{where}: not an orch backup key (expected one line '{KEY_FORMAT} <64 hex digits>')",
            hint="pass a file written by `orch backup key export`",
        )
    return BackupKey(bytes.fromhex(match.group(1)))


def read_key_file(path: Path) -> BackupKey:
    """A key file, refused when it is a symlink, not a file, too large or readable by
    anyone but its owner (a key others can read authenticates nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyFileError(
            f"cannot read the backup key {path}: {exc.strerror}",
            hint="it must be a regular file of orch's (mode 0600), not a symlink",
        ) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEY_FILE:
            raise KeyFileError(f"{path}: not a backup key file (not a small regular file)")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: the backup key is readable by others"
                f" (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"chmod 600 {path}",
            )
        raw = fh.read(MAX_KEY_FILE)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return parse_key(text, str(path))


def own_key(home: Path) -> BackupKey | None:
    path = key_path(home)
    return read_key_file(path) if os.path.lexists(path) else None


def signing_key(home: Path) -> BackupKey:
    """This home's key, created on first use: written whole into a 0600 temp file and
    linked into place, so two processes never end up with two keys."""
    key = own_key(home)
    if key is None:
        # None: another process linked its key first; that one is the home's.
        key = _write_exclusive(key_path(home), BackupKey(secrets.token_bytes(32)))
    return key or signing_key(home)


def _write_exclusive(path: Path, key: BackupKey) -> BackupKey | None:
    """Write `key` to `path` unless a file is there already (then None)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.text())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        return key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def trusted_keys(home: Path) -> list[BackupKey]:
    folder = keys_dir(home) / TRUSTED_DIR
    if not folder.is_dir():
        return []
    return [read_key_file(p) for p in sorted(folder.glob("*.key"))]


def keyring(home: Path, trust: bool = False) -> Keyring:
    """The keys whose archives `home` accepts: its own and the imported ones. Reading
    it never creates a key (verify and restore write nothing)."""
    own = own_key(home)
    keys = {k.key_id: k for k in trusted_keys(home)}
    if own is not None:
        keys[own.key_id] = own
    return Keyring(keys, own.key_id if own else None, trust)


def import_key(home: Path, text: str, where: str) -> tuple[BackupKey, str]:
    """Trust the archives of the home that exported `text`. Returns the key and what
    happened: "added", "known" (trusted already) or "own" (this home's own key)."""
    key = parse_key(text, where)
    own = own_key(home)
    if own is not None and own.key_id == key.key_id:
        return key, "own"
    path = keys_dir(home) / TRUSTED_DIR / f"{key.key_id}.key"
    keys_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
    return key, "known" if _write_exclusive(path, key) is None else "added"


def export_key(home: Path, dest: Path, force: bool = False) -> BackupKey:
    """Write this home's key (created on first use) to `dest`, mode 0600; an existing
    file is replaced only with `force`."""
    if os.path.lexists(dest) and not force:
        raise UsageError(
            f"{dest} exists; nothing was written", hint="choose a new file, or add --force"
        )
    key = signing_key(home)
    try:
        atomic_write(dest, key.text(), mode=0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {dest}: {exc.strerror}") from None
    return key
