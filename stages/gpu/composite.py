"""The compositor's paste on the device: feather the render's mask, warp render and mask into the frame's
region of the crop, match the seam colour, blend; as `stages.composite.paste` (crop-space renders)."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.packets import CROP_SIZE, FaceObservation
from stages.gpu.warp import warp_affine

FEATHER_SIGMA = 10.0                # as stages.composite
BORDER_FADE = 24
ERODE = 9


@functools.lru_cache(maxsize=8)
def _gaussian(sigma: float, device: str) -> torch.Tensor:
    """OpenCV's kernel for a float image: size round(8σ + 1) | 1, normalised."""
    size = int(round(sigma * 4 * 2 + 1)) | 1
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-x * x / (2 * sigma * sigma))
    return (k / k.sum()).float().to(device)


@functools.lru_cache(maxsize=8)
def _border(size: int, width: int, device: str) -> torch.Tensor:
    i = torch.arange(size, dtype=torch.float32)
    ramp = (torch.minimum(i, i.flip(0)) / width).clamp(0, 1)
    return torch.minimum(ramp[:, None], ramp[None, :]).to(device)


def gaussian_blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """`cv2.GaussianBlur(mask, (0, 0), sigma)` for a float [H,W] tensor (separable, BORDER_REFLECT_101)."""
    k = _gaussian(sigma, str(mask.device))
    pad = k.numel() // 2
    x = F.pad(mask[None, None], (pad, pad, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1))[0, 0]


def feather_crop_mask(mask: torch.Tensor) -> torch.Tensor:
    """`stages.composite.feather_crop_mask`: erode 9×9 (outside counts as 1, as OpenCV), blur σ 10, border fade."""
    m = mask.float()
    if tuple(m.shape) != (CROP_SIZE, CROP_SIZE):
        m = F.interpolate(m[None, None], size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)[0, 0]
    m = -F.max_pool2d(-m[None, None], ERODE, stride=1, padding=ERODE // 2)[0, 0]
    m = gaussian_blur(m, FEATHER_SIGMA)
    return m.clamp(0, 1) * _border(CROP_SIZE, BORDER_FADE, str(m.device))


def _roi(corners: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def match_seam_colour(top: torch.Tensor, base: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`stages.composite.match_seam_colour`: shift `top` by the mean difference on the seam band, fading inwards."""
    band = mask * (1 - mask)
    weight = band.sum()
    delta = ((base - top) * band[..., None]).reshape(-1, 3).sum(0) / weight.clamp_min(1.0)
    shifted = top + delta * (1 - mask)[..., None]
    return torch.where(weight >= 1.0, shifted, top)


def paste(frame: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, face: FaceObservation,
          alpha: float = 1.0) -> torch.Tensor:
    """A 512² crop-space render (uint8 HWC `image`, float `mask`) pasted into `frame` (uint8 HWC) → uint8 frame."""
    out = frame.clone()
    h, w = frame.shape[:2]
    corners = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [0, CROP_SIZE, 1], [CROP_SIZE, CROP_SIZE, 1]],
                       np.float64) @ face.crop_inverse.T
    roi = _roi(corners, w, h)
    if roi is None:
        return out
    x0, y0, x1, y1 = roi
    inverse = face.crop_inverse.copy()
    inverse[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    top = warp_affine(image, inverse, size, "bilinear", "replicate")
    m = warp_affine(feather_crop_mask(mask), inverse, size, "bilinear", "constant")
    base = frame[y0:y1, x0:x1].float()
    top = match_seam_colour(top, base, m)
    m = (m * alpha)[..., None]
    out[y0:y1, x0:x1] = (base * (1 - m) + top * m + 0.5).clamp(0, 255).to(torch.uint8)
    return out
