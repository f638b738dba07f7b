"""Images on every swarm node through a registry the user names (`--registry HOST:PORT`).

orch pushes the image from the manager's engine to the registry and pins the stack
to the digest the registry answered: every node runs byte for byte the same image,
and a tag moved later changes nothing. Then each node that runs a profile proves
it can get the image, by a one-shot task pinned to it (docker/node_jobs.py): a
node that cannot is named in the error, before any gateway is replaced.

Why the SDK here: a push is a streamed answer with an auth header, made once per
deploy and lasting seconds; its public `tag`/`push` already handle both on every
kind of DOCKER_HOST, which the stdlib client (docker/api.py) only needs for the
calls that run on every command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.docker.node_jobs import Job, JobResult, run_jobs
from orchestrator.errors import ImageError

PUSH_TIMEOUT_S = 600


@dataclass(frozen=True)
class PinnedImage:
    """An image as pushed: its name in the registry and the digest to run it by."""

    source: str  # orch/openclaw-gateway:2026.9.6
    repository: str  # 10.0.0.5:5000/orch/openclaw-gateway
    tag: str
    digest: str  # sha256:...

    @property
    def reference(self) -> str:
        """What a stack pins: the registry's name and the digest, no tag to move."""
        return f"{self.repository}@{self.digest}"


def registry_name(image: str, registry: str) -> tuple[str, str]:
    """(repository, tag) of `image` in `registry`: the same path, the same tag."""
    path, _, digest = image.partition("@")
    name, tag = path, "latest"
    if ":" in path.rsplit("/", 1)[-1]:
        name, tag = path.rsplit(":", 1)
    if digest:
        tag = digest.removeprefix("sha256:")[:16]
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        name = name.split("/", 1)[1]  # drop another registry's host
    return f"{registry.rstrip('/')}/{name}", tag


def push_image(image: str, registry: str) -> PinnedImage:
    """Tag `image` (on the engine orch talks to) into `registry`, push it, and return
    the digest the registry gave it. Clear errors for the usual causes."""
    import docker.errors

    from orchestrator.docker.daemon import docker_client

    api = docker_client(timeout=PUSH_TIMEOUT_S).api
    repository, tag = registry_name(image, registry)
    try:
        api.tag(image, repository, tag)
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"image {image} is not on this engine, so it cannot be pushed to {registry}",
            hint="build it here first: `orch images build`",
        ) from None
    digest, errors = "", []
    for message in api.push(repository, tag=tag, stream=True, decode=True):
        if message.get("error"):
            errors.append(message["error"])
        digest = (message.get("aux") or {}).get("Digest") or digest
    if errors or not digest:
        raise ImageError(
            f"pushing {image} to {registry} as {repository}:{tag} failed: "
            + ("; ".join(errors) or "the registry answered no digest"),
            hint=_push_hint(registry, " ".join(errors)),
        )
    return PinnedImage(image, repository, tag, digest)


def _push_hint(registry: str, error: str) -> str:
    if "HTTPS" in error or "https" in error:
        return (
            f"the engine speaks HTTPS to registries; for a plain-HTTP registry add"
            f' "insecure-registries": ["{registry}"] to /etc/docker/daemon.json on every'
            " node (and restart dockerd), or serve the registry with TLS"
        )
    return f"is a registry listening on {registry}, and reachable from this engine?"


def image_jobs(reference: str, nodes: Iterable[str], labels: dict[str, str]) -> list[Job]:
    """One job per node that pulls `reference` and starts it (`true`, nothing else)."""
    return [Job(node, reference, ["true"], labels) for node in dict.fromkeys(nodes)]


def require_image_on(reference: str, nodes: Iterable[str], labels: dict[str, str]) -> None:
    """Every node gets the image, or an error names each node that cannot and why."""
    results = run_jobs(image_jobs(reference, nodes, labels))
    failed = [r for r in results if not r.ok]
    if failed:
        raise ImageError(
            f"{len(failed)} node(s) cannot get image {reference}; nothing was deployed:\n"
            + "\n".join(_why(r) for r in failed),
            hint=(
                "on each node named: `docker pull "
                f"{reference}` shows why (registry reachable from the node? in its"
                " insecure-registries when it is plain HTTP?), or push with --registry"
                " to a registry every node reaches"
            ),
        )


def _why(result: JobResult) -> str:
    return f"  node {result.node}: {result.state}: {result.error}"
