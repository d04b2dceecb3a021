"""Keep native libraries' start-up log off the terminal (unless `--verbose`).

MediaPipe, TFLite and absl write lines such as "WARNING: Logging before InitGoogle() is written to
STDERR", "W0000 … inference_feedback_manager.cc:121] …" and "INFO: Created TensorFlow Lite XNNPACK
delegate for CPU." straight to file descriptor 2 from C++, where no Python logging setting reaches them
(GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL are not read by these builds). So fd 2 becomes a pipe whose
lines a thread forwards to the terminal, less those; Python's own `sys.stderr` writes to the terminal
directly, so errors, warnings and tracebacks are never delayed or lost.
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from collections.abc import Iterator

# absl/glog INFO and WARNING lines ("I0000 00:00:…", "W1206 12:00:…  1234 file.cc:12] …"), absl's
# pre-initialisation notice, and TFLite/LiteRT "INFO: …" lines. Errors (E…, F…) and anything else pass.
NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] |WARNING: Logging before InitGoogle\(\)"
                   rb"|WARNING: All log messages before absl::InitializeLog\(\)|INFO: )")


def hide_native_noise() -> None:
    """From now on, drop NOISE lines written to file descriptor 2 by native code; everything else is kept."""
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr.flush()
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace",
                      closefd=False)
    forwarder = threading.Thread(target=_forward, args=(read_end, terminal), name="stderr-filter", daemon=True)
    forwarder.start()

    def restore() -> None:                  # at exit: end the pipe, pass on what is still in it
        os.dup2(terminal, 2)
        forwarder.join(timeout=1.0)

    atexit.register(restore)


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
