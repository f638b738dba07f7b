"""Writing an export: whole or not at all, never over a directory."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.base.atomic import atomic_write
from orchestrator.errors import ExportError, UsageError


def write_export(text: str, output: Path) -> Path:
    """Write the export whole or not at all (temp file + rename in the same dir).

    A missing dir is an error rather than created: an export should change
    nothing but the one file the user named.
    """
    path = Path(os.path.abspath(output))
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory", hint="name a file: -o FILE")
    if not path.parent.is_dir():
        raise ExportError(
            f"cannot write {path}: {path.parent} is not an existing directory; nothing was written",
            hint="create the directory first, or choose another path (-o - prints)",
        )

    try:
        atomic_write(path, text)
    except OSError as exc:
        raise ExportError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was written",
            hint="choose a writable path, or -o - to print to stdout",
        ) from None
    return path
