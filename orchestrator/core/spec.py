"""The fully resolved container spec of a profile: the one intermediate form.

Every backend (Docker engine, compose and stack export, the pytest plugin)
consumes a ContainerSpec and none re-derives ports or paths. Its stable hash is
the drift label: a container whose label differs from the fleet is recreated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import ProfileDirs, profile_dirs
from orchestrator.core.ports import ROLE_OFFSETS, Role

# The container contract of images/gateway (see images/README.md).
CONFIG_DIR = "/openclaw/config"
STATE_DIR = "/openclaw/state"
WORKSPACE_DIR = "/openclaw/workspace"
TOKEN_PATH = "/run/secrets/openclaw_gateway_token"
RESCUE_ROOT = "/openclaw/rescue"


# Empty: the image's entrypoint checks the contract and runs `openclaw gateway run`.
GATEWAY_COMMAND: tuple[str, ...] = ()
HEALTHCHECK_COMMAND = ("CMD", "node", "/usr/local/lib/orch/healthcheck.js")
LABEL_MANAGED = "orch.managed"
LABEL_PROJECT = "orch.project"
LABEL_PROFILE = "orch.profile"
LABEL_HASH = "orch.spec-hash"
LABEL_HOME = "orch.home"
RUN_PREFIX = "orch.run-"  # a test run's record (orchestrator.testing)


# Roles that bind 127.0.0.1 inside the container, so a published port needs the
# in-container relay; canvas has no listener of its own and goes to the gateway.
LOOPBACK_ROLES = (Role.BROWSER, Role.BROWSER_CDP, Role.EXTENSION, Role.CDP)
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class PortBinding(BaseModel):
    """`count` consecutive ports from host_port to container_port, for one role."""

    model_config = _FROZEN

    role: str
    host_ip: str
    host_port: int
    container_port: int
    count: int = 1
    proto: str = "tcp"

    @property
    def host_end(self) -> int:
        return self.host_port + self.count - 1

    @property
    def container_end(self) -> int:
        return self.container_port + self.count - 1

    def expand(self) -> list[tuple[int, int]]:
        """(container port, host port) pairs, what the Docker API wants."""
        return [(self.container_port + i, self.host_port + i) for i in range(self.count)]


class Mount(BaseModel):
    model_config = _FROZEN

    role: str
    source: str
    target: str
    read_only: bool = False


class Tmpfs(BaseModel):
    """A tmpfs in a read-only root: memory-backed (it counts against the memory limit),
    emptied when the container stops, never executable."""

    model_config = _FROZEN

    target: str
    size: str  # as a memory limit: \d+[kmg]
    mode: int = 0o1777

    @property
    def options(self) -> str:
        """The mount options, as the Engine API's HostConfig.Tmpfs and Compose take them."""
        return f"rw,noexec,nosuid,nodev,size={self.size},mode={self.mode:o}"


# Where the gateway writes outside its mounted dirs (`docker diff` of a gateway that
# ran, answered `openclaw status` and drove Chromium): only /tmp. Its file log
# (/tmp/openclaw/openclaw-DATE.log, also in `docker logs`), Node's compile cache
# (/tmp/node-compile-cache, about 23 MB), its state-lock files, Chromium's font cache
# and shared memory (it runs with --disable-dev-shm-usage) and downloads. HOME is in
# the state dir (the image sets it there). The log's appends fail soft when the tmpfs
# is full (records dropped, the gateway runs on).
TMP_DIR = "/tmp"
TMP_SIZE = "256m"
BROWSER_TMP_SIZE = "512m"


class Healthcheck(BaseModel):
    model_config = _FROZEN

    test: tuple[str, ...]
    # API 1.41 has no start interval: the first probe runs one interval after start,
    # and a cold gateway needs about 8 s, so 5 s makes it healthy at about 10 s.
    interval_s: int = 5
    timeout_s: int = 4
    retries: int = 3
    start_period_s: int = 120


class ContainerSpec(BaseModel):
    """Everything Docker needs to run one profile, nothing left to derive."""

    model_config = _FROZEN

    profile: str
    name: str
    hostname: str
    network: str
    image: str
    command: tuple[str, ...]
    user: str
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    ports: tuple[PortBinding, ...]
    labels: dict[str, str]
    restart: str = "unless-stopped"
    healthcheck: Healthcheck
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = ("no-new-privileges",)
    mem_limit: str
    pids_limit: int
    cpus: float  # 0: no limit
    read_only: bool
    tmpfs: tuple[Tmpfs, ...]
    stop_timeout_s: int = 30
    base_port: int

    @property
    def spec_hash(self) -> str:
        return self.labels[LABEL_HASH]

    def url(self) -> str | None:
        """Where the gateway answers from the host; None when its port is not published
        (then only `orch exec` and the profile's own network reach it)."""
        binding = next((p for p in self.ports if p.role == Role.GATEWAY.value), None)
        if binding is None:
            return None
        host = "127.0.0.1" if binding.host_ip in ("0.0.0.0", "::") else binding.host_ip
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{binding.host_port}"


def resource_labels(spec: ContainerSpec) -> dict[str, str]:
    """The labels of everything else orch creates for a profile (its network; in a
    stack, its secret): fleet (home and project), profile, and a test run's record.
    The one definition for the engine, the exports and the pytest plugin."""
    keep = (LABEL_MANAGED, LABEL_PROJECT, LABEL_HOME)
    labels = {k: v for k, v in spec.labels.items() if k in keep or k.startswith(RUN_PREFIX)}
    return {**labels, LABEL_PROFILE: spec.profile}


def container_name(project: str, profile: str) -> str:
    return f"{project}-{profile}"


def managed_cdp_port(profile: Profile) -> int:
    """The CDP port of the gateway's managed Chrome (browser profile `openclaw`): the
    first port of the CDP range, base+11 (control port + 9, as the gateway derives it)."""
    return role_ports(profile, Role.CDP)[0]


def role_ports(profile: Profile, role: Role) -> tuple[int, int]:
    lo, hi = ROLE_OFFSETS[role]
    return profile.port + lo, profile.port + hi


def relays(profile: Profile) -> str:
    """ORCH_RELAYS for the image: listen port(s) -> loopback target port(s)."""
    out = []
    for role in profile.publish:
        start, end = role_ports(profile, role)
        if role == Role.CANVAS:
            out.append(f"{start}:{profile.port}")
        elif role in LOOPBACK_ROLES:
            span = f"{start}-{end}" if end > start else str(start)
            out.append(f"{span}:{span}")
    return ",".join(out)


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(limit: str) -> int:
    """'1280m' -> bytes, as Docker reads a memory limit (the model allows \\d+[kmg]?)."""
    unit = limit[-1:] if limit[-1:] in "kmg" else ""
    return int(limit[: len(limit) - len(unit)]) * _UNITS[unit]


def render(profile: Profile, fleet: Fleet, home: Path) -> ContainerSpec:
    """The container spec of `profile`; pure, the same input gives the same hash."""
    dirs = profile_dirs(profile, home)
    name = container_name(fleet.project, profile.name)
    ports = tuple(
        PortBinding(
            role=role.value,
            host_ip=profile.bind_ip,
            host_port=role_ports(profile, role)[0],
            container_port=role_ports(profile, role)[0],
            count=role_ports(profile, role)[1] - role_ports(profile, role)[0] + 1,
        )
        for role in profile.publish
    )
    spec = ContainerSpec(
        profile=profile.name,
        name=name,
        hostname=name,
        network=name,
        image=profile.effective_image,
        command=GATEWAY_COMMAND,
        user=profile.user,
        env=_env(profile),
        mounts=_mounts(profile, dirs, fleet, home),
        ports=ports,
        labels={
            LABEL_MANAGED: "true",
            LABEL_PROJECT: fleet.project,
            LABEL_PROFILE: profile.name,
            LABEL_HOME: str(home),
        },
        healthcheck=Healthcheck(test=HEALTHCHECK_COMMAND),
        mem_limit=profile.effective_memory,
        pids_limit=profile.effective_pids,
        cpus=profile.cpus,
        read_only=profile.read_only_root,
        tmpfs=_tmpfs(profile),
        base_port=profile.port,
    )
    return spec.model_copy(update={"labels": {**spec.labels, LABEL_HASH: spec_hash(spec)}})


# Fields added to the spec after containers were made, with the value that means
# "not used": hashed only when used, so a profile that opts out keeps its hash and
# its container (a writable root and no CPU limit hash as before both existed).
_HASHED_WHEN_USED = {"cpus": 0, "read_only": False, "tmpfs": []}


def spec_hash(spec: ContainerSpec) -> str:
    """A stable hash of everything but the hash label itself."""
    data = spec.model_dump(mode="json")
    data["labels"] = {k: v for k, v in data["labels"].items() if k != LABEL_HASH}
    for key, unused in _HASHED_WHEN_USED.items():
        if data[key] == unused:
            del data[key]
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _env(profile: Profile) -> dict[str, str]:
    env = {
        "OPENCLAW_CONFIG_PATH": f"{CONFIG_DIR}/openclaw.json",
        "OPENCLAW_STATE_DIR": STATE_DIR,
        "OPENCLAW_WORKSPACE_DIR": WORKSPACE_DIR,
        "OPENCLAW_GATEWAY_PORT": str(profile.port),
        "ORCH_PROFILE": profile.name,
    }
    if profile.browser:
        # Browser control (base+2) up at boot, not at the first browser action, so
        # `orch status` and a published port answer as soon as the gateway is ready.
        env["OPENCLAW_EAGER_BROWSER_CONTROL_SERVER"] = "1"
    relay = relays(profile)
    if relay:
        env["ORCH_RELAYS"] = relay
    return env


def _tmpfs(profile: Profile) -> tuple[Tmpfs, ...]:
    """A writable /tmp in a read-only root; a writable root keeps the image's /tmp."""
    if not profile.read_only_root:
        return ()
    return (Tmpfs(target=TMP_DIR, size=BROWSER_TMP_SIZE if profile.browser else TMP_SIZE),)


def nano_cpus(cpus: float) -> int:
    """Docker's NanoCpus of a --cpus value (1.5 -> 1_500_000_000); 0: no limit."""
    return round(cpus * 1_000_000_000)


def _mounts(profile: Profile, dirs: ProfileDirs, fleet: Fleet, home: Path) -> tuple[Mount, ...]:
    mounts = [
        Mount(role="config", source=str(dirs.config), target=CONFIG_DIR),
        Mount(role="state", source=str(dirs.state), target=STATE_DIR),
        Mount(role="workspace", source=str(dirs.workspace), target=WORKSPACE_DIR),
        Mount(role="token", source=str(dirs.token_file), target=TOKEN_PATH, read_only=True),
    ]
    if profile.rescues and profile.rescues in fleet.profiles:
        target = profile_dirs(fleet.profiles[profile.rescues], home).config
        mounts.append(
            Mount(
                role=f"rescue:{profile.rescues}",
                source=str(target),
                target=f"{RESCUE_ROOT}/{profile.rescues}/config",
            )
        )
    return tuple(mounts)


def render_fleet(fleet: Fleet, home: Path, names: list[str] | None = None) -> list[ContainerSpec]:
    return [render(p, fleet, home) for p in fleet.select(names)]


def gateway_address(spec: ContainerSpec) -> tuple[str | None, int]:
    for binding in spec.ports:
        if binding.role == "gateway":
            host = binding.host_ip
            return ("127.0.0.1" if host in ("0.0.0.0", "::") else host), binding.host_port
    return None, spec.base_port
