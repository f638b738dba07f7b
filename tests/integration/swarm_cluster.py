"""A real two-node Docker Swarm on this one machine, for the tests only.

Each node is its own `dockerd` in its own network namespace, as
../shared/swarm-multinode.md found works: `nsenter --net` (not `ip netns exec`,
which remounts /sys and loses the cgroups) plus `unshare --uts` (each node its
own hostname, so `node.hostname==NODE` constraints tell them apart), its own
data-root, exec-root, pidfile, socket and config file (with
`deprecated-key-path`, so dockerd 20.10 neither reads /etc/docker/key.json nor
/etc/docker/daemon.json). The namespaces are joined by one veth pair created
directly inside them: nothing is added to the host's network namespace, its
iptables or its main engine, which is only read from (`docker save`).

A run records what it made in RUNS_ROOT/<run id>/run.json *before* making it,
with the PID of the process that owns it; `clean_stale()` takes down every run
whose owner is gone (a crashed or killed pytest), in the order the facts file
gives: dockerd by pidfile PID, containerd shims by PID whose command line names
the node's containerd socket, `umount -l` under the node's roots, the
namespaces, the dirs, the cgroup dirs. Never anything by name pattern alone.

Why a run id in every name: CI and a developer may run the module at the same
time on one machine; two runs never share a namespace, socket or dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUNS_ROOT = Path("/var/tmp/orch-swarm-it")
SUBNET = "10.213.0"
REGISTRY_PORT = 5000
CHUNK = 1 << 20
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
#: Swarm's dispatcher heartbeat in the test cluster (`_form_swarm`).
HEARTBEAT_S = 2
# The main engine, as the tests found it: images are read from it (docker save) even
# while a test points DOCKER_HOST at a node.
MAIN_DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@dataclass
class Node:
    index: int
    run_id: str

    @property
    def hostname(self) -> str:
        return f"orch-node{self.index}"

    @property
    def netns(self) -> str:
        return f"orchsw-{self.run_id}-{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def root(self) -> Path:
        return RUNS_ROOT / self.run_id / f"node{self.index}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        # Short: containerd's sockets live under it (unix socket paths max 107 bytes).
        return Path(f"/run/orchsw-{self.run_id}-{self.index}")

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def socket(self) -> Path:
        return self.exec_root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup(self) -> str:
        return f"orchsw-{self.run_id}-{self.index}"

    @property
    def containerd_socket(self) -> str:
        return str(self.exec_root / "containerd" / "containerd.sock")

    def in_netns(self, *argv: str) -> list[str]:
        """A command line that runs `argv` in this node's network namespace."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *argv]


@dataclass
class Cluster:
    run_id: str
    owner_pid: int
    nodes: list[Node]
    registry_pid: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return RUNS_ROOT / self.run_id

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def registry(self) -> str:
        """HOST:PORT of the test registry, reachable from every node."""
        return f"{self.manager.address}:{REGISTRY_PORT}"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        record = {
            "run_id": self.run_id,
            "owner_pid": self.owner_pid,
            "nodes": [n.index for n in self.nodes],
            "registry_pid": self.registry_pid,
        }
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.rename(self.dir / "run.json")

    @classmethod
    def load(cls, path: Path) -> Cluster:
        record = json.loads(path.read_text())
        run_id = record["run_id"]
        return cls(
            run_id,
            record["owner_pid"],
            [Node(i, run_id) for i in record["nodes"]],
            record.get("registry_pid"),
        )

    def docker(self, node: Node, *args: str, timeout: float = 120) -> str:
        """The docker CLI against one node; its stdout."""
        proc = subprocess.run(
            ["docker", "-H", node.docker_host, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} on {node.hostname}: {proc.stderr}")
        return proc.stdout


# --- up -------------------------------------------------------------------------------


def start_cluster(images: list[str], size: int = 2, registry: bool = True) -> Cluster:
    """Namespaces, daemons, swarm, `images` loaded into every node, and (optionally)
    a registry on the test network. On any failure everything made is taken down."""
    clean_stale()
    run_id = uuid.uuid4().hex[:6]
    cluster = Cluster(run_id, os.getpid(), [Node(i + 1, run_id) for i in range(size)])
    cluster.save()  # first: a crash from here on is cleaned by the next run
    try:
        started = time.monotonic()
        _network(cluster)
        if registry:
            _start_registry(cluster)
        for node in cluster.nodes:
            _start_dockerd(cluster, node)
        for node in cluster.nodes:
            _wait_for_socket(node)
        cluster.timings["daemons_s"] = time.monotonic() - started
        mark = time.monotonic()
        _form_swarm(cluster)
        cluster.timings["swarm_s"] = time.monotonic() - mark
        mark = time.monotonic()
        for image in images:
            load_image(cluster, image)
        cluster.timings["images_s"] = time.monotonic() - mark
        cluster.timings["total_s"] = time.monotonic() - started
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _network(cluster: Cluster) -> None:
    """One namespace per node and a veth pair made inside them (never in the host's)."""
    for node in cluster.nodes:
        _run("ip", "netns", "add", node.netns)
        _run("ip", "-n", node.netns, "link", "set", "lo", "up")
    first, second = cluster.nodes[0], cluster.nodes[1]
    _run(
        "ip", "link", "add", "name", "eth0", "netns", first.netns,
        "type", "veth", "peer", "name", "eth0", "netns", second.netns,
    )  # fmt: skip
    for node in cluster.nodes:
        _run("ip", "-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        _run("ip", "-n", node.netns, "link", "set", "eth0", "up")


def _start_registry(cluster: Cluster) -> None:
    """Debian's docker-registry (distribution 2.8) in the manager's namespace, on the
    test network; installed with the project's own apt helper when missing."""
    from orchestrator.docker.daemon import apt_install

    apt_install(["docker-registry"])
    store = cluster.dir / "registry"
    store.mkdir(parents=True)
    config = cluster.dir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {store}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{cluster.registry}'}}\n"
    )
    log = open(cluster.dir / "registry.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        cluster.manager.in_netns("docker-registry", "serve", str(config)),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster.registry_pid = proc.pid
    cluster.save()


def _start_dockerd(cluster: Cluster, node: Node) -> None:
    for path in (node.data_root, node.exec_root):
        path.mkdir(parents=True, exist_ok=True)
    config = node.root / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "deprecated-key-path": str(node.data_root / "key.json"),
                "insecure-registries": [cluster.registry],
            }
        )
    )
    dockerd = [
        "dockerd",
        f"--data-root={node.data_root}",
        f"--exec-root={node.exec_root}",
        f"--pidfile={node.pidfile}",
        f"--host={node.docker_host}",
        f"--bip=172.31.{node.index}.1/24",
        f"--cgroup-parent=/{node.cgroup}",
        f"--config-file={config}",
    ]
    script = f"hostname {node.hostname} && exec " + " ".join(dockerd)
    log = open(node.root / "dockerd.log", "ab")  # noqa: SIM115 - the child keeps it
    subprocess.Popen(
        node.in_netns("unshare", "--uts", "sh", "-c", script),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_socket(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["docker", "-H", node.docker_host, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=10,
        )
        if proc.returncode == 0:
            return
        time.sleep(0.2)
    log = (node.root / "dockerd.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"dockerd of {node.hostname} did not answer in time:\n{log}")


def _form_swarm(cluster: Cluster) -> None:
    manager = cluster.manager
    # A node is marked Down after three heartbeat periods without one: 15 s with
    # Swarm's default 5 s, which two tests wait out (a node's engine killed). 2 s
    # (down after ~6 s) keeps a margin for a loaded host: a node missing three
    # heartbeats in a row would be marked down falsely.
    cluster.docker(
        manager, "swarm", "init", "--advertise-addr", manager.address,
        "--dispatcher-heartbeat", f"{HEARTBEAT_S}s",
    )  # fmt: skip
    token = cluster.docker(manager, "swarm", "join-token", "-q", "worker").strip()
    for node in cluster.nodes[1:]:
        cluster.docker(node, "swarm", "join", "--token", token, f"{manager.address}:2377")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        states = cluster.docker(manager, "node", "ls", "--format", "{{.Status}}").split()
        if len(states) == len(cluster.nodes) and set(states) == {"Ready"}:
            return
        time.sleep(0.2)
    raise RuntimeError(f"swarm nodes not ready: {states}")


# --- faults: a node's engine killed, and back -----------------------------------------


def stop_node(cluster: Cluster, node: Node, sig: int = signal.SIGKILL) -> None:
    """Kill one node's dockerd by its pidfile PID, as a crash does (SIGKILL: its
    containerd dies with it, its containers keep running and their host-mode ports keep
    answering; SIGTERM instead stops the containers). Returns once the daemon is gone;
    the manager marks the node Down three heartbeats (6 s here) later (the caller waits
    for what it needs). The namespace, dirs and data-root stay for `start_node`."""
    pid = _pid_of(node.pidfile)
    if not pid or "dockerd" not in _cmdline(pid):
        raise RuntimeError(f"dockerd of {node.hostname} is not running (pidfile {node.pidfile})")
    os.kill(pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd of {node.hostname} (PID {pid}) did not stop")
        time.sleep(0.1)


def start_node(cluster: Cluster, node: Node) -> float:
    """Start a node's dockerd again after `stop_node` (same data-root, same swarm
    identity) and wait until its API answers and, for a worker, the manager sees it
    Ready again; the seconds it took."""
    started = time.monotonic()
    _start_dockerd(cluster, node)
    _wait_for_socket(node)
    if node is not cluster.manager:
        deadline = time.monotonic() + START_TIMEOUT_S
        state = "?"
        while time.monotonic() < deadline:
            state = node_state(cluster, node)
            if state == "ready":
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{node.hostname} is {state}, not ready, after its restart")
    return time.monotonic() - started


def node_state(cluster: Cluster, node: Node) -> str:
    """The node's state as the manager sees it: ready, down, unknown, disconnected."""
    return cluster.docker(
        cluster.manager, "node", "inspect", node.hostname, "--format", "{{.Status.State}}"
    ).strip()


def load_image(cluster: Cluster, image: str, nodes: list[Node] | None = None) -> float:
    """`docker save` from the main engine (read only), streamed once into `docker load`
    of every node at the same time; the seconds it took."""
    started = time.monotonic()
    targets = nodes or cluster.nodes
    loads = [
        subprocess.Popen(
            ["docker", "-H", n.docker_host, "load", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for n in targets
    ]
    save = subprocess.Popen(
        ["docker", "-H", MAIN_DOCKER_HOST, "save", image], stdout=subprocess.PIPE
    )
    assert save.stdout is not None
    while chunk := save.stdout.read(CHUNK):
        for load in loads:
            assert load.stdin is not None
            load.stdin.write(chunk)
    for load in loads:
        assert load.stdin is not None
        load.stdin.close()
    if save.wait() != 0:
        raise RuntimeError(f"docker save {image} failed on the main engine")
    for node, load in zip(targets, loads, strict=True):
        assert load.stderr is not None
        err = load.stderr.read()
        if load.wait(timeout=300) != 0:
            raise RuntimeError(f"docker load of {image} into {node.hostname}: {err.decode()}")
    return time.monotonic() - started


# --- down (also of a run whose owner crashed) -------------------------------------------


def stop_cluster(cluster: Cluster) -> None:
    """Take everything of the run down, whatever state it is in; idempotent."""
    threads = [threading.Thread(target=_stop_node, args=(n,)) for n in cluster.nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if cluster.registry_pid:
        # nsenter execs docker-registry: the PID is the registry's own.
        _kill_if(cluster.registry_pid, "docker-registry")
    for node in cluster.nodes:
        subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
        shutil.rmtree(node.exec_root, ignore_errors=True)
        _remove_cgroups(node)
    shutil.rmtree(cluster.dir, ignore_errors=True)


def _stop_node(node: Node) -> None:
    pid = _pid_of(node.pidfile)
    if pid and "dockerd" in _cmdline(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for shim in _shims_of(node):
        _kill(shim)
    _unmount_under(node.data_root)
    _unmount_under(node.exec_root)
    shutil.rmtree(node.root, ignore_errors=True)


def _pid_of(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _kill_if(pid: int, name: str) -> None:
    if name in _cmdline(pid):
        _kill(pid)


def _shims_of(node: Node) -> list[int]:
    """containerd and its shims that name this node's containerd socket or exec-root."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and str(node.exec_root) + "/" in _cmdline(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _unmount_under(root: Path) -> None:
    prefix = str(root) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines]
    inside = [p for p in points if p.startswith(prefix) or p == str(root)]
    for point in sorted(inside, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_cgroups(node: Node) -> None:
    """rmdir the node's cgroup dirs, deepest first (containers' dirs live inside)."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / node.cgroup
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def clean_stale() -> list[str]:
    """Take down every run whose owning process is gone; the run ids taken down."""
    cleaned = []
    if not RUNS_ROOT.is_dir():
        return cleaned
    for record in RUNS_ROOT.glob("*/run.json"):
        try:
            cluster = Cluster.load(record)
        except (OSError, ValueError, KeyError):
            continue
        if _alive(cluster.owner_pid) and "python" in _cmdline(cluster.owner_pid):
            continue
        stop_cluster(cluster)
        cleaned.append(cluster.run_id)
    return cleaned


def leftovers(cluster: Cluster) -> list[str]:
    """What of the run still exists on the machine (for the test that down is clean)."""
    found = []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {n.netns}" for n in cluster.nodes if n.netns in names]
    found += [f"dir {cluster.dir}"] if cluster.dir.exists() else []
    for node in cluster.nodes:
        found += [f"exec-root {node.exec_root}"] if node.exec_root.exists() else []
        found += [f"process {pid}" for pid in _shims_of(node)]
        found += [
            f"cgroup {h / node.cgroup}"
            for h in Path("/sys/fs/cgroup").iterdir()
            if (h / node.cgroup).exists()
        ]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount under {cluster.dir}"] if str(cluster.dir) + "/" in mounts else []
    return found


def on_main_engine(image: str) -> bool:
    probe = ["docker", "-H", MAIN_DOCKER_HOST, "image", "inspect", image]
    return subprocess.run(probe, capture_output=True).returncode == 0


def describe(cluster: Cluster) -> str:
    return json.dumps({**asdict(cluster), "registry": cluster.registry}, default=str)
