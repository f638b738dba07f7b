"""The CLI's parsers of values with a range: seconds to wait, counts, ages, image
references. One parser per kind, so every option of that kind takes the same range
and says the same thing when a value is out of it ("inf", "nan", -1, 0): click's
usage error, exit 2, before the command does anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

import typer

#: The longest wait any command takes: a day. More is a typo or a unit mistake, and
#: inf would never end.
MAX_WAIT_S = 86_400.0
#: The oldest --older-than that means something: ten years.
MAX_AGE_S = 3650 * 86_400.0
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise typer.BadParameter(f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return number


def seconds(value: Any) -> float:
    """Seconds to wait: more than 0, at most a day."""
    number = _number(value)
    if not 0 < number <= MAX_WAIT_S:
        raise typer.BadParameter(
            f"{value} is out of range: give more than 0 and at most {MAX_WAIT_S:.0f} seconds"
            " (e.g. 120)"
        )
    return number


def count(low: int, high: int, example: int) -> Callable[[Any], int]:
    """A parser of whole numbers from `low` to `high`."""

    def parse(value: Any) -> int:
        number = _number(value)
        if number != int(number) or not low <= number <= high:
            raise typer.BadParameter(
                f"{value} is out of range: give a whole number from {low} to {high}"
                f" (e.g. {example})"
            )
        return int(number)

    return parse


#: The most cores a CPU limit may name: more is a typo (Docker refuses a limit above
#: the host's CPU count anyway, and `orch up` says so before creating anything).
MAX_CORES = 1024.0


def cores(value: Any) -> float:
    """A CPU limit in cores: 0 (no limit) or from 0.01 to 1024."""
    number = _number(value)
    if not (number == 0 or 0.01 <= number <= MAX_CORES):
        raise typer.BadParameter(
            f"{value} is out of range: give 0 (no limit) or from 0.01 to {MAX_CORES:.0f} cores"
            " (e.g. 1.5)"
        )
    return number


def age(value: Any) -> float:
    """An age: '90s', '30m', '2h', '1d' or plain seconds, from 0 to ten years."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not match:
        raise typer.BadParameter(f"{str(value)[:40]!r} is not an age: use e.g. 90s, 30m, 2h or 1d")
    number = float(match.group(1)) * AGE_UNITS[match.group(2) or "s"]
    if not number <= MAX_AGE_S:  # also inf, from a number with hundreds of digits
        raise typer.BadParameter(f"{value} is out of range: at most {MAX_AGE_S / 86400:.0f}d")
    return number


def image_reference(value: Any) -> str:
    """An image reference Docker accepts (core.reference)."""
    # start-up: the reference grammar only when an image is given
    from orchestrator.core.reference import image_problem

    problem = image_problem(value)
    if problem:
        raise typer.BadParameter(f"{problem} (e.g. orch/openclaw-gateway:2026.9.6)")
    return value


Timeout = Annotated[
    float, typer.Option(parser=seconds, metavar="SECONDS", help="Seconds to wait for /readyz.")
]
