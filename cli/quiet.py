"""Keep native libraries' start-up log off the terminal (unless `--verbose`).

MediaPipe, TFLite and absl write lines such as "WARNING: Logging before InitGoogle() is written to
STDERR", "W0000 … inference_feedback_manager.cc:121] …" and "INFO: Created TensorFlow Lite XNNPACK
delegate for CPU." straight to file descriptor 2 from C++, where no Python logging setting reaches them
(GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL are not read by these builds). So fd 2 becomes a pipe whose
lines a thread forwards to the terminal, less those, while a command runs; Python's own `sys.stderr`
writes to the terminal directly, so errors, warnings and tracebacks are never delayed or lost.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# absl/glog INFO and WARNING lines ("I0000 00:00:…", "W1206 12:00:…  1234 file.cc:12] …"), absl's
# pre-initialisation notice, and TFLite/LiteRT "INFO: …" lines. Errors (E…, F…) and anything else pass.
NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] |WARNING: Logging before InitGoogle\(\)"
                   rb"|WARNING: All log messages before absl::InitializeLog\(\)|INFO: )")


@contextmanager
def native_noise_hidden() -> Iterator[None]:
    """While inside, drop NOISE lines written to file descriptor 2 by native code; everything else is kept.

    When `sys.stderr` writes to fd 2 it is pointed at the terminal directly for the while; when it is
    something else (a test capturing it), it is left alone.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr = sys.stderr
    if _on_fd2(python_stderr):
        sys.stderr = open(terminal, "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace",
                          closefd=False)
    forwarder = threading.Thread(target=_forward, args=(read_end, terminal), name="stderr-filter", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(terminal, 2)                  # the pipe's last writer is gone: the forwarder drains it and ends
        forwarder.join(timeout=1.0)
        if not forwarder.is_alive():          # (a child process may still hold the pipe: keep its target open)
            os.close(terminal)


def _on_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _forward(read_end: int, terminal: int) -> None:
    with open(read_end, "rb", buffering=0) as pipe:
        for line in _lines(pipe):
            if not NOISE.match(line):
                os.write(terminal, line)


def _lines(pipe) -> Iterator[bytes]:
    pending = b""
    while chunk := pipe.read(65536):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line + b"\n" for line in complete)
    if pending:
        yield pending
