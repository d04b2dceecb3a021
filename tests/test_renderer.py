"""TriplaneRenderer against the conformance bundle: the stored (float16) triplane rendered at both cameras."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from threedpe.checkpoint import CheckpointError
from threedpe.fill_rule import fill_state_dicts
from threedpe.renderer import RenderOptions, TriplaneRenderer

SD_NAME = "renderer_state_dict"
# The stored triplane is float16-rounded, so these taps are not the exact conformance check (that is
# tests/test_conformance.py). Measured worst ratio |diff|/(atol+rtol|ref|) with it: 0.51 (sr_image), 0.37
# (depth), 0.34 (features, weight sum) — so the README tolerances hold unloosened (factor 1).
TOLERANCE_FACTOR = 1.0
TAPS = {"feature_image": "render_features", "image_depth": "render_depth",
        "weight_sum": "render_weight_sum", "image": "sr_image"}


@pytest.fixture(scope="module")
def bundle(conformance_bundle):
    folder = conformance_bundle
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest, np.load(folder / "vectors.npz")


@pytest.fixture(scope="module")
def renderer(bundle):
    manifest, _ = bundle
    only_renderer = {**manifest, "state_dicts": {SD_NAME: manifest["state_dicts"][SD_NAME]}}
    model = TriplaneRenderer().eval()
    model.load_state_dict(fill_state_dicts(only_renderer)[SD_NAME])
    return model


@pytest.fixture(scope="module")
def rendered(renderer, bundle):
    _, vectors = bundle
    planes = torch.from_numpy(vectors["triplane_f16"].astype(np.float32))     # one triplane, both cameras
    with torch.no_grad():
        return renderer(planes, torch.from_numpy(vectors["camera_labels"]), RenderOptions())


def test_official_keys_and_shapes(bundle):
    manifest, _ = bundle
    expected = {k: tuple(v["shape"]) for k, v in manifest["state_dicts"][SD_NAME].items()}
    assert {k: tuple(v.shape) for k, v in TriplaneRenderer().state_dict().items()} == expected


@pytest.mark.slow
@pytest.mark.parametrize("ours", list(TAPS))
def test_render_taps_match_conformance_vectors(rendered, bundle, ours):
    manifest, vectors = bundle
    ref = vectors[TAPS[ours]]
    tol = manifest["recommended_tolerances"][TAPS[ours]]
    got = rendered[ours].numpy()
    assert got.shape == ref.shape
    ratio = np.abs(got - ref) / (tol["atol"] + tol["rtol"] * np.abs(ref))
    assert ratio.max() <= TOLERANCE_FACTOR, f"{ours}: worst ratio {ratio.max():.3g}"


@pytest.mark.slow
def test_image_raw_is_the_first_three_feature_channels(rendered):
    assert torch.equal(rendered["image_raw"], rendered["feature_image"][:, :3])


def test_strict_load_names_the_first_bad_key(renderer):
    good = renderer.state_dict()
    wrong_shape = {**good, "decoder.net.0.weight": torch.zeros(64, 31)}
    with pytest.raises(CheckpointError, match=r"decoder\.net\.0\.weight.*\[64, 31\].*\[64, 32\]"):
        TriplaneRenderer().load_state_dict(wrong_shape)
    missing = {k: v for k, v in good.items() if k != "superresolution.block1.torgb.bias"}
    with pytest.raises(CheckpointError, match=r"missing key 'superresolution\.block1\.torgb\.bias'"):
        TriplaneRenderer().load_state_dict(missing)
    with pytest.raises(CheckpointError, match=r"unexpected key 'module\.const'"):
        TriplaneRenderer().load_state_dict({**good, "module.const": good["const"]})


def test_batched_cameras_and_ray_chunks_give_the_same_render(renderer):
    """One triplane for many cameras, one triplane per camera, and chunked marching agree (deterministic)."""
    torch.manual_seed(0)
    planes = torch.randn(1, 96, 64, 64)
    cams = _cameras()
    opts = RenderOptions(neural_resolution=16, superresolution=False)
    with torch.no_grad():
        shared = renderer(planes, cams, opts)
        per_camera = renderer(planes.expand(2, -1, -1, -1), cams, opts)
        chunked = renderer(planes, cams, RenderOptions(neural_resolution=16, superresolution=False, ray_chunk=50))
    for key in ("feature_image", "image_depth", "weight_sum"):
        torch.testing.assert_close(per_camera[key], shared[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(chunked[key], shared[key], rtol=0, atol=1e-6)
    assert not torch.allclose(shared["feature_image"][0], shared["feature_image"][1])


def test_stochastic_mode_is_reproducible_with_a_generator_and_differs_from_deterministic(renderer):
    torch.manual_seed(0)
    planes, cams = torch.randn(1, 96, 64, 64), _cameras()[:1]

    def render(**kw):
        with torch.no_grad():
            return renderer(planes, cams, RenderOptions(neural_resolution=16, superresolution=False, **kw))

    a = render(deterministic=False, generator=torch.Generator().manual_seed(3))
    b = render(deterministic=False, generator=torch.Generator().manual_seed(3))
    c = render(deterministic=False, generator=torch.Generator().manual_seed(4))
    det = render()
    assert torch.equal(a["feature_image"], b["feature_image"])
    assert not torch.equal(a["feature_image"], c["feature_image"])
    assert not torch.equal(a["feature_image"], det["feature_image"])


def test_preview_options_render_fewer_rays_but_a_full_size_image(renderer):
    torch.manual_seed(0)
    with torch.no_grad():
        out = renderer(torch.randn(1, 96, 32, 32), _cameras()[:1], RenderOptions.preview())
    assert out["feature_image"].shape == (1, 32, 64, 64)
    assert out["image"].shape == (1, 3, 512, 512) and out["image"].dtype == torch.float32
    assert torch.isfinite(out["image"]).all()


def test_bad_planes_or_camera_counts_raise_clear_errors(renderer):
    with pytest.raises(ValueError, match="planes must be"):
        renderer(torch.zeros(1, 95, 8, 8), _cameras()[:1])
    with pytest.raises(ValueError, match="2 triplanes but 3 cameras"):
        renderer(torch.zeros(2, 96, 8, 8), torch.cat([_cameras(), _cameras()[:1]]))


def _cameras() -> torch.Tensor:
    from threedpe.camera import eural_to_camera_label
    return torch.from_numpy(np.stack([eural_to_camera_label(0.0, 0.0), eural_to_camera_label(0.35, -0.1)]))


def test_superresolution_stays_float32_under_autocast():
    """The official SR is fp32 without conv clamp: autocast (CPU bf16 here, CUDA fp16 live) must not reach it."""
    torch.manual_seed(0)
    model = TriplaneRenderer().eval()
    raw, feats = torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 32, 128, 128) * 2 - 1
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model.superresolve(raw.bfloat16(), feats.bfloat16())
        plain = model.superresolve(raw.bfloat16().float(), feats.bfloat16().float())
    assert autocast.dtype == torch.float32 and autocast.shape == (1, 3, 512, 512)
    torch.testing.assert_close(autocast, plain, rtol=0, atol=0)
