"""A few calls at once, each on a thread: what a snapshot asks the engine (two to
four list calls), `up`'s gate beside its snapshot. Plain threads, not
concurrent.futures, whose import pulls in logging and queue (~3-5 ms) on `orch
check`, which runs nothing else at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run every call at once (the first on this thread) and wait for all; their
    results in order. The first error (in the order of `calls`) is raised once all
    have ended, as ThreadPoolExecutor's `result()` would."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # handed to the caller's thread
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, len(calls))]
    for thread in threads:
        thread.start()
    run(0)
    for thread in threads:
        thread.join()
    error = next((e for e in errors if e is not None), None)
    if error is not None:
        raise error
    return results
