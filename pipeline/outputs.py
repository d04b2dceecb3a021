"""Output files: check before any model loads that a path can be written, and say why not in one line."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import UserError

MIN_FREE_BYTES = 1024 * 1024        # less than this on the output's disk: not even a second of video fits


def write_error(exc: OSError) -> str:
    """The reason an OS-level write failed, without the path (the caller names it)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EFBIG:
        return "the file grew past the size this system allows"
    return exc.strerror or str(exc).splitlines()[0]


def check_output_path(path: str | os.PathLike, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """`path` as a Path if a file can be created there, else a UserError saying why (missing or read-only
    folder, no permission, a folder in the way, a full disk). Leaves nothing behind."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"output folder does not exist: {folder}")
    if path.is_dir():
        raise UserError(f"output {path} is a folder; give a file name")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".live3dpe-write-check-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {write_error(exc)}") from None
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise UserError(f"cannot write {path}: the disk is full ({free // 1024} KiB free)")
    return path
