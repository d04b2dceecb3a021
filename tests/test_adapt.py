"""Fast adaptation on CPU with random weights, in a reduced configuration: 64² encoder crops, 16² rays with
4+4 samples, no superresolution, perceptual features from the first MAE block, and L3D reduced to its
triplane term (no random-camera views).

Why the data and settings: with random weights the frozen teacher's renders are noise, so L3D's
multi-view terms pull the student's renders towards that noise while L2D pulls them towards the
targets; the sum can hardly fall, for reasons that have nothing to do with the code (the multi-view terms
are tested in test_losses.py and by the trainer). The pairs are the ten official EG3D crops of ../shared
with, as targets, the same crops toned bronze — a 2D edit of the kind a user brings; their style-prompt
images are other faces, which no random render comes nearer to. The base is `ThreeDPE.random(seed=1)`:
seed 0's renderer has a negative mean density, so its renders stay empty whatever the encoder does. E_p
moves slowly (lr 1e-5): the fill rule's LayerNorm gains make the cross-attention nearly a hard max, where
large steps jump between prompt tokens.

Checks: the loss falls over a few dozen steps; only E_p and E_t's LayerNorms change and the base stays
bit-identical; the adapter file, used by the engine as a style, reproduces the in-memory adapted model
exactly (full and LoRA adapters); the command line writes the adapter, the JSON log and the loss plot,
and refuses bad folders with one line.
"""
from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from cli.main import main as cli_main
from pipeline.config import EngineConfig
from stages.edit.threedpe_engine import ThreeDPEEngine
from test_edit_fakes import make_face, textured_frame
from threedpe.adapter import PROMPT_ENCODER, TRIPLANE_NORMS, load_adapter, tensors_digest
from threedpe.model import ThreeDPE
from threedpe.preprocess import tensor_to_image
from threedpe.renderer import RenderOptions
from training.adapt import AdaptConfig, adapt, adapted_output
from training.data import find_pairs, load_samples

pytestmark = pytest.mark.slow
SEED = 1
RENDER = RenderOptions(neural_resolution=16, depth_resolution=4, depth_resolution_importance=4, superresolution=False)
REDUCED = AdaptConfig(steps=24, minutes=None, lr=1e-5, norm_lr=1e-2, batch=10, resolution=64, render=RENDER,
                      views=0, perceptual_layers=(0,))
VIEW = RenderOptions(neural_resolution=16, depth_resolution=4, depth_resolution_importance=4)   # the engine's, 512² SR


def digest(model: torch.nn.Module) -> str:
    return tensors_digest(model.state_dict().items())         # not cached, unlike weights_fingerprint


def bronze(rgb: np.ndarray) -> np.ndarray:
    """Luminance mapped onto a bronze ramp."""
    y = rgb.astype(np.float32).mean(2, keepdims=True) / 255
    return (np.clip(y * np.array([1.1, 0.68, 0.28]) + np.array([0.12, 0.05, 0.0]), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pairs(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    for i in range(1, 11):
        source = images / "eg3d_crops" / f"input_{i}.png"
        (folder / f"p{i:02d}_input.png").symlink_to(source)
        rgb = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
        cv2.imwrite(str(folder / f"p{i:02d}_target.png"), cv2.cvtColor(bronze(rgb), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def samples(pairs):
    return load_samples(find_pairs(pairs), progress=False)


@pytest.fixture(scope="module")
def base():
    return ThreeDPE.random(seed=SEED)


def engine_edit(base: ThreeDPE, adapter_path, sample) -> np.ndarray:
    """The engine's output for the sample's crop with the adapter as the style, at the sample's camera."""
    engine = ThreeDPEEngine(EngineConfig(name="3dpe", random_weights=True, device="cpu"), model=base,
                            render_options=VIEW)
    style = engine.prepare(f"adapter:{adapter_path}")
    frame = textured_frame()
    face = replace(make_face(frame), crop=sample.input)
    return engine.render(engine.encode(face, frame, style), sample.camera).image


def in_memory_edit(student, sample, reference) -> np.ndarray:
    return tensor_to_image(adapted_output(student, sample, reference, torch.from_numpy(sample.camera)[None], VIEW))


def test_adaptation_loss_falls_tunes_only_ep_and_et_norms_and_the_adapter_round_trips(base, samples, tmp_path):
    before = digest(base)
    reference = samples[0].target
    result = adapt(base, samples, reference, REDUCED, progress=False)
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 24 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) <= 0.8 * np.mean(losses[:3]), losses
    assert digest(base) == before                                        # the base is untouched

    state, adapted = base.encoder.state_dict(), result.student.model.encoder.state_dict()
    changed = {k for k in state if not torch.equal(state[k], adapted[k])}
    assert changed <= {k for k in state if k.startswith(PROMPT_ENCODER)} | set(TRIPLANE_NORMS)
    assert set(TRIPLANE_NORMS) <= changed and any(k.startswith(PROMPT_ENCODER) for k in changed)
    assert torch.equal(base.renderer.const, result.student.model.renderer.const)

    path = result.adapter.save(tmp_path / "style.safetensors")
    meta = load_adapter(path).meta
    assert meta["steps"] == "24" and meta["is_random"] == "True"
    sample = samples[3]
    assert np.array_equal(engine_edit(base, path, sample), in_memory_edit(result.student, sample, reference))


def test_lora_adapter_is_small_and_round_trips(base, samples, tmp_path):
    config = replace(REDUCED, steps=2, batch=2, lr=1e-3, lora_rank=4)
    result = adapt(base, samples[:4], samples[0].target, config, progress=False)
    path = result.adapter.save(tmp_path / "lora.safetensors")
    adapter = load_adapter(path)
    assert len(adapter.lora) == 48 and set(adapter.tensors) == set(TRIPLANE_NORMS)
    assert any(not torch.equal(b, torch.zeros_like(b)) for _, b in adapter.lora.values())
    assert path.stat().st_size < 8 * 2**20
    sample = samples[1]
    assert np.array_equal(engine_edit(base, path, sample), in_memory_edit(result.student, sample, samples[0].target))


def test_command_writes_adapter_log_and_plot(pairs, tmp_path, capsys):
    few = tmp_path / "pairs"
    few.mkdir()
    for name in ("p01_input.png", "p01_target.png", "p02_input.png", "p02_target.png"):
        (few / name).symlink_to(pairs / name)
    out = tmp_path / "clay.safetensors"
    code = cli_main(["adapt", "--pairs", str(few), "--out", str(out), "--random-weights", "--steps", "2",
                     "--batch", "2", "--lora-rank", "2", "--json", str(tmp_path / "log.jsonl"), "--resolution", "64",
                     "--neural-resolution", "16", "--samples", "4", "--no-superresolution", "--perceptual-layers", "0",
                     "--device", "cpu"])
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in lines] == [["l2d", "l3d", "loss", "seconds", "step"]] * 2
    adapter = load_adapter(out)
    assert adapter.meta["prompt"] == "p01_target" and adapter.meta["lora_rank"] == "2" and len(adapter.lora) == 48
    assert (tmp_path / "clay_loss.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in printed and f"--style adapter:{out}" in printed


def test_command_refuses_bad_input_with_one_line(pairs, tmp_path, capsys):
    (tmp_path / "a_input.png").write_bytes((pairs / "p01_input.png").read_bytes())
    cases = [(["--pairs", str(tmp_path), "--out", str(tmp_path / "x.safetensors")], "'a' has no target image"),
             (["--pairs", str(pairs), "--out", str(tmp_path / "x.pt")], "must name a .safetensors file"),
             (["--pairs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.safetensors")], "no such folder"),
             (["--pairs", str(pairs), "--out", str(tmp_path / "x.safetensors"), "--resolution", "100"],
              "multiple of 32")]
    for args, message in cases:
        assert cli_main(["adapt", *args, "--random-weights"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.safetensors").exists()
