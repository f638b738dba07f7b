"""Podman, the one way orch gets and drives it: installed from Debian when missing,
run with orch's own containers.conf, fed images from the Docker engine, and (for a
Docker-compatible API) served on a socket of orch's choosing.

Why each piece (found on these machines, Debian's podman 4.3.1):
- `catatonit` is podman's init for pods (`podman kube play` fails without it);
  `uidmap` and `slirp4netns` are what rootless podman needs.
- runc cannot set the default rlimits here, so every container fails to start
  unless containers.conf sets `default_ulimits`. orch writes its OWN file under a
  dir of orch's and passes it through CONTAINERS_CONF: the system's files under
  /etc/containers and /usr/share/containers are never touched.
- No registry is reachable: images move from the Docker engine with `docker save |
  podman load` (about 45-70 s for the 800 MB gateway image), skipped when podman
  already holds the same image id. Podman names a loaded `orch/x:t` as
  `localhost/orch/x:t` and finds it under the short name too.

And, for orch's engine talk through Podman's Docker-compatible API (the rest of
docker/ asks `podman_facts()` and handles only what differs):
- which engine answers: Podman's `/version` lists a "Podman Engine" component;
  whether it is rootless, its cgroup version and the cgroup controllers it may use
  come from its own `/libpod/info`;
- rootless, a container's uids are the user's subuids: the gateway runs with
  `UsernsMode: keep-id`, so the profile's uid (yours) is you on the host and its
  dirs stay writable with nothing chowned;
- rootless on cgroup v1 there are no controllers: memory, pids and CPU limits are
  accepted by the API and dropped without a word (`unenforced_limits` says so);
- healthchecks run from systemd timers, and without systemd they never run (the
  container stays "starting"): orch runs the check itself when it needs the health
  (`run_healthcheck`, libpod's healthcheck endpoint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator.base.locks import exclusive
from orchestrator.core.spec import ContainerSpec
from orchestrator.docker import api as docker_http
from orchestrator.docker.daemon import apt_install
from orchestrator.docker.podman_api import podman_facts
from orchestrator.errors import EngineRefused, EngineUnavailable, ImageError

PACKAGES = ("podman", "catatonit", "uidmap", "slirp4netns")
CONF_NAME = "containers.conf"
CONF_ENV = "CONTAINERS_CONF"
# 4096 is what the gateway needs and what a stock Debian host gives a process.
CONTAINERS_CONF = """\
# Written by orch; passed to podman through CONTAINERS_CONF. The system's own
# containers.conf files are left as they are.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
"""


def ensure_podman(lock: Path | None = None) -> list[str]:
    """Install podman and what it needs from Debian when missing; what was done."""
    return apt_install(list(PACKAGES), lock=lock)


def containers_conf(directory: Path) -> Path:
    """orch's containers.conf in `directory` (one of orch's dirs), written when it
    differs, whole or not at all."""
    from orchestrator.base.atomic import atomic_write

    path = directory / CONF_NAME
    if not path.is_file() or path.read_text(encoding="utf-8") != CONTAINERS_CONF:
        atomic_write(path, CONTAINERS_CONF)
    return path


#: Variables that turn the podman CLI into a client of a remote service: orch runs
#: podman itself (the service, load), never through the socket it serves.
REMOTE_ENV = ("CONTAINER_HOST", "CONTAINER_CONNECTION")


def podman_env(conf: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REMOTE_ENV}
    return {**env, CONF_ENV: str(conf)}


def podman(
    args: list[str], conf: Path, stdin=None, timeout: float = 600, prefix: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with orch's containers.conf (after `prefix`: `runuser -u USER
    -- env XDG_RUNTIME_DIR=...` runs a user's rootless podman); EngineRefused with
    podman's own message when it fails."""
    binary = shutil.which("podman")
    if binary is None:
        raise EngineUnavailable("podman is not installed", hint="run as root: orch needs apt")
    proc = subprocess.run(
        [*prefix, binary, *args],
        env=podman_env(conf),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise EngineRefused(
            f"podman {' '.join(args[:3])} failed (exit {proc.returncode}):\n{tail}",
            hint="read podman's message above",
        )
    return proc


def image_id(ref: str, conf: Path, prefix: Iterable[str] = ()) -> str | None:
    """The id podman has for `ref` ('sha256:...'), or None."""
    try:
        args = ["image", "inspect", "--format", "{{.Id}}", ref]
        out = podman(args, conf, prefix=prefix).stdout.strip()
    except EngineRefused:
        return None
    return f"sha256:{out.removeprefix('sha256:')}" if out else None


def move_image(ref: str, conf: Path, prefix: Iterable[str] = ()) -> bool:
    """Make podman hold the Docker engine's image `ref` (same id); True when it was
    loaded, False when podman already had it. `prefix` runs podman as another user
    (a rootless user's own store: see `podman`)."""
    prefix = list(prefix)
    from orchestrator.docker.daemon import docker_client

    client = docker_client(timeout=600)
    try:
        wanted = client.images.get(ref).id
    except Exception as exc:  # the SDK's ImageNotFound or an API error
        raise ImageError(
            f"the Docker engine has no image {ref}: {exc}", hint="run `orch images build`"
        ) from None
    if image_id(ref, conf, prefix) == wanted:
        return False
    binary = shutil.which("docker")
    if binary is None:
        raise EngineUnavailable("the docker CLI is not installed", hint="install docker.io")
    # The CLI streams the archive straight into podman: no 800 MB temp file.
    save = subprocess.Popen([binary, "save", ref], stdout=subprocess.PIPE)
    try:
        podman(["load", "-q"], conf, stdin=save.stdout, prefix=prefix)
    finally:
        if save.stdout:
            save.stdout.close()
        save.wait()
    if save.returncode != 0 or image_id(ref, conf, prefix) != wanted:
        raise ImageError(
            f"moving {ref} from Docker into podman failed (docker save exit {save.returncode})",
            hint="check free disk space under /var/lib/containers",
        )
    return True


def start_api_service(
    sock: Path, conf: Path, timeout: float = 30, log: Path | None = None
) -> subprocess.Popen:
    """`podman system service --time=0 unix://SOCK` (the Docker-compatible API),
    started detached (its own session: a Ctrl-C on orch's terminal does not reach it),
    its output to `log`; returned once the socket answers. Stopped by its pid
    (terminate): the containers it started run on (Podman has no daemon)."""
    binary = shutil.which("podman")
    if binary is None:
        raise EngineUnavailable("podman is not installed", hint="run as root: orch needs apt")
    sock.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    try:
        proc = subprocess.Popen(
            [binary, "system", "service", "--time=0", f"unix://{sock}"],
            env=podman_env(conf),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.is_socket() and _pings(sock):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.terminate()
    proc.wait(timeout=10)
    raise EngineUnavailable(
        f"podman's API did not answer on {sock} within {timeout:.0f} s"
        + (f"; its log: {log}" if log else ""),
        hint="run `podman system service --time=0 unix://PATH` by hand to see why",
    )


def _pings(sock: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in s.recv(64)
    except OSError:
        return False


def for_kube_play(
    objects: list[dict[str, Any]], specs: Iterable[ContainerSpec]
) -> list[dict[str, Any]]:
    """Built Kubernetes manifests (`kubectl kustomize` of `orch export kubernetes`)
    changed only where `podman kube play` 4.3.1 needs it, each from the spec:
    - the token Secret is dropped and its volume becomes a hostPath File of the
      profile's 0600 token file at the spec's token path (4.3.1 panics on Secret
      volumes);
    - each container port gets the spec's hostPort and hostIP (127.0.0.1 by
      default): podman has no Services, the host reaches a pod only that way;
    - restartPolicy OnFailure: 4.3.1 applies the pod's policy to init containers,
      restarts the finished seed container under Always and then fails removing it;
    - emptyDir volumes get a per-profile name: 4.3.1 makes an emptyDir a named
      volume called after the pod's volume name, which two pods would share.
    The objects are changed in place and returned without the Secrets."""
    by_name = {s.name.replace("_", "-"): s for s in specs}
    out = []
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        if obj["kind"] == "Deployment":
            _adapt_pod(obj["spec"]["template"]["spec"], by_name[obj["metadata"]["name"]])
        out.append(obj)
    return out


def _adapt_pod(pod: dict[str, Any], spec: ContainerSpec) -> None:
    pod["restartPolicy"] = "OnFailure"
    token = next(m for m in spec.mounts if m.role == "token")
    token_volumes, renamed = set(), {}
    for volume in pod["volumes"]:
        if "secret" in volume:
            del volume["secret"]
            volume["hostPath"] = {"path": token.source, "type": "File"}
            token_volumes.add(volume["name"])
        if "emptyDir" in volume:
            new = f"{spec.name.replace('_', '-')}-{volume['name']}"
            renamed[volume["name"]], volume["name"] = new, new
    published = {c: (b.host_ip, h) for b in spec.ports for c, h in b.expand()}
    for container in pod["containers"]:
        for mount in container["volumeMounts"]:
            mount["name"] = renamed.get(mount["name"], mount["name"])
            if mount["name"] in token_volumes:
                mount["mountPath"] = token.target
        for port in container["ports"]:
            port["hostIP"], port["hostPort"] = published[port["containerPort"]]


# --- Podman behind the Docker API: what it is, where its socket is, starting it ---

ROOT_SOCKET = Path("/run/podman/podman.sock")
#: orch's files for a service it starts (containers.conf, log, pid), beside the socket.
ORCH_DIR = "orch-podman"


def default_socket() -> Path:
    """Where Podman's API socket is by default: /run/podman/podman.sock for root,
    $XDG_RUNTIME_DIR/podman/podman.sock for a user (as systemd's podman.socket)."""
    if os.geteuid() == 0:
        return ROOT_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not runtime or not os.path.isabs(runtime):
        raise EngineUnavailable(
            "XDG_RUNTIME_DIR is not set: rootless Podman keeps its socket there",
            hint="log in again (systemd-logind sets it), or export"
            " XDG_RUNTIME_DIR=/run/user/$(id -u) for a dir of yours (mode 0700)",
        )
    return Path(runtime) / "podman" / "podman.sock"


def wanted_socket() -> Path:
    """The socket `--engine podman` and `orch engine start --podman` use: the unix
    path of CONTAINER_HOST (Podman's own variable) when set, else the default."""
    host = os.environ.get("CONTAINER_HOST", "").strip()
    if host:
        url = urlparse(host)
        if url.scheme != "unix" or not url.path:
            raise EngineUnavailable(
                f"CONTAINER_HOST={host} is not a unix socket (unix:///PATH)",
                hint="orch speaks to Podman's API on a local unix socket",
            )
        return Path(url.path)
    return default_socket()


def use_podman() -> Path:
    """Point this command's engine talk (DOCKER_HOST, which docker/ and the docker CLI
    read) at Podman's API: DOCKER_HOST when a Podman already answers there, else
    `wanted_socket()`. Returns the socket; EngineUnavailable naming what was tried."""
    tried = []
    current = docker_http.socket_path()
    if os.environ.get("DOCKER_HOST") and current:
        tried.append(current)
        if _pings(Path(current)) and podman_facts() is not None:
            return Path(current)
    sock = wanted_socket()
    tried.append(str(sock))
    if _pings(sock):
        os.environ["DOCKER_HOST"] = f"unix://{sock}"
        if podman_facts() is not None:
            return sock
    raise EngineUnavailable(
        f"no Podman API answers (tried {', '.join(dict.fromkeys(tried))})",
        hint="run `orch engine start --podman` (starts `podman system service`), or point"
        " CONTAINER_HOST or DOCKER_HOST at a Podman socket",
    )


def start_service(sock: Path | None = None, lock: Path | None = None) -> list[str]:
    """`orch engine start --podman`: Podman installed (root: from Debian), and its API
    service answering on `sock` (default `wanted_socket()`), started detached with
    orch's containers.conf when none answers. What was done, one line each."""
    sock = sock or wanted_socket()
    if _pings(sock):
        return []
    done = ensure_podman(lock)
    files = sock.parent / ORCH_DIR
    files.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = containers_conf(files)
    with exclusive(files / "start.lock"):
        if _pings(sock):  # another orch started it while this one waited
            return done
        proc = start_api_service(sock, conf, log=files / "service.log")
    (files / "service.pid").write_text(f"{proc.pid}\n", encoding="ascii")
    done.append(f"started podman system service (pid {proc.pid}, socket {sock})")
    return done
