"""The LT-mode conv/transformer heads: E_low's `EncoderF`, `EncoderEhigh` and the triplane decoder `EncoderFinal` (E_t)."""
from __future__ import annotations

import torch
from torch import nn

from threedpe.encoder.segformer import OverlapPatchEmbed, SegFormerBlock, tokens_to_map


def _upsample2x() -> nn.Module:
    return nn.UpsamplingBilinear2d(scale_factor=2)       # align_corners=True, as the official module


class EncoderF(nn.Module):
    """256×64² DeepLab features → OPE k7 s2 → 2 SegFormer blocks (1024-d, 4 heads) → 128×128² `f_feature`."""

    def __init__(self):
        super().__init__()
        self.patchembed = OverlapPatchEmbed(256, 1024, 7, 2)
        self.blocks = nn.ModuleList([SegFormerBlock(1024, heads=4) for _ in range(2)])
        self.upsample = nn.Sequential(nn.PixelShuffle(2), _upsample2x())
        self.net = nn.Sequential(nn.Conv2d(256, 128, 3, 1, 1), nn.LeakyReLU(), nn.Conv2d(128, 128, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.patchembed(x)
        for block in self.blocks:
            x = block(x, h, w)
        return self.net(self.upsample(tokens_to_map(x, h, w)))


class EncoderEhigh(nn.Module):
    """5×512² input → 128×128² high-frequency features (7 convs, LeakyReLU 0.01 between, none at the end)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(5, 64, 7, 2, 3), nn.LeakyReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.LeakyReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(128, 128, 3, 1, 1), nn.LeakyReLU()]
        layers.append(nn.Conv2d(128, 128, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderFinal(nn.Module):
    """E_t: concat[prompt-fused high, f_feature] 256×128² → triplane 96×256² (key names incl. the official typos)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(256, 256, 3, 1, 1))          # no activation
        self.pathembed = OverlapPatchEmbed(256, 1024, 7, 2)
        self.block = SegFormerBlock(1024, heads=2, sr_ratio=2)
        self.pixelShuffel = nn.PixelShuffle(2)
        self.output_net = nn.Sequential(
            nn.Conv2d(256, 256, 3, 1, 1), nn.LeakyReLU(), _upsample2x(),
            nn.Conv2d(256, 128, 3, 1, 1), nn.LeakyReLU(),
            nn.Conv2d(128, 128, 3, 1, 1), nn.LeakyReLU(),
            nn.Conv2d(128, 96, 3, 1, 1), nn.LeakyReLU(),
            nn.Conv2d(96, 96, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.pathembed(self.net(x))
        x = self.block(x, h, w)
        return self.output_net(self.pixelShuffel(tokens_to_map(x, h, w)))
