"""Where a profile's files live on the host.

Defaults keep every profile under the orch home, one dir per profile, with its
config, state and workspace as siblings (never nested), so two profiles can
only meet when a user points them at the same place on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from orchestrator.core.model import Profile

TOKEN_FILE = "gateway_token"
MARKER_FILE = ".orch-profile"
DIR_KINDS = ("config", "state", "workspace")
PROFILES_DIR = "profiles"
JOURNAL_DIR = "journal"  # upgrades and rollbacks in flight (fleet/journal.py)


class ProfileDirs(NamedTuple):
    """The resolved host dirs of one profile: absolute, symlinks and `..` resolved."""

    config: Path
    state: Path
    workspace: Path
    secrets: Path

    @property
    def token_file(self) -> Path:
        return self.secrets / TOKEN_FILE

    @property
    def config_file(self) -> Path:
        return self.config / "openclaw.json"

    def items(self) -> list[tuple[str, Path]]:
        return [(k, getattr(self, k)) for k in DIR_KINDS]


def profile_root(home: Path, name: str) -> Path:
    return home / PROFILES_DIR / name


def journal_dir(home: Path) -> Path:
    return home / JOURNAL_DIR


def journaled(home: Path) -> bool:
    """Whether an upgrade or rollback left a journal: a glance at one dir before a
    command loads the modules that finish or undo one (`orch up` on every run)."""
    try:
        return any(entry.suffix == ".json" for entry in journal_dir(home).iterdir())
    except OSError:
        return False


def default_dir(home: Path, name: str, kind: str) -> Path:
    """Where a profile's dir of this kind lives when the fleet file names none."""
    return resolve(profile_root(home, name) / kind)


# The marker orch writes into each profile dir: the profile's name on the first
# line, then whether orch created the dir or adopted one that was there. Only a
# dir orch created is ever chowned as a whole or deleted by `--purge`.
CREATED = "created"
ADOPTED = "adopted"


def marker_text(name: str, origin: str) -> str:
    return f"{name}\n{origin}\n"


def parse_marker(text: str) -> tuple[str | None, str | None]:
    """(profile name, origin) of a marker; origin None for a marker written by an
    orch older than this rule (the name alone) or one that names no known origin."""
    lines = [line.strip() for line in text.splitlines()]
    name = lines[0] if lines and lines[0] else None
    origin = lines[1] if len(lines) > 1 and lines[1] in (CREATED, ADOPTED) else None
    return name, origin


def created_by_orch(origin: str | None, path: Path, default: Path) -> bool:
    """Whether orch created this profile dir. A marker that does not say (written by
    an older orch, which adopted dirs silently) counts as created only for the
    default dir under orch's home: any other dir may have been the user's."""
    return origin == CREATED if origin else path == default


def resolve(path: Path) -> Path:
    """Absolute, with `~`, symlinks and `..` resolved (also for paths not there yet)."""
    return Path(path).expanduser().resolve(strict=False)


def profile_dirs(profile: Profile, home: Path) -> ProfileDirs:
    root = profile_root(home, profile.name)
    chosen = {k: getattr(profile.dirs, k) or root / k for k in DIR_KINDS}
    return ProfileDirs(
        config=resolve(chosen["config"]),
        state=resolve(chosen["state"]),
        workspace=resolve(chosen["workspace"]),
        secrets=resolve(home / "secrets" / profile.name),
    )


def resolved_dirs(profile: Profile, home: str, cache: dict[str, str]) -> list[tuple[str, str]]:
    """(kind, path) of the config, state and workspace dirs, resolved as
    `profile_dirs` does, as plain strings.

    The form `orch check` compares for a whole fleet: `cache` (one dict for one
    pass) makes each dir prefix cost one stat, and no Path objects are built,
    so 10,000 profiles take a fraction of a second.
    """
    root = f"{home}/{PROFILES_DIR}/{profile.name}"
    out = []
    for kind in DIR_KINDS:
        chosen = getattr(profile.dirs, kind)
        path = os.path.expanduser(os.fspath(chosen)) if chosen else f"{root}/{kind}"
        if not path.startswith("/"):
            path = f"{os.getcwd()}/{path}"
        out.append((kind, _resolve_cached(path, cache)))
    return out


def _resolve_cached(path: str, cache: dict[str, str]) -> str:
    """`resolve` for an absolute path string; `cache` remembers every prefix resolved.

    Resolves the parent first and then one component, so the dirs of a profile
    share their parent's lookup and each component is stat'ed once per pass.
    """
    real = cache.get(path)
    if real is None:
        if path == "/":
            real = path
        else:
            head, _, name = path.rpartition("/")
            base = _resolve_cached(head or "/", cache)
            if name in ("", "."):
                real = base
            elif name == "..":
                real = base.rpartition("/")[0] or "/"
            else:
                step = f"{base}/{name}" if base != "/" else f"/{name}"
                # The parent is already real, so realpath only has this one link to follow.
                real = os.path.realpath(step) if os.path.islink(step) else step
        cache[path] = real
    return real
