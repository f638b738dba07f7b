"""Docker's image reference grammar (distribution/reference), to refuse an image name
before it is stored in a fleet file or handed to the engine.

A reference that Docker would not parse ("UPPER CASE;rm -rf /") is never written
anywhere: the fleet file, `orch setup --image` and `orch upgrade --image` all take
only what matches. Pure: regular expressions and the grammar's length limits.
"""

from __future__ import annotations

import re

# The grammar of github.com/distribution/reference (regexp.go), in Python's syntax.
# Go's \w is ASCII only, hence re.ASCII.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

REFERENCE_RE = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
#: An image id as `docker images --no-trunc` shows it: the engine takes it wherever
#: it takes a reference.
IMAGE_ID_RE = re.compile(r"sha256:[a-f0-9]{64}")
NAME_MAX = 255  # distribution/reference: NameTotalLengthMax
_HEX64 = re.compile(r"[a-f0-9]{64}")


def image_problem(ref: str) -> str | None:
    """Why `ref` is not an image reference Docker accepts, in the user's terms; None
    when it is one (`orch/openclaw-gateway:2026.9.6`, `registry:5000/team/img@sha256:...`)."""
    if not isinstance(ref, str) or not ref:
        return "an image reference cannot be empty"
    if IMAGE_ID_RE.fullmatch(ref):
        return None
    match = REFERENCE_RE.fullmatch(ref)
    if match is None:
        return f"{_shown(ref)} is not an image reference: {_defect(ref)}"
    name = match.group("name")
    if len(name) > NAME_MAX:
        return f"the image name is {len(name)} characters long; at most {NAME_MAX} are allowed"
    if _HEX64.fullmatch(name):
        return f"{_shown(ref)} is 64 hex digits: an image id is written sha256:{name[:12]}..."
    return None


def validate_image(ref: str) -> str:
    problem = image_problem(ref)
    if problem:
        raise ValueError(problem)
    return ref


def _shown(ref: str) -> str:
    return repr(ref if len(ref) <= 80 else ref[:77] + "...")


def _defect(ref: str) -> str:
    """The first thing wrong with a reference that does not match the grammar."""
    bad = sorted({c for c in ref if not (c.isascii() and (c.isalnum() or c in "._-/:@[]+"))})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        return f"{shown} {'is' if len(bad) == 1 else 'are'} not allowed"
    name = ref.split("@", 1)[0]
    path = name.split("/", 1)[1] if "/" in name else name
    path = path.rsplit(":", 1)[0] if ":" in path else path
    if path.lower() != path:
        return "the repository name must be lowercase (a registry host may not be)"
    if "@" in ref and not re.fullmatch(_DIGEST, ref.split("@", 1)[1]):
        return "what follows '@' is not a digest (sha256: and at least 32 hex digits)"
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
    if tag is not None and not re.fullmatch(_TAG, tag, re.A):
        return f"the tag {tag[:40]!r} is not one (letters, digits, '_', '.', '-'; up to 128)"
    return (
        "each part of a name is lowercase letters and digits joined by '.', '_' or '-'"
        " (e.g. orch/openclaw-gateway:2026.9.6)"
    )
