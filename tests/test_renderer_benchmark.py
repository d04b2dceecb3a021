"""benchmarks.model: argument checks, timing statistics and the report (the full run is a benchmark, not a test)."""
from __future__ import annotations

import argparse

import pytest
import torch

from benchmarks import model as bench
from pipeline.errors import UserError


def _args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_half_precision_on_cpu_is_a_user_error():
    with pytest.raises(UserError, match="needs --device cuda"):
        bench.main(_args(precision="fp16"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(UserError, match="sees no CUDA GPU"):
        bench.main(_args(device="cuda"))


def test_time_part_reports_the_median_after_warmup():
    calls = []
    durations = iter([0.0, 0.0, 0.03, 0.001, 0.002])     # 2 warm-up calls, then 3 timed

    def fn():
        import time
        calls.append(1)
        time.sleep(next(durations))

    r = bench.time_part(fn, torch.device("cpu"), warmup=2, repeat=3, name="t")
    assert len(calls) == 5 and r["runs"] == 3
    # Sleeps never end early: warm-up (0 ms) runs are not counted, and the middle of {30, 1, 2} is >= 2.
    assert r["min_ms"] >= 1.0 and r["median_ms"] >= 2.0 and r["max_ms"] >= 30.0


def test_table_names_the_machine_and_every_part(tmp_path):
    parts = {name: {"median_ms": 10.0 * (i + 1), "min_ms": 9.0, "max_ms": 12.0, "runs": 3}
             for i, name in enumerate(["prompt_encoding", "encoder", "render_128_96spp", "superresolution"])}
    result = {"machine": bench.machine_info(torch.device("cpu")),
              "settings": {"precision": "fp32", "views": 1}, "parts": parts,
              "frame_ms": 90.0, "frame_fps": 1000 / 90, "paper_ms_per_image": 40.0}
    table = bench.format_table(result)
    assert result["machine"]["cpu"] in table and "fp32" in table
    assert all(name in table for name in parts) and "11.11 fps" in table
    bench.write_plot(result, tmp_path / "model.png")
    assert (tmp_path / "model.png").stat().st_size > 1000
