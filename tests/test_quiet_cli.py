"""The command line keeps native start-up noise (MediaPipe, TFLite, absl on fd 2) off the terminal unless
--verbose, and still shows everything else written there."""
from __future__ import annotations

import subprocess
import sys


def face_command(images, *extra):
    return subprocess.run([sys.executable, "-m", "cli", "face", "--input", str(images / "s42.jpg"), *extra],
                          capture_output=True, text=True, timeout=120)


def test_a_command_prints_its_result_and_nothing_on_stderr(images):
    out = face_command(images)
    assert out.returncode == 0 and "face  yaw" in out.stdout
    assert out.stderr == ""


def test_verbose_shows_the_native_log(images):
    out = face_command(images, "--verbose")
    assert out.returncode == 0 and ("XNNPACK" in out.stderr or "W0000" in out.stderr)


def test_only_the_noise_is_dropped_from_file_descriptor_2():
    script = ("import os, sys\n"
              "from cli.quiet import native_noise_hidden\n"
              "with native_noise_hidden():\n"
              "    os.write(2, b'W0000 00:00:1796518444.851440   26572 face_landmarker_graph.cc:181] noise\\n')\n"
              "    os.write(2, b'WARNING: Logging before InitGoogle() is written to STDERR\\n')\n"
              "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
              "    os.write(2, b'E0000 00:00:1.0   1 graph.cc:9] a native error\\n[ WARN:0] camera busy\\n')\n"
              "    print('from python', file=sys.stderr)\n"
              "os.write(2, b'after\\n')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    lines = out.stderr.splitlines()
    assert sorted(lines[:-1]) == sorted(["E0000 00:00:1.0   1 graph.cc:9] a native error", "[ WARN:0] camera busy",
                                         "from python"])
    assert lines[-1] == "after"                                        # fd 2 is the terminal again, drained


def test_a_command_run_in_process_leaves_stderr_as_it_was(images, capsys):
    """Called as a function (tests, other programs), the command restores fd 2 and sys.stderr afterwards."""
    import os

    from cli.main import main

    before = (sys.stderr, os.fstat(2).st_ino)
    assert main(["face", "--input", str(images / "nowhere.jpg")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert (sys.stderr, os.fstat(2).st_ino) == before
