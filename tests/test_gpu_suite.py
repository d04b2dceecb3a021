"""The GPU suite runs end to end (`--device cpu --smoke`) with only what the GPU machines have — torch, numpy,
OpenCV: MediaPipe, PyAV, Pillow, tqdm, matplotlib and the server stack are made unimportable in its process.
Its inputs are prepared here first (decode + face tracking on CPU), as they would be before a GPU run."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import gpu_inputs

pytestmark = pytest.mark.slow

BLOCKED = ("mediapipe", "av", "PIL", "tqdm", "matplotlib", "scipy", "aiortc", "aiohttp", "onnxscript")
RUNNER = f"""
import runpy, sys
for name in {BLOCKED!r}:          # absent as on the GPU machine: imports fail, importlib.util.find_spec gives None
    sys.modules[name] = None
sys.argv = ["gpu_suite"] + sys.argv[1:]
runpy.run_module("benchmarks.gpu_suite", run_name="__main__")
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared):
    if not (shared / "conformance" / "3dpe_v1" / "vectors.npz").is_file():
        pytest.skip("needs the conformance bundle (no public download)")
    out = tmp_path_factory.mktemp("gpu_inputs")
    assert gpu_inputs.main(["--out", str(out), "--clips", "d10", "--frames", "3", "--shared", str(shared)]) == 0
    return out


def test_prepared_inputs_round_trip(inputs):
    (clip,) = gpu_inputs.load(inputs / "clips.npz")
    assert clip.name == "d10" and len(clip.frames) == 3 and clip.frames[0].shape == (512, 512, 3)
    assert all(face is not None for face in clip.faces) and clip.faces[0]["camera"].shape == (25,)
    assert (inputs / "3dpe_v1" / "manifest.json").is_file()
    with np.load(inputs / "clips.npz", allow_pickle=False) as data:       # nothing pickled
        assert "c0_jpeg" in data.files


@pytest.mark.timeout(900)
def test_smoke_run_writes_every_section_without_the_cpu_only_packages(inputs, tmp_path):
    out = tmp_path / "suite"
    proc = subprocess.run([sys.executable, "-c", RUNNER, "--out", str(out), "--device", "cpu", "--smoke",
                           "--inputs", str(inputs)], capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "gpu_suite.json").read_text())
    assert result["errors"] == {} and "random weights" in result["machine"]["weights"]
    assert result["parts"]["fp32"]["eager"]["frame_ms"] > 0
    assert result["rerender"]["fps"] > 0 and [r["batch"] for r in result["batch"]["rows"]] == [1, 2]
    (run,) = result["e2e"]["clips"]
    assert run["clip"] == "d10" and run["fps"] > 0 and set(run["stages"]) >= {"face", "edit", "render", "composite"}
    assert run["rendered"] == run["frames"] == 3                # every frame went through encode, render, paste
    assert result["conformance"]["fp32"]["failed"] == [] and result["conformance"]["fp32"]["arrays"] == 10
    assert result["adapt"]["full"]["step_s"]["mean"] > 0 and result["adapt"]["lora8"]["steps_run"] == 2
    assert result["summary"]["adapt_steps_in_5_min"] > 0
    assert "matplotlib is not installed" in result["plot"]
    assert set(result["summary"]) >= {"targets", "frame_ms_fp16_b1", "rerender_fps", "streams_at_30fps"}


def test_cpu_without_smoke_is_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--out", "/nonexistent", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "only --smoke" in proc.stderr
