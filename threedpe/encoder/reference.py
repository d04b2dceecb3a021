"""E_p + the projection-free cross-attention (`EncoderRef`): prompt tokens re-write the E_high features."""
from __future__ import annotations

import math

import torch
from torch import nn

from threedpe.encoder.segformer import OverlapPatchEmbed
from threedpe.encoder.vit import MAEEncoder


class EncoderRef(nn.Module):
    """Queries from E_high (pre_conv → OPE k7 s4), keys = values = all 197 MAE tokens; single head, no Q/K/V/out
    projections. The output replaces the E_high features (the official `residual=False`)."""

    def __init__(self):
        super().__init__()
        self.mae_encoder = MAEEncoder()
        self.pre_conv = nn.Conv2d(128, 96, 3, 1, 1)
        self.patch_emb = OverlapPatchEmbed(96, 768, 7, 4)
        self.upsampler_ps = nn.PixelShuffle(2)
        self.proj_tail = nn.Conv2d(192, 512, 1, bias=False)

    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.mae_encoder(prompt)

    def forward(self, high: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        q, h, w = self.patch_emb(self.pre_conv(high))
        attn = torch.softmax(q @ tokens.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        x = (attn @ tokens).transpose(1, 2).reshape(q.shape[0], q.shape[-1], h, w)
        return self.upsampler_ps(self.proj_tail(self.upsampler_ps(x)))
