"""MediaPipe Tasks objects (landmarker, segmenter) are closed by us, never by the garbage collector.

A task left to the collector closes itself from `__del__` through MediaPipe's dispatcher thread pool: that can
deadlock (seen when a collection ran inside an import) and, at interpreter exit, prints a traceback. So every
task is held here from creation to `close`, and those still open are closed as the interpreter starts to shut
down — before thread pools refuse work, as concurrent.futures itself does."""
from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  (registers its exit hook first, so ours runs before it)
import threading
from typing import Any

_open: set[Any] = set()
_lock = threading.Lock()


def opened(task: Any) -> Any:
    """Hold `task` until `close(task)` or the interpreter's shutdown; returns it."""
    with _lock:
        _open.add(task)
    return task


def close(task: Any) -> None:
    with _lock:
        _open.discard(task)
    task.close()


def _close_all() -> None:
    with _lock:
        tasks = list(_open)
        _open.clear()
    for task in tasks:
        task.close()


getattr(threading, "_register_atexit", atexit.register)(_close_all)
