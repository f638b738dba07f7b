"""Backups off the host (fleet/offsite.py): the local workflows of workflows/backup.py
with an S3 bucket at one end.

- backup: the same archive as a local backup, written into a temp dir of the home,
  uploaded, read back and compared, then its completion marker; the temp dir goes.
  The home is locked while the archive is taken, not while it uploads.
- verify and restore: download into the home (a 0600 temp file), compare with the
  marker's sha256, then the checks and the safe restore of a local archive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.base.atomic import atomic_write
from orchestrator.errors import ArchiveInvalid, OffsiteFailed, OrchError, UsageError
from orchestrator.fleet import archive_keys, offsite
from orchestrator.fleet import backup as archive
from orchestrator.fleet.backup_names import LAST_OFFSITE, age_s, human_age
from orchestrator.fleet.backup_names import newest_backup as newest_backup  # status's, here too
from orchestrator.fleet.store import load_fleet, locked
from orchestrator.workflows.backup import (
    DEFAULT_TIMEOUT,
    BackupResult,
    SwitchResult,
    backup_one,
    say_for,
)
from orchestrator.workflows.backup import restore as restore_file


@dataclass
class OffsiteBackup(BackupResult):
    sha256: str = ""
    upload_s: float = 0.0


def backup_to(
    home: Path,
    target: offsite.Target,
    names: list[str] | None = None,
    offline: bool = False,
    include_token: bool = False,
    keep: int | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[OffsiteBackup]:
    """One archive per profile, uploaded to `target`; `keep` prunes there."""
    if keep is not None and keep < 1:
        raise UsageError(f"--keep: {keep} is not at least 1", hint="e.g. --keep 5")
    bucket = offsite.Bucket(target)
    bucket.check()
    with locked(home):
        selected = [(p.name, p.node) for p in load_fleet(home).select(names)]
    if include_token and any(node for _, node in selected):
        raise UsageError(
            "--include-token is not supported for profiles on swarm nodes"
            f" ({', '.join(n for n, node in selected if node)}); nothing was backed up",
            hint="their token stays on the manager (a swarm secret); back them up without it",
        )
    return [
        _backup_placed(home, bucket, name, keep, progress, timeout)
        if node
        else _backup_one(home, bucket, name, offline, include_token, keep, progress, timeout)
        for name, node in selected
    ]


def _backup_placed(
    home: Path,
    bucket: offsite.Bucket,
    name: str,
    keep: int | None,
    progress: Progress | None,
    timeout: float,
) -> OffsiteBackup:
    """A profile placed on a swarm node: archived and uploaded by its node."""
    from orchestrator.backends.project import Project
    from orchestrator.workflows.node_offsite import backup_node_to

    return backup_node_to(Project.open(home), bucket, name, keep, progress, timeout)


def _backup_one(
    home: Path,
    bucket: offsite.Bucket,
    name: str,
    offline: bool,
    include_token: bool,
    keep: int | None,
    progress: Progress | None,
    timeout: float,
) -> OffsiteBackup:
    start = time.monotonic()
    say = say_for(progress, name)
    parent = archive.default_dir(home, name)
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    archive.clean_stale_temps(parent)
    work = Path(tempfile.mkdtemp(dir=parent, prefix=archive._temp_name(parent, "offsite")))
    try:
        with locked(home):
            fleet = load_fleet(home)
            local = backup_one(
                home,
                fleet,
                fleet.get(name),
                work,
                offline,
                include_token,
                None,
                progress,
                "",
                timeout,
            )
        path = Path(local.archive)
        manifest = archive.read_manifest(path)
        digest, _ = archive._sha256_file(path)
        began = time.monotonic()
        size = bucket.upload(path, digest, say)
        key_id = archive_keys.signing_key(home).key_id
        bucket.put_marker(path.name, offsite.make_marker(path.name, digest, size, manifest, key_id))
        uploaded = round(time.monotonic() - began, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    url = bucket.target.url(path.name)
    pruned = record_and_prune(bucket, parent, name, url, manifest.created, keep)
    return OffsiteBackup(
        profile=name,
        archive=url,
        bytes=size,
        files=local.files,
        seconds=round(time.monotonic() - start, 3),
        mode=local.mode,
        container_id=local.container_id,
        downtime_s=local.downtime_s,
        pruned=pruned,
        sha256=digest,
        upload_s=uploaded,
    )


def record_and_prune(
    bucket: offsite.Bucket, parent: Path, name: str, url: str, created: str, keep: int | None
) -> list[str]:
    """After a completed upload (marker written), whoever made the archive: note where
    the profile's newest offsite backup went, for `orch status` (no network), then
    prune the bucket to the newest `keep`; the URLs pruned."""
    doc = {"archive": url, "created": created}
    atomic_write(parent / LAST_OFFSITE, json_text(doc), mode=0o600)
    pruned = []
    if keep:
        for entry in offsite.to_prune(bucket.list(), name, keep):
            bucket.delete(entry)
            pruned.append(entry.url)
    return pruned


def json_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


# ---------------------------------------------------------------- listing, verifying


def list_remote(target: offsite.Target, profile: str | None = None) -> list[offsite.Remote]:
    """The archives under `target` (only `profile`'s, and the incomplete ones named like
    its, when given): complete ones newest first, then the incomplete ones."""
    rows = offsite.Bucket(target).list()
    if profile is None:
        return rows
    return [
        r
        for r in rows
        if r.profile == profile or (not r.complete and r.name.startswith(f"{profile}-"))
    ]


def resolve(url: str | None, source: offsite.Target | None, profile: str) -> offsite.Remote:
    """The archive a URL names, or the profile's newest complete one under `source`."""
    if url is not None:
        target, name = offsite.parse_archive_url(url)
        return offsite.Bucket(target).find(name)
    assert source is not None
    entry = offsite.newest(offsite.Bucket(source).list(), profile)
    if entry is None:
        raise OffsiteFailed(
            f"{source.url()}: no complete backup of '{profile}'",
            hint=f"`orch backup ls --from {source.url()}` lists what is there;"
            f" `orch backup {profile} --to {source.url()}` makes one",
        )
    return entry


@contextlib.contextmanager
def downloaded(home: Path, entry: offsite.Remote, profile: str | None, say=None):
    """The archive in a temp file of the home, sha256 checked; errors about it name
    the URL, not the temp file; the file goes afterwards, also on failure."""
    dest = archive.default_dir(home, profile) if profile else home / archive.BACKUPS_DIR
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    archive.clean_stale_temps(dest)
    path = offsite.Bucket(entry.target).download(entry, dest, say)
    try:
        yield path
    except OrchError as exc:
        exc.message = exc.message.replace(str(path), entry.url)
        exc.hint = exc.hint.replace(str(path), entry.url)
        raise
    finally:
        path.unlink(missing_ok=True)


def verify_remote(
    home: Path, url: str, trust: bool = False, profile: str | None = None
) -> tuple[offsite.Remote, dict[str, Any], str]:
    """Download, compare with the marker, then verify as a local archive (who made it,
    every file's checksum); a node archive: its marker's HMAC, its sha256 and what is
    in it (workflows/node_offsite.py). Nothing is restored. The manifest's summary
    and who vouched for it."""
    target, name = offsite.parse_archive_url(url)
    entry = offsite.Bucket(target).find(name)
    keys = archive_keys.keyring(home, trust)
    if entry.complete and entry.on_node:
        from orchestrator.workflows.node_offsite import verify_node_archive

        summary, vouched = verify_node_archive(home, entry, keys, profile)
        return entry, summary, vouched
    with downloaded(home, entry, None) as path:
        manifest, vouched = archive.verify(path, keys, profile)
    return entry, manifest.summary(), vouched


# ---------------------------------------------------------------- restore


def restore_from(
    home: Path,
    name: str,
    entry: offsite.Remote,
    keep_old: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    trust: bool = False,
) -> SwitchResult:
    """Download and check the archive, then the safe restore of a local one; the note
    says how old the archive is (what changed since is not in it)."""
    start = time.monotonic()
    if entry.profile != name:
        raise ArchiveInvalid(
            f"{entry.url} is a backup of profile '{entry.profile}', not '{name}'",
            hint=f"restore it with `orch restore {entry.profile} {entry.url}`",
        )
    if entry.on_node:
        raise ArchiveInvalid(
            f"{entry.url} was made on swarm node {(entry.marker or {}).get('node')}:"
            f" '{name}' runs on this host, where only an archive made here can be restored;"
            " nothing was changed",
            hint=f"place '{name}' on a node (`orch setup {name} --node HOSTNAME --force`),"
            " or use an archive made here",
        )
    with downloaded(home, entry, name, say_for(progress, name)) as path:
        result = restore_file(home, name, path, keep_old, timeout, progress, trust)
    result.archive = entry.url
    age = age_s(entry.created)
    said = f"the archive was taken {entry.created}"
    if age is not None:
        said += f" ({human_age(age)} ago): what changed since then is not in it"
    result.note = "; ".join(n for n in (result.note, said) if n)
    result.seconds = round(time.monotonic() - start, 3)
    return result


# ---------------------------------------------------------------- schedules

SCHEDULES_DIR = "schedules"


def write_schedule(
    home: Path,
    names: list[str] | None,
    every: str,
    to: str | None,
    keep: int | None,
    include_token: bool,
    directory: Path | None,
    system: bool,
    cron: bool,
    env_file: Path | None,
) -> dict[str, Any]:
    """Render the timer (or cron line) for `orch backup` with these options and write
    the units where the user said (default: the home's schedules/ dir); /etc only with
    `system`. Nothing is enabled: the result says how."""
    from orchestrator.core import schedule

    try:
        schedule.parse_every(every)
    except ValueError as exc:
        raise UsageError(f"--every: {exc}", hint="e.g. --every daily or --every 02:30") from None
    if names:
        with locked(home):
            load_fleet(home).select(names)  # unknown names: a clear error now, not at 3 am
    command = [_orch_binary(), "backup", *(names or [])]
    if to is not None:
        offsite.parse_target(to, "--to")
        command += ["--to", to]
    if keep is not None:
        command += ["--keep", str(keep)]
    if include_token:
        command.append("--include-token")
    warnings = []
    if env_file is not None:
        env_file = env_file.absolute()
        _check_env_file(env_file)
    elif to is not None and any(os.environ.get(k) for k in schedule.SECRET_ENV):
        warnings.append(
            "the credentials in this shell's environment are not written anywhere: the job"
            " reads ~/.aws/credentials of its user, or pass --env-file FILE"
        )
    env = {k: os.environ[k] for k in schedule.CARRIED_ENV if os.environ.get(k)}
    unit = schedule.unit_name(names)
    spec = schedule.Schedule(unit, command, str(home), every, env, str(env_file or "") or None)
    result: dict[str, Any] = {"unit": unit, "command": command, "warnings": warnings}
    if cron:
        result["cron"] = spec.cron_line()
        return result
    target = (directory or home / SCHEDULES_DIR).absolute()
    if _under_etc(target) and not system:
        raise UsageError(
            f"--dir: {target} is under /etc: orch writes there only when asked",
            hint="add --system to install system-wide units, or use ~/.config/systemd/user",
        )
    service, timer = target / f"{unit}.service", target / f"{unit}.timer"
    atomic_write(service, spec.service(), mode=0o644)
    atomic_write(timer, spec.timer(), mode=0o644)
    user = "" if _under_etc(target) else " --user"
    result.update(
        service=str(service),
        timer=str(timer),
        enable=[
            f"systemctl{user} link {service}",
            f"systemctl{user} enable --now {timer}",
        ],
    )
    return result


def _orch_binary() -> str:
    import shutil as sh
    import sys

    argv0 = Path(sys.argv[0])
    if argv0.name == "orch" and argv0.exists():
        return str(argv0.absolute())
    beside = Path(sys.executable).with_name("orch")  # the venv's entry point
    if beside.exists():
        return str(beside)
    return sh.which("orch") or "orch"


def _check_env_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise UsageError(
            f"--env-file: cannot read {path}: {exc.strerror}", hint="write it first (mode 0600)"
        ) from None
    if mode & 0o077:
        raise UsageError(
            f"--env-file: {path} is readable by others (mode {mode & 0o777:o})",
            hint=f"chmod 600 {path}",
        )


def _under_etc(path: Path) -> bool:
    resolved = path.resolve()
    return resolved == Path("/etc") or Path("/etc") in resolved.parents
