#!/bin/sh
# Build orch/orch:VERSION, orch itself as an image (see Dockerfile); skipped when
# the image carries the hash of its inputs (orch's sources, pyproject.toml, README,
# this dir). Usage: images/orch/build.sh [--force]
#
# PYTHON: the interpreter whose pip builds the wheels (default python3).
# BASE_IMAGE: default debian:bookworm-slim when present on the engine, else
# orch/debian:bookworm (the offline base `orch images build` makes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/orchestrator/__init__.py")
tag="orch/orch:$version"

hash=$(cd "$repo" && { find orchestrator -name '*.py'; echo pyproject.toml; echo README.md;
    echo images/orch/Dockerfile; echo images/orch/build.sh; } | LC_ALL=C sort |
    xargs sha256sum | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{index .Config.Labels "orch.image.context-hash"}}' \
    "$tag" 2>/dev/null || true)
if [ "$current" = "$hash" ] && [ "${1:-}" != "--force" ]; then
    echo "$tag: current ($hash)"
    exit 0
fi

if [ -z "${BASE_IMAGE:-}" ]; then
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
        BASE_IMAGE=debian:bookworm-slim
    elif docker image inspect orch/debian:bookworm >/dev/null 2>&1; then
        BASE_IMAGE=orch/debian:bookworm
    else
        BASE_IMAGE=debian:bookworm-slim # pulled where a registry is reachable
    fi
fi

old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
rm -rf "$here/.build"
mkdir -p "$here/.build/deps" "$here/.build/orch"
"${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check \
    --wheel-dir "$here/.build/deps" "$repo"
mv "$here/.build/deps"/orch-*.whl "$here/.build/orch/"
DOCKER_BUILDKIT=0 docker build --quiet \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg ORCH_VERSION="$version" \
    --build-arg ORCH_CONTEXT_HASH="$hash" \
    --label orch.image.base="$BASE_IMAGE" \
    -t "$tag" "$here" >/dev/null
# The image this one replaced, unless a container still uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "$tag: built ($hash, base $BASE_IMAGE)"
