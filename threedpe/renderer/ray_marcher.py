"""Volume compositing along sorted samples: EG3D's MipRayMarcher2 (midpoint intervals, softplus(σ−1) density).

Samples are in the last dimension. EG3D composites interval colours (c_i + c_{i+1})/2 with interval
weights w_i; the same sum is Σ_j c_j·v_j with per-sample weights v_j = (w_{j−1} + w_j)/2, which lets the
renderer composite colours in any sample order without sorting or averaging the 32-channel colours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def interval_weights(densities: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """w_i = α_i·∏_{j<i}(1−α_j+1e-10), α_i = 1−exp(−softplus(σ_mid−1)·δ_i); [..., n] → [..., n−1]."""
    deltas = depths[..., 1:] - depths[..., :-1]
    sigma = F.softplus((densities[..., :-1] + densities[..., 1:]) / 2 - 1)
    alpha = 1 - torch.exp(-sigma * deltas)
    transmittance = cumulative_product(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], -1))
    return alpha * transmittance[..., :-1]


def cumulative_product(x: torch.Tensor) -> torch.Tensor:
    """cumprod over the last dim; as exp(cumsum(log x)) while exporting (ONNX has no CumProd), x > 0 here."""
    if torch.onnx.is_in_onnx_export():
        return torch.exp(torch.cumsum(torch.log(x), -1))
    return torch.cumprod(x, -1)


def march(densities: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted densities/depths [..., n] → (per-sample colour weights [..., n], depth [...], opacity Σw [...]).

    The depth is the weighted mean of interval midpoints, NaN (empty ray) → +inf, and is NOT clamped here:
    `clamp_depth` does that with the min/max over a whole image, which may span several ray chunks.
    """
    weights = interval_weights(densities, depths)
    weight_sum = weights.sum(-1)
    depth = torch.nan_to_num(torch.sum(weights * (depths[..., :-1] + depths[..., 1:]) / 2, -1) / weight_sum,
                             float("inf"))
    return (F.pad(weights, (1, 0)) + F.pad(weights, (0, 1))) / 2, depth, weight_sum


def composite(colors: torch.Tensor, sample_weights: torch.Tensor) -> torch.Tensor:
    """Σ_j c_j·v_j: colors [B,C,R,n] channel-first, weights [B,R,n] → [B,C,R] (before the ×2−1 of `to_signed`)."""
    return (colors * sample_weights.unsqueeze(1)).sum(-1)


def to_signed(features: torch.Tensor) -> torch.Tensor:
    """×2−1 on ALL channels, with no background term (EG3D's white_back is off): empty rays are −1."""
    return features * 2 - 1


def clamp_depth(depth: torch.Tensor, depth_min: torch.Tensor, depth_max: torch.Tensor) -> torch.Tensor:
    """Clamp depth [B,...] to per-image bounds [B] (the min/max of ALL sample depths of that image, not per ray).

    EG3D clamps with the min/max of its whole depth tensor; the official renderer is run one view at a
    time, so per image equals official and keeps a batched render independent of what it is batched with.
    """
    shape = (-1,) + (1,) * (depth.ndim - 1)
    return torch.clamp(depth, depth_min.reshape(shape), depth_max.reshape(shape))
