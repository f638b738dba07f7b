"""The one family of errors orch raises, every class of it, each kind with its exit code.

The CLI maps each kind to an exit code and prints `message` and `hint`; the core
never prints. Keeping one base class means callers (CLI, pytest plugin, users'
scripts) need a single `except OrchError`.

Exit codes by kind: 1 check failed (nothing changed), 2 bad input, 3 the engine
refused a request, 4 no engine, 5 not ready (or not running), 6 image, 130/143
interrupted.
"""

from __future__ import annotations


class OrchError(Exception):
    """Base of every error orch raises on purpose. `hint` says how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(OrchError):
    """Bad input on the command line or in the fleet file."""

    exit_code = 2


class FleetFileError(UsageError):
    """The fleet file cannot be read or does not validate."""


class UnknownProfileError(UsageError):
    """A profile name that is not in the fleet."""


class UnsafeDir(UsageError):
    """A dir orch will not use as asked: a system tree, a home, orch's own home, another
    user's dir, or one the gateway's user cannot write (without --chown). `problems`
    names each dir, what it resolves to and how to fix it."""

    def __init__(self, message: str, problems: list, hint: str = "") -> None:
        super().__init__(message, hint)
        self.problems = problems


class CheckFailed(OrchError):
    """The fleet (or the live host) has problems; nothing was changed."""

    exit_code = 1

    def __init__(self, message: str, problems: list, hint: str = "") -> None:
        super().__init__(message, hint)
        self.problems = problems


class EngineUnavailable(OrchError):
    """No Docker engine answers, or it cannot be started."""

    exit_code = 4


class EngineRefused(OrchError):
    """The engine answered, and said no (an API error other than "not found")."""

    exit_code = 3


class NotFound(EngineRefused):
    """The engine has no such object (HTTP 404): gone since it was listed, or never made."""


class NotReady(OrchError):
    """A gateway did not become ready in time."""

    exit_code = 5


class RolledBack(OrchError):
    """An upgrade or rollback that failed and was undone: the old container and its
    state are back. Exits with the code of what made it fail."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 5) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class ImageError(OrchError):
    """An image is missing or cannot be built."""

    exit_code = 6


class Interrupted(OrchError):
    """Ctrl-C (SIGINT) or SIGTERM stopped a command; `message` says what was done and
    what is left. Exit 130 or 143, as shells report a command killed by those signals."""

    exit_code = 130

    def __init__(self, message: str, hint: str = "", signum: int = 2) -> None:
        super().__init__(message, hint)
        self.exit_code = 128 + signum


class Terminated(BaseException):
    """Raised in the main thread by the CLI's SIGTERM handler, like KeyboardInterrupt
    for SIGINT: the core then rolls back or keeps what it did and raises Interrupted."""

    signum = 15


class Cancelled(OrchError):
    """Raised in a worker when the command was interrupted (Ctrl-C, SIGTERM)."""


class PortRefused(CheckFailed):
    """The engine refused a published port that the check found free: something took
    it in between (or holds it bound without listening)."""


class SwarmUnavailable(EngineUnavailable):
    """No swarm to deploy to: not initialised, not a manager, or no docker CLI."""


class StackTaken(OrchError):
    """The stack name is used by services that orch did not create for this fleet."""

    exit_code = 1


class ExportError(OrchError):
    """An export that cannot be written where the user asked."""

    exit_code = 2


# --- archives, backup keys and journals ----------------------------------------------


class ArchiveInvalid(OrchError):
    """An archive that does not verify: tampered, truncated, foreign or too new."""

    exit_code = 1


class BackupFailed(OrchError):
    """A backup that could not be taken (a file kept changing, the disk is full)."""

    exit_code = 1


class UnpackFailed(OrchError):
    """A good archive that could not be unpacked here (the disk is full, a permission)."""

    exit_code = 1


class ArchiveUnauthenticated(ArchiveInvalid):
    """An archive whose manifest does not carry a valid MAC of a key this home trusts."""


class KeyFileError(UsageError):
    """A key file that cannot be read, is not a key, or is readable by others."""


class JournalError(UsageError):
    """A journal that cannot be read or is not one of orch's."""


class OffsiteFailed(OrchError):
    """An S3 target that cannot be used as asked (unreachable endpoint, refused
    credentials, no such bucket or archive), or an upload or download that did not
    complete: nothing was counted as a backup, nothing of a profile was changed."""

    exit_code = 1
