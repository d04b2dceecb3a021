"""TriplaneRenderer: triplanes + cameras → neural render (features, depth, opacity) → 512² superresolved image.

Owns the rendering options and the glue between ray sampling, triplane lookup, the OSG decoder,
importance sampling, ray marching and the superresolution. Parameter names equal the official
`renderer_state_dict` keys (`const`, `decoder.net.{0,2}.*`, `superresolution.block{0,1}.*`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from threedpe.checkpoint import check_state_dict, shapes_of
from threedpe.renderer.decoder import OSGDecoder
from threedpe.renderer.importance import importance_depths, stratified_depths
from threedpe.renderer.ray_marcher import clamp_depth, composite, interval_weights, march, to_signed
from threedpe.renderer.ray_sampler import sample_rays
from threedpe.renderer.superres import W_DIM, SuperresolutionHybrid8XDC
from threedpe.renderer.triplane import sample_triplane

N_PLANES, PLANE_CHANNELS = 3, 32


@dataclass(frozen=True)
class RenderOptions:
    """How to render. Defaults are the official 3DPE/EG3D values in the deterministic (conformance) mode.

    deterministic=False is the official stochastic sampling (U[0,1) jitter and importance draws), from
    `generator` if given (it must live on the render device). `ray_chunk` bounds memory by marching that
    many rays per image at a time (same result up to float rounding when deterministic; when stochastic it
    interleaves the random draws per chunk, so only `ray_chunk=None` draws them in the official order).
    `superresolution=False` skips the 512² image.
    """

    deterministic: bool = True
    neural_resolution: int = 128
    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    ray_start: float = 2.25
    ray_end: float = 3.3
    box_warp: float = 1.0
    generator: torch.Generator | None = None
    ray_chunk: int | None = None
    superresolution: bool = True

    def __post_init__(self):
        if self.neural_resolution < 1 or self.depth_resolution < 2 or self.depth_resolution_importance < 0:
            raise ValueError("RenderOptions: neural_resolution >= 1, depth_resolution >= 2 and "
                             "depth_resolution_importance >= 0 are required")
        if not 0 < self.ray_start < self.ray_end or (self.ray_chunk is not None and self.ray_chunk < 1):
            raise ValueError("RenderOptions: need 0 < ray_start < ray_end and ray_chunk >= 1 (or None)")

    @classmethod
    def preview(cls, **overrides) -> "RenderOptions":
        """A ~8× cheaper volume render for previews: 64² rays, 24 + 24 samples (the SR still outputs 512²)."""
        values = dict(neural_resolution=64, depth_resolution=24, depth_resolution_importance=24)
        return cls(**{**values, **overrides})


class TriplaneRenderer(nn.Module):
    """The official TriplaneRenderer (3DPE's renderer_state_dict) as one module."""

    def __init__(self):
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, 1, W_DIM))
        self.decoder = OSGDecoder(PLANE_CHANNELS, 64, PLANE_CHANNELS)
        self.superresolution = SuperresolutionHybrid8XDC(PLANE_CHANNELS)

    def forward(self, planes: torch.Tensor, cameras: torch.Tensor, opts: RenderOptions | None = None
                ) -> dict[str, torch.Tensor]:
        """planes [B,96,H,W] (or [B,3,32,H,W]; B = 1 renders that triplane from every camera), cameras [C,25]
        with C = B or B = 1 → dict(image [C,3,512,512] unclamped, image_raw, image_depth, feature_image,
        weight_sum), the last four at the neural resolution."""
        opts = opts or RenderOptions()
        out = self.render_volume(planes, cameras, opts)
        if opts.superresolution:
            out["image"] = self.superresolve(out["image_raw"], out["feature_image"])
        return out

    def superresolve(self, image_raw: torch.Tensor, feature_image: torch.Tensor) -> torch.Tensor:
        """The 512² image from the neural render, with the learned constant style (fp32 always)."""
        return self.superresolution(image_raw, feature_image, self.const[:, -1])

    def render_volume(self, planes: torch.Tensor, cameras: torch.Tensor, opts: RenderOptions | None = None
                      ) -> dict[str, torch.Tensor]:
        """The neural render only: feature_image [C,32,R,R], image_raw (its first 3 channels), image_depth and
        weight_sum [C,1,R,R]."""
        opts = opts or RenderOptions()
        planes = _as_plane_stack(planes)
        cameras = _as_cameras(cameras, planes.shape[0])
        res = opts.neural_resolution
        origins, directions = sample_rays(cameras, res)
        n_cams, n_rays = origins.shape[:2]
        chunk = opts.ray_chunk or n_rays
        chunks = [self._march_rays(planes, origins[:, s:s + chunk], directions[:, s:s + chunk], opts)
                  for s in range(0, n_rays, chunk)]
        feats, depths, weight_sums, t_min, t_max = zip(*chunks)
        depth = clamp_depth(torch.cat(depths, 1), torch.stack(t_min).amin(0), torch.stack(t_max).amax(0))
        feature_image = torch.cat(feats, -1).reshape(n_cams, -1, res, res)
        return dict(feature_image=feature_image, image_raw=feature_image[:, :3],
                    image_depth=depth.reshape(n_cams, 1, res, res),
                    weight_sum=torch.cat(weight_sums, -1).reshape(n_cams, 1, res, res))

    def _march_rays(self, planes, origins, directions, opts):
        """Coarse pass, importance pass, compositing in depth order, for rays [C,r,3] → per-ray results."""
        n_cams, n_rays = origins.shape[:2]
        coarse = stratified_depths(n_cams, n_rays, opts.depth_resolution, opts.ray_start, opts.ray_end,
                                   deterministic=opts.deterministic, generator=opts.generator, device=origins.device)
        sigma, colors = self._query(planes, origins, directions, coarse, opts.box_warp)
        if opts.depth_resolution_importance <= 0:
            sample_weights, depth, weight_sum = march(sigma, coarse)
            rgb, depths = composite(colors, sample_weights), coarse
        else:
            fine = importance_depths(coarse, interval_weights(sigma, coarse), opts.depth_resolution_importance,
                                     deterministic=opts.deterministic, generator=opts.generator)
            sigma_f, colors_f = self._query(planes, origins, directions, fine, opts.box_warp)
            depths, order = torch.sort(torch.cat([coarse, fine], -1), dim=-1)
            sorted_weights, depth, weight_sum = march(torch.gather(torch.cat([sigma, sigma_f], -1), -1, order), depths)
            # Back to coarse|fine order, so the 32-channel colours are never sorted or concatenated.
            sample_weights = torch.empty_like(sorted_weights).scatter_(-1, order, sorted_weights)
            n_coarse = coarse.shape[-1]
            rgb = (composite(colors, sample_weights[..., :n_coarse])
                   + composite(colors_f, sample_weights[..., n_coarse:]))
        return to_signed(rgb), depth, weight_sum, depths.flatten(1).amin(1), depths.flatten(1).amax(1)

    def _query(self, planes, origins, directions, depths, box_warp):
        """Decode the points o + t·d for depths [C,r,n] → (sigma [C,r,n], colours [C,32,r,n]) in fp32."""
        n_cams, n_rays, n_samples = depths.shape
        points = (origins.unsqueeze(-2) + depths.unsqueeze(-1) * directions.unsqueeze(-2)).reshape(n_cams, -1, 3)
        if planes.shape[0] == 1 and n_cams > 1:
            points = points.reshape(1, -1, 3)              # one triplane, many cameras: one lookup for all
        sigma, feats = self.decoder(sample_triplane(planes, points, box_warp))
        # Marching and importance sampling stay fp32 even under autocast: depths near 2.7 need the mantissa.
        sigma = sigma.float().reshape(n_cams, n_rays, n_samples)
        if feats.shape[0] != n_cams:                       # the shared lookup: [1,32,C·r·n] → [C,32,r,n]
            return sigma, feats.float().reshape(-1, n_cams, n_rays, n_samples).transpose(0, 1)
        return sigma, feats.float().reshape(n_cams, -1, n_rays, n_samples)

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Strict by default; a missing, unexpected or wrong-shaped key raises CheckpointError naming the first one."""
        if strict:
            check_state_dict(state_dict, shapes_of(self), "renderer_state_dict")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _as_plane_stack(planes: torch.Tensor) -> torch.Tensor:
    """[B,96,H,W] → [B,3,32,H,W]: channel c is plane c//32, feature c%32."""
    if planes.ndim == 4 and planes.shape[1] == N_PLANES * PLANE_CHANNELS:
        return planes.reshape(planes.shape[0], N_PLANES, PLANE_CHANNELS, *planes.shape[-2:])
    if planes.ndim == 5 and tuple(planes.shape[1:3]) == (N_PLANES, PLANE_CHANNELS):
        return planes
    raise ValueError(f"planes must be [B,96,H,W] or [B,3,32,H,W], got {list(planes.shape)}")


def _as_cameras(cameras: torch.Tensor, n_planes: int) -> torch.Tensor:
    cameras = cameras[None] if cameras.ndim == 1 else cameras
    if cameras.ndim != 2 or cameras.shape[-1] != 25:
        raise ValueError(f"cameras must be [C,25] EG3D labels, got {list(cameras.shape)}")
    if n_planes not in (1, cameras.shape[0]):
        raise ValueError(f"{n_planes} triplanes but {cameras.shape[0]} cameras: give one camera per triplane, "
                         "or one triplane for all cameras")
    return cameras
