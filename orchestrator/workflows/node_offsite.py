"""Backups off the host of profiles placed on swarm nodes, and evacuation: a profile
whose node is gone brought back on another node from its newest offsite archive.

The manager cannot read a node's disk, but it holds the S3 credentials; the node can
reach S3 but gets no credentials. So the manager signs one presigned URL per object
(fleet/offsite.py, valid PRESIGN_S = 10 min to start the transfer) and the node's job
moves the archive itself (workflows/node_backup.py); the URL reaches the job as a
swarm secret made for it and removed with it, never in a spec, label or log.

What vouches for what:
- the node's job computes the archive's sha256 on the node as it writes it;
- the manager reads the uploaded object back and compares sha256 and size (a
  mismatch: no marker, no backup);
- the completion marker, written last, holds that sha256 and an HMAC of the whole
  marker with this home's backup key: only this home (or one that imported its key)
  could have written it;
- verify and restore check the marker's HMAC first, then the archive's sha256
  against it (the manager on download for `verify`; the target node's job before
  unpacking for `restore`).
A node archive has no manifest of each file (the node tars its dirs as they are,
with the gateway stopped): the sha256 of the whole file is what is checked.
"""

from __future__ import annotations

import re
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Progress
from orchestrator.backends.project import Project
from orchestrator.backends.swarm import require_manager
from orchestrator.core.placement import SwarmNode, check_evacuation
from orchestrator.docker.swarm_nodes import node_named, require_nodes
from orchestrator.errors import ArchiveInvalid, NotReady
from orchestrator.fleet import archive_keys, offsite
from orchestrator.fleet.backup import default_dir
from orchestrator.fleet.store import load_fleet, locked, save_fleet
from orchestrator.workflows import node_backup
from orchestrator.workflows.offsite import (
    OffsiteBackup,
    age_s,
    downloaded,
    human_age,
    record_and_prune,
)

_STAMP = re.compile(r"-(\d{8}T\d{6}\.\d{6}Z)")


# ---------------------------------------------------------------- backup


@dataclass
class NodeOffsiteBackup(OffsiteBackup):
    node: str = ""  # where it was made


def backup_node_to(
    project: Project,
    bucket: offsite.Bucket,
    name: str,
    keep: int | None,
    progress: Progress | None,
    timeout: float,
) -> OffsiteBackup:
    """Archive on the node (the gateway stopped for the copy, then ready again), the
    node uploads it, the manager reads it back and writes the signed marker."""
    start = time.monotonic()
    say = (lambda m: progress(name, m)) if progress else None
    temp = default_dir(project.home, name) / f".orch-backup-{uuid.uuid4().hex[:8]}-offsite"
    made = node_backup.backup_on_node(project, name, temp, timeout=timeout, progress=progress)
    archive_name = Path(made.archive).name
    began = time.monotonic()
    try:
        url = bucket.presign("PUT", archive_name)
    except BaseException:
        node_backup.discard_on_node(project, name, [str(temp)])
        raise
    if say:
        say(f"uploading {archive_name} ({made.bytes / 1e6:.1f} MB) from {made.node}")
    node_backup.upload_from_node(project, made, url, temp)  # removes `temp`
    # What the bucket holds against what the node wrote (not what it says it sent).
    bucket.check_uploaded(archive_name, made.sha256, made.bytes, say)
    spec = project.spec(name)
    created = created_of(archive_name)
    marker = offsite.make_node_marker(
        archive_name,
        made.sha256,
        made.bytes,
        profile=name,
        created=created,
        node=made.node,
        image=spec.image,
        openclaw_version=_version(spec.image),
        key=archive_keys.signing_key(project.home),
    )
    bucket.put_marker(archive_name, marker)
    uploaded = round(time.monotonic() - began, 3)
    url_done = bucket.target.url(archive_name)
    pruned = record_and_prune(
        bucket, default_dir(project.home, name), name, url_done, created, keep
    )
    return NodeOffsiteBackup(
        profile=name,
        archive=url_done,
        bytes=made.bytes,
        files=0,
        seconds=round(time.monotonic() - start, 3),
        mode=made.mode,
        downtime_s=made.downtime_s,
        pruned=pruned,
        sha256=made.sha256,
        upload_s=uploaded,
        node=made.node,
    )


def created_of(archive_name: str) -> str:
    """The time in an archive's name (utc_stamp), as ISO 8601."""
    match = _STAMP.search(archive_name)
    if match is None:
        return datetime.now(UTC).isoformat()
    when = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    return when.isoformat()


def _version(image: str) -> str | None:
    from orchestrator.errors import OrchError
    from orchestrator.workflows.backup import image_meta

    try:
        return image_meta(image)["openclaw_version"]
    except OrchError:
        return None


# ---------------------------------------------------------------- verify


def verify_node_archive(
    home: Path, entry: offsite.Remote, keys: archive_keys.Keyring, profile: str | None
) -> tuple[dict[str, Any], str]:
    """Marker authenticated, archive downloaded and its sha256 compared (downloaded()),
    then every member read: only config/, state/ and workspace/, nothing outside them.
    A summary like a manifest's and who vouched."""
    assert entry.marker is not None
    vouched = offsite.authenticate_node_marker(entry.marker, keys, entry.url)
    if profile is not None and entry.profile != profile:
        raise ArchiveInvalid(
            f"{entry.url} is a backup of profile '{entry.profile}', not '{profile}'"
        )
    files, size = 0, 0
    with downloaded(home, entry, None) as path:
        try:
            with tarfile.open(path, "r:gz") as tar:
                for member in tar:
                    check_member(entry.url, member)
                    if member.isfile():
                        files, size = files + 1, size + member.size
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveInvalid(f"{entry.url}: not a readable tar.gz ({exc})") from None
    summary = {
        k: entry.marker.get(k)
        for k in ("profile", "created", "mode", "openclaw_version", "node", "image")
    }
    summary.update(file_count=files, bytes=size)
    return summary, vouched


def check_member(url: str, member: tarfile.TarInfo) -> None:
    """A member of a node archive: under one of the profile's dirs, no absolute path
    or `..`, and a file, dir or relative symlink inside them."""
    from orchestrator.core.paths import DIR_KINDS

    parts = member.name.split("/")
    inside = parts[0] in DIR_KINDS and not any(p in ("", ".", "..") for p in parts[1:] if p)
    link_ok = not member.issym() or not (
        member.linkname.startswith("/") or ".." in member.linkname.split("/")
    )
    if not inside or not link_ok or not (member.isfile() or member.isdir() or member.issym()):
        raise ArchiveInvalid(
            f"{url}: member {member.name[:60]!r} points outside the profile's dirs (tampered?)"
        )


# ---------------------------------------------------------------- restore


def restore_node_from(
    project: Project,
    name: str,
    entry: offsite.Remote,
    keep_old: bool,
    timeout: float,
    progress: Progress | None,
    trust: bool,
) -> node_backup.NodeRestore:
    """A node archive back into the profile's dirs on its own node."""
    sha, _vouched = _checked(project.home, name, entry, trust)
    url = offsite.Bucket(entry.target).presign("GET", entry.name)
    result = node_backup.restore_on_node(
        project, name, _landing(project, name), sha, keep_old, timeout, progress, fetch=url
    )
    result.archive = entry.url
    result.note = "; ".join(n for n in (result.note, lost_since(entry)) if n)
    return result


def _checked(home: Path, name: str, entry: offsite.Remote, trust: bool) -> tuple[str, str]:
    """The archive's sha256 and who vouched for it, once its marker says it is a node
    archive of `name` and a key of this home vouches for the marker."""
    if entry.profile != name:
        raise ArchiveInvalid(
            f"{entry.url} is a backup of profile '{entry.profile}', not '{name}'",
            hint=f"restore it with `orch restore {entry.profile} {entry.url}`",
        )
    if not entry.on_node:
        raise ArchiveInvalid(
            f"{entry.url} was made on the manager, not on a swarm node: '{name}' is placed"
            " on a node, where only a node archive can be unpacked; nothing was changed",
            hint=f"use an archive `orch backup {name} --to URL` made since it was placed",
        )
    assert entry.marker is not None
    keys = archive_keys.keyring(home, trust)
    vouched = offsite.authenticate_node_marker(entry.marker, keys, entry.url)
    return str(entry.marker["sha256"]), vouched


def _landing(project: Project, name: str) -> str:
    """Where the job downloads the archive to on the node (removed once unpacked)."""
    where = default_dir(project.home, name) / f".orch-backup-{uuid.uuid4().hex[:8]}-download"
    return str(where) + offsite.NODE_SUFFIX


def lost_since(entry: offsite.Remote) -> str:
    age = age_s(entry.created)
    said = f"the archive was taken {entry.created}"
    if age is not None:
        said += f" ({human_age(age)} ago): what changed since then is not in it"
    return said


# ---------------------------------------------------------------- evacuate


@dataclass
class Evacuated:
    """A profile brought back on another node from an offsite archive."""

    profile: str
    from_node: str
    to_node: str
    archive: str
    archive_created: str
    archive_age_s: float | None
    authenticated: str
    seconds: float
    restore_s: float
    deploy_s: float
    ready: bool
    kept: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evacuation_nodes(project: Project, name: str, target: str) -> tuple[str, SwarmNode]:
    """The profile's current node (by name) and the target node, once the swarm says
    the move is safe (core.placement.check_evacuation)."""
    require_manager()
    nodes = require_nodes()
    current = project.fleet.get(name).node
    check_evacuation(name, current, node_named(nodes, current or ""), target, nodes)
    node = node_named(nodes, target)
    assert current is not None and node is not None
    return current, node


def evacuate(
    project: Project,
    name: str,
    entry: offsite.Remote,
    target: str,
    keep_old: bool = False,
    timeout: float = 300.0,
    progress: Progress | None = None,
    trust: bool = False,
) -> Evacuated:
    """Bring `name` up on node `target` from `entry`, under the fleet lock: the refusals
    (check_evacuation), the archive's marker authenticated, its dirs restored on
    `target` by a job there (nothing changed if that fails), then its placement moved
    in the fleet file (written atomically) and its service deployed there; ready."""
    start = time.monotonic()
    with locked(project.home):
        old, node = evacuation_nodes(project, name, target)
        sha, vouched = _checked(project.home, name, entry, trust)
        url = offsite.Bucket(entry.target).presign("GET", entry.name)
        where = node_backup.OnNode(project.spec(name), node, None)  # nothing runs there
        restored = node_backup.restore_into(
            project, where, _landing(project, name), sha, keep_old, timeout, progress, url
        )
        fleet = load_fleet(project.home)
        moved = fleet.profiles[name].model_copy(update={"node": target})
        fleet.profiles[name] = moved
        save_fleet(project.home, fleet)
        project.reload()
        began = time.monotonic()
        from orchestrator.backends.swarm_placement import up_placed

        try:
            up_placed(project, [name], timeout=timeout, progress=progress)
        except NotReady as exc:
            exc.message += (
                f"\n{name} is now placed on {target} with its dirs restored there;"
                f" `orch up --engine swarm {name}` tries again"
            )
            raise
        deployed = round(time.monotonic() - began, 3)
    return Evacuated(
        profile=name,
        from_node=old,
        to_node=target,
        archive=entry.url,
        archive_created=entry.created,
        archive_age_s=None if age_s(entry.created) is None else round(age_s(entry.created) or 0, 1),
        authenticated=vouched,
        seconds=round(time.monotonic() - start, 3),
        restore_s=restored.seconds,
        deploy_s=deployed,
        ready=True,
        kept=restored.kept,
        note=f"moved from {old} to {target}; {lost_since(entry)}",
    )
