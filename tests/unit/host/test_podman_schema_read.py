"""A gateway schema read out of an image that comes back cut (Podman's API ended a
followed log stream early: 12,755 of 2.4 MB) is a clear error, never a traceback,
and nothing is cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import ImageError
from orchestrator.host import gateway_schema


def test_a_schema_cut_short_is_a_clear_error_and_nothing_is_cached(
    tmp_path: Path, monkeypatch
) -> None:
    whole = json.dumps({"type": "object", "properties": {"gateway": {"type": "object"}}})
    monkeypatch.setattr(gateway_schema, "read_from_image", lambda *_: whole[:40].encode())
    cache = tmp_path / "schema.json"
    with pytest.raises(ImageError, match=r"is not JSON \(40 bytes read") as raised:
        gateway_schema._validator_of("sha256:" + "ab" * 32, cache)
    assert "sha256:abababababab" in raised.value.message and raised.value.hint
    assert not cache.exists()


def test_a_schema_that_is_not_an_object_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(gateway_schema, "read_from_image", lambda *_: b"[1, 2]")
    with pytest.raises(ImageError, match="not a JSON object"):
        gateway_schema._relaxed("sha256:" + "cd" * 32)
