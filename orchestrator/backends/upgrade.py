"""Backups, restores, upgrades and rollbacks of gateways on the local engine.

Every step that stops, starts or replaces a container lives here; the archive
itself (copy, manifest, verification, staging) is fleet.backup. The rule all of
them follow: the profile's current state and container are only set aside
(renamed), never deleted, until the gateway that replaces them answers /readyz;
if it does not, what was set aside comes back and is started again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.observed import LiveContainer
from orchestrator.core.paths import profile_dirs
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.docker.containers import (
    _create_and_start,
    _discard,
    client,
    require_images,
    wait_ready,
)
from orchestrator.docker.snapshot import take_snapshot
from orchestrator.errors import NotReady, OrchError, UsageError
from orchestrator.fleet import backup as archive
from orchestrator.fleet.store import atomic_write, load_fleet, locked, save_fleet
from orchestrator.host.images import inspect_image

DEFAULT_TIMEOUT = 300.0
VERSION_LABEL = "org.opencontainers.image.version"
HISTORY_FILE = "upgrades.json"


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


def _say(progress: Progress | None, profile: str):
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


def _current(fleet: Fleet, home: Path, name: str) -> LiveContainer | None:
    return take_snapshot(fleet.project, home, with_listeners=False).ours.get(name)


def _running(container: LiveContainer | None) -> bool:
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
            _backup_one(
                home, fleet, p, out_dir, offline, include_token, keep, progress, tag, timeout
            )
            for p in fleet.select(names)
        ]


def _backup_one(
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
    spec = render(profile, fleet, home)
    container = _current(fleet, home, profile.name)
    meta = {**image_meta(profile.image), "spec_hash": spec.spec_hash}
    if container is not None and container.image:
        meta["image"] = container.image
    target = out_dir or archive.default_dir(home, profile.name)
    say = _say(progress, profile.name)
    stopped_at = None
    if offline and _running(container):
        assert container is not None
        if say:
            say("stopping the gateway for an offline copy")
        client().api.stop(container.id, timeout=spec.stop_timeout_s)
        stopped_at = time.monotonic()
    meta["mode"] = "offline" if offline or not _running(container) else "online"
    downtime = None
    try:
        path, manifest = archive.create_backup(
            profile, profile_dirs(profile, home), target, meta, include_token, tag, say
        )
    finally:
        if stopped_at is not None:
            assert container is not None
            if say:
                say("starting the gateway again")
            client().api.start(container.id)
            wait_ready(spec, container.id, timeout)
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
) -> SwitchResult:
    """Verify, unpack beside the dirs, stop gracefully, swap by rename, start, wait
    ready; the replaced dirs go once the restored gateway is ready (or stay with
    `keep_old`). A gateway that does not get ready on the restored state gets its
    previous state back, started again."""
    start = time.monotonic()
    say = _say(progress, name)
    with locked(home):
        fleet = load_fleet(home)
        profile = fleet.get(name)
        spec = render(profile, fleet, home)
        _check_archive(path, profile)
        staged, _ = archive.stage(path, profile, profile_dirs(profile, home), say)
        try:
            container = _current(fleet, home, name)
            result = SwitchResult(name, "restore", True, 0.0, profile.image, str(path))
            if not _running(container):
                staged.swap()
                result.note = f"restored; no gateway runs: `orch up {name}` starts it"
            else:
                assert container is not None
                result.downtime_s = _swap_in_place(spec, container, staged, timeout, say)
                result.container_id = container.id
                _restart_rescuers(home, fleet, name, timeout, say)
            result.kept = _finish(staged, keep_old)
        finally:
            staged.cleanup()
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _check_archive(path: Path, profile: Profile) -> archive.Manifest:
    """The cheap refusals first, before anything is unpacked: profile and version."""
    manifest = archive.read_manifest(path)
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
    spec: ContainerSpec, container: LiveContainer, staged: archive.Staged, timeout: float, say
) -> float:
    """Stop, swap the dirs, start the same container, wait; undo all on failure."""
    api = client().api
    if say:
        say("stopping the gateway")
    api.stop(container.id, timeout=spec.stop_timeout_s)
    down = time.monotonic()
    staged.swap()
    try:
        if say:
            say("starting it on the restored state; waiting for /readyz")
        api.start(container.id)
        wait_ready(spec, container.id, timeout)
    except OrchError as exc:
        api.stop(container.id, timeout=spec.stop_timeout_s)
        staged.unswap()
        api.start(container.id)
        wait_ready(spec, container.id, timeout)
        raise NotReady(
            f"{spec.profile}: the gateway did not get ready on the restored state; its"
            f" previous state is back and it is ready again.\n{exc.message}",
            hint="check the archive with `orch backup verify`, or restore an older one",
        ) from None
    return round(time.monotonic() - down, 3)


def _restart_rescuers(home: Path, fleet: Fleet, name: str, timeout: float, say) -> None:
    """A running rescue profile mounts this profile's config dir: after the swap its
    mount still shows the old dir, so restart it to see the restored one."""
    snap = take_snapshot(fleet.project, home, with_listeners=False)
    for other in fleet.profiles.values():
        container = snap.ours.get(other.name)
        if other.rescues == name and _running(container):
            assert container is not None
            spec = render(other, fleet, home)
            if say:
                say(f"restarting {other.name} (it mounts this config dir)")
            client().api.restart(container.id, timeout=spec.stop_timeout_s)
            wait_ready(spec, container.id, timeout)


# ---------------------------------------------------------------- upgrade and rollback


def history_path(home: Path, name: str) -> Path:
    return archive.default_dir(home, name) / HISTORY_FILE


def read_history(home: Path, name: str) -> list[dict[str, Any]]:
    try:
        return json.loads(history_path(home, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _write_history(home: Path, name: str, entries: list[dict[str, Any]]) -> None:
    atomic_write(history_path(home, name), json.dumps(entries, indent=1), mode=0o600)


def upgrade_order(fleet: Fleet, names: list[str] | None) -> list[Profile]:
    """The order given; else rescue profiles first (a working rescue is what you need
    when main's upgrade goes wrong), then the others."""
    selected = fleet.select(names)
    if names:
        return selected
    return [p for p in selected if p.rescues] + [p for p in selected if not p.rescues]


def upgrade(
    home: Path,
    names: list[str] | None,
    image: str,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> list[SwitchResult]:
    """One profile at a time: online backup, recreate on `image`, wait ready. On
    failure the old container and the state of that backup come back, and the
    profiles after it are left as they are."""
    with locked(home):
        fleet = load_fleet(home)
        order = upgrade_order(fleet, names)
        require_images([render(order[0], fleet, home).model_copy(update={"image": image})])
        results = []
        for profile in order:
            result = _upgrade_one(home, profile.name, image, timeout, progress)
            results.append(result)
            if not result.ok:
                for rest in order[len(results) :]:
                    note = f"not upgraded: {profile.name} failed first"
                    results.append(SwitchResult(rest.name, "skipped", False, 0.0, note=note))
                break
        return results


def _upgrade_one(
    home: Path, name: str, image: str, timeout: float, progress: Progress | None
) -> SwitchResult:
    start = time.monotonic()
    say = _say(progress, name)
    fleet = load_fleet(home)
    profile = fleet.get(name)
    if profile.image == image:
        return SwitchResult(name, "noop", True, 0.0, image, note=f"already on {image}")
    new_fleet = fleet.with_profile(profile.model_copy(update={"image": image}))
    new_spec = render(new_fleet.profiles[name], new_fleet, home)
    old_spec = render(profile, fleet, home)
    if say:
        say("online backup before the upgrade")
    snap = _backup_one(
        home, fleet, profile, None, False, False, None, progress, archive.PRE_UPGRADE, timeout
    )
    entry = {
        "from_image": profile.image,
        "to_image": image,
        "archive": snap.archive,
        "at": time.time(),
    }
    container = _current(fleet, home, name)
    result = SwitchResult(name, "upgrade", True, 0.0, image, snap.archive)
    if not _running(container):
        save_fleet(home, new_fleet)
        result.note = f"recorded {image}; no gateway runs: `orch up {name}` starts it"
    else:
        assert container is not None
        save_fleet(home, new_fleet)
        try:
            result.container_id, result.downtime_s = _replace(
                new_spec, old_spec, container, None, Path(snap.archive), profile, home, timeout, say
            )
        except NotReady as exc:
            save_fleet(home, fleet)
            result.ok, result.action, result.image = False, "rolled back", profile.image
            result.error = exc.message
            result.seconds = round(time.monotonic() - start, 3)
            return result
    _write_history(home, name, [*read_history(home, name), entry])
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _replace(
    new_spec: ContainerSpec,
    old_spec: ContainerSpec,
    old: LiveContainer,
    staged: archive.Staged | None,
    snapshot: Path,
    profile: Profile,
    home: Path,
    timeout: float,
    say,
) -> tuple[str, float]:
    """Stop and set aside the old container (and, with `staged`, swap the dirs), start
    the new one and wait. On failure: the new one goes, the state comes back (the
    staged swap undone, or else the `snapshot` archive unpacked: the new image may
    have migrated it), the old container is renamed back, started and waited for;
    NotReady then carries the new image's log tail."""
    api = client().api
    if say:
        say("stopping the gateway")
    api.stop(old.id, timeout=old_spec.stop_timeout_s)
    down = time.monotonic()
    aside = f"{old.name}-replaced-{old.id[:8]}"
    api.rename(old.id, aside)
    if staged is not None:
        staged.swap()
    new_id = None
    try:
        new_id = _create_and_start(new_spec)
        if say:
            say(f"started on {new_spec.image}; waiting for /readyz")
        wait_ready(new_spec, new_id, timeout)
    except OrchError as exc:
        if say:
            say("not ready: putting the old container and its state back")
        if new_id:
            _discard(new_id, None)
        back = staged
        if back is not None:
            back.unswap()
        else:
            back, _ = archive.stage(snapshot, profile, profile_dirs(profile, home), say)
            back.swap()
        api.rename(old.id, old.name)
        api.start(old.id)
        try:
            wait_ready(old_spec, old.id, timeout)
        finally:
            if staged is None:
                back.discard_old()
                back.cleanup()
        raise NotReady(
            f"{new_spec.profile}: {new_spec.image} did not get ready; rolled back to"
            f" {old_spec.image} with the state of {snapshot.name}, ready again.\n{exc.message}",
            hint="fix the image (the log lines above say why), then upgrade again",
        ) from None
    api.remove_container(old.id, force=True)
    return new_id, round(time.monotonic() - down, 3)


def rollback_plan(home: Path, name: str) -> dict[str, Any]:
    """What `orch rollback NAME` would do and what it would lose (for its question)."""
    fleet = load_fleet(home)
    profile = fleet.get(name)
    history = read_history(home, name)
    if not history:
        raise UsageError(
            f"profile '{name}' has no upgrade to roll back",
            hint=f"`orch backup ls {name}` lists its archives; `orch restore` restores one",
        )
    entry = history[-1]
    path = Path(entry["archive"])
    manifest = archive.read_manifest(path)
    lost = archive.changes_since(manifest, profile_dirs(profile, home))
    return {
        "profile": name,
        "from_image": profile.image,
        "to_image": entry["from_image"],
        "archive": str(path),
        "snapshot_age_s": round(time.time() - entry["at"], 1),
        "lost": lost,
    }


def rollback(
    home: Path, name: str, timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None
) -> SwitchResult:
    """The previous image with the state snapshot taken before the upgrade; on failure
    the current container and state are put back."""
    start = time.monotonic()
    say = _say(progress, name)
    with locked(home):
        plan = rollback_plan(home, name)
        fleet = load_fleet(home)
        profile = fleet.get(name)
        old_profile = profile.model_copy(update={"image": plan["to_image"]})
        old_fleet = fleet.with_profile(old_profile)
        target = render(old_profile, old_fleet, home)
        require_images([target])
        path = Path(plan["archive"])
        _check_archive(path, old_profile)
        staged, _ = archive.stage(path, profile, profile_dirs(profile, home), say)
        result = SwitchResult(name, "rollback", True, 0.0, target.image, str(path))
        try:
            container = _current(fleet, home, name)
            if not _running(container):
                staged.swap()
                result.note = f"rolled back; no gateway runs: `orch up {name}` starts it"
            else:
                assert container is not None
                current_spec = render(profile, fleet, home)
                result.container_id, result.downtime_s = _replace(
                    target, current_spec, container, staged, path, profile, home, timeout, say
                )
            staged.discard_old()
            save_fleet(home, old_fleet)
            _write_history(home, name, read_history(home, name)[:-1])
        finally:
            staged.cleanup()
    result.seconds = round(time.monotonic() - start, 3)
    return result
