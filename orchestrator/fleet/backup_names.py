"""Where a profile's backups are and how old the newest is: names and one small
record only, never an archive opened.

`orch status` shows each profile's newest backup; this module is what it needs of
backups, so it does not import the archive code (fleet/backup.py: tarfile, sqlite3,
pydantic dataclasses) or the S3 workflows to read a directory listing.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SUFFIX = ".tar.gz"
BACKUPS_DIR = "backups"
#: In a profile's backup dir: the archive and time of its last upload to a bucket.
LAST_OFFSITE = ".offsite-last.json"

_STAMP = re.compile(r"-(\d{8}T\d{6}\.\d{6}Z)(?:-[^/]*)?" + re.escape(SUFFIX) + "$")


def default_dir(home: Path, name: str) -> Path:
    return home / BACKUPS_DIR / name


def age_s(created: str, now: float | None = None) -> float | None:
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now if now is not None else time.time()) - when.timestamp())


def human_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def newest_backup(home: Path, name: str, now: float | None = None) -> dict[str, Any] | None:
    """The profile's newest backup, local or offsite, and its age: from the archive
    names in its backup dir and the record of its last upload (no archive is opened,
    no network)."""
    parent = default_dir(home, name)
    found: list[tuple[str, str]] = []  # (created ISO, where)
    if parent.is_dir():
        for entry in parent.glob(f"{name}-*{SUFFIX}"):
            match = _STAMP.search(entry.name)
            if match:
                when = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ")
                found.append((when.replace(tzinfo=UTC).isoformat(), str(entry)))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        doc = json.loads((parent / LAST_OFFSITE).read_text())
        found.append((str(doc["created"]), str(doc["archive"])))
    if not found:
        return None
    created, where = max(found, key=lambda f: datetime.fromisoformat(f[0]).timestamp())
    return {"archive": where, "created": created, "age_s": round(age_s(created, now) or 0.0)}
