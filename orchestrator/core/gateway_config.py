"""The gateway's own config (`openclaw.json`), checked before anything starts.

Pure: takes a profile's config text (and what it parses to), the gateway's JSON
schema and the keys orch manages, and returns Problems naming the file, the line,
the JSON path and the message. Three kinds:

- schema: the gateway's own JSON schema of the image's version (draft-07). It is
  the schema of the config AFTER defaults (`required` lists keys that have a
  default, e.g. channels.telegram.dmPolicy), so `relax_schema` drops those from
  `required` before a hand-written config is validated.
- managed keys: port, bind, auth mode, mode, workspace must be what orch set, or
  the gateway would listen where nothing is published, or not start at all.
- credentials: the same channel credential in two profiles makes the gateways
  fight over it (Telegram answers 409 to one; one WhatsApp session, one owner).
  Values are never part of a problem, only a short fingerprint.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from orchestrator.core.problem import Problem

JsonPath = tuple[str | int, ...]


def dotted(path: JsonPath) -> str:
    """`gateway.controlUi.allowedOrigins[0]`, the way the gateway names keys."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(root)"


# --- where a JSON path sits in JSON5 text -----------------------------------------


class _Scanner:
    """A small JSON5 reader that records the line of every value's key (or, for
    array items, of the value): enough to point a user at the line, without a
    second full parser. Malformed text stops the scan; lines found so far stay."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.lines: dict[JsonPath, int] = {}

    def _advance(self, n: int = 1) -> None:
        self.line += self.text.count("\n", self.i, self.i + n)
        self.i += n

    def _skip(self) -> None:
        t = self.text
        while self.i < len(t):
            c = t[self.i]
            if c in " \t\r\n\ufeff\u00a0\u2028\u2029":
                self._advance()
            elif t.startswith("//", self.i):
                end = t.find("\n", self.i)
                self._advance((len(t) if end < 0 else end) - self.i)
            elif t.startswith("/*", self.i):
                end = t.find("*/", self.i + 2)
                self._advance((len(t) if end < 0 else end + 2) - self.i)
            else:
                return

    def _string(self) -> str:
        quote = self.text[self.i]
        self._advance()
        out = []
        while self.i < len(self.text) and self.text[self.i] != quote:
            if self.text[self.i] == "\\":
                self._advance()
            out.append(self.text[self.i] if self.i < len(self.text) else "")
            self._advance()
        self._advance()
        return "".join(out)

    def _key(self) -> str:
        if self.text[self.i] in "\"'":
            return self._string()
        m = re.compile(r"[^\s:]+").match(self.text, self.i)
        if not m:
            raise ValueError("key expected")
        self._advance(m.end() - self.i)
        return m.group(0)

    def value(self, path: JsonPath) -> None:
        self._skip()
        if self.i >= len(self.text):
            raise ValueError("value expected")
        c = self.text[self.i]
        if c == "{":
            self._container(path, "}", keyed=True)
        elif c == "[":
            self._container(path, "]", keyed=False)
        elif c in "\"'":
            self._string()
        else:
            m = re.compile(r"[^,\]}\s/]+").match(self.text, self.i)
            if not m:
                raise ValueError("value expected")
            self._advance(m.end() - self.i)

    def _container(self, path: JsonPath, close: str, keyed: bool) -> None:
        self._advance()
        index = 0
        while True:
            self._skip()
            if self.i >= len(self.text):
                raise ValueError("unterminated")
            if self.text[self.i] == close:
                self._advance()
                return
            if keyed:
                line = self.line
                key = self._key()
                self._skip()
                if self.text[self.i : self.i + 1] != ":":
                    raise ValueError("':' expected")
                self._advance()
                child: JsonPath = (*path, key)
                self._skip()
                self.lines[child] = line
            else:
                child = (*path, index)
                self._skip()
                self.lines[child] = self.line
                index += 1
            self.value(child)
            self._skip()
            if self.text[self.i : self.i + 1] == ",":
                self._advance()


def key_lines(text: str) -> dict[JsonPath, int]:
    """The line of every JSON path in a JSON5 text; the root is line 1."""
    scanner = _Scanner(text)
    with contextlib.suppress(ValueError, IndexError):
        scanner.value(())
    scanner.lines[()] = 1
    return scanner.lines


def line_finder(text: str) -> Callable[[JsonPath], int]:
    """`line_of` in `text`, scanned on the first question only: most configs have
    nothing to place (no problem, no credential), and the scan is most of the
    time checking one takes."""
    lines: dict[JsonPath, int] | None = None

    def find(path: JsonPath) -> int:
        nonlocal lines
        if lines is None:
            lines = key_lines(text)
        return line_of(lines, path)

    return find


def line_of(lines: Mapping[JsonPath, int], path: JsonPath) -> int:
    """The line of `path`, else of its nearest parent that has one (a missing key
    is reported where its parent object starts)."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1


# --- the schema ------------------------------------------------------------------


def relax_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of the gateway's schema where a key that has a default is no longer
    required: the schema describes the config after defaults are applied, and a
    hand-written config (or orch's own minimal one) leaves them out."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            required = node.get("required")
            if isinstance(props, dict) and isinstance(required, list):
                kept = [
                    r
                    for r in required
                    if not (isinstance(props.get(r), dict) and "default" in props[r])
                ]
                if kept:
                    node["required"] = kept
                else:
                    node.pop("required")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def _consts(schema: Any) -> list[Any] | None:
    """The allowed values of an anyOf/oneOf of consts (how the schema spells enums)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return list(schema["enum"])
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options and all("const" in o for o in options):
        return [o["const"] for o in options]
    return None


def _message(error: Any) -> str:
    """The schema error in the gateway's words where we can: 'expected number,
    received string', the allowed values of an enum, the unknown key."""
    got = error.instance
    if error.validator in ("anyOf", "oneOf", "enum", "const"):
        allowed = _consts(error.schema) or (
            [error.validator_value] if error.validator == "const" else None
        )
        if allowed:
            shown = ", ".join(json.dumps(a) for a in allowed)
            return f"Invalid input: expected one of {shown}, received {json.dumps(got)}"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"Invalid input: expected {wanted}, received {_type_name(got)}"
    if error.validator == "additionalProperties":
        extra = sorted(set(got) - set(error.schema.get("properties", {})))
        return f"Unrecognized key(s): {', '.join(extra)}"
    if error.validator == "required":
        return f"Missing required key: {error.message.split(' ')[0]}"
    return error.message


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def schema_problems(
    owner: str, file: str, text: str, data: Any, validator: Any, version: str = ""
) -> list[Problem]:
    """Every place `data` breaks the gateway's schema (a jsonschema validator made
    from `relax_schema`), sorted by line, each naming file:line, the key, the message."""
    line_at = line_finder(text)
    found = []
    for error in validator.iter_errors(data):
        path: JsonPath = tuple(error.absolute_path)
        found.append((line_at(path), dotted(path), _message(error)))
    schema = f"the schema of openclaw {version}" if version else "the gateway's schema"
    return [
        Problem(
            code="config-invalid",
            message=f"{owner} {_short(file)}:{line} - {key}: {message}",
            owners=(owner,),
            hint=f"fix {file} line {line} ({key}); checked against {schema}",
            paths=(file,),
            file=file,
            line=line,
            key=key,
        )
        for line, key, message in sorted(set(found))
    ]


def _short(file: str) -> str:
    return file.rsplit("/", 1)[-1]


# --- the keys orch manages ---------------------------------------------------------


def _get(data: Any, path: JsonPath) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


_MISSING = object()


MANAGED_KEYS: tuple[JsonPath, ...] = (
    ("gateway", "mode"),
    ("gateway", "port"),
    ("gateway", "bind"),
    ("gateway", "auth", "mode"),
    ("agents", "defaults", "workspace"),
)


_WHY = {
    "gateway.mode": "any other mode does not start a gateway ('Gateway start blocked')",
    "gateway.port": "the container publishes and probes this port",
    "gateway.bind": "inside a container only a 'lan' bind is reachable through the"
    " published ports; 'loopback' starts a gateway nothing can reach",
    "gateway.auth.mode": "a non-loopback bind without token auth is refused at start-up,"
    " and the token comes from the profile's token file",
    "agents.defaults.workspace": "the profile's workspace is mounted there",
}


def managed_problems(
    owner: str, file: str, text: str, data: Any, managed: Mapping[str, Any]
) -> list[Problem]:
    """The keys orch manages that disagree with the profile (`managed` is what
    `orch setup` writes), and a control UI without the profile's allowed origins
    (the gateway refuses a non-loopback bind without them)."""
    line_at = line_finder(text)
    problems = []
    fix = f"`orch setup {owner} --force` writes orch's keys back (every other key is kept)"
    for path in MANAGED_KEYS:
        want = _get(managed, path)
        have = _get(data, path)
        if want is _MISSING or have == want:
            continue
        key = dotted(path)
        line = line_at(path)
        shown = "missing" if have is _MISSING else repr(have)
        problems.append(
            Problem(
                code="config-managed",
                message=(
                    f"{owner} {_short(file)}:{line} - {key} is {shown}, the profile needs"
                    f" {want!r}: {_WHY[key]}"
                ),
                owners=(owner,),
                hint=fix,
                paths=(file,),
                file=file,
                line=line,
                key=key,
            )
        )
    origins_path = ("gateway", "controlUi", "allowedOrigins")
    want_origins = _get(managed, origins_path)
    have_origins = _get(data, origins_path)
    if isinstance(want_origins, list) and (
        not isinstance(have_origins, list) or not set(want_origins) <= set(have_origins)
    ):
        line = line_at(origins_path)
        problems.append(
            Problem(
                code="config-managed",
                message=(
                    f"{owner} {_short(file)}:{line} - {dotted(origins_path)} lacks"
                    f" {', '.join(want_origins)}: without them a non-loopback gateway"
                    " refuses to start"
                ),
                owners=(owner,),
                hint=fix,
                paths=(file,),
                file=file,
                line=line,
                key=dotted(origins_path),
            )
        )
    return problems


# --- credentials shared between profiles ------------------------------------------

# Leaf keys that hold a credential in 2026.9.6's schema (channel bot tokens, API
# keys, passwords, webhook secrets) or name something one process owns (a
# WhatsApp session dir). Counters such as maxTokens are not credentials.
CREDENTIAL_KEYS = frozenset(
    k.lower()
    for k in [
        "token",
        "botToken",
        "appToken",
        "userToken",
        "accessToken",
        "refreshToken",
        "authToken",
        "channelAccessToken",
        "channelSecret",
        "verificationToken",
        "webhookSecret",
        "webhookToken",
        "outboundToken",
        "pushToken",
        "apiKey",
        "apiPassword",
        "appPassword",
        "appSecret",
        "botSecret",
        "clientSecret",
        "signingSecret",
        "encryptKey",
        "privateKey",
        "password",
        "secret",
        "authDir",
        "cdpUrl",
    ]
)


# Keys that are credentials only under one channel (a Signal number has one owner).
CHANNEL_ACCOUNT_KEYS = {"signal": "account"}


# Container paths that are the profile's own mounts: a session dir under them is
# the profile's own unless two profiles' mounts point to one host dir.
SESSION_KEYS = frozenset({"authdir"})


class Credential(NamedTuple):
    """One credential of one profile: where it sits and a digest of its value."""

    owner: str
    path: JsonPath
    line: int
    digest: str  # sha256 of the value: compared, and 8 hex digits shown

    @property
    def fingerprint(self) -> str:
        return f"sha256:{self.digest[:8]}"


def _credential_key(path: JsonPath) -> bool:
    leaf = path[-1] if path else ""
    if not isinstance(leaf, str):
        return False
    if leaf.lower() in CREDENTIAL_KEYS:
        return True
    return (
        len(path) >= 2 and path[0] == "channels" and CHANNEL_ACCOUNT_KEYS.get(str(path[1])) == leaf
    )


def _leaves(data: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, index))
    else:
        yield path, data


def credentials(
    owner: str,
    text: str,
    data: Any,
    host_path: Any = None,
) -> list[Credential]:
    """The credentials in one profile's config. Placeholders (`${VAR}`) and SecretRef
    objects are not values and are skipped; `host_path(container_path)` turns a
    session dir into the host dir it is (None: private to the container)."""
    line_at = line_finder(text)
    found = []
    for path, value in _leaves(data):
        if not _credential_key(path) or not isinstance(value, str):
            continue
        value = value.strip()
        if not value or value.startswith("${"):
            continue
        if str(path[-1]).lower() in SESSION_KEYS:
            resolved = host_path(value) if host_path else value
            if resolved is None:
                continue
            value = f"path:{resolved}"
        digest = hashlib.sha256(value.encode()).hexdigest()
        found.append(Credential(owner, path, line_at(path), digest))
    return found


def shared_credential_problems(
    found: Iterable[Credential],
    files: Mapping[str, str],
    rescues: Mapping[str, str | None] | None = None,
) -> list[Problem]:
    """Each credential held by two or more profiles, naming both profiles and both key
    paths, never the value. `files`: profile -> its config file; `rescues`: profile
    -> the profile it rescues (the usual way it happens: a rescue copied main's
    channels)."""
    by_digest: dict[str, list[Credential]] = {}
    for cred in found:
        by_digest.setdefault(cred.digest, []).append(cred)
    problems = []
    for creds in by_digest.values():
        owners = sorted({c.owner for c in creds})
        if len(owners) < 2:
            continue
        first = {o: next(c for c in creds if c.owner == o) for o in owners}
        where = "; ".join(
            f"{o} {_short(files.get(o, 'openclaw.json'))}:{c.line} {dotted(c.path)}"
            for o, c in first.items()
        )
        some = first[owners[0]]
        hint = "give each profile its own credential (one bot, key or session per gateway)"
        pairs = [(o, (rescues or {}).get(o)) for o in owners]
        copied = [(o, t) for o, t in pairs if t in owners]
        if copied:
            o, t = copied[0]
            hint = (
                f"{o} rescues {t}: a rescue bot made by copying {t}'s channels holds"
                f" {t}'s credentials; give {o} its own bot token or key, or remove the"
                f" channel from {o}'s config"
            )
        problems.append(
            Problem(
                code="credential-shared",
                message=(
                    f"{' and '.join(owners)} hold the same credential ({some.fingerprint}):"
                    f" {where}; two gateways with one credential fight over it"
                    " (Telegram answers 409 to one, a WhatsApp session has one owner)"
                ),
                owners=tuple(owners),
                hint=hint,
                paths=tuple(files[o] for o in owners if o in files),
                key=dotted(some.path),
            )
        )
    return problems
