"""Helpers of the Batch tests: run a scheduler in a thread, wait for a worker's marker."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any


def wait_for(path: Path, seconds: float = 60.0) -> None:
    """Wait until a task running in a worker process created `path`."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `fn(*args)` in a thread; the dict gets its "value" or its "error"."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result
