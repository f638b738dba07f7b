"""Docker's image reference grammar (orchestrator/core/reference.py): what Docker
takes is taken as given, anything else is refused with what is wrong in it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.core.model import Profile
from orchestrator.core.reference import image_problem

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "ref",
    [
        "orch/openclaw-gateway:2026.9.6",
        "orch/openclaw-gateway:2026.9.6-browser",
        "ubuntu",
        "library/ubuntu:24.04",
        "localhost:5000/team/gateway:v1",
        "Registry.Example.com/team/gateway",  # a registry host may have capitals
        "[::1]:5000/gateway",
        "a__b/c---d/e.f_g",
        f"gateway@{DIGEST}",
        f"gateway:v1@{DIGEST}",
        DIGEST,  # an image id
    ],
)
def test_what_docker_accepts_is_accepted(ref: str) -> None:
    assert image_problem(ref) is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("UPPER CASE;rm -rf /", "' ', ';' are not allowed"),
        ("$(reboot)", "'$', '(', ')' are not allowed"),
        ("gateway\n", "'\\n' is not allowed"),
        ("Gateway", "the repository name must be lowercase"),
        ("orch/Gateway:1", "the repository name must be lowercase"),
        ("gateway@sha256:123", "what follows '@' is not a digest"),
        ("gateway:-1", "the tag '-1' is not one"),
        ("gateway:" + "t" * 129, "is not one (letters, digits, '_', '.', '-'; up to 128)"),
        ("a//b", "each part of a name is lowercase letters and digits"),
        ("-gateway", "each part of a name"),
        ("gateway:a:b", "each part of a name"),
        ("a" * 256, "the image name is 256 characters long; at most 255"),
        ("f" * 64, "64 hex digits: an image id is written sha256:ffffffffffff..."),
        ("", "cannot be empty"),
    ],
)
def test_what_docker_refuses_is_refused_saying_why(ref: str, expected: str) -> None:
    problem = image_problem(ref)
    assert problem is not None and expected in problem


def test_the_model_refuses_a_bad_image_with_the_same_message() -> None:
    with pytest.raises(ValidationError, match="'A;B' is not an image reference"):
        Profile(name="main", port=20000, image="A;B")
