"""Conformance: rule-filled official-layout weights, saved like 3dpe.pt, loaded by our loader, every tap within tolerance.

The network runs once per session (through the `live3dpe conformance` command, which dumps its taps);
each stored array is then its own test.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest
import torch

from cli.main import main as cli
from threedpe.conformance import RENDER_TAPS, Bundle, compare, tap_of
from threedpe.fill_rule import fill_state_dicts
from threedpe.model import renderer_available

BUNDLE_ARRAYS = ["elow_decoder_crop32", "elow_f16", "elow_crop32", "ehigh_f16", "ehigh_crop32", "mae_tokens",
                 "xattn_f16", "xattn_crop32", "triplane_f16", "triplane_crop32", "render_features", "render_depth",
                 "render_weight_sum", "sr_image"]


@pytest.fixture(scope="session")
def bundle_dir(conformance_bundle):
    return conformance_bundle


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    return Bundle(bundle_dir)


@pytest.fixture(scope="session")
def rule_checkpoint(bundle, tmp_path_factory):
    """The bundle's weights in the official 3dpe.pt layout (sha256-checked fill), with trainer extras."""
    sds = fill_state_dicts(bundle.manifest, verify_sha256=True)
    path = tmp_path_factory.mktemp("weights") / "3dpe.pt"
    torch.save({**sds, "opts": argparse.Namespace(mode="LT"), "step": 0, "best_val_loss": 1.0}, path)
    return path


@pytest.fixture(scope="session")
def command_run(bundle_dir, rule_checkpoint, tmp_path_factory):
    """One full run of `live3dpe conformance --weights <file>`: (exit code, stdout, our taps)."""
    taps_path = tmp_path_factory.mktemp("taps") / "ours.npz"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli(["conformance", "--bundle", str(bundle_dir), "--weights", str(rule_checkpoint),
                  "--dump-taps", str(taps_path)])
    with np.load(taps_path) as data:
        taps = {k: data[k] for k in data.files}
    return rc, out.getvalue(), taps


@pytest.mark.slow
@pytest.mark.parametrize("array", BUNDLE_ARRAYS)
def test_tap_within_tolerance(array, command_run, bundle):
    if tap_of(array)[0] in RENDER_TAPS and not renderer_available():
        pytest.skip("threedpe.renderer is not available")
    result = next(r for r in compare(command_run[2], bundle) if r.array == array)
    assert result.passed, f"{array}: worst ratio {result.worst_ratio:.3g}, max |err| {result.max_abs:.3g} ({result.note})"


@pytest.mark.slow
def test_command_reports_every_array_and_passes(command_run, bundle):
    rc, text, taps = command_run
    assert set(BUNDLE_ARRAYS) == set(bundle.tolerances)
    for array in BUNDLE_ARRAYS:
        assert array in text
    if renderer_available():
        assert rc == 0, text
        assert "14/14 arrays within tolerance" in text


@pytest.mark.slow
def test_command_exits_nonzero_on_a_miss(command_run, bundle_dir, tmp_path, capsys):
    taps = dict(command_run[2])
    taps["triplane"] = taps["triplane"].copy()
    taps["triplane"][0, 5, 128, 128] += 0.01                  # one element, in the stored centre crop too
    del taps["mae_tokens"]
    path = tmp_path / "bad.npz"
    np.savez(path, **taps)
    assert cli(["conformance", "--bundle", str(bundle_dir), "--taps", str(path)]) == 1
    text = capsys.readouterr().out
    assert "missed: " in text and "triplane_f16" in text.split("missed:")[1]
    assert "mae_tokens" in text.split("missed:")[1] and "triplane_crop32" in text.split("missed:")[1]


def test_not_a_bundle_is_a_clear_error(tmp_path, capsys):
    assert cli(["conformance", "--bundle", str(tmp_path)]) == 2
    assert "not a conformance bundle" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text('{"format": "3dpe-conformance-v1"')      # truncated
    (tmp_path / "vectors.npz").write_bytes(b"")
    assert cli(["conformance", "--bundle", str(tmp_path)]) == 2
    assert "unreadable bundle" in capsys.readouterr().err


def _reference_taps(bundle: Bundle) -> dict[str, np.ndarray]:
    """Full-size taps rebuilt from the stored arrays (f16 maps with their float32 centre crop pasted in)."""
    taps = {tap_of(n)[0]: bundle.array(n).astype(np.float32) for n in bundle.tolerances if tap_of(n)[1] == "full"}
    for name in bundle.tolerances:
        tap, kind = tap_of(name)
        if kind == "crop":
            crop = bundle.array(name)
            full = taps.setdefault(tap, np.zeros(crop.shape[:-2] + (64, 64), np.float32))
            h, w = full.shape[-2:]
            full[..., h // 2 - 16: h // 2 + 16, w // 2 - 16: w // 2 + 16] = crop
    return taps


def test_command_on_a_taps_file_passes_and_a_missing_encoder_tap_is_a_miss(bundle, bundle_dir, tmp_path, capsys):
    taps = _reference_taps(bundle)
    good = tmp_path / "good.npz"
    np.savez(good, **taps)
    assert cli(["conformance", "--bundle", str(bundle_dir), "--taps", str(good)]) == 0
    assert "14/14 arrays within tolerance" in capsys.readouterr().out
    del taps["mae_tokens"], taps["sr_image"]
    partial = tmp_path / "partial.npz"
    np.savez(partial, **taps)
    # --encoder-only skips the render taps (sr_image) but never a missing encoder tap
    assert cli(["conformance", "--bundle", str(bundle_dir), "--taps", str(partial), "--encoder-only"]) == 1
    text = capsys.readouterr().out
    assert "missed: mae_tokens" in text and "sr_image" not in text and "9/10 arrays" in text


def test_bad_device_is_a_clear_error(bundle_dir, capsys):
    assert cli(["conformance", "--bundle", str(bundle_dir), "--device", "gpu0"]) == 2
    assert "--device must be" in capsys.readouterr().err


@pytest.fixture(scope="session")
def onnx_run(bundle_dir, tmp_path_factory):
    """One `live3dpe conformance --weights-from-rule --backend onnxruntime` run, keeping its export."""
    folder = tmp_path_factory.mktemp("onnx") / "export"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli(["conformance", "--bundle", str(bundle_dir), "--weights-from-rule", "--backend", "onnxruntime",
                  "--onnx-dir", str(folder)])
    return rc, out.getvalue(), folder


@pytest.mark.slow
@pytest.mark.timeout(900)          # export (~1 min) + onnxruntime on CPU, slower than torch's kernels
def test_onnxruntime_backend_passes_every_array(onnx_run):
    rc, text, folder = onnx_run
    assert rc == 0 and "14/14 arrays within tolerance" in text, text
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parts"] == ["prompt_encoder", "encoder", "renderer"] and manifest["taps"]
    assert manifest["render_options"]["deterministic"] and manifest["render_options"]["neural_resolution"] == 128


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_engine_runs_on_the_onnxruntime_export(onnx_run):
    """The 3dpe engine over the exported graphs: renders with the export's options, other options are refused."""
    from pipeline.config import EngineConfig
    from stages.edit.threedpe_engine import ThreeDPEEngine
    from test_edit_fakes import make_face, textured_frame
    from threedpe.backends.onnxruntime import OnnxRuntimeNetwork
    from threedpe.camera import orbit_label
    from threedpe.renderer import RenderOptions

    network = OnnxRuntimeNetwork(onnx_run[2])
    engine = ThreeDPEEngine(EngineConfig(name="3dpe", device="cpu"), model=network)
    assert engine.render_options == RenderOptions() and engine.label == ""     # rule weights are not "random"
    frame = textured_frame(size=(360, 480))
    scene = engine.encode(make_face(frame), frame, engine.prepare(frame[:200, :200].copy()))
    out = engine.render(scene, orbit_label(10))
    assert out.image.shape == (512, 512, 3) and out.image.std() > 1
    with pytest.raises(ValueError, match="exported for other render options"):
        network.render(scene.triplane, torch.from_numpy(orbit_label(10))[None], RenderOptions.preview())


@pytest.mark.slow
def test_bf16_on_cpu_passes_its_own_tolerances_not_fp32s(bundle_dir, tmp_path, capsys):
    taps_path = tmp_path / "bf16.npz"
    rc = cli(["conformance", "--bundle", str(bundle_dir), "--weights-from-rule", "--precision", "bf16",
              "--dump-taps", str(taps_path)])
    text = capsys.readouterr().out
    assert rc == 0 and "14/14 arrays within tolerance" in text and "bf16 tolerances" in text, text
    with np.load(taps_path) as data:
        taps = {k: data[k] for k in data.files}
    # it really ran in bf16: the fp32 tolerances reject it
    assert not all(r.passed for r in compare(taps, Bundle(bundle_dir), "fp32"))


def test_tensorrt_backend_without_tensorrt_is_a_clear_error(bundle_dir, capsys):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert cli(["conformance", "--bundle", str(bundle_dir), "--backend", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "tensorrt" in err.lower() and "pip install tensorrt" in err and "Traceback" not in err
