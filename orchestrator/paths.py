"""Where a profile's files live on the host.

Defaults keep every profile under the orch home, one dir per profile, with its
config, state and workspace as siblings (never nested), so two profiles can
only meet when a user points them at the same place on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .profile import Profile

TOKEN_FILE = "gateway_token"
MARKER_FILE = ".orch-profile"
DIR_KINDS = ("config", "state", "workspace")


@dataclass(frozen=True)
class ProfileDirs:
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
    return home / "profiles" / name


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
