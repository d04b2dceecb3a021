"""`live3dpe run` end to end: real clip through the CLI, metrics JSON, progress bar, preview error, Ctrl-C."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import pytest

from cli.main import main as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def video_pts(path, limit=None):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        pts = sorted(float(p.pts * p.time_base) for p in c.demux(stream) if p.size)
    return pts[:limit] if limit else pts


def audio_pts(path):
    with av.open(str(path)) as c:
        return [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.timeout(180)
def test_run_a_real_clip_keeps_frames_pts_audio_and_writes_metrics(clips, tmp_path, capfd):
    out, metrics_file = tmp_path / "out.mp4", tmp_path / "metrics.json"
    rc = cli(["run", "--input", str(clips / "d12.mp4"), "--output", str(out), "--max-frames", "6",
              "--metrics-json", str(metrics_file)])
    captured = capfd.readouterr()
    assert rc == 0
    assert video_pts(out) == pytest.approx(video_pts(clips / "d12.mp4", 6), abs=1e-4)
    # Audio: the input's packets (incl. AAC priming before 0) that start within the 6 frames' 0.24 s.
    assert audio_pts(out) == pytest.approx([t for t in audio_pts(clips / "d12.mp4") if t < 0.24], abs=1e-4)
    metrics = json.loads(metrics_file.read_text())
    assert metrics["frames_in"] == metrics["frames_out"] == 6 and metrics["drops"] == 0
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(metrics["e2e"]) and "file" in metrics["stages"]
    assert "end-to-end" in captured.out and "wrote 6 frames" in captured.out
    assert "6/6" in captured.err                      # tqdm progress with the known total


@pytest.mark.timeout(60)
def test_preview_without_a_display_is_a_clear_error(clips, tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli(["run", "--input", str(clips / "d0.mp4"), "--preview"]) == 2
    err = capfd.readouterr().err.strip()
    assert err == "live3dpe run: error: --preview needs a display (set DISPLAY, or run without --preview)"


def test_queue_size_outside_1_2_is_rejected_by_the_parser(clips):
    with pytest.raises(SystemExit) as info:
        cli(["run", "--input", str(clips / "d0.mp4"), "--output", "x.mp4", "--queue-size", "5"])
    assert info.value.code == 2


def _sigint_as_in_a_terminal() -> None:
    """A suite started in the background (`make test &`) hands its children SIGINT ignored, as shells do for
    background jobs; Ctrl-C in a terminal reaches a process whose SIGINT is at its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum, code, last_line", [(signal.SIGINT, 130, "live3dpe run: interrupted"),
                                                     (signal.SIGTERM, 143, "live3dpe run: terminated")])
def test_ctrl_c_or_sigterm_stops_a_live_run_cleanly_and_the_file_is_still_playable(tmp_path, signum, code, last_line):
    out = tmp_path / "live.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", "--input", "synthetic", "--realtime",
                             "--max-frames", "100000", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=_sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.stat().st_size > 0) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)            # the file gets its first bytes once frames are flowing
        time.sleep(1.0)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:        # a run that ignored the signal must not outlive the test
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == last_line
    assert len(video_pts(out)) > 0


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_installs_once_then_only_when_pyproject_changes(tmp_path):
    # The real Makefile against a stand-in .venv whose python/pip only log their arguments.
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(os.path.join(REPO, name), tmp_path / name)
    bin_dir, log = tmp_path / ".venv" / "bin", tmp_path / "calls.log"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "pip"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        (bin_dir / tool).chmod(0o755)

    def make_test():
        subprocess.run(["make", "-s", "test"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
        calls = log.read_text().splitlines()
        log.unlink()
        return calls

    assert make_test() == ["pip install -q -e .[dev]", "python -m pytest -q"]
    assert make_test() == ["python -m pytest -q"]                  # second run: no reinstall
    later = (tmp_path / ".venv" / ".installed").stat().st_mtime + 10
    os.utime(tmp_path / "pyproject.toml", (later, later))
    assert make_test() == ["pip install -q -e .[dev]", "python -m pytest -q"]
