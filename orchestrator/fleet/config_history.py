"""Configs that reached ready, and putting one back (the rescue runbook's files).

Two sources of a last good config: the gateway's own `openclaw.json.last-good`
beside `openclaw.json`, and orch's bounded history of configs with which a gateway
became ready (`.orch-good/` in the profile's config dir, each file 0600). Restoring
keeps the broken file aside (`openclaw.json.broken-TIME`) and replaces the config
by rename, so a reader (the gateway) sees either the old or the new file.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import NamedTuple

from orchestrator.base.atomic import atomic_write
from orchestrator.core.paths import ProfileDirs

HISTORY_DIR = ".orch-good"


HISTORY_KEEP = 5


GATEWAY_LAST_GOOD = "openclaw.json.last-good"


class GoodConfig(NamedTuple):
    source: str  # "gateway" (openclaw.json.last-good) or "orch" (history)
    path: Path
    text: str


def history_dir(dirs: ProfileDirs) -> Path:
    return dirs.config / HISTORY_DIR


def remember_good(dirs: ProfileDirs, uid: int | None = None, gid: int | None = None) -> bool:
    """Keep a copy of the config a gateway just became ready with, unless the newest
    copy is the same; at most HISTORY_KEEP files. True when a copy was added."""
    try:
        data = dirs.config_file.read_bytes()
    except OSError:
        return False
    folder = history_dir(dirs)
    kept = history(dirs)
    if kept and kept[0].path.read_bytes() == data:
        return False
    folder.mkdir(mode=0o700, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:8]
    path = folder / f"openclaw.json.{time.strftime('%Y%m%d-%H%M%S')}.{digest}"
    atomic_write(path, data, mode=0o600)
    if os.geteuid() == 0 and uid is not None:
        os.chown(folder, uid, gid if gid is not None else uid)
        os.chown(path, uid, gid if gid is not None else uid)
    for old in history(dirs)[HISTORY_KEEP:]:
        old.path.unlink(missing_ok=True)
    return True


def history(dirs: ProfileDirs) -> list[GoodConfig]:
    """orch's copies, newest first."""
    folder = history_dir(dirs)
    if not folder.is_dir():
        return []
    files = sorted(
        (p for p in folder.iterdir() if p.name.startswith("openclaw.json.")),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    return [GoodConfig("orch", p, p.read_text(encoding="utf-8")) for p in files]


def last_good_candidates(dirs: ProfileDirs) -> list[GoodConfig]:
    """The gateway's last-good first (it wrote it after its own validation), then
    orch's history newest first."""
    out = []
    gateway = dirs.config / GATEWAY_LAST_GOOD
    if gateway.is_file():
        out.append(GoodConfig("gateway", gateway, gateway.read_text(encoding="utf-8")))
    return out + history(dirs)


def restore(dirs: ProfileDirs, good: GoodConfig, uid: int, gid: int) -> Path | None:
    """Put `good` back as openclaw.json; the current file (if any) is kept aside as
    `openclaw.json.broken-TIME` (0600). Returns where the broken one went."""
    path = dirs.config_file
    aside = None
    if path.exists():
        aside = _unused(path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}"))
        atomic_write(aside, path.read_bytes(), mode=0o600)
    atomic_write(path, good.text, mode=0o600)
    if os.geteuid() == 0:
        for p in (path, aside):
            if p is not None:
                os.chown(p, uid, gid)
    return aside


def _unused(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
