"""Build the images orch runs, skipping what is already current.

Why a builder inside orch: these machines reach package registries but no container
registry, so `docker pull` of the gateway image (or even of debian:bookworm-slim)
fails. orch builds the gateway image itself from images/ in the repo:

1. the gateway tag exists with the same `orch.image.context-hash` label -> nothing to do
   (a hash of the build inputs, not of the 700 MB npm output, so the check is instant);
2. base: `debian:bookworm-slim` if present locally, else a quick pull, else the offline
   debootstrap base `orch/debian:bookworm` (images/base/build.sh), built if missing or stale;
3. the npm inputs are prepared on the host (images/gateway/prepare.sh, cached), then
   `docker build` with the classic builder (no buildx on these machines).

Only the stdlib and the docker CLI are used, so this also runs without orch's venv:
`python3 -m orchestrator.host.images [--force]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.base.locks import exclusive
from orchestrator.core.versions import BROWSER_IMAGE, NODE_VERSION, OPENCLAW_VERSION
from orchestrator.docker.daemon import ensure_debootstrap, ensure_engine
from orchestrator.docker.images import (
    HASH_LABEL,
    inspect_image,
    prune_replaced,
    run_logged,
    try_pull,
)
from orchestrator.errors import ImageError, OrchError
from orchestrator.fleet.store import load_fleet

UPSTREAM_BASE = "debian:bookworm-slim"
OFFLINE_BASE = "orch/debian:bookworm"
VERSION_LABEL = "org.opencontainers.image.version"


def images_dir() -> Path:
    """The build contexts: shipped inside the package by a wheel (setup.py copies the
    checkout's images/ to orchestrator/images), else the checkout's own images/."""
    shipped = Path(__file__).resolve().parents[1] / "images"
    if (shipped / "gateway" / "Dockerfile").is_file():
        return shipped
    return Path(__file__).resolve().parents[2] / "images"


IMAGES_DIR = images_dir()
BASE_SCRIPT = IMAGES_DIR / "base" / "build.sh"
GATEWAY_DIR = IMAGES_DIR / "gateway"
PREPARE_SCRIPT = GATEWAY_DIR / "prepare.sh"


BROWSER_DIR = IMAGES_DIR / "gateway-browser"


#: Files of the browser context that are build inputs.
BROWSER_INPUTS = ("Dockerfile", ".dockerignore")


BUILD_LOCK = IMAGES_DIR / ".cache" / "build.lock"


#: Files of the gateway context that are build inputs (the rest is generated or docs).
GATEWAY_INPUTS = ("Dockerfile", ".dockerignore", "prepare.sh", "rootfs")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageResult:
    """What `build_images` did for one image."""

    tag: str
    action: str  # "built" | "current" | "pulled"
    seconds: float
    size: int  # bytes, as `docker image inspect` reports


def _files(root: Path, names: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = root / name
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            out.append(path)
    return out


def gateway_context_hash(version: str = OPENCLAW_VERSION, node_version: str = NODE_VERSION) -> str:
    """Hash of the gateway's build inputs (files, modes, build args): the image label.

    Modes count because the entrypoint must stay executable. The base image is not
    part of it on purpose: which base was used depends on the machine, not on the
    recipe, and a gateway built on either works the same.
    """
    h = hashlib.sha256()
    h.update(f"openclaw={version}\nnode={node_version}\n".encode())
    for path in _files(GATEWAY_DIR, GATEWAY_INPUTS):
        rel = path.relative_to(GATEWAY_DIR).as_posix()
        mode = "x" if os.access(path, os.X_OK) else "-"
        h.update(f"{rel}\0{mode}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def browser_context_hash(version: str = OPENCLAW_VERSION) -> str:
    """Hash of the browser image's inputs: its own Dockerfile plus the gateway's hash,
    so a new gateway recipe also makes the browser variant stale."""
    h = hashlib.sha256(f"gateway={gateway_context_hash(version)}\n".encode())
    for path in _files(BROWSER_DIR, BROWSER_INPUTS):
        h.update(f"{path.relative_to(BROWSER_DIR).as_posix()}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


GATEWAY_REPO = "orch/openclaw-gateway"
BROWSER_SUFFIX = "-browser"


#: An npm version of openclaw: 2026.9.6, 2026.10.0-beta.1.
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z][0-9A-Za-z.-]*)?")


def gateway_tag(version: str = OPENCLAW_VERSION) -> str:
    return f"{GATEWAY_REPO}:{version}"


def browser_tag(version: str = OPENCLAW_VERSION) -> str:
    return f"{gateway_tag(version)}{BROWSER_SUFFIX}"


@dataclass(frozen=True)
class Recipe:
    """An image orch builds itself: the gateway of an openclaw version, or its variant."""

    version: str
    browser: bool


def recipe_of(tag: str) -> Recipe | None:
    """How orch builds `tag`, or None when it does not: only its own two images,
    `orch/openclaw-gateway:VERSION` and `...:VERSION-browser`, for an npm version of
    openclaw (a tag such as `orch/openclaw-gateway:mine` is someone else's)."""
    repo, _, ref = tag.partition(":")
    if repo != GATEWAY_REPO:
        return None
    browser = ref.endswith(BROWSER_SUFFIX)
    version = ref.removesuffix(BROWSER_SUFFIX) if browser else ref
    if not _VERSION_RE.fullmatch(version) or version.endswith(BROWSER_SUFFIX):
        return None
    return Recipe(version, browser)


def base_context_hash() -> str:
    """Same rule as images/base/build.sh: sha256 of the script itself, 16 hex digits."""
    return hashlib.sha256(BASE_SCRIPT.read_bytes()).hexdigest()[:16]


def _labels(info: dict | None) -> dict[str, str]:
    return ((info or {}).get("Config") or {}).get("Labels") or {}


def _size(tag: str) -> int:
    return int((inspect_image(tag) or {}).get("Size") or 0)


def _build_offline_base(force: bool, progress: Progress | None) -> ImageResult:
    """orch/debian:bookworm from debootstrap (images/base/build.sh), unless current."""
    t0 = time.monotonic()
    info = inspect_image(OFFLINE_BASE)
    if info is not None and not force and _labels(info).get(HASH_LABEL) == base_context_hash():
        return ImageResult(OFFLINE_BASE, "current", time.monotonic() - t0, int(info["Size"]))
    if os.geteuid() != 0:
        raise ImageError(
            f"no base image: {UPSTREAM_BASE} cannot be pulled and building {OFFLINE_BASE} "
            "with debootstrap needs root",
            hint=f"run `sudo orch images build` once, or `docker load` a {UPSTREAM_BASE} image",
        )
    for line in ensure_debootstrap():
        if progress:
            progress(line)
    run_logged(["sh", str(BASE_SCRIPT), OFFLINE_BASE], "base image build", progress)
    return ImageResult(OFFLINE_BASE, "built", time.monotonic() - t0, _size(OFFLINE_BASE))


def _ensure_base(force: bool, progress: Progress | None) -> ImageResult:
    """Pick the base: upstream slim if present or pullable, else the offline one."""
    t0 = time.monotonic()
    info = inspect_image(UPSTREAM_BASE)
    if info is not None:
        return ImageResult(UPSTREAM_BASE, "current", time.monotonic() - t0, int(info["Size"]))
    if try_pull(UPSTREAM_BASE, progress):
        return ImageResult(UPSTREAM_BASE, "pulled", time.monotonic() - t0, _size(UPSTREAM_BASE))
    if progress:
        progress(f"no {UPSTREAM_BASE}: using the offline base {OFFLINE_BASE}")
    return _build_offline_base(force, progress)


def _prepare_context(version: str, progress: Progress | None) -> None:
    """Node 24 + openclaw into images/gateway/.build (cached by prepare.sh itself)."""
    if not shutil.which("npm"):
        raise ImageError(
            "npm is needed on this host to prepare the gateway image",
            hint="install Node.js and npm (e.g. `apt-get install -y nodejs npm`)",
        )
    run_logged(
        ["sh", str(PREPARE_SCRIPT), version, NODE_VERSION], "npm install of openclaw", progress
    )


def build_images(
    force: bool = False,
    progress: Progress | None = None,
    version: str = OPENCLAW_VERSION,
) -> list[ImageResult]:
    """Make sure the gateway image (and its base) exist and are current.

    Returns one ImageResult per image looked at: only the gateway when it is current
    (the fast path, ~0.1 s), else base + gateway. `force` rebuilds what orch builds
    itself (offline base and gateway) with no layer cache. Raises ImageError (with
    the tail of the build log) on failure.
    """
    t0 = time.monotonic()
    tag = gateway_tag(version)
    want = gateway_context_hash(version)
    old = inspect_image(tag)
    if old is not None and not force and _labels(old).get(HASH_LABEL) == want:
        return [ImageResult(tag, "current", time.monotonic() - t0, int(old["Size"]))]
    # One build at a time (two orch processes, parallel tests): the second waits, then
    # finds the image current instead of clobbering the shared .build dir.
    with exclusive(BUILD_LOCK):
        old = inspect_image(tag)
        if old is not None and not force and _labels(old).get(HASH_LABEL) == want:
            return [ImageResult(tag, "current", time.monotonic() - t0, int(old["Size"]))]
        return _build(tag, want, force, progress, version)


def _build(
    tag: str, want: str, force: bool, progress: Progress | None, version: str
) -> list[ImageResult]:
    """The slow path of build_images, under its lock."""
    results = [_ensure_base(force, progress)]
    base = results[0].tag
    t1 = time.monotonic()
    _prepare_context(version, progress)
    cmd = [
        "docker", "build", "--force-rm",
        "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"OPENCLAW_VERSION={version}",
        "--build-arg", f"ORCH_CONTEXT_HASH={want}",
        "--label", f"orch.image.base={base}",
        "-t", tag,
    ]  # fmt: skip
    if force:
        cmd.append("--no-cache")
    run_logged([*cmd, str(GATEWAY_DIR)], f"docker build of {tag}", progress)
    new = inspect_image(tag)
    if new is None or _labels(new).get(HASH_LABEL) != want:
        raise ImageError(f"docker build of {tag} finished but the image is not labelled {want}")
    prune_replaced()
    results.append(ImageResult(tag, "built", time.monotonic() - t1, int(new["Size"])))
    return results


def build_browser_image(
    force: bool = False,
    progress: Progress | None = None,
    version: str = OPENCLAW_VERSION,
) -> list[ImageResult]:
    """The gateway image (as build_images) and then its browser variant, each skipped
    when current. The variant is FROM the local gateway tag: apt in the build fetches
    Debian's headless Chromium from the mirror, no registry involved."""
    results = build_images(force=force, progress=progress, version=version)
    return [*results, _ensure_browser(force, progress, version)]


def _ensure_browser(force: bool, progress: Progress | None, version: str) -> ImageResult:
    """The browser variant FROM the gateway tag of `version` as it is here, unless
    current."""
    t0 = time.monotonic()
    tag, want = browser_tag(version), browser_context_hash(version)

    def current() -> ImageResult | None:
        info = inspect_image(tag)
        if info is not None and not force and _labels(info).get(HASH_LABEL) == want:
            return ImageResult(tag, "current", time.monotonic() - t0, int(info["Size"]))
        return None

    done = current()
    if done is None:
        with exclusive(BUILD_LOCK):
            done = current() or _build_browser(tag, want, force, progress, version)
    return done


def refuse_unbuildable(images: list[str], users: dict[str, list[str]] | None = None) -> None:
    """ImageError when orch has no recipe for one of `images` (missing from the engine);
    `users` names the profiles that run each image."""
    unknown = [tag for tag in images if recipe_of(tag) is None]
    if unknown:
        profiles = [p for tag in unknown for p in (users or {}).get(tag, [])] or ["NAME"]
        who = f" (profile {', '.join(profiles)})" if users else ""
        raise ImageError(
            f"image {', '.join(unknown)}{who} is not on this engine and orch cannot build it"
            f" (it builds {GATEWAY_REPO}:VERSION and VERSION{BROWSER_SUFFIX}); nothing"
            " was created",
            hint="load it into the engine (`docker load -i FILE`), or give the profile an"
            f" image orch builds: `orch setup {profiles[0]} --image {gateway_tag()} --force`",
        )


def build_missing(images: list[str], progress: Progress | None = None) -> list[ImageResult]:
    """What `orch up` does for images missing from the engine, as Compose builds on
    `up`: build each one orch has a recipe for (`recipe_of`); raise ImageError, with
    nothing built, when one of them has none. Only what is missing is built: a browser
    variant is built FROM the gateway tag that is here, current or not (`orch images
    build` is what brings stale images up to date)."""
    refuse_unbuildable(images)
    results: list[ImageResult] = []
    for tag in images:
        recipe = recipe_of(tag)
        assert recipe is not None
        if progress:
            progress(f"{tag} is not on this engine: building it")
        if not recipe.browser:
            results += build_images(progress=progress, version=recipe.version)
        elif inspect_image(gateway_tag(recipe.version)) is not None:
            results.append(_ensure_browser(False, progress, recipe.version))
        else:
            results += build_browser_image(progress=progress, version=recipe.version)
    return results


def _build_browser(
    tag: str, want: str, force: bool, progress: Progress | None, version: str
) -> ImageResult:
    t0 = time.monotonic()
    cmd = [
        "docker", "build", "--force-rm",
        "--build-arg", f"GATEWAY_IMAGE={gateway_tag(version)}",
        "--build-arg", f"ORCH_CONTEXT_HASH={want}",
        "-t", tag,
    ]  # fmt: skip
    if force:
        cmd.append("--no-cache")
    run_logged([*cmd, str(BROWSER_DIR)], f"docker build of {tag}", progress)
    new = inspect_image(tag)
    if new is None or _labels(new).get(HASH_LABEL) != want:
        raise ImageError(f"docker build of {tag} finished but the image is not labelled {want}")
    prune_replaced()
    return ImageResult(tag, "built", time.monotonic() - t0, int(new["Size"]))


def _status_row(tag: str, role: str, info: dict | None, current: bool | None) -> dict:
    labels = _labels(info)
    return {
        "tag": tag,
        "role": role,
        "present": info is not None,
        "current": current,
        "size": int(info["Size"]) if info else 0,
        "created": info.get("Created") if info else None,
        "version": labels.get(VERSION_LABEL),
        "context_hash": labels.get(HASH_LABEL),
    }


def fleet_wants_browser(home: Path) -> bool:
    """A profile of the fleet in `home` runs the browser variant of orch's gateway
    image. No fleet file, or one that does not load, wants nothing: the images never
    depend on it (`orch check` reports the file)."""

    try:
        fleet = load_fleet(home)
    except OrchError:
        return False
    return any(p.effective_image == BROWSER_IMAGE for p in fleet.profiles.values())


def wants_browser_build(home: Path, version: str = OPENCLAW_VERSION) -> bool:
    """What `orch images build` does about the browser variant when not told: build it
    for a fleet that needs it, and keep it current once it is here."""
    return fleet_wants_browser(home) or inspect_image(browser_tag(version)) is not None


def image_status(version: str = OPENCLAW_VERSION, browser: bool = False) -> list[dict]:
    """For `doctor`: the images orch needs, present or not, size, current or stale.

    Always the gateway row. A base row only when it matters: while the gateway is
    missing or stale, the base the builder would use (upstream slim if present, else
    the offline one, present or not); once the gateway is current, a base is listed
    only if present (informative, never a problem). The browser variant's row when
    `browser` (the fleet needs it) or when it is here. So every row with
    `present and current` false is something `orch images build` will fix.
    `current` is None for an absent image; the upstream base, when present, is current.
    """
    tag = gateway_tag(version)
    gw = inspect_image(tag)
    gw_current = gw is not None and _labels(gw).get(HASH_LABEL) == gateway_context_hash(version)
    rows = [_status_row(tag, "gateway", gw, None if gw is None else gw_current)]
    variant = inspect_image(browser_tag(version))
    if browser or variant is not None:
        fresh = _labels(variant).get(HASH_LABEL) == browser_context_hash(version)
        current = None if variant is None else fresh
        rows.append(_status_row(browser_tag(version), "browser", variant, current))
    upstream = inspect_image(UPSTREAM_BASE)
    if upstream is not None:
        rows.append(_status_row(UPSTREAM_BASE, "base", upstream, True))
        return rows
    offline = inspect_image(OFFLINE_BASE)
    if offline is not None or not gw_current:
        current = (
            None if offline is None else _labels(offline).get(HASH_LABEL) == base_context_hash()
        )
        rows.append(_status_row(OFFLINE_BASE, "base", offline, current))
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python3 -m orchestrator.host.images [--force] [--status]`: build without orch's CLI."""
    args = sys.argv[1:] if argv is None else argv
    try:
        for line in ensure_engine():
            print(line)
        if "--status" in args:
            print(json.dumps(image_status(), indent=2))
            return 0
        for r in build_images(force="--force" in args, progress=print):
            print(json.dumps(asdict(r)))
    except OrchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
