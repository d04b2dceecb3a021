"""DeepLabV3 decoder (ASPP rates 12/24/36 + 3×3 conv), BatchNorm removed, laid out like smp 0.3.x for key parity.

Removed BatchNorms are kept as `nn.Identity` slots so the Sequential indices (and so the
checkpoint keys `decoder.0.convs.4.1`, `decoder.0.project.0`, `decoder.1`) stay the official ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ASPPPooling(nn.Sequential):
    """Global average → 1×1 conv → ReLU, broadcast back with bilinear (align_corners=False) like smp."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.Identity(), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int = 256, rates: tuple[int, int, int] = (12, 24, 36)):
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(nn.Conv2d(cin, cout, 1), nn.Identity(), nn.ReLU())]
        branches += [nn.Sequential(nn.Conv2d(cin, cout, 3, padding=r, dilation=r), nn.Identity(), nn.ReLU())
                     for r in rates]
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        # the only dropout in the model: identity in eval (deterministic) mode, p=0.5 in the official train-mode run
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 2), cout, 1), nn.Identity(), nn.ReLU(),
                                     nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabV3Decoder(nn.Sequential):
    """128 → 256 channels at the same resolution."""

    def __init__(self, cin: int = 128, cout: int = 256):
        super().__init__(ASPP(cin, cout), nn.Conv2d(cout, cout, 3, padding=1), nn.Identity(), nn.ReLU())
