"""Images on the engine: inspect, build (the docker CLI, as `docker build` streams
its log and reads .dockerignore), pull, prune, and a file read out of an image.

Why the CLI for builds: the legacy builder (DOCKER_BUILDKIT=0) needs no buildx and
no registry, and its output is what a user sees building by hand. Everything here
is engine talk; host/images.py decides what to build and when.
"""

from __future__ import annotations

import collections
import io
import json
import os
import subprocess
from collections.abc import Callable

from orchestrator.errors import ImageError, NotFound

HASH_LABEL = "orch.image.context-hash"  # host/images.py labels what it builds with it
PULL_TIMEOUT = 20.0
LOG_TAIL = 40
Progress = Callable[[str], None]


def _docker_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def inspect_image(tag: str) -> dict | None:
    """`docker image inspect` of one tag, or None when it is not present."""
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", tag], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ImageError(
            "the docker CLI is needed to inspect and build images",
            hint="install it (`apt-get install -y docker.io` brings one)",
        ) from None
    if proc.returncode != 0:
        if "No such image" in proc.stderr or "No such object" in proc.stderr:
            return None
        raise ImageError(
            f"docker image inspect {tag} failed: {proc.stderr.strip()}",
            hint="is the Docker engine running? (`sudo orch engine start`)",
        )
    return json.loads(proc.stdout)[0]


def run_logged(cmd: list[str], what: str, progress: Progress | None) -> None:
    """Run `cmd`, stream its output lines to `progress`, raise ImageError with the tail."""
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=_docker_env(),
        )
    except OSError as exc:
        raise ImageError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        tail.append(line)
        if progress:
            progress(line)
    if proc.wait() != 0:
        raise ImageError(
            f"{what} failed (exit {proc.returncode}); last lines:\n" + "\n".join(tail),
            hint="fix the error above and run again; `orch` resumes where it stopped",
        )


def try_pull(tag: str, progress: Progress | None) -> bool:
    """A quick `docker pull`: True if it worked. Fails fast where no registry is reachable."""
    if progress:
        progress(f"trying docker pull {tag}")
    try:
        proc = subprocess.run(
            ["docker", "pull", "-q", tag],
            capture_output=True,
            text=True,
            timeout=PULL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def prune_replaced() -> None:
    """Drop orch images that rebuilds left untagged, so each rebuild does not leak ~800 MB.

    Only dangling images carrying our label; `docker image rm` refuses those a
    container still uses (kept until a later build, after that container is gone).
    """
    proc = subprocess.run(
        [
            "docker",
            "images",
            "-q",
            "--no-trunc",
            "-f",
            "dangling=true",
            "-f",
            f"label={HASH_LABEL}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    for image_id in proc.stdout.split():
        subprocess.run(["docker", "image", "rm", image_id], capture_output=True, check=False)


def read_from_image(image_id: str, path: str) -> bytes:
    """The gateway's config schema: the file at `path` in the image, copied out of a
    created (not yet started) container; an image without it (built before orch put
    it there) then starts that same container, which runs `openclaw config schema`
    with no network, and its stdout is read once it has exited. One container, not
    two: on rootless Podman's vfs storage each container costs a copy of the image.

    Not the SDK's `containers.run`: it follows the log stream while the container
    runs, and Podman's API ends a followed stream when the container exits, before
    the last of its output (the 2.4 MB schema came back cut at 12-13 kB). The log of
    an exited container is whole on both engines."""
    import docker.errors  # the SDK (~0.15 s): only when a schema is read

    from orchestrator.docker.sdk import client  # with the SDK, only to read a schema

    api = client().api
    created = api.create_container(
        image_id,
        ["config", "schema"],
        entrypoint=["openclaw"],
        network_disabled=True,
        environment={"HOME": "/tmp", "OPENCLAW_STATE_DIR": "/tmp/state"},
    )
    try:
        try:
            stream, _ = api.get_archive(created["Id"], path)
            return _first_file(b"".join(stream), path)
        except docker.errors.NotFound:
            pass
        api.start(created["Id"])
        code = api.wait(created["Id"], timeout=SCHEMA_RUN_TIMEOUT).get("StatusCode")
        if code != 0:
            err = api.logs(created["Id"], stdout=False, stderr=True, tail=10)
            raise ImageError(
                f"`openclaw config schema` in image {image_id[:19]} exited {code}:\n"
                + err.decode("utf-8", "replace").strip(),
                hint="is it an OpenClaw gateway image? `orch images build` builds orch's own",
            )
        return api.logs(created["Id"], stdout=True, stderr=False)
    finally:
        api.remove_container(created["Id"], force=True)


SCHEMA_RUN_TIMEOUT = 300


def _first_file(tar_bytes: bytes, path: str) -> bytes:
    import tarfile  # start-up: only when a schema is copied out of an image (cached after)

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise NotFound(f"{path} is empty in the image")
