"""SegFormer (mix-transformer, smp 0.3.x) pieces: overlapping patch embedding and the efficient-attention block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """B×(H·W)×C row-major tokens → B×C×H×W."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


class OverlapPatchEmbed(nn.Module):
    """Conv k×k stride s padding k//2, then row-major tokens and LayerNorm (eps 1e-5)."""

    def __init__(self, cin: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel, stride, kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientAttention(nn.Module):
    """Multi-head attention with bias-free `q`/`kv` (keys = first `dim` outputs of kv) and optional spatial reduction."""

    def __init__(self, dim: int, heads: int, sr_ratio: int = 1):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, dim * 2, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        hd = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, hd).transpose(1, 2)
        src = x
        if self.sr_ratio > 1:
            src = self.norm(self.sr(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(src).reshape(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)      # scale hd^-0.5, no dropout
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.dwconv(tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)


class MixMlp(nn.Module):
    """fc1 → depthwise 3×3 → GELU (erf) → fc2; the depthwise conv comes before the GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class SegFormerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2, sr_ratio: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixMlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)
