"""The fleet file on disk: where it lives, reading it with precise errors, and
writing it so that concurrent `orch` processes never lose each other's changes.

Writes go to a temp file in the same dir and are renamed over the old one, so a
crash never leaves a half-written fleet. A lock file serialises read-modify-write.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Collection, Hashable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.base.atomic import atomic_write
from orchestrator.base.host import default_home
from orchestrator.base.locks import exclusive_in
from orchestrator.core.model import DEFAULT_PROJECT, Fleet
from orchestrator.errors import FleetFileError
from orchestrator.fleet.registry import publish_fleet

FLEET_FILE = "fleet.yaml"
LOCK_FILE = ".fleet.lock"
CACHE_FILE = ".fleet.cache.json"
LAST_GOOD_FILE = ".fleet.last-good.yaml"
HEADER = (
    "# orch fleet file: one entry per gateway profile. Edit by hand or with `orch setup`.\n"
    "# Run `orch check` after editing; `orch schema` prints the JSON schema.\n"
)


def orch_home() -> Path:
    """$ORCH_HOME, else the default home."""
    env = os.environ.get("ORCH_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return default_home()


def default_project(home: Path) -> str:
    """The project of a fleet file that names none: `orch` in the default home (as
    always), else one derived from the home, readable and stable, so two fleets on
    one host never share container names by default ("ci-home-3f9a2c")."""
    if home == default_home():
        return DEFAULT_PROJECT
    return _derived_project(home)


def _derived_project(home: Path) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", home.name.lower()).strip("-_")[:20].strip("-_")
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:6]
    return f"{slug or 'fleet'}-{digest}"


def free_project(home: Path, in_use: Collection[str]) -> str:
    """The project the first fleet file of `home` gets: its default when no other
    fleet of the host uses it, else the one derived from the home ("orch-3f9a2c" for
    a second user's default home), else that with a number. Two default homes (two
    users, two HOMEs) would otherwise both name their containers orch-NAME, and the
    second `orch up` would be refused."""
    derived = _derived_project(home)
    for candidate in dict.fromkeys([default_project(home), derived]):
        if candidate not in in_use:
            return candidate
    number = 2
    while f"{derived}-{number}" in in_use:
        number += 1
    return f"{derived}-{number}"


def fleet_path(home: Path) -> Path:
    return home / FLEET_FILE


# libyaml's parser when PyYAML has it: about 5x faster on a 10,000-profile fleet.
@functools.cache
def _yaml_loader() -> Any:
    """A YAML loader (libyaml's when present) that refuses duplicate keys: PyYAML
    keeps the last one silently. Built on first use: most commands read the JSON
    cache and never import yaml."""
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        pass

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
    )
    return UniqueKeyLoader


def _construct_mapping(loader: Any, node: Any) -> dict[Any, Any]:
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            break  # construct_mapping below reports it, with its line
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key '{key}' (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node)


def load_fleet(home: Path) -> Fleet:
    """The fleet of `home`; an empty fleet when there is no file yet."""
    path = fleet_path(home)
    project = default_project(home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Fleet(project=project)
    except OSError as exc:
        raise FleetFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FleetFileError(
            f"{path}: line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}):"
            " the file is damaged",
            hint="restore the file from version control or a backup",
        ) from None
    doc = _cached_document(home, raw)
    if doc is not None:
        return _validate(doc, text, str(path), project)
    return parse_fleet(text, str(path), project)


def _cached_document(home: Path, raw: bytes) -> Any:
    """The parsed document of exactly these bytes, if orch wrote them last.

    Parsing YAML is the slowest step of every command on a large fleet (0.3 s for
    10,000 profiles, JSON 0.005 s). The cache is keyed by the file's hash, so a
    hand-edited file always takes the full YAML path with its line-numbered errors.
    """
    try:
        cache = json.loads((home / CACHE_FILE).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(cache, dict) and cache.get("sha256") == hashlib.sha256(raw).hexdigest():
        return cache.get("document")
    return None


def parse_fleet(text: str, where: str, project: str = DEFAULT_PROJECT) -> Fleet:
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    try:
        doc = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        raise FleetFileError(
            f"{where}: {_yaml_position(exc)}not valid YAML: {_yaml_reason(exc)}",
            hint="fix the line above, or restore the file from version control",
        ) from None
    except RecursionError:
        raise FleetFileError(
            f"{where}: not a fleet file: its YAML is nested too deeply to read",
            hint="restore the file from version control or a backup",
        ) from None
    return _validate(doc, text, where, project)


def _validate(doc: Any, text: str, where: str, project: str = DEFAULT_PROJECT) -> Fleet:
    """`project`: the default for a file that names none."""
    if doc is None:
        return Fleet(project=project)
    if not isinstance(doc, dict):
        raise FleetFileError(
            f"{where}: line 1: the fleet file must be a mapping with 'version' and 'profiles'",
            hint="see `orch schema` for the format",
        )
    if "project" not in doc:
        doc = {**doc, "project": project}
    try:
        return Fleet.model_validate(doc)
    except ValidationError as exc:
        raise FleetFileError(
            f"{where}: invalid fleet file:\n" + "\n".join(_validation_lines(exc, text)),
            hint="fix these lines (see `orch schema`), then run `orch check`",
        ) from None


def _yaml_position(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def _yaml_reason(exc: Exception) -> str:
    return str(getattr(exc, "problem", None) or exc).strip()


def _validation_lines(exc: ValidationError, text: str) -> list[str]:
    """One line per error, each with the line of the file it points at."""
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    root = yaml.compose(text, Loader=_yaml_loader())
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        line = _line_of(root, loc)
        where = f"line {line}: " if line else ""
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}{dotted}: {message}")
    return lines


def _line_of(node: Any, loc: list[Any]) -> int | None:
    """Follow `loc` through the YAML node tree; the deepest line found."""
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def dump_fleet(fleet: Fleet) -> str:
    import yaml  # PyYAML (~20 ms): only when a fleet file is parsed or written

    body = yaml.safe_dump(fleet.to_document(), sort_keys=False, default_flow_style=False)
    return HEADER + body


def save_fleet(home: Path, fleet: Fleet) -> None:
    """The fleet file, written whole. The host registry first (a footprint recorded
    for a file that then failed to write only over-reserves until the next save);
    then the file itself, the commit point of every change; then what only helps:
    the cache and the last good copy, whose failure never fails a command."""
    text = dump_fleet(fleet)
    publish_fleet(home, fleet)
    atomic_write(fleet_path(home), text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cache = {"sha256": digest, "document": fleet.to_document()}
    with contextlib.suppress(OSError):
        atomic_write(home / CACHE_FILE, json.dumps(cache, separators=(",", ":")))
    if fleet.profiles:
        with contextlib.suppress(OSError):
            atomic_write(home / LAST_GOOD_FILE, text)


def last_good_fleet(home: Path) -> Fleet | None:
    """The last fleet file orch itself wrote (with at least one profile), if readable."""
    path = home / LAST_GOOD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        return parse_fleet(text, str(path), default_project(home))
    except FleetFileError:
        return None


def orphan_note(home: Path, name: str) -> str:
    """Why a container of this fleet has no profile, and what to do about it."""
    good = last_good_fleet(home)
    if good is not None and name in good.profiles:
        return (
            f"orphan: '{name}' is not in {home}/fleet.yaml but is in the last good copy"
            f" {home}/{LAST_GOOD_FILE}: was the file cut short? Restore it with"
            f" `cp {home}/{LAST_GOOD_FILE} {home}/fleet.yaml`, or remove the container"
            " with `orch down --remove-orphans`"
        )
    return (
        f"orphan: '{name}' is not in {home}/fleet.yaml; kept. `orch setup {name}` adopts it"
        " again, `orch down --remove-orphans` removes it"
    )


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """Hold the fleet lock: concurrent setups and ups wait for each other.

    The lock file needs its home; a home made here that holds nothing but the lock
    when the command is done (a failed first setup, `up` in a fresh home) is removed
    again, with the parents made for it: bad input leaves no trace.
    """
    with exclusive_in(home, LOCK_FILE):
        yield
