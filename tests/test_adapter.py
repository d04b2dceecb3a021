"""Adapters without training: the file format (safetensors, atomic, clear errors), base-weights fingerprints,
`ThreeDPE.with_tensors` sharing the frozen tensors, LoRA merging, and adapters as engine styles (random
weights, labelled; cheap 16² preview renders)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from pipeline.config import EngineConfig
from pipeline.errors import UserError
from stages.edit.classic.prompt import resolve_prompt
from stages.edit.threedpe_engine import ThreeDPEEngine
from threedpe.adapter import (TRIPLANE_NORMS, Adapter, AdapterError, load_adapter, lora_merge, read_metadata,
                              tensors_digest, tunable_keys, weights_fingerprint)
from threedpe.checkpoint import CheckpointError
from threedpe.model import ThreeDPE
from threedpe.renderer import RenderOptions
from training.student import LoRALinear, make_student

pytestmark = pytest.mark.slow
PREVIEW = RenderOptions(neural_resolution=16, depth_resolution=4, depth_resolution_importance=4)


def digest(model: torch.nn.Module) -> str:
    return tensors_digest(model.state_dict().items())         # not cached, unlike weights_fingerprint


@pytest.fixture(scope="module")
def base():
    return ThreeDPE.random(seed=0)


@pytest.fixture(scope="module")
def prompt():
    return np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)


def tuned_adapter(base: ThreeDPE, prompt: np.ndarray, lora_rank: int | None = None) -> Adapter:
    """An adapter whose tuned tensors differ from the base (as after training), without training."""
    student = make_student(base, lora_rank=lora_rank)
    with torch.no_grad():
        for name, p in student.trainable.items():
            p.add_(0.01 * torch.randn_like(p))
    return student.adapter(prompt, {"name": "test", "prompt": "noise"})


def test_with_tensors_shares_every_other_tensor_and_leaves_the_base_alone(base):
    state = base.encoder.state_dict()
    key = TRIPLANE_NORMS[0]
    before = digest(base)
    view = base.with_tensors({key: torch.zeros_like(state[key])})
    assert torch.equal(view.encoder.state_dict()[key], torch.zeros_like(state[key]))
    other = "Final_encoder.net.0.weight"
    assert view.encoder.state_dict()[other].data_ptr() == state[other].data_ptr()      # shared, not copied
    assert view.renderer is base.renderer and view.is_random
    assert digest(base) == before
    with pytest.raises(CheckpointError, match="not a tensor of the 3DPE encoder"):
        base.with_tensors({"nope.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="has shape"):
        base.with_tensors({key: torch.zeros(3)})


def test_tunable_set_is_the_prompt_encoder_and_the_triplane_decoders_layer_norms(base):
    keys = tunable_keys(base.encoder.state_dict())
    assert set(TRIPLANE_NORMS) <= set(keys) and len(TRIPLANE_NORMS) == 8
    assert all(k.startswith("Ref_encoder.mae_encoder.") or k.startswith("Final_encoder.") for k in keys)
    assert "Ref_encoder.pre_conv.weight" not in keys and "Final_encoder.net.0.weight" not in keys
    params = sum(base.encoder.state_dict()[k].numel() for k in keys)
    assert params == 85_798_656 + 8_192                          # spec §2.6 / §4.6


def test_lora_layer_is_bit_identical_to_a_linear_with_the_merged_weight():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 24)
    layer = LoRALinear(linear, rank=4, alpha=8.0)
    x = torch.randn(5, 16)
    assert torch.equal(layer(x), linear(x))                      # B starts at zero
    with torch.no_grad():
        layer.lora_B.normal_()
    merged = torch.nn.Linear(16, 24)
    merged.load_state_dict({"weight": lora_merge(linear.weight, layer.lora_A, layer.lora_B, 2.0), "bias": linear.bias})
    assert torch.equal(layer(x), merged(x))


def test_adapter_file_round_trips_and_is_written_atomically(base, prompt, tmp_path):
    adapter = tuned_adapter(base, prompt)
    path = adapter.save(tmp_path / "style.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.safetensors"]      # no temp file left
    back = load_adapter(path)
    assert set(back.tensors) == set(adapter.tensors) and not back.lora
    assert all(torch.equal(back.tensors[k], adapter.tensors[k]) for k in adapter.tensors)
    assert back.prompt.shape == (512, 512, 3) and back.base_fingerprint == weights_fingerprint(base)
    assert read_metadata(path)["name"] == "test" and back.meta["base_source"] == "random:0"

    small = tuned_adapter(base, prompt, lora_rank=2).save(tmp_path / "lora.safetensors")
    lora = load_adapter(small)
    assert len(lora.lora) == 48 and all(k.startswith("Final_encoder.") for k in lora.tensors)
    assert small.stat().st_size < path.stat().st_size / 20


def test_damaged_or_foreign_files_and_other_base_weights_are_refused(base, prompt, tmp_path):
    with pytest.raises(AdapterError, match="no such adapter"):
        load_adapter(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(AdapterError, match="not a safetensors adapter"):
        load_adapter(junk)
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(AdapterError, match="not a live3dpe adapter"):
        load_adapter(tmp_path / "foreign.safetensors")
    with pytest.raises(UserError, match="must end in .safetensors"):
        tuned_adapter(base, prompt).save(tmp_path / "style.bin")

    adapter = tuned_adapter(base, prompt)
    other = base.with_tensors({"Final_encoder.net.0.bias": torch.zeros(256)})   # other base weights
    with pytest.raises(AdapterError, match="made for other base weights"):
        adapter.apply(other)


def test_engine_uses_an_adapter_as_a_style_and_says_what_is_wrong(base, prompt, tmp_path):
    engine = ThreeDPEEngine(EngineConfig(name="3dpe", random_weights=True, device="cpu"), model=base,
                            render_options=PREVIEW)
    path = tuned_adapter(base, prompt).save(tmp_path / "bronze.safetensors")
    style = engine.prepare(f"adapter:{path}")
    assert style.kind == "adapter" and style.label == "adapter bronze"
    assert engine.prepare(f"adapter:{path}") is style                          # prepared once
    assert tuple(style.data.tokens.shape) == (1, 197, 768)
    # only E_t's tensors are held per frame; the tuned E_p only made the tokens
    held = style.data.model.encoder.state_dict()
    assert held["Ref_encoder.mae_encoder.blocks.0.attn.qkv.weight"].data_ptr() == \
        base.encoder.state_dict()["Ref_encoder.mae_encoder.blocks.0.attn.qkv.weight"].data_ptr()
    assert not torch.equal(held[TRIPLANE_NORMS[0]], base.encoder.state_dict()[TRIPLANE_NORMS[0]])

    with pytest.raises(ValueError, match="no such adapter file"):
        engine.prepare(f"adapter:{tmp_path / 'nope.safetensors'}")
    other = ThreeDPEEngine(EngineConfig(name="3dpe", random_weights=True, device="cpu"),
                           model=base.with_tensors({"Final_encoder.net.0.bias": torch.zeros(256)}))
    with pytest.raises(ValueError, match="made for other base weights"):
        other.prepare(f"adapter:{path}")
    with pytest.raises(ValueError, match="3dpe engine"):
        resolve_prompt(f"adapter:{path}")


def test_a_live3d_teacher_runs_without_a_prompt(base):
    """Live3D-LT has no cross-attention: with no tokens the E_high features go to E_t as they are."""
    from training.adapt import teacher_tokens

    live3d = base.with_tensors({})
    live3d.prompt_trained = False
    target = np.zeros((512, 512, 3), np.uint8)
    assert teacher_tokens(live3d, [target]) is None and teacher_tokens(base, [target]).shape == (1, 197, 768)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    high, low = base.encoder.image_features(image)
    without = live3d.encode(image, None)
    assert torch.equal(without, base.encoder.Final_encoder(torch.cat([high, low], 1)))
