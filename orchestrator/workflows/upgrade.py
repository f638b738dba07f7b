"""Upgrades and rollbacks of gateways on the local engine, journaled (fleet/journal.py)
so a kill at any step is finished or undone by the next `orch up`, `upgrade` or
`rollback`. The set-aside rule of backup.py holds here too.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.backends.project import Project
from orchestrator.base.atomic import atomic_write
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.observed import LiveContainer
from orchestrator.core.paths import profile_dirs
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.docker import api as docker_http
from orchestrator.docker.containers import (
    _create_and_start,
    _remove_container,
    require_images,
    wait_ready,
)
from orchestrator.docker.snapshot import take_snapshot
from orchestrator.errors import (
    Interrupted,
    NotFound,
    OrchError,
    RolledBack,
    Terminated,
    UsageError,
)
from orchestrator.fleet import archive_keys, journal
from orchestrator.fleet import backup as archive
from orchestrator.fleet.journal import Journal
from orchestrator.fleet.store import load_fleet, locked, save_fleet
from orchestrator.workflows.backup import (
    DEFAULT_TIMEOUT,
    SwitchResult,
    backup_one,
    check_archive,
    current_container,
    is_running,
    restart_rescuers,
    say_for,
)

HISTORY_FILE = "upgrades.json"

# ---------------------------------------------------------------- upgrade and rollback

PRE_ROLLBACK = "pre-rollback"
_HISTORY_KEYS = ("from_image", "to_image", "archive")


def history_path(home: Path, name: str) -> Path:
    return archive.default_dir(home, name) / HISTORY_FILE


def read_history(home: Path, name: str) -> list[dict[str, Any]]:
    """The upgrades of `name` that can be rolled back, oldest first."""
    path = history_path(home, name)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read the upgrade history {path}: {exc}", hint=_HISTORY_HINT
        ) from None
    entries = doc if isinstance(doc, list) else [doc]
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and all(isinstance(entry.get(k), str) for k in _HISTORY_KEYS)
            and isinstance(entry.get("at"), int | float)
        ):
            raise UsageError(f"{path}: a damaged upgrade history", hint=_HISTORY_HINT)
    return entries


_HISTORY_HINT = (
    "it is orch's record of the upgrades to roll back: fix or remove it"
    " (`orch backup ls NAME` still lists the pre-upgrade archives)"
)


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
    fleet = load_fleet(home)
    profile = fleet.get(name)
    if profile.image == image:
        return SwitchResult(name, "noop", True, 0.0, image, note=f"already on {image}")
    try:
        return _switch(home, fleet, profile, image, None, timeout, progress)
    except RolledBack as exc:
        result = SwitchResult(name, "rolled back", False, 0.0, profile.image, error=exc.message)
        result.seconds = round(time.monotonic() - start, 3)
        return result


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
    with locked(home):
        plan = rollback_plan(home, name)
        fleet = load_fleet(home)
        profile = fleet.get(name)
        old_profile = profile.model_copy(update={"image": plan["to_image"]})
        require_images([render(old_profile, fleet.with_profile(old_profile), home)])
        path = Path(plan["archive"])
        check_archive(path, old_profile, archive_keys.keyring(home))
        return _switch(home, fleet, profile, plan["to_image"], path, timeout, progress)


def _switch(
    home: Path,
    fleet: Fleet,
    profile: Profile,
    to_image: str,
    state_archive: Path | None,
    timeout: float,
    progress: Progress | None,
) -> SwitchResult:
    """Move a profile to `to_image`: an upgrade keeps its state, a rollback brings back
    the state of `state_archive`. Journaled step by step (fleet.journal): any error, a
    Ctrl-C or a kill is finished or undone from the journal, never left half done."""
    start = time.monotonic()
    name = profile.name
    op = "rollback" if state_archive is not None else "upgrade"
    say = say_for(progress, name)
    new_fleet = fleet.with_profile(profile.model_copy(update={"image": to_image}))
    new_spec = render(new_fleet.profiles[name], new_fleet, home)
    old_spec = render(profile, fleet, home)
    read_history(home, name)  # a damaged history is refused before anything changes
    keys = archive_keys.keyring(home)
    container = current_container(fleet, home, name)
    old = container if is_running(container) else None
    j = journal.begin(
        home,
        Journal(
            op=op,
            profile=name,
            from_image=profile.image,
            to_image=to_image,
            running=old is not None,
            old_id=old.id if old else None,
            old_name=old.name if old else None,
            state_archive=str(state_archive) if state_archive else None,
        ),
    )
    result = SwitchResult(name, op, True, 0.0, to_image)
    staged = None
    try:
        tag = archive.PRE_UPGRADE if op == "upgrade" else PRE_ROLLBACK
        if say:
            say(f"online backup before the {op}")
        snap = backup_one(home, fleet, profile, None, False, False, None, progress, tag, timeout)
        j.reached(home, "backed-up", archive=snap.archive)
        result.archive = str(state_archive) if state_archive else snap.archive
        if state_archive is not None:
            dirs = profile_dirs(profile, home)
            staged, _ = archive.stage(state_archive, profile, dirs, keys, say)
        if old is not None:
            result.container_id, result.downtime_s = _replace(
                home, j, new_spec, old_spec, old, staged, timeout, say
            )
        else:
            if staged is not None:
                staged.swap()
            j.reached(home, "ready")
            result.note = f"{op} recorded; no gateway runs: `orch up {name}` starts it"
        _complete(home, j)
    except BaseException as exc:
        error = _after_failure(home, j, exc, timeout, say)
        if staged is not None:  # the state is the archive's now: what it set aside goes
            staged.discard_old()
        if error is not None:
            raise error from None
    finally:
        if staged is not None:
            staged.cleanup()
    if staged is not None:
        staged.discard_old()
        if old is not None:  # a rescue profile mounts the config dir that was swapped
            restart_rescuers(Project.on(home, new_fleet), name, timeout, say)
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _replace(
    home: Path,
    j: Journal,
    new_spec: ContainerSpec,
    old_spec: ContainerSpec,
    old: LiveContainer,
    staged: archive.Staged | None,
    timeout: float,
    say,
) -> tuple[str, float]:
    """Stop and set aside the old container (with `staged`, swap the dirs), create the
    new one and wait until ready; each step journaled. Undoing is the caller's."""
    if say:
        say("stopping the gateway")
    docker_http.stop(old.id, timeout=old_spec.stop_timeout_s)
    down = time.monotonic()
    j.reached(home, "old-stopped")
    docker_http.rename(old.id, f"{old.name}-replaced-{old.id[:8]}")
    j.reached(home, "old-set-aside")
    if staged is not None:
        staged.swap()
    new_id = _create_and_start(new_spec)
    j.reached(home, "new-created", new_id=new_id)
    if say:
        say(f"started on {new_spec.image}; waiting for /readyz")
    wait_ready(new_spec, new_id, timeout)
    j.reached(home, "ready")
    return new_id, round(time.monotonic() - down, 3)


def _complete(home: Path, j: Journal) -> None:
    """Finish from the journal (the new container was ready, or none had to be):
    history, then fleet file, then the old container goes, then the journal. Each
    step checks what is done already, so finishing twice changes nothing."""
    name = j.profile
    history = read_history(home, name)
    if j.op == "upgrade":
        entry = {
            "from_image": j.from_image,
            "to_image": j.to_image,
            "archive": j.archive,
            "at": j.started,
        }
        if not any(e["archive"] == j.archive for e in history):
            _write_history(home, name, [*history, entry])
    else:
        kept = [e for e in history if e["archive"] != j.state_archive]
        if kept != history:
            _write_history(home, name, kept)
    j.reached(home, "history-written")
    fleet = load_fleet(home)
    profile = fleet.get(name)
    if profile.image != j.to_image:
        save_fleet(home, fleet.with_profile(profile.model_copy(update={"image": j.to_image})))
    j.reached(home, "fleet-written")
    if j.running and j.old_id and _container_name(j.old_id) not in (None, j.old_name):
        with contextlib.suppress(NotFound):
            docker_http.remove_container(j.old_id, force=True)
    j.reached(home, "old-removed")
    with contextlib.suppress(OSError):  # what a killed swap left: best effort
        archive.clean_stale_swaps(profile_dirs(profile, home))
    j.clear(home)


def _container_name(container_id: str) -> str | None:
    try:
        return docker_http.get(f"/containers/{container_id}/json")["Name"].lstrip("/")
    except NotFound:
        return None


def _undo(home: Path, j: Journal, timeout: float, say) -> None:
    """Undo from the journal and what the engine shows: the new container goes, the
    old one gets its name back, the state of the backup taken first comes back when
    anything may have changed it (a new container ran, or a rollback swapped the
    dirs), the fleet file names the old image; then the old gateway starts again."""
    fleet = load_fleet(home)
    profile = fleet.get(j.profile)
    old_profile = profile.model_copy(update={"image": j.from_image})
    old_fleet = fleet.with_profile(old_profile)
    snap = take_snapshot(fleet.project, home, whole_host=False)
    current = snap.ours.get(j.profile)
    # A container under the profile's name that is not the old one: the new one (also
    # when the kill came between its creation and the journal's "new-created").
    stray = current if j.running and current is not None and current.id != j.old_id else None
    # A rollback swaps the dirs right after the old container is set aside (or, when
    # no gateway ran, right after the backup).
    swapped_from = "old-set-aside" if j.running else "backed-up"
    touched = bool(stray or j.new_id) or (j.op == "rollback" and j.at_least(swapped_from))
    if touched and not j.restore_state:
        j.restore_state = True  # an undo killed from here on still puts the state back
        j.save(home)
    for new_id in dict.fromkeys([c for c in (stray.id if stray else None, j.new_id) if c]):
        if say:
            say(f"removing the new container {new_id[:12]}")
        _remove_container(new_id, stop_timeout=10)
    old = next((c for c in snap.all_of(j.profile) if c.id == j.old_id), None)
    if old is not None and j.old_name and old.name != j.old_name:
        docker_http.rename(old.id, j.old_name)
    if j.restore_state and j.archive:
        if say:
            say(f"putting back the state of {Path(j.archive).name}")
        dirs = profile_dirs(old_profile, home)
        back, _ = archive.stage(Path(j.archive), old_profile, dirs, archive_keys.keyring(home))
        try:
            back.swap()
            back.discard_old()
        finally:
            back.cleanup()
    if profile.image != j.from_image:
        save_fleet(home, old_fleet)
    j.clear(home)
    if old is not None:
        if say:
            say(f"starting the old container on {j.from_image}; waiting for /readyz")
        docker_http.start(old.id)
        wait_ready(render(old_profile, old_fleet, home), old.id, timeout)
    if j.restore_state:
        restart_rescuers(Project.on(home, old_fleet), j.profile, timeout, say)


def _resolve(home: Path, j: Journal, timeout: float, say) -> str:
    """Finish when the new container had answered /readyz (or none had to), else undo."""
    if j.past_ready:
        _complete(home, j)
        return "finished"
    _undo(home, j, timeout, say)
    return "undone"


def _after_failure(
    home: Path, j: Journal, exc: BaseException, timeout: float, say
) -> BaseException | None:
    """Finish or undo after `exc` stopped the switch; the error to raise then (None:
    it failed after the new gateway was ready, and finishing completed it)."""
    interrupted = isinstance(exc, KeyboardInterrupt | Terminated)
    cause = "interrupted" if interrupted else str(getattr(exc, "message", exc) or type(exc))
    if say:
        first = cause.splitlines()[0]
        say(f"{first}; {'finishing' if j.past_ready else 'undoing'} the {j.op}")
    try:
        action = _resolve(home, j, timeout, say)
    except OrchError as again:
        return OrchError(
            f"{j.profile}: the {j.op} to {j.to_image} failed ({cause.splitlines()[0]}) and"
            f" could not be {'finished' if j.past_ready else 'undone'}: {again.message}",
            hint=f"it stays journaled: `orch up {j.profile}` tries again",
        )
    if interrupted:
        signum = Terminated.signum if isinstance(exc, Terminated) else 2
        return Interrupted(f"{j.profile}: {j.op} interrupted; {action}", signum=signum)
    if action == "finished":
        return None
    if not isinstance(exc, OrchError):
        return exc  # a bug: undone, and shown with its traceback
    state = f" with the state of {Path(j.archive).name}" if j.archive else ""
    return RolledBack(
        f"{j.profile}: the {j.op} to {j.to_image} failed; back on {j.from_image}{state}.\n"
        f"{exc.message}",
        hint="fix the image (the log lines above say why), then upgrade again"
        if j.op == "upgrade"
        else "see the error above; the profile is as it was before the rollback",
        exit_code=exc.exit_code,
    )


# ---------------------------------------------------------------- interrupted switches


@dataclass
class Resumed:
    """An upgrade or rollback that a kill interrupted, and what was done about it."""

    profile: str
    op: str
    step: str
    from_image: str
    to_image: str
    action: str  # finished, undone (or, for a dry run, would finish / would undo)
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        return (
            f"{self.profile}: the {self.op} from {self.from_image} to {self.to_image},"
            f" interrupted after step '{self.step}', {self.action}: {self.reason}"
        )


def _reason(j: Journal) -> str:
    if j.past_ready:
        if not j.running:
            return "no gateway ran, so nothing had to get ready; history and fleet file recorded"
        return "its new container had answered /readyz before the interruption"
    if not j.at_least("old-stopped"):
        return "it stopped before anything of the profile changed"
    return "its new container was never seen ready: the old one and its state come back"


def _pending(home: Path, names: list[str] | None) -> list[Journal]:
    """The journals of `names`; one whose profile left the fleet file is an error."""
    found = journal.pending(home, names)
    profiles = load_fleet(home).profiles if found else {}
    for j in found:
        if j.profile not in profiles:
            raise journal.JournalError(
                f"an interrupted {j.op} of '{j.profile}' is journaled, but the fleet file"
                " has no such profile any more",
                hint="put the profile back to let orch finish or undo it, or check"
                f" `orch status` and remove {journal.journal_path(home, j.profile)}",
            )
    return found


def interrupted(home: Path, names: list[str] | None = None) -> list[Resumed]:
    """What `resume_interrupted` would do (for a dry run)."""
    return [
        Resumed(
            j.profile,
            j.op,
            j.step,
            j.from_image,
            j.to_image,
            "would finish" if j.past_ready else "would undo",
            _reason(j),
        )
        for j in _pending(home, names)
    ]


def resume_interrupted(
    home: Path,
    names: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> list[Resumed]:
    """Finish or undo every journaled upgrade or rollback of `names` (all when None)
    that a kill left: `orch up`, `orch upgrade` and `orch rollback` call this first."""
    done = []
    with locked(home):
        for j in _pending(home, names):
            say = say_for(progress, j.profile)
            row = Resumed(j.profile, j.op, j.step, j.from_image, j.to_image, "", _reason(j))
            if say:
                verb = "finishing" if j.past_ready else "undoing"
                say(f"{verb} the {j.op} to {j.to_image} interrupted after '{j.step}'")
            row.action = _resolve(home, j, timeout, say)
            done.append(row)
    return done
