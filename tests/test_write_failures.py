"""`live3dpe run` when its output cannot be written: a full disk (a small tmpfs, or a file-size limit where
mounting needs root), a read-only folder, a failure part-way. One line, non-zero exit, no broken file left.

The run goes through a subprocess: FFmpeg crashed the whole process here (exit 139) before the fix."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys

import av
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def noise_clip(path, frames=80, size=256):
    """A clip that compresses badly (~30 KB a frame at the sink's settings: 2.5 MB in all) and holds no face (fast)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size, size, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def run_cli(args, file_size_limit=None):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # the write fails with EFBIG instead of a signal
    proc = subprocess.run([sys.executable, "-m", "cli", "run", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, preexec_fn=limit if file_size_limit else None)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("live3dpe run:") or "Traceback" in line]
    return proc.returncode, errors, proc.stderr


@contextlib.contextmanager
def tmpfs(path, size_kib, read_only=False):
    """A small RAM disk at `path` (root only; the test is skipped elsewhere)."""
    path.mkdir()
    options = f"size={size_kib}k" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                          capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_disk_full_part_way_is_one_line_and_leaves_no_broken_file(disk, tmp_path):
    clip = noise_clip(tmp_path / "noise.mp4")
    if disk == "tmpfs":
        with tmpfs(tmp_path / "disk", 1536) as folder:
            out = folder / "out.mp4"
            rc, errors, stderr = run_cli(["--input", str(clip), "--output", str(out)])
            left = out.exists()
    else:
        out = tmp_path / "out.mp4"
        rc, errors, stderr = run_cli(["--input", str(clip), "--output", str(out)], file_size_limit=1_500_000)
        left = out.exists()
    assert rc == 2, stderr[-2000:]
    assert len(errors) == 1 and f"cannot write {out}" in errors[0] and "incomplete file was removed" in errors[0]
    assert "after" in errors[0] and "frames" in errors[0]
    assert not left


@pytest.mark.timeout(120)
def test_full_or_read_only_disk_is_refused_before_any_model_loads(tmp_path, clips):
    with tmpfs(tmp_path / "full", 256) as full:
        (full / "filler").write_bytes(b"\0" * (256 * 1024 - 4096))   # nothing left but a block
        with pytest.raises(OSError):
            (full / "more").write_bytes(b"\0" * 8192)
        rc, errors, stderr = run_cli(["--input", str(clips / "d0.mp4"), "--output", str(full / "out.mp4")])
        assert rc == 2 and len(errors) == 1 and "the disk is full" in errors[0], stderr[-2000:]
        assert not (full / "out.mp4").exists()
        assert "face_landmarker" not in stderr and "XNNPACK" not in stderr    # refused before the model loaded
    with tmpfs(tmp_path / "ro", 256, read_only=True) as read_only:
        rc, errors, stderr = run_cli(["--input", str(clips / "d0.mp4"), "--output", str(read_only / "out.mp4")])
        assert rc == 2 and errors == [f"live3dpe run: error: cannot write to {read_only}: Read-only file system"], stderr
