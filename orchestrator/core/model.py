"""What a user says: gateway profiles and the fleet that holds them.

Defaults follow OpenClaw's own conventions (base port 18789, profile names as
`openclaw --profile` accepts them), so users of the native profiles feel at home.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.core.ports import DEFAULT_PUBLISH, MAX_BASE, MAX_PORT, MIN_PORT, Role
from orchestrator.core.reference import validate_image
from orchestrator.core.versions import BROWSER_IMAGE, GATEWAY_IMAGE
from orchestrator.errors import UnknownProfileError

FLEET_VERSION = 1
DEFAULT_IMAGE = GATEWAY_IMAGE


DEFAULT_MEMORY = "1280m"


DEFAULT_PIDS = 512


#: A gateway plus its managed headless Chromium (bench/browser.py): 720-750 MiB ready
#: with Chromium on one blank tab, like a plain gateway; but every real page costs
#: Chromium tens to hundreds of MiB and an OOM kill takes the gateway with it, so a
#: browser profile gets 2g of room (plain: 1280m). images/README.md has the numbers.
BROWSER_MEMORY = "2g"


#: Chromium's processes and threads count against the pids limit (83 pids in all
#: with one blank tab against 37 for a plain gateway; each page adds renderer threads).
BROWSER_PIDS = 1024


#: The CPU limit of a profile, in cores (Docker's --cpus; 0: none). 1, as upstream's
#: Kubernetes baseline: it fits every host (Docker refuses a limit above the host's
#: CPU count; upstream's fleet asks for 2), and bench/hardening.py measured what it
#: costs a cold start: it needs about 20 CPU-seconds, and on this 2-core host the
#: limit throttled it for 0.1 s (README, "Security defaults").
DEFAULT_CPUS = 1.0


#: The smallest limit Docker accepts (its --cpus has a 0.01 granularity).
MIN_CPUS = 0.01


DEFAULT_BIND_IP = "127.0.0.1"
DEFAULT_PROJECT = "orch"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# Words the CLI uses as arguments or that Docker gives a meaning to.
RESERVED_NAMES = frozenset({"all", "none", "host", "bridge"})
_STRICT = ConfigDict(extra="forbid", frozen=True)


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid profile name, or None. Shared by CLI and model."""
    if not name:
        return "a profile name cannot be empty"
    if name in RESERVED_NAMES:
        return f"'{name}' is reserved (reserved: {', '.join(sorted(RESERVED_NAMES))})"
    if len(name) > 64:
        return f"'{name[:20]}...' is {len(name)} characters long; at most 64 are allowed"
    # fullmatch: with match, "$" also matches before a trailing newline ("main\n").
    if not NAME_RE.fullmatch(name):
        return (
            f"'{name}' is not a valid profile name: {_name_defect(name)}; use lowercase letters,"
            " digits, '-' and '_', starting with a letter or digit (it becomes a container and"
            " network name)"
        )
    return None


def _name_defect(name: str) -> str:
    """What is wrong with a name that fails NAME_RE, in the user's terms."""
    if "/" in name or "\\" in name:
        return "a profile name is not a path and cannot contain a slash"
    if name.lower() != name:
        return f"it has uppercase letters (profile names are lowercase: '{name.lower()}')"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
    if bad:
        return f"{', '.join(repr(c) for c in bad)} {'is' if len(bad) == 1 else 'are'} not allowed"
    return f"it starts with {name[0]!r}"


def validate_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def validate_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IP address (use 127.0.0.1, 0.0.0.0, ::1 or a host address)"
        ) from None


#: A hostname as Swarm's `node.hostname` holds it (RFC 1123 labels, dots allowed).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
NODE_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def validate_node(value: str) -> str:
    """A node's hostname: checked here, because it goes into a placement constraint
    (`node.hostname==NODE`) where a space or a quote would change its meaning."""
    if len(value) > 253 or not NODE_RE.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a hostname a swarm node can have: use letters, digits, '-'"
            " and '.', as `docker node ls` shows it"
        )
    return value


PRIVILEGED_BELOW = 1024


def validate_base(port: int, allow_privileged: bool = False) -> int:
    if port < MIN_PORT:
        raise ValueError(f"base port {port} is out of range: use {MIN_PORT}..{MAX_BASE}")
    if port < PRIVILEGED_BELOW and not allow_privileged:
        # Also what a fleet file cut short by an editor or a full disk looks like
        # ("port: 41" of "port: 41000"): never taken at its word.
        raise ValueError(
            f"base port {port} is below {PRIVILEGED_BELOW} (privileged ports); if you mean"
            " it, set allow_privileged_ports: true on the profile (orch setup"
            " --allow-privileged-ports)"
        )
    if port > MAX_BASE:
        raise ValueError(
            f"base port {port} is too high: its CDP range would end at {port + 110},"
            f" past {MAX_PORT}; the highest usable base is {MAX_BASE}"
        )
    return port


class BrowserProfile(BaseModel):
    """A per-browser-profile override of the gateway (`browser.profiles.NAME`)."""

    model_config = _STRICT

    cdp_port: int | None = Field(default=None, ge=MIN_PORT, le=MAX_PORT)
    cdp_url: str | None = None


class Dirs(BaseModel):
    """Host dirs of a profile; None means the default under the orch home."""

    model_config = _STRICT

    config: Path | None = None
    state: Path | None = None
    workspace: Path | None = None

    @field_validator("config", "state", "workspace", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        """A path the OS can take: an empty one would be the working dir of whoever
        runs orch, and a NUL byte ends a path for the kernel."""
        if isinstance(value, str | Path):
            text = str(value) if isinstance(value, Path) else value
            if not text.strip():
                raise ValueError("a dir cannot be empty: leave the key out for the default")
            if "\0" in text:
                raise ValueError("a dir cannot contain a NUL byte")
        return value


def _name_from_key(schema: dict[str, Any]) -> None:
    """In the fleet file a profile's name is its key: the schema must not require it,
    or `orch schema` would reject every file orch writes."""
    schema["required"] = [f for f in schema.get("required", []) if f != "name"]


class Profile(BaseModel):
    """One gateway: one container, its own dirs, token and port footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_name_from_key)

    name: str
    # Before `port`: its validator reads this.
    allow_privileged_ports: bool = Field(default=False, description="allow a base port below 1024")
    port: int = Field(description="base port of the gateway; it owns base..base+110")
    bind_ip: str = Field(default=DEFAULT_BIND_IP, description="host address ports publish on")
    image: str = DEFAULT_IMAGE
    publish: tuple[Role, ...] = DEFAULT_PUBLISH
    dirs: Dirs = Dirs()
    user: str = Field(default="1000:1000", pattern=r"^\d+:\d+$", description="uid:gid it runs as")
    browser_profiles: dict[str, BrowserProfile] = Field(default_factory=dict)
    rescues: str | None = Field(default=None, description="profile whose config dir it may edit")
    memory: str = Field(default=DEFAULT_MEMORY, pattern=r"^\d+[kmg]?$")
    pids: int = Field(default=DEFAULT_PIDS, ge=32)
    browser: bool = Field(default=False, description="run the image with headless Chromium")
    cpus: float = Field(
        default=DEFAULT_CPUS,
        ge=0,
        le=1024,
        allow_inf_nan=False,
        description="CPU limit in cores, e.g. 1.5 (0: no limit)",
    )
    read_only_root: bool = Field(
        default=True, description="read-only root filesystem; /tmp is a tmpfs"
    )
    node: str | None = Field(
        default=None,
        description=(
            "swarm node (its hostname) the gateway runs on, with --engine swarm;"
            " unset: the manager orch talks to"
        ),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("port")
    @classmethod
    def _port(cls, value: int, info: ValidationInfo) -> int:
        return validate_base(value, bool(info.data.get("allow_privileged_ports")))

    @field_validator("bind_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return validate_ip(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return validate_image(value)

    @field_validator("publish")
    @classmethod
    def _publish(cls, value: tuple[Role, ...]) -> tuple[Role, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a role is listed twice")
        return tuple(sorted(value, key=list(Role).index))

    @field_validator("rescues")
    @classmethod
    def _rescues(cls, value: str | None) -> str | None:
        return None if value is None else validate_name(value)

    @field_validator("node")
    @classmethod
    def _node(cls, value: str | None) -> str | None:
        return None if value is None else validate_node(value)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if 0 < value < MIN_CPUS:
            raise ValueError(
                f"cpus {value} is below {MIN_CPUS}, the smallest limit Docker accepts;"
                " use 0 for no limit"
            )
        return value

    @model_validator(mode="after")
    def _not_self_rescue(self) -> Profile:
        if self.rescues == self.name:
            raise ValueError(f"profile '{self.name}' cannot rescue itself")
        return self

    @property
    def uid(self) -> int:
        return int(self.user.split(":")[0])

    @property
    def gid(self) -> int:
        return int(self.user.split(":")[1])

    @property
    def effective_image(self) -> str:
        """The image the container runs: a browser profile on the default image gets its
        browser variant; an image the user named is taken as given."""
        if self.browser and self.image == DEFAULT_IMAGE:
            return BROWSER_IMAGE
        return self.image

    @property
    def effective_memory(self) -> str:
        """The memory limit: a browser profile left at the default gets BROWSER_MEMORY."""
        if self.browser and self.memory == DEFAULT_MEMORY:
            return BROWSER_MEMORY
        return self.memory

    @property
    def effective_pids(self) -> int:
        if self.browser and self.pids == DEFAULT_PIDS:
            return BROWSER_PIDS
        return self.pids

    @property
    def cdp_ports(self) -> dict[str, int]:
        return {n: b.cdp_port for n, b in self.browser_profiles.items() if b.cdp_port is not None}


class Fleet(BaseModel):
    """The fleet file: every profile of one orch home."""

    model_config = _STRICT

    version: int = FLEET_VERSION
    project: str = Field(default=DEFAULT_PROJECT, pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$")
    profiles: dict[str, Profile] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != FLEET_VERSION:
            raise ValueError(f"fleet file version {value} is not supported (expected 1)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        """Profiles are keyed by name in the file; the key is the name."""
        if isinstance(data, dict) and isinstance(data.get("profiles"), dict):
            profiles = {}
            for key, value in data["profiles"].items():
                if isinstance(value, dict):
                    value = {**value, "name": key}
                profiles[key] = value
            data = {**data, "profiles": profiles}
        return data

    def get(self, name: str) -> Profile:

        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none yet"
            raise UnknownProfileError(
                f"no profile named '{name}' in the fleet (known: {known})",
                hint=f"create it with `orch setup {name}`",
            )
        return self.profiles[name]

    def select(self, names: list[str] | None) -> list[Profile]:
        """The named profiles (all when none named), in a stable order."""
        if not names:
            return [self.profiles[n] for n in sorted(self.profiles)]
        return [self.get(n) for n in dict.fromkeys(names)]

    def with_profile(self, profile: Profile) -> Fleet:
        return self.model_copy(update={"profiles": {**self.profiles, profile.name: profile}})

    def without(self, name: str) -> Fleet:
        rest = {n: p for n, p in self.profiles.items() if n != name}
        return self.model_copy(update={"profiles": rest})

    def to_document(self) -> dict[str, Any]:
        """The YAML document: defaults left out so the file stays short and editable."""
        profiles = {}
        for name in sorted(self.profiles):
            doc = self.profiles[name].model_dump(mode="json", exclude_defaults=True)
            doc.pop("name", None)
            profiles[name] = doc
        return {"version": self.version, "project": self.project, "profiles": profiles}
