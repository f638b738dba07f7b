"""The gateway's config checked before start (orchestrator/core/gateway_config.py):
schema problems with lines, orch's keys, credentials shared between profiles."""

from __future__ import annotations

import json

import jsonschema

from orchestrator.core.gateway_config import (
    credentials,
    dotted,
    key_lines,
    managed_problems,
    relax_schema,
    schema_problems,
    shared_credential_problems,
)

# A slice of openclaw 2026.9.6's schema, in its shape: enums as anyOf of consts,
# additionalProperties false, and `required` keys that have defaults (the trap).
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "gateway": {
            "type": "object",
            "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "mode": {"anyOf": [{"type": "string", "const": "local"}, {"const": "remote"}]},
                "bind": {"type": "string", "enum": ["auto", "lan", "loopback"]},
                "auth": {"type": "object", "properties": {"mode": {"type": "string"}}},
                "controlUi": {
                    "type": "object",
                    "properties": {
                        "allowedOrigins": {"type": "array", "items": {"type": "string"}}
                    },
                },
            },
            "additionalProperties": False,
        },
        "channels": {
            "type": "object",
            "properties": {
                "telegram": {
                    "type": "object",
                    "properties": {
                        "botToken": {"type": "string"},
                        "dmPolicy": {"type": "string", "default": "pairing"},
                        "groupPolicy": {"type": "string", "default": "allowlist"},
                    },
                    "required": ["dmPolicy", "groupPolicy"],
                }
            },
        },
        "models": {"type": "object"},
        "agents": {"type": "object"},
    },
}

MANAGED = {
    "gateway": {
        "mode": "local",
        "port": 18789,
        "bind": "lan",
        "auth": {"mode": "token"},
        "controlUi": {"allowedOrigins": ["http://127.0.0.1:18789", "http://localhost:18789"]},
    },
    "agents": {"defaults": {"workspace": "/openclaw/workspace"}},
}

BROKEN = """// main, edited by hand
{
  gateway: {
    mode: 'bogus-mode',
    "port": "18789",   /* a string */
    bind: "lan",
    extra: true,
  },
}
"""


def validator(schema=SCHEMA):
    return jsonschema.Draft7Validator(relax_schema(schema))


def test_key_lines_follow_json5_comments_unquoted_keys_and_arrays() -> None:
    lines = key_lines(BROKEN)
    assert lines[("gateway",)] == 3
    assert lines[("gateway", "mode")] == 4
    assert lines[("gateway", "port")] == 5
    assert lines[("gateway", "extra")] == 7
    arr = key_lines('{\n "a": [\n  1,\n  {"b": 2}\n ]\n}')
    assert arr[("a", 1)] == 4 and arr[("a", 1, "b")] == 4


def test_schema_problems_name_file_line_key_and_message() -> None:
    import json5

    problems = schema_problems(
        "main", "/h/main/openclaw.json", BROKEN, json5.loads(BROKEN), validator(), "2026.9.6"
    )
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"gateway.mode", "gateway.port", "gateway"}
    mode = by_key["gateway.mode"]
    assert mode.line == 4 and mode.file == "/h/main/openclaw.json" and mode.owners == ("main",)
    assert mode.message.startswith("main openclaw.json:4 - gateway.mode: Invalid input:")
    assert '"local", "remote"' in mode.message and '"bogus-mode"' in mode.message
    port = by_key["gateway.port"]
    assert port.line == 5 and "expected integer, received string" in port.message
    assert "extra" in by_key["gateway"].message and by_key["gateway"].line == 3
    assert "2026.9.6" in mode.hint


def test_required_keys_with_defaults_are_relaxed() -> None:
    """The schema is of the config after defaults: telegram requires dmPolicy and
    groupPolicy, which a hand-written config leaves to their defaults."""
    data = {"channels": {"telegram": {"botToken": "x"}}}
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(data))
    assert not list(validator().iter_errors(data))
    assert SCHEMA["properties"]["channels"]["properties"]["telegram"]["required"]  # not mutated


def test_managed_keys_agree_with_the_profile() -> None:
    text = json.dumps(MANAGED, indent=2)
    assert managed_problems("main", "/c/openclaw.json", text, MANAGED, MANAGED) == []


def test_managed_keys_that_disagree_are_named_with_the_fix() -> None:
    config = json.loads(json.dumps(MANAGED))
    config["gateway"]["port"] = 18800
    config["gateway"]["bind"] = "loopback"
    del config["gateway"]["controlUi"]
    text = json.dumps(config, indent=2)
    problems = managed_problems("main", "/c/openclaw.json", text, config, MANAGED)
    keys = {p.key: p for p in problems}
    assert set(keys) == {"gateway.port", "gateway.bind", "gateway.controlUi.allowedOrigins"}
    assert keys["gateway.port"].line == 4 and "18800" in keys["gateway.port"].message
    assert "'loopback'" in keys["gateway.bind"].message
    assert "nothing can reach" in keys["gateway.bind"].message
    assert all("orch setup main --force" in p.hint for p in problems)


TELEGRAM = "123456789:AAE-very-secret-bot-token"
API_KEY = "sk-live-0123456789abcdef"


def config_with(token: str, key: str) -> str:
    return json.dumps(
        {
            "channels": {"telegram": {"botToken": token}},
            "models": {"providers": {"openai": {"apiKey": key}}},
        },
        indent=2,
    )


def test_two_profiles_sharing_a_bot_token_and_an_api_key_are_refused_without_the_values() -> None:
    found = []
    for owner in ("main", "rescue"):
        text = config_with(TELEGRAM, API_KEY)
        found += credentials(owner, text, json.loads(text))
    files = {"main": "/m/openclaw.json", "rescue": "/r/openclaw.json"}
    problems = shared_credential_problems(found, files, {"rescue": "main", "main": None})
    assert {p.key for p in problems} == {
        "channels.telegram.botToken",
        "models.providers.openai.apiKey",
    }
    for p in problems:
        assert p.code == "credential-shared" and p.owners == ("main", "rescue")
        assert "main openclaw.json:4" in p.message or "main openclaw.json:" in p.message
        assert "sha256:" in p.message
        assert "rescue rescues main" in p.hint and "copying main's channels" in p.hint
    everything = json.dumps([p.to_json() for p in problems])
    assert TELEGRAM not in everything and API_KEY not in everything
    assert "AAE-very" not in everything and "0123456789abcdef" not in everything


def test_own_credentials_placeholders_and_private_session_dirs_are_fine() -> None:
    a = config_with(TELEGRAM, "${OPENAI_API_KEY}")
    b = config_with("999:other-bot", "${OPENAI_API_KEY}")
    found = credentials("a", a, json.loads(a)) + credentials("b", b, json.loads(b))
    assert shared_credential_problems(found, {}) == []
    wa = json.dumps({"channels": {"whatsapp": {"accounts": {"x": {"authDir": "/tmp/wa"}}}}})
    private = credentials("a", wa, json.loads(wa), lambda _p: None)
    assert private == []


def test_the_same_session_dir_through_mounts_is_shared() -> None:
    wa = json.dumps({"channels": {"whatsapp": {"accounts": {"x": {"authDir": "/o/wa"}}}}})
    shared = "/host/main/config/wa"
    found = credentials("main", wa, json.loads(wa), lambda _p: shared)
    found += credentials("rescue", wa, json.loads(wa), lambda _p: shared)
    (problem,) = shared_credential_problems(found, {})
    assert problem.key == "channels.whatsapp.accounts.x.authDir"


def test_dotted_paths() -> None:
    assert dotted(("gateway", "controlUi", "allowedOrigins", 0)) == (
        "gateway.controlUi.allowedOrigins[0]"
    )
    assert dotted(()) == "(root)"


def test_a_config_with_nothing_to_place_is_not_scanned_for_lines(monkeypatch) -> None:
    """Lines are found only for what is reported: a clean config (every `orch up` and
    `orch check` of a converged fleet) costs no scan; one with a problem, one scan."""
    from orchestrator.core import gateway_config

    scans = []
    real = gateway_config.key_lines
    monkeypatch.setattr(gateway_config, "key_lines", lambda text: scans.append(1) or real(text))
    text = json.dumps(MANAGED, indent=2)
    validator = jsonschema.Draft7Validator(relax_schema(SCHEMA))
    assert managed_problems("main", "/c/openclaw.json", text, MANAGED, MANAGED) == []
    assert credentials("main", text, MANAGED) == []
    assert schema_problems("main", "/c/openclaw.json", text, MANAGED, validator) == []
    assert scans == []
    config = {**MANAGED, "gateway": {**MANAGED["gateway"], "port": 18800, "bind": "loopback"}}
    bad = json.dumps(config, indent=2)
    assert len(managed_problems("main", "/c/openclaw.json", bad, config, MANAGED)) == 2
    assert scans == [1]
