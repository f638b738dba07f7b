"""Make a Docker engine available: find one that answers, or install and start one.

Why this module exists: orch runs on machines where only the Docker *client* is
installed and no engine runs (no systemd either). Rather than telling the user to
go and read Docker docs, orch can, when it runs as root on a Debian-like system,
install Debian's `docker.io` and start `dockerd` detached, once, even when several
orch processes ask at the same moment.

Pure stdlib at import time: `engine_answers()` is called on every CLI start, so it
talks raw HTTP to the engine's socket instead of importing the Docker SDK (which
costs ~0.2 s). The SDK is only imported by docker/sdk.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

from orchestrator.base.locks import exclusive
from orchestrator.base.owner import pid_alive
from orchestrator.docker import api as docker_http
from orchestrator.docker.api import engine_address
from orchestrator.docker.incontainer import own_container_id
from orchestrator.docker.sdk import docker_client
from orchestrator.errors import EngineUnavailable

DEFAULT_SOCKET = "/var/run/docker.sock"


#: Where the lock, log and pid files go when no `home` is given.
DEFAULT_HOME = Path("/var/run")


#: How long `ensure_engine` waits for a freshly started dockerd to answer.
START_TIMEOUT = 60.0


#: dpkg package that provides `dockerd` on Debian/Ubuntu (Docker 20.10, API 1.41).
ENGINE_PACKAGE = "docker.io"
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}


def _uses_default_engine() -> bool:
    """True when DOCKER_HOST is unset or points at the local default socket.

    Only then may orch start an engine itself: starting a local dockerd cannot help
    a client that is pointed somewhere else.
    """
    kind, where = engine_address()
    return kind == "unix" and os.path.realpath(str(where)) == os.path.realpath(DEFAULT_SOCKET)


def probe_engine(timeout: float = 2.0) -> tuple[bool, str]:
    """(answers, why not): `GET /_ping` on DOCKER_HOST (or the default socket).

    Raw HTTP/1.0 over the socket: a few milliseconds, no SDK import. For schemes we
    cannot probe with the stdlib (ssh, TLS), we fall back to `docker version`.
    The reason tells "no engine" from "an engine, but this user may not use it".
    """
    kind, where = engine_address()
    if kind == "other":
        ok = _cli_answers(timeout)
        return ok, "" if ok else f"`docker version` fails for DOCKER_HOST={where}"
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(timeout)
            sock.connect(where)  # type: ignore[arg-type]
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except PermissionError:
        return False, f"permission denied on {where}"
    except FileNotFoundError:
        return False, f"no socket at {where}"
    except OSError as exc:
        return False, f"{where}: {exc.strerror or exc.__class__.__name__}"
    status = data.split(b"\r\n", 1)[0].split()
    if len(status) >= 2 and status[1] == b"200":
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        _PINGED_PODMAN[repr((kind, where))] = b"\r\nlibpod-api-version:" in head
        return True, ""
    return False, f"{where} answered {data[:60]!r}"


#: Per engine address: did its last answer to /_ping come from a Podman (which names
#: its Libpod API in a header, where Docker does not)?
_PINGED_PODMAN: dict[str, bool] = {}


def pinged_podman() -> bool | None:
    """Whether the engine at DOCKER_HOST answers a ping as a Podman (pinged once per
    process and address: `require_engine`'s ping serves); None when no ping answered
    (or only the CLI could ask). Spares the /version call that told them apart, the
    slowest engine call of a `status` here (~8 ms)."""
    address = engine_address()
    if address[0] == "other":  # probed through `docker version`: no headers to read
        return None
    key = repr(address)
    if key not in _PINGED_PODMAN:
        probe_engine()
    return _PINGED_PODMAN.get(key)


def engine_answers(timeout: float = 2.0) -> bool:
    """Is a Docker engine answering on DOCKER_HOST (or /var/run/docker.sock)?"""
    return probe_engine(timeout)[0]


def _cli_answers(timeout: float) -> bool:
    """Fallback probe through the docker CLI (handles ssh:// and TLS hosts)."""
    if not shutil.which("docker"):
        return False
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=max(timeout, 5.0),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _is_root() -> bool:
    return os.geteuid() == 0


def _has_apt() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg-query") is not None


def _which(cmd: str) -> str | None:
    """shutil.which plus the sbin dirs, which a non-login root shell may lack in PATH."""
    extra = "/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(cmd) or shutil.which(cmd, path=extra)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def package_version(package: str) -> str | None:
    """Installed version of a dpkg package, or None."""
    if not shutil.which("dpkg-query"):
        return None
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 2 or parts[0] != "installed":
        return None
    return parts[1]


def _has_candidate(package: str) -> bool:
    """Does apt know an installable version of `package` (i.e. are the lists loaded)?"""
    proc = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    )
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            return line.split(":", 1)[1].strip() not in ("", "(none)")
    return False


def _run_apt(args: list[str]) -> None:
    env = {**os.environ, **_APT_ENV}
    proc = subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise EngineUnavailable(
            f"apt-get {' '.join(args)} failed (exit {proc.returncode}):\n{tail}",
            hint="fix the apt error above (mirror reachable? dpkg lock?) and run again",
        )


def apt_install(packages: list[str], lock: Path | None = None) -> list[str]:
    """Install the missing ones of `packages` with apt (root, Debian-like only).

    Runs `apt-get update` only when apt has no candidate for one of them (fresh
    machines ship without package lists). Returns what was done, one line each.
    Raises EngineUnavailable when it cannot (not root, no apt).
    """
    missing = [p for p in packages if package_version(p) is None]
    if not missing:
        return []
    if not _is_root() or not _has_apt():
        raise EngineUnavailable(
            f"needed packages are not installed: {' '.join(missing)}",
            hint=f"install them as root, e.g. `sudo apt-get install -y {' '.join(missing)}`",
        )
    with exclusive(lock or DEFAULT_HOME / "orch-apt.lock"):
        missing = [p for p in packages if package_version(p) is None]
        if not missing:
            return []
        done: list[str] = []
        if not all(_has_candidate(p) for p in missing):
            _run_apt(["update"])
            done.append("ran apt-get update")
        _run_apt(["install", "-y", "--no-install-recommends", *missing])
        done += [f"installed {p} {package_version(p) or '?'}" for p in missing]
        return done


def ensure_debootstrap() -> list[str]:
    """Install debootstrap (used by the offline base image build) when missing."""
    if _which("debootstrap"):
        return []
    return apt_install(["debootstrap"])


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or not pid_alive(pid):
        return None
    try:  # a stale pid file may name a recycled pid: only a dockerd counts
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return pid  # no /proc: trust the pid
    return pid if comm == "dockerd" else None


STALE_PIDFILES = (Path("/var/run/docker.pid"), Path("/var/run/docker/containerd/containerd.pid"))


def _clear_stale_pidfiles() -> None:
    """Remove pid files of a dockerd (and its containerd) that was killed, not stopped.

    dockerd refuses to start while /var/run/docker.pid names a process that exists,
    and a killed dockerd that nobody reaped yet still exists as a zombie.
    """
    for path in STALE_PIDFILES:
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if not _is_engine_process(pid):  # dead, a zombie, or a recycled pid
            path.unlink(missing_ok=True)


def _is_engine_process(pid: int) -> bool:
    if pid <= 0 or not pid_alive(pid) or _is_zombie(pid):
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("dockerd", "containerd")
    except OSError:
        return True  # no /proc to ask: keep the file, dockerd will say what is wrong


def _start_dockerd(dockerd: str, log: Path, pidfile: Path) -> int:
    """Start dockerd fully detached and return its pid.

    `sh -c '... &'` double-forks: dockerd is re-parented to init, so it never
    becomes a zombie of a long-lived orch (or pytest) process and outlives it;
    start_new_session puts it in its own session so a Ctrl-C on orch's terminal
    does not reach it. dockerd also writes /var/run/docker.pid itself (and refuses to
    start while another live dockerd holds it); ours says that orch started it.
    """
    _clear_stale_pidfiles()
    script = 'exec "$@" </dev/null >>"$ORCH_DOCKERD_LOG" 2>&1 & echo $!'
    cmd = ["sh", "-c", script, "sh", dockerd]
    env = {**os.environ, "ORCH_DOCKERD_LOG": str(log)}
    env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, start_new_session=True, check=True
    ).stdout
    pid = int(out.strip())
    pidfile.write_text(f"{pid}\n")
    return pid


def require_engine(auto_start: bool = True) -> list[str]:
    """The engine policy of every command: an engine that answers is used; none is
    started from inside a container (the host's engine must be mounted); without
    `auto_start` (commands that only look, or stop things) a missing engine is an
    error with the fix; else one is installed and started (ensure_engine)."""
    if engine_answers():
        return []
    if own_container_id() is not None:
        raise EngineUnavailable(
            "orch runs in a container and no Docker engine answers on its socket",
            hint="mount the host's socket: docker run -v /var/run/docker.sock:/var/run/docker.sock",
        )
    if not auto_start:
        raise EngineUnavailable(
            "no Docker engine answers", hint="run `orch engine start` (or `make engine`)"
        )
    return ensure_engine()


def ensure_engine(install: bool = True, home: Path | None = None) -> list[str]:
    """Make sure a Docker engine answers; install/start one if we may. Returns what was done.

    - An engine answers: return [] (the common, fast path).
    - Root on Debian-like system, DOCKER_HOST unset or the default socket: install
      docker.io if dockerd is missing (when `install`), start dockerd detached with
      log and pid under `home` (default /var/run), wait up to START_TIMEOUT s.
    - Otherwise raise EngineUnavailable with a hint saying what the user must do.

    Idempotent and safe across processes: an flock serialises the start, and the
    engine is probed again once the lock is held.
    """
    answers, why = probe_engine()
    if answers:
        return []
    if why.startswith("permission denied"):
        raise EngineUnavailable(
            f"a Docker engine runs but this user may not use it ({why})",
            hint="add yourself to the docker group (`sudo usermod -aG docker $USER`, then "
            "log in again), or run orch with sudo",
        )
    if not _uses_default_engine():
        raise EngineUnavailable(
            f"no Docker engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST')}",
            hint="start that engine, or unset DOCKER_HOST to use (and let orch start) a local one",
        )
    if not _is_root():
        raise EngineUnavailable(
            f"no Docker engine answers ({why})",
            hint="run `sudo orch engine start` (installs docker.io if needed and starts "
            "dockerd), or start Docker yourself (`sudo systemctl start docker`); then let "
            "your user use it: `sudo usermod -aG docker $USER` and log in again",
        )
    home = home or DEFAULT_HOME
    home.mkdir(parents=True, exist_ok=True)
    log, pidfile = home / "orch-dockerd.log", home / "orch-dockerd.pid"
    done: list[str] = []
    with exclusive(home / "orch-dockerd.lock"):
        if engine_answers():  # another process started it while we waited for the lock
            return []
        dockerd = _which("dockerd")
        if dockerd is None:
            if not install:
                raise EngineUnavailable(
                    "no Docker engine answers and dockerd is not installed",
                    hint="install it: `sudo apt-get install -y docker.io` (or Docker's "
                    "docker-ce), then run again",
                )
            if not _has_apt():
                raise EngineUnavailable(
                    "no Docker engine answers and dockerd is not installed",
                    hint="install Docker Engine for your distribution "
                    "(https://docs.docker.com/engine/install/), start it, and run again",
                )
            done += apt_install([ENGINE_PACKAGE], lock=home / "orch-apt.lock")
            dockerd = _which("dockerd")
            if dockerd is None:
                raise EngineUnavailable(
                    f"{ENGINE_PACKAGE} was installed but dockerd is not on PATH",
                    hint="check `dpkg -L docker.io | grep bin/dockerd`",
                )
        # A dockerd that is still starting (ours or a service's): wait for it, don't race it.
        pid = _read_pid(pidfile) or _read_pid(Path("/var/run/docker.pid"))
        started = pid is None
        since = time.time()
        if pid is None:
            pid = _start_dockerd(dockerd, log, pidfile)
            done.append(f"started dockerd (pid {pid}, log {log})")
        deadline = time.monotonic() + START_TIMEOUT
        while not engine_answers(timeout=1.0):
            if (not pid_alive(pid) or _is_zombie(pid)) and not started:
                # The dockerd we found was shutting down, not starting: now that it is
                # gone (with its pid file), start our own.
                pid = _start_dockerd(dockerd, log, pidfile)
                started = True
                done.append(f"started dockerd (pid {pid}, log {log})")
                continue
            if not pid_alive(pid) or _is_zombie(pid):
                raise EngineUnavailable(
                    f"dockerd (pid {pid}) exited before answering; end of {log}:\n" + _tail(log),
                    hint="fix the error in the log above (another dockerd running? "
                    "iptables or storage driver missing?) and run again",
                )
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    f"dockerd (pid {pid}) did not answer within {START_TIMEOUT:.0f} s; "
                    f"end of {log}:\n" + _tail(log),
                    hint=f"look at {log}; stop it with `kill {pid}` before trying again",
                )
            time.sleep(0.25)
        if started:
            done += restore_gateways(since)
    return done


def restore_gateways(since: float) -> list[str]:
    """Start again the orch gateways that ran when the previous engine died.

    dockerd 20.10 without live-restore (which swarm mode refuses) stops, at its own
    start, every container that outlived a killed dockerd, and then does not
    restart them despite `unless-stopped`. Those are exactly the orch containers
    (label orch.managed; swarm tasks do not carry it) with a restart policy that
    exited after `since`, the moment this engine was started: a container someone
    stopped earlier is left alone. Returns what it did."""
    done = []
    for raw in docker_http.containers({"label": ["orch.managed=true"], "status": ["exited"]}):
        info = docker_http.get(f"/containers/{raw['Id']}/json")
        policy = (info.get("HostConfig") or {}).get("RestartPolicy", {}).get("Name")
        finished = (info.get("State") or {}).get("FinishedAt", "")
        try:
            when = datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00").timestamp()
        except ValueError:
            continue
        if policy in ("always", "unless-stopped") and when >= since - 1:
            docker_client().api.start(raw["Id"])
            done.append(f"started {info['Name'].lstrip('/')} again (it ran when the engine died)")
    return done


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
