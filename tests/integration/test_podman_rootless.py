"""orch on ROOTLESS Podman, for real: a throwaway non-root user (made here, removed
at the end) installs orch from this checkout, which it may not write, with Debian's
python3, starts its own rootless Podman API with `orch engine start --podman`, and
runs `orch setup`, `check`, `up` to ready, `status`, `backup` (verified) and `down`
against it, with no root anywhere in the path: every orch and podman process of
the test after the set-up runs as that user (`runuser`, a clean environment).

What the user needs, as Debian gives it: subuid/subgid ranges (`useradd` makes
them), `uidmap` and `slirp4netns` (docker/podman.py `ensure_podman` installs them
with podman), a private XDG_RUNTIME_DIR, and /dev/net/tun open to it (mode 0666 on
a stock Debian host, 0600 on these machines: set to 0666 for the module and put
back as it was). The module is skipped, with a warning CI prints, only when it
does not run as root (it must make the user) or Podman cannot be installed.

What it proves beyond the rootful module:
- the gateway's dirs stay the user's: keep-id maps the profile's uid (the user's)
  to the user on the host; the gateway's process on the host runs as the user, and
  nothing in the home belongs to another uid (nothing chowned to a subuid);
- the gateway's schema is read through the rootless API (the user's cache is
  empty), which cut it at 12-13 kB before;
- memory, pids and CPU limits, which rootless Podman on this cgroup v1 host cannot
  enforce, are named by `orch check` and `orch up` as warnings.
- a read-only checkout installs (setup.py moves setuptools' scratch dirs to a temp
  dir, and removes it).

The image is moved from Docker into the user's own store (`docker save` | the
user's `podman load`). The store is the kernel's own overlay, mounted by the user
(native rootless overlay, Linux >= 5.13): Debian's podman 4.3.1 picks vfs when
fuse-overlayfs is missing, which writes every layer whole (2.1 GB for the 800 MB
image) and copies the image again for each container; the user's storage.conf says
overlay. One profile serves the module.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import free_base, http_get, require_podman, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.gateway]

REPO = Path(__file__).resolve().parents[2]
TUN = Path("/dev/net/tun")


@dataclass
class User:
    name: str
    uid: int
    home: Path
    runtime: Path

    @property
    def orch_home(self) -> Path:
        return self.home / "orch"

    def env(self) -> list[str]:
        return [
            f"HOME={self.home}",
            f"USER={self.name}",
            f"LOGNAME={self.name}",
            f"PATH={self.home}/venv/bin:/usr/bin:/bin",
            f"XDG_RUNTIME_DIR={self.runtime}",
            f"ORCH_HOME={self.orch_home}",
            f"DOCKER_HOST=unix://{self.runtime}/podman/podman.sock",
        ]

    def prefix(self) -> list[str]:
        """Run as the user with nothing of root's environment."""
        return ["runuser", "-u", self.name, "--", "env", "-i", *self.env()]

    def run(self, *cmd: str, ok: bool = True, timeout: float = 900):
        proc = subprocess.run(
            [*self.prefix(), *cmd], capture_output=True, text=True, timeout=timeout,
            cwd=self.home,
        )  # fmt: skip
        if ok and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n"
                                 f"{proc.stderr}")  # fmt: skip
        return proc

    def orch(self, *args: str, ok: bool = True):
        return self.run("orch", *args, ok=ok)

    def json(self, *args: str, ok: bool = True) -> dict:
        return json.loads(self.orch(*args, "--json", ok=ok).stdout)


def _skip_loudly(why: str) -> None:
    message = f"rootless Podman tests skipped: {why}"
    warnings.warn(pytest.PytestWarning(message), stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="module")
def tun_open():
    """/dev/net/tun open to every user (slirp4netns needs it), put back at the end."""
    if not TUN.exists():
        _skip_loudly("/dev/net/tun does not exist (slirp4netns needs it)")
    mode = stat.S_IMODE(TUN.stat().st_mode)
    os.chmod(TUN, 0o666)
    yield
    os.chmod(TUN, mode)


def _wheels(target: Path) -> Path:
    """orch's dependencies as wheels (from this venv's pip and its cache): the user's
    install then needs no index and builds only orch itself, from the checkout."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"], "wheel"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d",
         str(target), *wanted],
        check=True, timeout=600,
    )  # fmt: skip
    return target


@pytest.fixture(scope="module")
def user(gateway_image, tun_open):
    """A throwaway user with subuid/subgid, orch installed, its rootless Podman API
    started by `orch engine start --podman`, and the image in its store."""
    if os.geteuid() != 0:
        _skip_loudly("not root: the test makes (and removes) a user of its own")
    require_podman()
    if shutil.which("runuser") is None or not Path("/usr/bin/python3").exists():
        _skip_loudly("runuser or Debian's /usr/bin/python3 is missing")
    from orchestrator.docker.podman import containers_conf, move_image

    name = f"orchrl{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    info = pwd.getpwnam(name)
    # Not under pytest's temp dir: that is root's alone (0700), and the user must
    # reach its runtime dir and the wheels.
    shared = Path(tempfile.mkdtemp(prefix="orch-rootless-"))
    os.chmod(shared, 0o755)
    runtime = shared / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, info.pw_uid, info.pw_gid)
    user = User(name, info.pw_uid, Path(info.pw_dir), runtime)
    service_pid = None
    try:
        assert name in Path("/etc/subuid").read_text(), "useradd made no subuid range"
        wheels = _wheels(shared / "wheels")
        for path in [wheels, *wheels.iterdir()]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        user.run("/usr/bin/python3", "-m", "venv", str(user.home / "venv"))
        user.run("pip", "install", "-q", "--no-index", "--find-links", str(wheels), str(REPO))
        _native_overlay(user)
        scratch = [p for p in Path("/tmp").glob("orch-build-*") if p.stat().st_uid == info.pw_uid]
        assert scratch == [], f"the install left setuptools' scratch dirs behind: {scratch}"
        started = json.loads(user.orch("engine", "start", "--podman", "--json").stdout)
        service_pid = int((runtime / "podman" / "orch-podman" / "service.pid").read_text())
        assert started["data"]["socket"] == f"{runtime}/podman/podman.sock"
        conf = containers_conf(runtime / "podman" / "orch-podman")
        move_image(gateway_image, conf, prefix=user.prefix())
        yield user
    finally:
        _remove(user, service_pid)
        shutil.rmtree(shared, ignore_errors=True)


def _native_overlay(user: User) -> None:
    """The user's podman stores images on the kernel's overlay (see the module's
    docstring): a storage.conf in the test user's own home, owned by the user. On
    an older kernel, podman's own choice (vfs) stands."""
    major, minor = (int(n) for n in os.uname().release.split(".")[:2])
    if (major, minor) < (5, 13):
        return
    config = user.home / ".config"
    conf = config / "containers" / "storage.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text('[storage]\ndriver = "overlay"\n')
    gid = pwd.getpwnam(user.name).pw_gid
    for path in (config, conf.parent, conf):
        os.chown(path, user.uid, gid)


def _remove(user: User, service_pid: int | None) -> None:
    """Down, stop the user's podman (the API service, then the pause process that
    holds its user namespace, each by its pid), remove the user, its home and ids."""
    if user.orch_home.exists():
        user.orch("down", ok=False)
    pids = [service_pid] if service_pid else []
    pause = user.runtime / "libpod" / "tmp" / "pause.pid"
    if pause.exists():
        pids.append(int(pause.read_text().strip()))
    # The store goes with the home: root's `userdel -r` removes it, files of the
    # user's subuids too, once no process of the user runs (the overlay mounts live
    # in the user's namespace, held by its pause process). `podman system reset` as
    # the user took 18-38 s of this module for the same (on vfs).
    try:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            wait_for(lambda pid=pid: _gone(pid), 30, f"pid {pid} to exit")
    finally:
        # Whatever else still runs as this throwaway user (a service that outlived its
        # SIGTERM on a loaded host, seen once): userdel refuses a user with processes,
        # and the user, its ids and that service were then left behind.
        subprocess.run(["pkill", "-KILL", "-u", user.name], check=False, capture_output=True)
        wait_for(lambda: _none_of(user.name), 30, f"{user.name}'s processes to exit")
        subprocess.run(["userdel", "-r", user.name], check=False, capture_output=True)
        shutil.rmtree(user.runtime, ignore_errors=True)


def _none_of(name: str) -> bool:
    """No live process runs as user `name` (zombies count as gone)."""
    listed = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True).stdout
    return all(_gone(int(pid)) for pid in listed.split())


def _gone(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text.rsplit(")", 1)[-1].split()[0] == "Z"


def unenforced(user: User) -> list[str]:
    """The default limits the user's Podman cannot enforce (all three on this cgroup
    v1 host: rootless gets no controllers), from Podman's own word."""
    usable = user.run("podman", "info", "--format", "{{.Host.CgroupControllers}}").stdout
    limits = {"memory": "memory 1280m", "pids": "pids 512", "cpu": "cpus 1"}
    return [
        limit
        for controller, limit in limits.items()
        if controller not in usable.strip().strip("[]").split()
    ]


def test_the_users_fleet_is_checked_and_the_unenforced_limits_are_named(user):
    user.orch("setup", "main", "--port", str(free_base()))
    data = user.json("check")["data"]
    assert data["ok"] and data["problems"] == []
    expected = unenforced(user)
    if not expected:  # cgroup v2 with controllers delegated: nothing to say
        assert data["warnings"] == []
        return
    (warning,) = data["warnings"]
    assert warning["profile"] == "main" and warning["limits"] == expected
    assert "rootless Podman" in warning["message"]
    schemas = list((user.home / ".cache" / "orch" / "gateway-schemas").glob("*.json"))
    assert len(schemas) == 1 and "properties" in json.loads(schemas[0].read_text())


def test_up_gets_ready_rootless_and_says_what_it_cannot_enforce(user):
    started = time.monotonic()
    proc = user.orch("up", "--engine", "podman", "--timeout", "600")
    print(f"rootless: up of main to ready in {time.monotonic() - started:.1f} s")
    expected = unenforced(user)
    if expected:
        assert f"main: warning: {', '.join(expected)} not enforced" in proc.stderr
    (profile,) = user.json("ls")["data"]["profiles"]
    port = profile["port"]
    status, body = http_get(port, "/readyz")
    assert status == 200 and '"ready":true' in body


def test_status_is_ready_and_healthy(user):
    data = user.json("status", "--engine", "podman")["data"]
    assert data["engine"] == "podman" and data["failing"] == []
    (row,) = data["profiles"]
    assert row["ready"] and row["health"] == "healthy"


def test_the_gateway_runs_as_the_user_and_its_dirs_stay_the_users(user):
    pid = user.run("podman", "inspect", "--format", "{{.State.Pid}}", _container(user))
    uids = Path(f"/proc/{pid.stdout.strip()}/status").read_text().split("Uid:")[1].split()
    assert {int(u) for u in uids[:4]} == {user.uid}  # keep-id: the user, not a subuid
    foreign = [str(p) for p in user.orch_home.rglob("*") if p.lstat().st_uid != user.uid]
    assert foreign == []
    assert (user.orch_home / "profiles" / "main" / "state" / "state").is_dir()  # gateway wrote


def _container(user: User) -> str:
    return user.json("status", "--engine", "podman")["data"]["profiles"][0]["container"]


def test_an_online_backup_verifies(user):
    row = user.json("backup", "main")["data"]["backups"][0]
    assert row["mode"] == "online"
    verified = user.json("backup", "verify", row["archive"])["data"]
    assert verified["profile"] == "main" and verified["ok"]
    assert Path(row["archive"]).stat().st_uid == user.uid


def test_down_stops_the_gateway_gracefully_and_removes_the_users_container(user):
    name = _container(user)
    user.orch("down", "--engine", "podman")
    left = user.run("podman", "ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert left == []
    # The gateway got the SIGTERM (through tini, PID 1) and shut down: it exited 0
    # (or 143), not 137 (SIGKILL after the stop timeout was waited out). Podman's
    # own record of the container's end, read after the container is gone.
    died = user.run(
        "podman", "events", "--stream=false", "--since", "1h", "--filter", "event=died",
        "--filter", f"container={name}", "--format", "{{.ContainerExitCode}}",
    ).stdout.split()  # fmt: skip
    assert died in (["0"], ["143"]), died
