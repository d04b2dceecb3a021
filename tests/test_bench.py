"""`live3dpe bench` with synthetic stages: pipelining beats serial, live mode keeps latency flat and counts drops."""
import json
import subprocess
import sys

import pytest

from cli.main import main as cli


def bench(tmp_path, *extra):
    out = tmp_path / "bench"
    assert cli(["bench", "--synthetic", *extra, "--out", str(out)]) == 0
    assert (out / "fps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / "fps.json").read_text())


@pytest.mark.timeout(120)
def test_three_sleep_stages_overlap_and_the_report_has_the_ratios(tmp_path, capsys):
    result = bench(tmp_path, "10,20,15", "--frames", "40", "--size", "64x48")
    stages = result["pipelined"]["stages"]
    assert list(stages) == ["synthetic", "s1_10ms", "s2_20ms", "s3_15ms", "null"]
    assert all({"p50_ms", "p95_ms", "p99_ms"} <= set(s) for s in stages.values())
    assert stages["s2_20ms"]["p50_ms"] >= 19.5
    assert result["pipelined"]["frames_out"] == 40 and result["pipelined"]["drops"] == 0
    # Serial costs ~45 ms/frame, pipelined is bounded by the 20 ms stage: clearly faster, below the bound.
    assert result["speedup_vs_serial"] > 1.4
    assert 0.3 < result["ratio_to_bound"] < 1.1
    assert "ratio to bound" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_live_30fps_into_a_50ms_stage_keeps_latency_flat_and_counts_drops(tmp_path):
    result = bench(tmp_path, "50", "--live", "--fps", "30", "--frames", "60", "--size", "64x48",
                   "--queue-size", "1", "--no-serial")
    p = result["pipelined"]
    assert p["policy"] == "live" and p["frames_in"] == 60
    assert p["drops"] > 10 and p["frames_out"] + p["drops"] == 60
    # A growing queue would add ~17 ms per frame (≈ 300 ms by the end); drop-oldest keeps it bounded.
    trend = result["latency_trend"]
    assert trend["last_third_ms"] < trend["first_third_ms"] + 40
    assert p["e2e"]["p95_ms"] < 250


def test_bad_stage_costs_are_a_user_error(tmp_path, capsys):
    assert cli(["bench", "--synthetic", "10,x", "--out", str(tmp_path)]) == 2
    assert "comma-separated milliseconds" in capsys.readouterr().err
    assert cli(["bench", "--synthetic", "1", "--size", "4x4", "--out", str(tmp_path)]) == 2
    assert cli(["bench", "--synthetic", "1", "--fps", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--size must be at least 8x8" in err and "--fps must be above 0" in err


@pytest.mark.timeout(120)
def test_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.fps", "--synthetic", "1", "--frames", "5",
                           "--size", "32x32", "--no-serial", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fps.json").is_file()
