"""Depths along rays: stratified coarse samples and importance (inverse-CDF) fine samples, EG3D's ImportanceRenderer.

Two modes. Deterministic (conformance README §2): coarse jitter fixed at 0.5 (bin midpoints) and
`u = linspace(0, 1, n)` for the importance draw. Stochastic (official): U[0,1) from `torch.rand`, with an
optional `torch.Generator` for reproducible runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def stratified_depths(batch: int, n_rays: int, n_samples: int, ray_start: float, ray_end: float, *,
                      deterministic: bool = True, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """[B,R,n] depths linspace(start, end, n) + U·Δ with Δ = (end−start)/(n−1); U = 0.5 when deterministic.

    The last sample therefore lies U·Δ beyond `ray_end`, exactly as EG3D's formula.
    """
    depths = torch.linspace(ray_start, ray_end, n_samples, device=device).reshape(1, 1, n_samples)
    depths = depths.repeat(batch, n_rays, 1)
    delta = (ray_end - ray_start) / (n_samples - 1)
    if deterministic:
        return depths + 0.5 * delta
    jitter = torch.rand(depths.shape, generator=generator, device=device, dtype=depths.dtype)
    return depths + jitter * delta


def importance_depths(coarse_depths: torch.Tensor, coarse_weights: torch.Tensor, n_importance: int, *,
                      deterministic: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """New depths [B,R,n] drawn from the smoothed coarse weights (coarse_depths [B,R,n_c], weights [B,R,n_c−1])."""
    with torch.no_grad():
        B, R, n_coarse = coarse_depths.shape
        z = coarse_depths.reshape(B * R, n_coarse)
        w = coarse_weights.reshape(B * R, 1, -1).float()
        # Max- then average-pool widen every peak by one bin; +0.01 keeps some samples in empty space.
        w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).reshape(B * R, -1) + 0.01
        z_mid = 0.5 * (z[:, :-1] + z[:, 1:])
        samples = sample_pdf(z_mid, w[:, 1:-1], n_importance, deterministic=deterministic, generator=generator)
    return samples.reshape(B, R, n_importance)


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n_samples: int, *, deterministic: bool = True,
               generator: torch.Generator | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Inverse-CDF sampling of piecewise-constant pdf `weights` [N,K] over `bins` [N,K+2] edges → [N,n].

    EG3D passes 47 bin edges with 45 weights; only the first K+1 edges are ever reached.
    """
    n_rays, n_weights = weights.shape
    weights = weights + eps
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0, 1, n_samples, device=bins.device).expand(n_rays, n_samples).contiguous()
    else:
        u = torch.rand(n_rays, n_samples, generator=generator, device=bins.device)
    inds = sorted_count_not_above(cdf, u)
    below = torch.clamp_min(inds - 1, 0)
    above = torch.clamp_max(inds, n_weights)
    pairs = torch.stack([below, above], -1).reshape(n_rays, 2 * n_samples)
    cdf_g = torch.gather(cdf, 1, pairs).reshape(n_rays, n_samples, 2)
    bins_g = torch.gather(bins, 1, pairs).reshape(n_rays, n_samples, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    # A zero-width CDF step means a zero-weight bin, which u never lands in; any finite value will do.
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def sorted_count_not_above(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """searchsorted(cdf, u, right=True) for non-decreasing rows of `cdf`: how many entries are <= u.

    While exporting it is written as a comparison and a sum (ONNX has no searchsorted); same integers.
    """
    if torch.onnx.is_in_onnx_export():
        return (cdf.unsqueeze(1) <= u.unsqueeze(-1)).to(torch.int64).sum(-1)
    return torch.searchsorted(cdf, u, right=True)
