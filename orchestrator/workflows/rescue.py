"""`orch rescue TARGET`: the rescue bot's runbook, as one command.

OpenClaw's multi-gateway guide suggests a second gateway on the host that can
"debug or apply config changes when the primary bot is down". The rescue profile
already mounts TARGET's config dir; this runbook shows TARGET's state and last
error, lets the gateway itself validate TARGET's config (from inside the rescue
container, where the same gateway version runs), diffs it against the last good
one, and, when asked, puts that back and restarts TARGET now (instead of waiting
out Docker's restart back-off, 46 s measured). It works whether TARGET
crash-loops, is stopped or has no container, and it never reads or changes
TARGET's state dir or token.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import StatusRow, UpOptions
from orchestrator.backends.project import Project
from orchestrator.core.gateway_config import CREDENTIAL_KEYS, managed_problems
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.core.problem import Problem
from orchestrator.core.spec import RESCUE_ROOT
from orchestrator.errors import CheckFailed, EngineRefused, NotReady, UsageError
from orchestrator.fleet.config_check import config_problems, parse
from orchestrator.fleet.config_history import GoodConfig, last_good_candidates, restore
from orchestrator.fleet.openclaw_config import managed_config
from orchestrator.fleet.store import locked
from orchestrator.host.gateway_schema import GatewaySchema, schema_for


@dataclass
class RescueReport:
    target: str
    rescuer: str
    state: dict[str, Any]  # state, ready, restarts, last_exit, last_error, ready_reason
    validate: dict[str, Any]  # how it ran, ok, issues (the gateway's own words)
    problems: list[Problem] = field(default_factory=list)  # orch's checks of the config
    last_good: dict[str, Any] | None = None  # source, path, diff (credentials masked)
    restored: dict[str, Any] | None = None  # from, broken_kept_at
    restart: dict[str, Any] | None = None  # how, seconds, ready


def rescuer_of(fleet: Fleet, target: str, from_: str | None) -> Profile:
    """The profile that rescues `target`: `--from NAME`, else the one whose
    `rescues:` is `target`."""
    fleet.get(target)
    if from_:
        profile = fleet.get(from_)
        if profile.rescues != target:
            raise UsageError(
                f"profile '{from_}' does not rescue '{target}' (its rescues: {profile.rescues})",
                hint=f"`orch setup {from_} --rescues {target} --force` mounts {target}'s config",
            )
        return profile
    found = [p for p in fleet.profiles.values() if p.rescues == target]
    if not found:
        raise UsageError(
            f"no profile rescues '{target}'",
            hint=f"add one with `orch setup rescue --rescues {target}` and `orch up rescue`",
        )
    return found[0]


def rescue(
    project: Project,
    target: str,
    from_: str | None = None,
    restore_last_good: bool = False,
    restart: bool = False,
    timeout: float = 120.0,
) -> RescueReport:

    fleet, home = project.fleet, project.home
    rescuer = rescuer_of(fleet, target, from_)
    row = project.backend.status(project, [target])[0]
    report = RescueReport(
        target=target,
        rescuer=rescuer.name,
        state=_state(row),
        validate=validate_in_rescue(project, rescuer, target),
        problems=_own_problems(fleet, home, target),
    )
    dirs = profile_dirs(fleet.get(target), home)
    good = _usable_good(fleet, home, target, dirs)
    if good is not None:
        current = _read(dirs.config_file)
        report.last_good = {
            "source": good.source,
            "path": str(good.path),
            "same": current == good.text,
            "diff": masked_diff(current, good.text, str(dirs.config_file), str(good.path)),
        }
    if restore_last_good:
        report.restored = _restore(home, fleet, target, good)
    if restart:
        report.restart = restart_target(project, target, timeout, row)
    return report


def _state(row: Any) -> dict[str, Any]:
    return {
        "state": row.state,
        "ready": row.ready,
        "restarts": row.restarts,
        "last_exit": row.last_exit,
        "last_error": row.last_error,
        "ready_reason": row.ready_reason,
    }


def _own_problems(fleet: Fleet, home: Path, target: str) -> list[Problem]:

    return [p for p in config_problems(fleet, home, schema_for) if target in p.owners]


def validate_in_rescue(project: Project, rescuer: Profile, target: str) -> dict[str, Any]:
    """`openclaw config validate --json` on TARGET's config, run by the gateway in the
    rescue container (TARGET's config dir is mounted there): the gateway's own
    verdict, even when TARGET itself cannot start."""

    path = f"{RESCUE_ROOT}/{target}/config/openclaw.json"
    command = ["openclaw", "config", "validate", "--json"]
    out, err = bytearray(), bytearray()
    start = time.monotonic()
    try:
        code = project.backend.exec(
            project, rescuer.name, command, out.extend, {"OPENCLAW_CONFIG_PATH": path}, err.extend
        )
    except NotReady:
        return {
            "ran": False,
            "in": rescuer.name,
            "why": f"{rescuer.name} is not running: `orch up {rescuer.name}` starts it",
        }
    except (EngineRefused, UsageError) as exc:  # refused, or an engine without exec
        return {"ran": False, "in": rescuer.name, "why": exc.message}
    return {
        "ran": True,
        "in": rescuer.name,
        "command": " ".join(command),
        "config": path,
        "exit_code": code,
        "ok": code == 0,
        "seconds": round(time.monotonic() - start, 2),
        **_validate_output(out.decode(errors="replace"), err.decode(errors="replace")),
    }


def _validate_output(out: str, err: str) -> dict[str, Any]:
    """The gateway's JSON verdict when it printed one, else its text."""
    text = out.strip()
    start = text.find("{")
    if start >= 0:
        try:
            return {"result": json.loads(text[start:])}
        except ValueError:
            pass
    return {"output": (text + "\n" + err.strip()).strip()[-2000:]}


def _usable_good(fleet: Fleet, home: Path, target: str, dirs: Any) -> GoodConfig | None:
    """The newest last good config that passes orch's checks for TARGET now (a last
    good from before a port move would not start either)."""

    profile = fleet.get(target)
    schema = schema_for(profile.image)

    for good in last_good_candidates(dirs):
        try:
            data = parse(good.text)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        bad = managed_problems(target, str(good.path), good.text, data, managed_config(profile))
        if isinstance(schema, GatewaySchema):
            bad += schema.problems(target, str(good.path), good.text, data)
        if not bad:
            return good
    return None


def _restore(home: Path, fleet: Fleet, target: str, good: GoodConfig | None) -> dict[str, Any]:
    profile = fleet.get(target)
    dirs = profile_dirs(profile, home)
    if good is None:
        raise CheckFailed(
            f"no last good config of {target} passes the checks; nothing was changed",
            [],
            hint=f"fix {dirs.config_file} by hand (see the problems above), or"
            f" `orch setup {target} --force` for orch's keys",
        )
    with locked(home):
        if _read(dirs.config_file) == good.text:
            return {"from": str(good.path), "source": good.source, "changed": False}
        aside = restore(dirs, good, profile.uid, profile.gid)
    return {
        "from": str(good.path),
        "source": good.source,
        "changed": True,
        "broken_kept_at": str(aside) if aside else None,
    }


def restart_target(project: Project, target: str, timeout: float, row: StatusRow) -> dict[str, Any]:
    """Restart TARGET now and wait until it is ready: a restart of its container
    (crash-looping or stopped: no back-off to wait out), or `orch up TARGET` when it
    has no container (`row`: its status). Its config is checked first, as by `up`."""

    start = time.monotonic()
    backend = project.backend
    container = getattr(row, "container", None)
    if container is None:
        backend.up(project, [target], UpOptions(timeout=timeout))
        how = "orch up (it had no container)"
    else:
        with locked(project.home):
            project.checked_specs([target])
            backend.restart(project, target, timeout, any_state=True)
        how = f"{backend.name} restart of {container} ({row.state})"
    return {"how": how, "ready": True, "seconds": round(time.monotonic() - start, 1)}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


_CRED = re.compile(
    r"""(?P<key>["']?(?P<name>[A-Za-z]+)["']?\s*:\s*)(?P<q>["'])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)"""
)


def mask_credentials(text: str) -> str:
    """Each credential value replaced by a short fingerprint: a diff is printed."""

    def one(m: re.Match) -> str:
        if m.group("name").lower() not in CREDENTIAL_KEYS or not m.group("value"):
            return m.group(0)
        digest = hashlib.sha256(m.group("value").encode()).hexdigest()[:8]
        return f"{m.group('key')}{m.group('q')}<hidden sha256:{digest}>{m.group('q')}"

    return _CRED.sub(one, text)


def masked_diff(current: str, good: str, current_name: str, good_name: str) -> str:
    """Unified diff from the last good config to the current one, credentials masked."""
    lines = difflib.unified_diff(
        mask_credentials(good).splitlines(keepends=True),
        mask_credentials(current).splitlines(keepends=True),
        fromfile=good_name,
        tofile=current_name,
    )
    return "".join(lines)
