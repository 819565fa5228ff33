"""Progress for work that takes seconds (importing a big wheel), shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Callable


def bar(label: str, stream=None) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback drawing one updating line, or None off a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    state = {"last": 0.0, "finished": False}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if state["finished"] or (done < total and now - state["last"] < 0.1):
            return
        state["finished"] = done >= total
        state["last"] = now
        width = 30
        filled = int(width * done / total) if total else width
        stream.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return progress
