"""The gateway's own config file (`openclaw.json`) and its token file.

orch owns only the keys that isolation needs (port, bind, auth, allowed origins,
workspace); every other key a user or `openclaw config set` wrote is kept. An
existing file is parsed as JSON5 like the gateway does, and backed up before
orch changes it, so nothing of the user's is lost.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from orchestrator.base.atomic import atomic_write
from orchestrator.core.model import Profile
from orchestrator.core.paths import ProfileDirs
from orchestrator.core.spec import WORKSPACE_DIR
from orchestrator.core.versions import BROWSER_EXECUTABLE
from orchestrator.errors import UsageError


def managed_config(profile: Profile) -> dict[str, Any]:
    """The minimal config that starts a real gateway with no onboarding."""
    port = profile.port
    hosts = ["127.0.0.1", "localhost"]
    if profile.bind_ip not in ("127.0.0.1", "0.0.0.0", "::"):
        hosts.append(f"[{profile.bind_ip}]" if ":" in profile.bind_ip else profile.bind_ip)
    config: dict[str, Any] = {
        "gateway": {
            "mode": "local",
            "port": port,
            "bind": "lan",
            "auth": {"mode": "token"},
            "controlUi": {"allowedOrigins": [f"http://{h}:{port}" for h in hosts]},
        },
        "agents": {"defaults": {"workspace": WORKSPACE_DIR}},
    }
    if profile.browser:
        config["browser"] = browser_config()
    return config


def browser_config() -> dict[str, Any]:
    """The gateway's managed Chrome in a browser profile: the image's Chromium, headless.

    noSandbox: Chromium's sandbox needs user namespaces or a setuid helper, neither of
    which works under cap-drop ALL + no-new-privileges as a non-root user; the container
    is the boundary instead (images/README.md). The user data dir is not set: the
    gateway puts it under its state dir (state/browser/openclaw/user-data), which is
    the profile's own. Its CDP port is not set either: the gateway derives base+11.
    """
    return {
        "enabled": True,
        "executablePath": BROWSER_EXECUTABLE,
        "headless": True,
        "noSandbox": True,
    }


def _without_browser(config: dict[str, Any]) -> dict[str, Any]:
    """A profile that stopped being a browser profile: drop the keys orch wrote for it
    (the plain image has no Chromium there); keys the user set themselves stay."""
    browser = config.get("browser")
    if not isinstance(browser, dict) or browser.get("executablePath") != BROWSER_EXECUTABLE:
        return config
    rest = {k: v for k, v in browser.items() if k not in browser_config()}
    out = {k: v for k, v in config.items() if k != "browser"}
    if rest:
        out["browser"] = rest
    return out


def merge(base: dict[str, Any], managed: dict[str, Any]) -> dict[str, Any]:
    """`base` with every managed leaf set; dicts merge, everything else is replaced."""
    out = dict(base)
    for key, value in managed.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config(path: Path) -> dict[str, Any] | None:
    """The parsed config, None when absent. JSON5 (comments, trailing commas) accepted."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import json5  # json5 is slow to import: only when an openclaw.json is read

        try:
            data = json5.loads(text)
        except ValueError as exc:
            raise UsageError(
                f"{path} is not valid JSON5: {exc}",
                hint="fix the file, or move it away so orch writes a fresh one",
            ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object", hint="fix or move the file")
    return data


def planned_config(profile: Profile, dirs: ProfileDirs) -> tuple[dict[str, Any], bool]:
    """The config to write and whether it differs from what is on disk."""
    current = read_config(dirs.config_file)
    start = current or {}
    if not profile.browser:
        start = _without_browser(start)
    wanted = merge(start, managed_config(profile))
    return wanted, wanted != current


def write_config(profile: Profile, dirs: ProfileDirs, wanted: dict[str, Any]) -> Path | None:
    """Write the config atomically, backing up a different existing file first."""
    path = dirs.config_file
    backup = None
    if path.exists():
        backup = _unused(
            path.with_name(f"{path.name}.orch-backup-{time.strftime('%Y%m%d-%H%M%S')}")
        )
        atomic_write(backup, path.read_bytes(), mode=0o600)
        _chown(backup, profile)
    atomic_write(path, json.dumps(wanted, indent=2) + "\n", mode=0o600)
    _chown(path, profile)
    return backup


def _unused(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`...: two changes in one second must not overwrite
    the first backup, which may be the user's own file."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def ensure_token(profile: Profile, dirs: ProfileDirs) -> bool:
    """Create the profile's secret token once (0600); never replace an existing one,
    but give it back mode 0600 and the gateway's user when it lost them. True when
    created."""
    if dirs.token_file.exists():
        os.chmod(dirs.token_file, 0o600)
        _chown(dirs.token_file, profile)
        return False
    atomic_write(dirs.token_file, secrets.token_urlsafe(32), mode=0o600)
    _chown(dirs.token_file, profile)
    return True


def read_token(dirs: ProfileDirs) -> str:
    return dirs.token_file.read_text(encoding="utf-8").strip()


def _chown(path: Path, profile: Profile) -> None:
    if os.geteuid() == 0:
        os.chown(path, profile.uid, profile.gid)
