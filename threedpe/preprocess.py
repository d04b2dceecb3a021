"""Images ↔ network tensors, exactly as the official inference script prepares them (spec §1.1 steps 2-3, 8)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"{what} must be an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    return rgb


def _to_unit_tensor(rgb: np.ndarray) -> torch.Tensor:
    """ToTensor: uint8 HWC → float32 [1,3,H,W] in [0,1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).permute(2, 0, 1).unsqueeze(0).float().div(255)


def image_to_tensor(rgb_u8_512: np.ndarray) -> torch.Tensor:
    """EG3D-aligned 512² RGB crop → [1,3,512,512] in [-1,1] (no ImageNet normalisation)."""
    rgb = _check_rgb(rgb_u8_512, "the input crop")
    if rgb.shape[:2] != (512, 512):
        raise ValueError(f"the input crop must be 512×512, got {rgb.shape[1]}×{rgb.shape[0]}")
    return _to_unit_tensor(rgb) * 2 - 1


def prompt_to_tensor(rgb_u8: np.ndarray) -> torch.Tensor:
    """Style prompt of any size → [1,3,224,224] ImageNet-normalised MAE input.

    PIL bicubic resize to 512 (the official `.resize((512,512))`), ToTensor, tensor bicubic resize to 224
    with antialias off (torchvision 0.14's tensor path), then ImageNet normalisation.
    """
    rgb = prompt_at_512(_check_rgb(rgb_u8, "the prompt image"))
    x = F.interpolate(_to_unit_tensor(rgb), size=(224, 224), mode="bicubic", align_corners=False, antialias=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def prompt_at_512(rgb: np.ndarray) -> np.ndarray:
    """A uint8 RGB prompt as the official code first sees it: PIL bicubic to 512² (unchanged at 512²)."""
    if rgb.shape[:2] == (512, 512):
        return rgb
    from PIL import Image                                # only here: GPU machines may lack Pillow (prompts at 512²)
    return np.asarray(Image.fromarray(rgb).resize((512, 512), Image.BICUBIC))


def tensor_to_image(img: torch.Tensor) -> np.ndarray:
    """[B,3,H,W] (or [3,H,W]) in about [-1,1] → uint8 HWC (B==1 or 3-D input) or BHWC, rounded."""
    x = img.detach().float()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    out = ((x.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out[0] if out.shape[0] == 1 else out
