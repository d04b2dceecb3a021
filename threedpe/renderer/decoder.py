"""The OSG decoder: the 2-layer MLP that turns averaged triplane features into density and 32 features."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualizedLinear(nn.Module):
    """EG3D's FullyConnectedLayer: stores un-scaled W, b and applies the gains 1/sqrt(in) and 1 at run time."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = 1.0 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in] → [N, out]."""
        return torch.addmm(self.bias.to(x.dtype), x, (self.weight * self.weight_gain).to(x.dtype).t())

    def forward_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in, M] → [B, out, M] (same layer, features along dim 1)."""
        weight = (self.weight * self.weight_gain).to(x.dtype)
        return torch.matmul(weight, x) + self.bias.to(x.dtype).unsqueeze(-1)


class OSGDecoder(nn.Module):
    """FC(32→64) → Softplus → FC(64→33); sigma is raw channel 0, features are sigmoid·1.002 − 0.001 (MipNeRF)."""

    def __init__(self, n_features: int = 32, hidden: int = 64, out_features: int = 32):
        super().__init__()
        self.net = nn.Sequential(EqualizedLinear(n_features, hidden), nn.Softplus(),
                                 EqualizedLinear(hidden, 1 + out_features))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B,32,M] channel-first → (sigma [B,M], features [B,32,M]).

        EG3D passes the view direction too but never uses it.
        """
        first, _, second = self.net
        out = second.forward_channels_first(F.softplus(first.forward_channels_first(features)))
        return out[:, 0], torch.sigmoid(out[:, 1:]) * (1 + 2 * 0.001) - 0.001
