"""Triplane feature lookup: EG3D's plane projections (XY, XZ, ZX) and bilinear sampling averaged over planes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# For each plane, which world axes become grid_sample's (u → width, v → height).
# Plane 2 is (z, x), not (y, z): EG3D's released "bi-plane" axes, which every official checkpoint was trained with.
PLANE_AXES = ((0, 1), (0, 2), (2, 0))


def project_onto_planes(points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
    """points [B,M,3] world → grid coordinates [B,3,M,2] in grid_sample's [-1,1] (box [-box_warp/2, box_warp/2]³)."""
    scaled = points * (2.0 / box_warp)
    return torch.stack([scaled[..., list(axes)] for axes in PLANE_AXES], dim=1)


def sample_triplane(planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
    """Mean over the 3 planes of the bilinear features at `points`.

    planes [B,3,C,H,W], points [B,M,3] → [B,C,M], channel-first so the decoder needs no transpose.
    One grid_sample call for the whole plane stack; zero padding (points outside the box get zero
    features) and align_corners=False, as EG3D.
    """
    B, n_planes, C, H, W = planes.shape
    grid = project_onto_planes(points, box_warp).reshape(B * n_planes, 1, -1, 2).to(planes.dtype)
    feats = F.grid_sample(planes.reshape(B * n_planes, C, H, W), grid, mode="bilinear",
                          padding_mode="zeros", align_corners=False)          # [B*3, C, 1, M]
    return feats.reshape(B, n_planes, C, -1).mean(dim=1)
