"""The EG3D renderer quirks that change numbers (spec §5, §10), each checked on small hand-made inputs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from threedpe.renderer.importance import importance_depths, sample_pdf, stratified_depths
from threedpe.renderer.ray_marcher import clamp_depth, composite, interval_weights, march, to_signed
from threedpe.renderer.ray_sampler import sample_rays
from threedpe.renderer.superres import ModulatedConv, ToRGB, fir_kernel, upsample2d
from threedpe.renderer.triplane import sample_triplane

SIZE = 16


def _ramps_on_plane(plane: int) -> torch.Tensor:
    """Planes [1,3,2,S,S], zero except `plane`: channel 0 = column index (u), channel 1 = row index (v)."""
    planes = torch.zeros(1, 3, 2, SIZE, SIZE)
    idx = torch.arange(SIZE, dtype=torch.float32)
    planes[0, plane, 0] = idx[None, :].expand(SIZE, SIZE)
    planes[0, plane, 1] = idx[:, None].expand(SIZE, SIZE)
    return planes


def _pixel(coord: float) -> float:
    """Where world coordinate `coord` lands on the grid: box_warp 1 (×2), align_corners=False."""
    return ((2 * coord + 1) * SIZE - 1) / 2


@pytest.mark.parametrize("plane,u_axis,v_axis", [(0, 0, 1), (1, 0, 2), (2, 2, 0)])
def test_plane_axes_are_eg3d_xy_xz_zx_and_features_are_averaged(plane, u_axis, v_axis):
    point = torch.tensor([[[0.11, -0.07, 0.23]]])
    got = sample_triplane(_ramps_on_plane(plane), point)[0, :, 0]
    expected = torch.tensor([_pixel(point[0, 0, u_axis].item()), _pixel(point[0, 0, v_axis].item())]) / 3
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_plane_two_varies_along_z_and_x_but_not_y():
    planes = _ramps_on_plane(2)
    base = torch.tensor([0.1, 0.05, -0.2])
    moved = torch.stack([base, base + torch.tensor([0.1, 0, 0]), base + torch.tensor([0, 0.1, 0]),
                         base + torch.tensor([0, 0, 0.1])])[None]
    f = sample_triplane(planes, moved)[0].T
    assert torch.equal(f[2], f[0])                                 # y: no change (it is not (y, z))
    assert f[1, 1] != f[0, 1] and f[1, 0] == f[0, 0]               # x moves v only
    assert f[3, 0] != f[0, 0] and f[3, 1] == f[0, 1]               # z moves u only


def test_points_outside_the_box_get_zero_features():
    planes = torch.ones(1, 3, 4, SIZE, SIZE)
    f = sample_triplane(planes, torch.tensor([[[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]]]))[0].T
    assert torch.allclose(f[0], torch.ones(4)) and torch.equal(f[1], torch.zeros(4))


def test_fir_upsample_is_zero_padded_at_the_borders_not_edge_replicated():
    up = upsample2d(torch.ones(1, 1, 6, 6), fir_kernel())
    assert up.shape == (1, 1, 12, 12)
    torch.testing.assert_close(up[0, 0, 1:-1, 1:-1], torch.ones(10, 10))
    torch.testing.assert_close(up[0, 0, 0, 1:-1], torch.full((10,), 0.75))        # (0 + 3·1)/4
    torch.testing.assert_close(up[0, 0, 0, 0], torch.tensor(0.5625))               # 0.75²


def test_fir_upsample_interior_is_half_pixel_bilinear():
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = upsample2d(x, fir_kernel())
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], rtol=0, atol=1e-6)
    assert (ours[..., 0, :] - bilinear[..., 0, :]).abs().max() > 0.05


def _seeded(module: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return module


def test_modulated_conv_is_demodulated_so_style_scale_cancels():
    layer, w = _seeded(ModulatedConv(4, 5, resolution=8, up=False)), torch.randn(1, 512)
    weight = layer.effective_weight(w)
    torch.testing.assert_close(weight.square().sum(dim=[1, 2, 3]), torch.ones(5), rtol=1e-5, atol=0)
    x = torch.randn(1, 4, 8, 8)
    before = layer(x, w)
    with torch.no_grad():
        layer.affine.weight.mul_(3.0), layer.affine.bias.mul_(3.0)
    torch.testing.assert_close(layer(x, w), before, rtol=1e-5, atol=1e-5)


def test_torgb_is_not_demodulated():
    layer, w = _seeded(ToRGB(4)), torch.randn(1, 512)
    x = torch.randn(1, 4, 8, 8)
    before = layer(x, w) - layer.bias.reshape(1, -1, 1, 1)
    with torch.no_grad():
        layer.affine.weight.mul_(3.0), layer.affine.bias.mul_(3.0)
    torch.testing.assert_close(layer(x, w) - layer.bias.reshape(1, -1, 1, 1), 3 * before, rtol=1e-4, atol=1e-5)


def test_up_conv_uses_the_unflipped_weight():
    """An impulse through the up-conv stamps W (not W flipped) before the FIR; compare with that construction."""
    layer, w = _seeded(ModulatedConv(1, 1, resolution=8, up=True)), torch.randn(1, 512)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    stamp = torch.zeros(1, 1, 9, 9)
    stamp[0, 0, 2:5, 4:7] = layer.effective_weight(w)[0, 0]           # out[2i+a, 2j+b] = W[a, b]
    k = fir_kernel() * 4
    expected = F.conv2d(stamp, k.flip([0, 1])[None, None], padding=1) + layer.bias
    expected = F.leaky_relu(expected, 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x, w), expected, rtol=1e-5, atol=1e-6)


def test_depth_is_clamped_to_the_global_sample_range_not_per_ray():
    """An empty ray (all weights 0 → NaN → inf) takes the max depth of the whole image, not of its own samples."""
    depths = torch.stack([torch.linspace(2.0, 4.0, 8), torch.linspace(2.0, 3.0, 8)])[None]
    densities = torch.stack([torch.full((8,), 50.0), torch.full((8,), -200.0)])[None]
    sample_weights, depth, weight_sum = march(densities, depths)
    assert torch.isinf(depth[0, 1]) and weight_sum[0, 1] == 0
    clamped = clamp_depth(depth, depths.flatten(1).amin(1), depths.flatten(1).amax(1))
    assert clamped[0, 1] == 4.0                                    # global max, not this ray's 3.0
    assert 2.0 < clamped[0, 0] < 2.2                               # dense ray stops near its first interval
    colors = torch.rand(1, 3, 2, 8)
    torch.testing.assert_close(to_signed(composite(colors, sample_weights))[0, :, 1], torch.full((3,), -1.0))


def test_per_sample_weights_composite_like_eg3d_interval_midpoints():
    """Σ_j c_j·v_j equals EG3D's Σ_i w_i·(c_i + c_{i+1})/2, and opacity is Σ w_i."""
    g = torch.Generator().manual_seed(2)
    depths = torch.sort(2.25 + torch.rand(1, 5, 12, generator=g), -1).values
    densities = torch.randn(1, 5, 12, generator=g) * 3
    colors = torch.rand(1, 4, 5, 12, generator=g)
    sample_weights, _, weight_sum = march(densities, depths)
    w = interval_weights(densities, depths)
    eg3d = (w.unsqueeze(1) * (colors[..., :-1] + colors[..., 1:]) / 2).sum(-1)
    torch.testing.assert_close(composite(colors, sample_weights), eg3d, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(weight_sum, w.sum(-1))
    assert 0 < weight_sum.min() and weight_sum.max() < 1


def test_depth_bounds_are_per_image_in_a_batch():
    depth = torch.tensor([[[5.0]], [[5.0]]])
    assert clamp_depth(depth, torch.tensor([2.0, 2.0]), torch.tensor([3.0, 4.0])).flatten().tolist() == [3.0, 4.0]


def test_deterministic_coarse_samples_are_bin_midpoints_with_the_last_half_a_bin_past_the_end():
    state = torch.random.get_rng_state()
    t = stratified_depths(2, 3, 48, 2.25, 3.3, deterministic=True)
    assert torch.equal(torch.random.get_rng_state(), state)       # no random number is drawn
    delta = 1.05 / 47
    expected = torch.linspace(2.25, 3.3, 48) + 0.5 * delta
    assert t.shape == (2, 3, 48) and torch.equal(t[1, 2], expected)
    assert abs(t[0, 0, -1].item() - (3.3 + delta / 2)) < 1e-6
    assert abs(t[0, 0, 0].item() - (2.25 + delta / 2)) < 1e-6


def test_stochastic_coarse_samples_jitter_within_their_bin_from_the_generator():
    a = stratified_depths(1, 50, 48, 2.25, 3.3, deterministic=False, generator=torch.Generator().manual_seed(5))
    b = stratified_depths(1, 50, 48, 2.25, 3.3, deterministic=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    offset = (a - torch.linspace(2.25, 3.3, 48)) / (1.05 / 47)
    assert offset.min() >= 0 and offset.max() < 1 and offset.std() > 0.2


def test_deterministic_importance_samples_invert_the_cdf_at_linspace_u():
    bins = torch.linspace(0.0, 1.0, 6)[None]                        # 4 weights use edges 0..0.8
    uniform = sample_pdf(bins, torch.ones(1, 4), 5, deterministic=True)
    torch.testing.assert_close(uniform, torch.linspace(0.0, 0.8, 5)[None], rtol=0, atol=1e-5)
    peaked = sample_pdf(bins, torch.tensor([[0.0, 1.0, 0.0, 0.0]]), 9, deterministic=True)
    inside = ((peaked > 0.2) & (peaked < 0.4)).sum()
    assert inside >= 7                                             # almost all mass in bin 1


def test_importance_depths_follow_the_coarse_weight_peak():
    coarse = stratified_depths(1, 1, 48, 2.25, 3.3)
    weights = torch.zeros(1, 1, 47)
    weights[0, 0, 20] = 1.0
    fine = importance_depths(coarse, weights, 48)[0, 0]
    peak = coarse[0, 0, 20:22]
    assert ((fine >= peak[0] - 0.05) & (fine <= peak[1] + 0.05)).float().mean() > 0.5
    assert torch.all(fine[1:] >= fine[:-1])                        # linspace u → sorted samples


def test_rays_go_through_pixel_centres_of_the_frontal_camera():
    from threedpe.camera import eural_to_camera_label
    label = torch.from_numpy(eural_to_camera_label(0.0, 0.0))[None]
    origins, dirs = sample_rays(label, 4)
    assert origins.shape == dirs.shape == (1, 16, 3)
    torch.testing.assert_close(origins[0, 0], torch.tensor([0.0, 0.0, 2.7]), rtol=0, atol=1e-6)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(1, 16))
    f = label[0, 16].item()
    # Pixel (row 0, col 0) is top-left: camera x = (0.125-0.5)/f → world −x (R = diag(1,−1,−1)); y down → world +y.
    d = torch.tensor([(0.125 - 0.5) / f, -(0.125 - 0.5) / f, -1.0])
    torch.testing.assert_close(dirs[0, 0], d / d.norm(), rtol=0, atol=1e-6)
    slope_y = dirs[0, :, 1] / dirs[0, :, 2]
    assert dirs[0, 1, 0] > dirs[0, 0, 0] and torch.isclose(slope_y[1], slope_y[0])   # row-major: next is a column


def test_rays_stay_float32_under_autocast():
    """Autocast (CPU bf16 here, CUDA fp16 live) must not reach the ray directions: a 1e-3 bend is a texel."""
    from threedpe.camera import eural_to_camera_label
    label = torch.from_numpy(eural_to_camera_label(0.3, -0.1))[None]
    plain = sample_rays(label, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = sample_rays(label, 8)
    for a, b in zip(autocast, plain):
        assert a.dtype == torch.float32 and torch.equal(a, b)
