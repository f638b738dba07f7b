"""The gateway's config schema of an image, read once per image id and cached.

The schema is the gateway's own (`openclaw config schema`, draft-07, 2.4 MB) of the
very version the image runs. orch gets it from the image once: the file at
SCHEMA_PATH when the image carries one (copied out of a created, never started
container through the archive API), else one throwaway `openclaw config schema`
run with no network (a few seconds). It relaxes it (core.gateway_config.relax_schema)
and keeps the result in the user's cache dir under the image id, so every later
`orch check` reads a file and starts no container. An image id names its content:
a rebuilt image gets its own entry, and a stale schema is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.base.atomic import atomic_write
from orchestrator.core.gateway_config import relax_schema, schema_problems
from orchestrator.docker import api as docker_http
from orchestrator.docker.images import read_from_image
from orchestrator.errors import EngineUnavailable, ImageError, NotFound
from orchestrator.fleet.config_check import SchemaGap
from orchestrator.fleet.places import cache_dir

SCHEMA_PATH = "/usr/local/share/orch/openclaw-config.schema.json"


CACHE_VERSION = 1  # bump when relax_schema changes what a cached file holds


PASSED_KEPT = 256  # digests of configs that passed, per image


@dataclass
class GatewaySchema:
    """One image's gateway schema, as a validator built on first need.

    A config is a pure input: one that passed this very schema before (its sha256
    is in `passed_file`) passes again, so a no-op `orch up` or `orch check` needs
    neither jsonschema nor the 2.4 MB schema (0.12 s of every command otherwise).
    """

    image_id: str
    version: str
    make_validator: Callable[[], Any]  # -> a jsonschema.Draft7Validator
    passed_file: Path | None = None  # None: remember nothing (a unit test's schema)
    _validator: Any = field(default=None, init=False, repr=False)
    _passed: list[str] | None = field(default=None, init=False, repr=False)  # read once
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def problems(self, owner: str, file: str, text: str, data: Any) -> list:

        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if self._passed is None:
            self._passed = _read_passed(self.passed_file)
        if digest in self._passed:
            return []
        found = schema_problems(owner, file, text, data, self.validator(), self.version)
        if not found and self.passed_file is not None:
            self._passed = [*self._passed, digest][-PASSED_KEPT:]
            _store_passed(self.passed_file, self._passed)
        return found

    def validator(self) -> Any:
        with self._lock:
            if self._validator is None:
                self._validator = self.make_validator()
            return self._validator


def _read_passed(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(encoding="ascii").split()
    except (OSError, ValueError):
        return []


def _store_passed(path: Path, digests: list[str]) -> None:
    """Best effort, atomically: a lost entry only costs one more validation."""

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, "\n".join(digests) + "\n", mode=0o644)


def cache_file(image_id: str) -> Path:
    return cache_dir() / "gateway-schemas" / f"{image_id.split(':')[-1]}.v{CACHE_VERSION}.json"


_memo: dict[str, GatewaySchema | SchemaGap] = {}


_memo_lock = threading.Lock()


NO_ENGINE = SchemaGap(
    "no Docker engine answers (the schema is read from the gateway's image)",
    hint="start one (`orch engine start`), then run `orch check` again",
)


def without_engine(_image: str) -> SchemaGap:
    """What `orch check` uses when no engine answers: every config is unchecked."""
    return NO_ENGINE


def schema_for(image: str) -> GatewaySchema | SchemaGap:
    """The schema of `image`'s gateway; a SchemaGap when the engine or the image is
    not there (then `orch up` refuses the missing image anyway, and `orch check`
    reports the config as not checked against a schema). Not there is asked again: `orch
    up` builds a missing image and then checks each config against its schema."""
    with _memo_lock:
        if not isinstance(_memo.get(image), GatewaySchema):
            _memo[image] = _load(image)
        return _memo[image]


def _load(image: str) -> GatewaySchema | SchemaGap:
    """The image's schema, read (or fetched and cached) only when a config must be
    validated; here only the image id is asked for."""

    try:
        info = docker_http.get(f"/images/{image}/json", timeout=5.0)
    except EngineUnavailable:
        return NO_ENGINE
    except NotFound:
        return SchemaGap(
            f"image {image} is not on this engine (the schema is read from it)",
            hint="build it (`orch images build` for orch's own images) or pull it,"
            " then run `orch check` again",
        )
    image_id = info["Id"]
    labels = (info.get("Config") or {}).get("Labels") or {}
    version = labels.get("org.opencontainers.image.version", "")
    path = cache_file(image_id)
    return GatewaySchema(
        image_id,
        version,
        lambda: _validator_of(image_id, path),
        passed_file=path.with_suffix(".passed"),
    )


def _validator_of(image_id: str, path: Path) -> Any:
    import jsonschema  # jsonschema (~60 ms): only when a config is checked against the schema

    try:
        relaxed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        relaxed = _relaxed(image_id)
        _store(path, relaxed)
    return jsonschema.Draft7Validator(relaxed)


def _relaxed(image_id: str) -> dict[str, Any]:

    raw = read_from_image(image_id, SCHEMA_PATH)
    try:
        schema = json.loads(raw)
    except ValueError as exc:
        raise ImageError(
            f"the gateway schema read from image {image_id[:19]} is not JSON"
            f" ({len(raw)} bytes read; {exc}); nothing was cached",
            hint="run the command again; if it persists, run `openclaw config schema` in the"
            " image by hand (`docker run --rm --entrypoint openclaw IMAGE config schema`)"
            " and report what it prints",
        ) from None
    if not isinstance(schema, dict):
        raise ImageError(
            f"the gateway schema read from image {image_id[:19]} is not a JSON object",
            hint="is it an OpenClaw gateway image? `orch images build` builds orch's own",
        )
    return relax_schema(schema)


def _store(path: Path, relaxed: dict[str, Any]) -> None:
    """Written atomically; an unwritable cache only costs the next check a copy."""

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(relaxed, separators=(",", ":")), mode=0o644)
    except OSError:
        pass
