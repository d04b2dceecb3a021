"""The encoder network: official key layout, coordinate channels, modes, preprocessing parity, the fill rule."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from threedpe.encoder import TAPS, EditingEncoder, append_coordinates, unused_resnet_keys
from threedpe.fill_rule import rule_for
from threedpe.model import ThreeDPE
from threedpe.preprocess import image_to_tensor, prompt_to_tensor, tensor_to_image


@pytest.fixture(scope="module")
def manifest(conformance_bundle):
    return json.loads((conformance_bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def vectors(conformance_bundle):
    return np.load(conformance_bundle / "vectors.npz")


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return ThreeDPE(renderer=None)          # PyTorch default init: enough for shape/mode behaviour


def test_module_keys_and_shapes_are_the_official_ones(manifest):
    official = {k: tuple(v["shape"]) for k, v in manifest["state_dicts"]["encoder_state_dict"].items()}
    ours = {k: tuple(v.shape) for k, v in EditingEncoder().state_dict().items()}
    unused = {f"encoder.{k}": v for k, v in unused_resnet_keys().items()}
    assert ours == {k: v for k, v in official.items() if k not in unused}
    assert all(official[k] == v for k, v in unused.items())          # the drop list matches the checkpoint
    assert sum(int(np.prod(s)) for s in ours.values()) == 151_076_896


def test_coordinates_are_raw_row_then_column_indices():
    x = append_coordinates(torch.zeros(2, 3, 4, 6))
    assert x.shape == (2, 5, 4, 6)
    assert torch.equal(x[1, 3, :, 0], torch.arange(4.0)) and torch.equal(x[1, 4, 0], torch.arange(6.0))
    five = torch.randn(1, 5, 4, 4)
    assert append_coordinates(five) is five


def test_deterministic_mode_is_repeatable_and_stochastic_mode_uses_dropout(small_model):
    image, tokens = torch.rand(1, 3, 128, 128) * 2 - 1, torch.randn(1, 197, 768)
    small_model.stochastic = False
    torch.manual_seed(1)
    a = small_model.encode(image, tokens)
    torch.manual_seed(2)
    assert torch.equal(a, small_model.encode(image, tokens))
    assert a.shape == (1, 96, 64, 64)
    small_model.stochastic = True
    try:
        torch.manual_seed(3)
        b = small_model.encode(image, tokens)
        after = torch.random.get_rng_state()
    finally:
        small_model.stochastic = False
    assert not torch.allclose(a, b)
    assert not small_model.encoder.training
    # the official run's only random draw in the encoder: the ASPP dropout mask on B×256×(H/8)×(W/8)
    torch.manual_seed(3)
    torch.nn.functional.dropout(torch.ones(1, 256, 16, 16), 0.5, training=True)
    assert torch.equal(torch.random.get_rng_state(), after)


def test_stochastic_render_draws_random_numbers_in_the_official_order(small_model):
    """Per view, as spec §5.6: two camera randn [B,1], coarse jitter [B,R,48(,1)], importance u [B·R,48]."""
    from threedpe.camera import eural_to_camera_label
    from threedpe.renderer import RenderOptions, TriplaneRenderer

    model = ThreeDPE(renderer=TriplaneRenderer(), encoder=small_model.encoder)
    model.stochastic = True
    cams = torch.from_numpy(np.stack([eural_to_camera_label(0.0), eural_to_camera_label(0.3)]))
    opts = RenderOptions(deterministic=False, neural_resolution=4, depth_resolution=6, depth_resolution_importance=5,
                         superresolution=False)
    planes = torch.randn(1, 96, 16, 16)
    torch.manual_seed(5)
    out = model.render(planes, cams, opts)
    ours = torch.random.get_rng_state()
    torch.manual_seed(5)
    for _ in range(2):                                   # one triplane, two views: two official render calls
        torch.randn(1, 1), torch.randn(1, 1)
        torch.rand(1, 16, 6, 1), torch.rand(16, 5)
    assert torch.equal(torch.random.get_rng_state(), ours)
    assert out["feature_image"].shape == (2, 32, 4, 4)
    torch.manual_seed(5)
    torch.randn(1, 1), torch.randn(1, 1)
    first = model.renderer(planes, cams[:1], opts)        # the renderer alone, after the camera draws
    assert torch.equal(first["feature_image"], out["feature_image"][:1])


def test_taps_are_reported(small_model):
    taps = {}
    small_model.encode(torch.zeros(1, 3, 128, 128), torch.randn(1, 197, 768), taps=taps)
    assert set(taps) == set(TAPS) == {"elow_decoder", "elow", "ehigh", "xattn", "triplane"}
    assert taps["xattn"].shape == taps["ehigh"].shape == taps["elow"].shape == (1, 128, 32, 32)


def test_precision_autocasts_on_cpu_and_outputs_stay_float32(small_model):
    with pytest.raises(ValueError, match="precision"):
        small_model.precision = "fp8"
    prompt = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    reference = small_model.encode_prompt(prompt)
    small_model.precision = "bf16"                     # CPU autocast (fp16 too, but its CPU kernels are slow)
    try:
        tokens = small_model.encode_prompt(prompt)
    finally:
        small_model.precision = "fp32"
    assert tokens.dtype == torch.float32 and not torch.equal(tokens, reference)
    assert torch.allclose(tokens, reference, atol=0.5)


def test_preprocessing_reproduces_the_official_inputs_exactly(vectors):
    assert np.array_equal(image_to_tensor(vectors["input_image_u8"]).numpy(), vectors["input_image"])
    assert np.array_equal(prompt_to_tensor(vectors["input_prompt_u8"]).numpy(), vectors["input_prompt"])
    assert np.array_equal(tensor_to_image(image_to_tensor(vectors["input_image_u8"])), vectors["input_image_u8"])


def test_prompt_of_any_size_and_bad_arrays():
    assert prompt_to_tensor(np.zeros((300, 200, 3), np.uint8)).shape == (1, 3, 224, 224)
    with pytest.raises(ValueError, match="512"):
        image_to_tensor(np.zeros((256, 256, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        prompt_to_tensor(np.zeros((64, 64, 4), np.uint8))
    out = tensor_to_image(torch.tensor([-2.0, 0.0, 0.999]).view(1, 3, 1, 1))
    assert out.tolist() == [[[0, 128, 255]]]                    # clamped and rounded


def test_rule_classification_matches_the_manifest(manifest):
    for sd, entries in manifest["state_dicts"].items():
        for key, e in entries.items():
            rule, mean, std = rule_for(sd, key, tuple(e["shape"]))
            assert rule == e["rule"], key
            if rule != "fir_const":
                assert (mean, std) == pytest.approx((e["mean"], e["std"]), rel=1e-12), key
