"""Backups and restores of gateways on the local engine: the workflows around the
archive format (fleet/backup.py), which stop, start or swap containers.

The rule they follow (and upgrade.py's too): the profile's current state and
container are only set aside (renamed), never deleted, until the gateway that
replaces them answers /readyz; if it does not, what was set aside comes back and is
started again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.backends.project import Project
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.observed import LiveContainer
from orchestrator.core.paths import profile_dirs
from orchestrator.errors import (
    NotReady,
    OrchError,
    UsageError,
)
from orchestrator.fleet import archive_keys
from orchestrator.fleet import backup as archive
from orchestrator.fleet.openclaw_config import planned_config, write_config
from orchestrator.fleet.store import load_fleet, locked
from orchestrator.host.images import inspect_image

DEFAULT_TIMEOUT = 300.0
VERSION_LABEL = "org.opencontainers.image.version"


@dataclass
class BackupResult:
    profile: str
    archive: str
    bytes: int
    files: int
    seconds: float
    mode: str
    container_id: str | None = None
    downtime_s: float | None = None
    pruned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SwitchResult:
    """What restore, upgrade and rollback did to one profile."""

    profile: str
    action: str
    ok: bool
    seconds: float
    image: str | None = None
    archive: str | None = None
    container_id: str | None = None
    downtime_s: float | None = None
    note: str = ""
    error: str | None = None
    kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def say_for(progress: Progress | None, profile: str):
    return (lambda m: progress(profile, m)) if progress else None


def image_meta(image: str) -> dict[str, Any]:
    """What the manifest records of an image: its id and openclaw version (label)."""
    info = inspect_image(image)
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    return {
        "image": image,
        "image_id": (info or {}).get("Id"),
        "openclaw_version": labels.get(VERSION_LABEL),
    }


def current_container(fleet: Fleet, home: Path, name: str) -> LiveContainer | None:
    return Project.on(home, fleet).snapshot().ours.get(name)


def is_running(container: LiveContainer | None) -> bool:
    return container is not None and container.state in ("running", "restarting")


# ---------------------------------------------------------------- backup


def backup(
    home: Path,
    names: list[str] | None = None,
    out_dir: Path | None = None,
    offline: bool = False,
    include_token: bool = False,
    keep: int | None = None,
    progress: Progress | None = None,
    tag: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> list[BackupResult]:
    """One archive per profile. Online by default (the gateway keeps running: same
    container, /readyz answering); `offline` stops it gracefully for the copy and
    starts it again, and the result says how long it was down."""
    if keep is not None and keep < 1:
        raise UsageError(f"--keep: {keep} is not at least 1", hint="e.g. --keep 5")
    with locked(home):
        fleet = load_fleet(home)
        return [
            backup_one(
                home, fleet, p, out_dir, offline, include_token, keep, progress, tag, timeout
            )
            for p in fleet.select(names)
        ]


def backup_one(
    home: Path,
    fleet: Fleet,
    profile: Profile,
    out_dir: Path | None,
    offline: bool,
    include_token: bool,
    keep: int | None,
    progress: Progress | None,
    tag: str,
    timeout: float,
) -> BackupResult:
    start = time.monotonic()
    project = Project.on(home, fleet)
    spec = project.spec(profile.name)
    container = project.snapshot().ours.get(profile.name)
    meta = {**image_meta(profile.image), "spec_hash": spec.spec_hash}
    if container is not None and container.image:
        meta["image"] = container.image
    target = out_dir or archive.default_dir(home, profile.name)
    say = say_for(progress, profile.name)
    stopped_at, stopped = None, None
    if offline and is_running(container):
        assert container is not None
        if say:
            say("stopping the gateway for an offline copy")
        stopped = project.backend.stop(project, profile.name)
        stopped_at = time.monotonic()
    meta["mode"] = "offline" if offline or not is_running(container) else "online"
    downtime = None
    try:
        dirs = profile_dirs(profile, home)
        key = archive_keys.signing_key(home)
        path, manifest = archive.create_backup(
            profile, dirs, target, meta, key, include_token, tag, say
        )
    finally:
        if stopped_at is not None and stopped is not None:
            if say:
                say("starting the gateway again")
            project.backend.start(project, profile.name, stopped, timeout)
            downtime = round(time.monotonic() - stopped_at, 3)
    pruned = archive.prune(target, profile.name, keep) if keep else []
    return BackupResult(
        profile=profile.name,
        archive=str(path),
        bytes=path.stat().st_size,
        files=len(manifest.files),
        seconds=round(time.monotonic() - start, 3),
        mode=manifest.mode,
        container_id=container.id if container else None,
        downtime_s=downtime,
        pruned=[str(p) for p in pruned],
    )


# ---------------------------------------------------------------- restore


def restore(
    home: Path,
    name: str,
    path: Path,
    keep_old: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    trust: bool = False,
) -> SwitchResult:
    """Verify, unpack beside the dirs, stop gracefully, swap by rename, start, wait
    ready; the replaced dirs go once the restored gateway is ready (or stay with
    `keep_old`). A gateway that does not get ready on the restored state gets its
    previous state back, started again. `trust`: accept an archive no key of this
    home authenticates (its checksums are still checked)."""
    start = time.monotonic()
    say = say_for(progress, name)
    with locked(home):
        fleet = load_fleet(home)
        project = Project.on(home, fleet)
        profile = fleet.get(name)
        keys = archive_keys.keyring(home, trust)
        check_archive(path, profile, keys)
        staged, _ = archive.stage(path, profile, profile_dirs(profile, home), keys, say)
        try:
            rewired = _manage_restored_config(profile, staged)
            container = project.snapshot().ours.get(name)
            result = SwitchResult(name, "restore", True, 0.0, profile.image, str(path))
            if not is_running(container):
                staged.swap()
                result.note = f"restored; no gateway runs: `orch up {name}` starts it"
            else:
                assert container is not None
                result.downtime_s = _swap_in_place(project, name, staged, timeout, say)
                result.container_id = container.id
                restart_rescuers(project, name, timeout, say)
            result.kept = _finish(staged, keep_old)
            if rewired:
                result.note = "; ".join(
                    n for n in (result.note, f"{CONFIG_REWIRED} ({rewired.name})") if n
                )
        finally:
            staged.cleanup()
    result.seconds = round(time.monotonic() - start, 3)
    return result


CONFIG_REWIRED = (
    "the archive's openclaw.json had other values for the keys orch manages (port, bind,"
    " auth, origins): set for this profile, the archive's file kept beside it"
)


def _manage_restored_config(profile: Profile, staged: archive.Staged) -> Path | None:
    """An archive made for another port or host (another home, an older profile
    definition) carries openclaw.json keys the gateway would fail on here: set orch's
    managed keys for this profile in the staged config, as `orch setup` does; every
    other key stays the archive's. Returns the copy of the archive's file, if changed."""
    dirs = staged.dirs._replace(config=staged.root["config"])
    wanted, changed = planned_config(profile, dirs)
    if not changed:
        return None
    return write_config(profile, dirs, wanted)


def check_archive(path: Path, profile: Profile, keys: archive_keys.Keyring) -> archive.Manifest:
    """The cheap refusals first, before anything is unpacked: who made it, profile
    and version."""
    manifest, _ = archive.check_authentic(path, keys)
    archive.check_profile(path, manifest, profile.name)
    version = image_meta(profile.image)["openclaw_version"]
    archive.check_version(path, manifest, version, profile.image)
    return manifest


def _finish(staged: archive.Staged, keep_old: bool) -> list[str]:
    if keep_old:
        kept = [str(p) for p in staged.aside.values()]
        staged.aside.clear()
        return kept
    staged.discard_old()
    return []


def _swap_in_place(
    project: Project, name: str, staged: archive.Staged, timeout: float, say
) -> float:
    """Stop, swap the dirs, start the same gateway, wait; undo all on failure."""
    backend = project.backend
    if say:
        say("stopping the gateway")
    stopped = backend.stop(project, name)
    assert stopped is not None  # the caller saw it running
    down = time.monotonic()
    staged.swap()
    try:
        if say:
            say("starting it on the restored state; waiting for /readyz")
        backend.start(project, name, stopped, timeout)
    except OrchError as exc:
        backend.stop(project, name)
        staged.unswap()
        backend.start(project, name, stopped, timeout)
        raise NotReady(
            f"{name}: the gateway did not get ready on the restored state; its"
            f" previous state is back and it is ready again.\n{exc.message}",
            hint="check the archive with `orch backup verify`, or restore an older one",
        ) from None
    return round(time.monotonic() - down, 3)


def restart_rescuers(project: Project, name: str, timeout: float, say) -> None:
    """A running rescue profile mounts this profile's config dir: after the swap its
    mount still shows the old dir, so restart it to see the restored one."""
    snap = project.snapshot()
    for other in project.fleet.profiles.values():
        container = snap.ours.get(other.name)
        if other.rescues == name and is_running(container):
            if say:
                say(f"restarting {other.name} (it mounts this config dir)")
            project.backend.restart(project, other.name, timeout)
