"""Affine warps of HWC images with OpenCV's conventions (`cv2.warpAffine`: forward frame → output matrix,
pixel-index coordinates, pixel centres at integers), done by `grid_sample`; and the EG3D crop warp."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.packets import CROP_SIZE

BORDERS = {"constant": "zeros", "replicate": "border"}


def _inverse(matrix: np.ndarray) -> np.ndarray:
    m = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)[:2]


def warp_affine(image: torch.Tensor, matrix: np.ndarray, size: tuple[int, int], mode: str = "bilinear",
                border: str = "constant") -> torch.Tensor:
    """`cv2.warpAffine(image, matrix, size)` for an [H,W,C] or [H,W] tensor (uint8 or float) → float32 [h,w(,C)].

    mode: "bilinear" (INTER_LINEAR) or "bicubic" (INTER_CUBIC, a = −0.75 as OpenCV); border: "constant" (0)
    or "replicate". Results are float (no rounding) so callers can blend before quantising.
    """
    width, height = size
    inv = torch.as_tensor(_inverse(matrix), dtype=torch.float32, device=image.device)
    ys, xs = torch.meshgrid(torch.arange(height, device=image.device, dtype=torch.float32),
                            torch.arange(width, device=image.device, dtype=torch.float32), indexing="ij")
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = image.shape[:2]
    # grid_sample, align_corners=False: pixel index i sits at (2i + 1)/n − 1
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], -1)[None]
    planar = image.float()[None, None] if image.ndim == 2 else image.float().permute(2, 0, 1)[None]
    out = F.grid_sample(planar, grid, mode=mode, padding_mode=BORDERS[border], align_corners=False)[0]
    return out[0] if image.ndim == 2 else out.permute(1, 2, 0)


def warp_crop(frame: torch.Tensor, matrix: np.ndarray, size: int = CROP_SIZE) -> torch.Tensor:
    """`stages.face.alignment.warp_crop` on the device: the 512² crop (float32 HWC, 0..255), bicubic; a large
    downscale is area-filtered first (by the same integer factor, so the same pixel grid)."""
    matrix = np.asarray(matrix, np.float64)
    shrink = int(1.0 / math.hypot(matrix[0, 0], matrix[1, 0]))
    if shrink >= 2:
        h, w = frame.shape[:2]
        small = F.interpolate(frame.float().permute(2, 0, 1)[None], size=(max(1, h // shrink), max(1, w // shrink)),
                              mode="area")[0].permute(1, 2, 0)
        fx, fy = small.shape[1] / w, small.shape[0] / h
        to_small = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        matrix = matrix @ np.linalg.inv(to_small)
        frame = small
    return warp_affine(frame, matrix, (size, size), mode="bicubic", border="constant")


def crop_to_network(crop: torch.Tensor) -> torch.Tensor:
    """float HWC crop in 0..255 → the encoder's [1,3,512,512] in [−1,1], rounded to 8 bits as the NumPy path is."""
    return (crop.round().clamp(0, 255) / 255.0).permute(2, 0, 1)[None] * 2 - 1
