"""Each profile's `openclaw.json` read from disk and checked (core.gateway_config).

Here, not in core, because it reads files; the schema comes in as a function so
this layer never talks to the engine (host.gateway_schema provides it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from orchestrator.core.check import Unchecked
from orchestrator.core.gateway_config import (
    credentials,
    managed_problems,
    shared_credential_problems,
)
from orchestrator.core.model import Fleet, Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.core.problem import Problem
from orchestrator.core.spec import ContainerSpec, render
from orchestrator.fleet.openclaw_config import managed_config


class SchemaGap(NamedTuple):
    """Why an image's gateway schema cannot be had now (no engine, no such image),
    and what makes it available: the config is then reported as not checked."""

    why: str
    hint: str


# image ref -> an object with .problems(owner, file, text, data), or a SchemaGap
SchemaOf = Callable[[str], Any]
SpecOf = Callable[[Profile], ContainerSpec]  # a profile -> its rendered spec


@dataclass
class ConfigReport:
    problems: list[Problem] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)


def parse(text: str) -> Any:
    """JSON5 as the gateway reads it (plain JSON first: it is what orch writes, fast)."""
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            import json5  # json5 is slow to import: only when an openclaw.json is read

            return json5.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def config_problems(
    fleet: Fleet, home: Path, schema_of: SchemaOf | None = None, spec_of: SpecOf | None = None
) -> list[Problem]:
    return config_report(fleet, home, schema_of, spec_of).problems


def config_report(
    fleet: Fleet, home: Path, schema_of: SchemaOf | None = None, spec_of: SpecOf | None = None
) -> ConfigReport:
    """Per profile: its config parses, matches the gateway's schema (`schema_of`; a
    SchemaGap it returns makes the config `unchecked` against it; None: no schema
    asked for), agrees with the keys orch manages; then across profiles: no
    credential held by two. A missing file is file_problems' to report. `spec_of`:
    the profile's rendered spec, when the caller has it already (the fleet handle)."""
    problems: list[Problem] = []
    unchecked: list[Unchecked] = []
    found = []
    files: dict[str, str] = {}
    for profile in fleet.select(None):
        path = profile_dirs(profile, home).config_file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        files[profile.name] = str(path)
        try:
            data = parse(text)
        except ValueError as exc:
            problems.append(_unparsable(profile.name, path, exc))
            continue
        if not isinstance(data, dict):
            problems.append(_unparsable(profile.name, path, ValueError("not a JSON object")))
            continue
        schema = schema_of(profile.image) if schema_of else None
        if isinstance(schema, SchemaGap):
            unchecked.append(_not_against_schema(profile.name, path, schema))
            schema = None
        invalid = schema.problems(profile.name, str(path), text, data) if schema else []
        managed = managed_problems(profile.name, str(path), text, data, managed_config(profile))
        said = {p.key for p in invalid}  # one problem per key: the schema's says it first
        problems += invalid + [p for p in managed if p.key not in said]
        spec = spec_of(profile) if spec_of else render(profile, fleet, home)
        found += credentials(profile.name, text, data, _host_path(spec))
    rescues = {p.name: p.rescues for p in fleet.profiles.values()}
    problems += shared_credential_problems(found, files, rescues)
    return ConfigReport(problems, unchecked)


def _not_against_schema(owner: str, path: Path, gap: SchemaGap) -> Unchecked:
    return Unchecked(
        what=f"{owner} {path} against the gateway's schema",
        why=gap.why,
        hint=gap.hint,
        owners=(owner,),
        file=str(path),
    )


def _unparsable(owner: str, path: Path, exc: Exception) -> Problem:
    return Problem(
        code="config-unparsable",
        message=f"{owner} {path} is not valid JSON5: {exc}",
        owners=(owner,),
        hint="fix the file (comments and trailing commas are fine), or move it away and"
        f" run `orch setup {owner} --force` for a fresh one",
        paths=(str(path),),
        file=str(path),
    )


def _host_path(spec: ContainerSpec) -> Callable[[str], str | None]:
    """A container path -> the host dir it is, through the profile's mounts; None for
    a path inside the container's own filesystem (private to it)."""
    mounts = [(PurePosixPath(m.target), m.source) for m in spec.mounts]

    def resolve(container_path: str) -> str | None:
        p = PurePosixPath(container_path)
        for target, source in mounts:
            if p == target or target in p.parents:
                return str(Path(source, p.relative_to(target)))
        return None

    return resolve
