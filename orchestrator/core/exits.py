"""What a gateway's exit code means, in the words `orch status` shows.

Pure: the codes are the gateway's own (78: it refused its configuration) and the
shell's convention for a process killed by a signal (128 + signal number).
"""

from __future__ import annotations

from typing import Any

MEANINGS = {
    0: "exited cleanly (stopped, or the engine went away)",
    1: "failed (an error at start-up or while running)",
    2: "failed: bad usage",
    78: "configuration error: the gateway refused its openclaw.json",
    126: "cannot run its command",
    127: "command not found in the image",
    130: "interrupted (SIGINT)",
    134: "aborted (SIGABRT)",
    137: "killed (SIGKILL)",
    139: "crashed (SIGSEGV)",
    143: "terminated (SIGTERM)",
}


def exit_meaning(code: int, oom_killed: bool = False) -> str:
    if oom_killed:
        return "killed by the kernel: out of memory (the profile's memory limit)"
    if code in MEANINGS:
        return MEANINGS[code]
    if code > 128:
        return f"killed by signal {code - 128}"
    return f"failed with exit code {code}"


ERROR_WORDS = ("error", "blocked", "fatal", "refus", "eacces", "failed", "cannot", "denied")


def last_error_line(log: str) -> str | None:
    """The last line of a log tail that reads like an error, trimmed."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if text and any(word in text.lower() for word in ERROR_WORDS):
            return text[:300]
    return None


def last_exit_code(events: list[dict[str, Any]]) -> int | None:
    dies = [e for e in events if e.get("Action") == "die"]
    if not dies:
        return None
    last = max(dies, key=lambda e: e.get("timeNano", 0))
    return int((last.get("Actor") or {}).get("Attributes", {}).get("exitCode", 0))
