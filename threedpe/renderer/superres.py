"""128→512 superresolution: EG3D's SuperresolutionHybrid8XDC (two StyleGAN2 "skip" synthesis blocks), fp32.

The style vector is one learned constant shared by the whole batch, so every layer's styles are
constants: each conv runs as an ordinary conv with the modulated/demodulated weight (exact, batch
independent). Parameter and buffer names equal the official `superresolution.*` keys; `noise_const` and
`noise_strength` are kept only for strict loading (noise mode is 'none').
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from threedpe.renderer.decoder import EqualizedLinear

W_DIM = 512
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def fir_kernel() -> torch.Tensor:
    """outer(k, k)/64 with k = [1, 3, 3, 1]: the official resample_filter."""
    k = np.array([1.0, 3.0, 3.0, 1.0])
    return torch.from_numpy((np.outer(k, k) / 64.0).astype(np.float32))


def _depthwise(f: torch.Tensor, channels: int, gain: float) -> torch.Tensor:
    return (f * gain).to(torch.float32)[None, None].expand(channels, 1, *f.shape).contiguous()


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """×2 up-sampling by zero insertion, zero padding (2 before, 1 after) and the FIR `f` with gain 4.

    Written as one depthwise transposed conv (the same nonzero products, no zero-inserted copy). Pixels outside
    the image count as 0, so borders darken towards 3/4 of a constant: it is NOT F.interpolate.
    """
    return F.conv_transpose2d(x, _depthwise(f, x.shape[1], 4.0), stride=2, padding=1, groups=x.shape[1])


def fir_filter(x: torch.Tensor, f: torch.Tensor, padding: int, gain: float,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-padded convolution (true convolution, as upfirdn2d: the filter is flipped) with `f`·gain per channel,
    then `bias` per channel if given."""
    return F.conv2d(x, _depthwise(f.flip([0, 1]), x.shape[1], gain), bias, padding=padding, groups=x.shape[1])


class ModulatedConv(nn.Module):
    """StyleGAN2 SynthesisLayer, 3×3: modulate by affine(w), demodulate, optional ×2 up, bias, lrelu(0.2)·√2."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, up: bool):
        super().__init__()
        self.up = up
        self.affine = EqualizedLinear(W_DIM, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.zeros(resolution, resolution))
        self.register_buffer("resample_filter", fir_kernel())

    def effective_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The conv weight for style input w [1,512]: W·s per input channel, then unit norm per output channel."""
        weight = self.weight * self.affine(w).reshape(1, -1, 1, 1)
        return weight * (weight.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # lrelu(g·y) = g·lrelu(y) for g > 0, so the activation gain √2 is folded into weight and bias:
        # one pass less over the largest tensors, and the bias rides along with the last conv.
        weight = self.effective_weight(w) * LRELU_GAIN
        bias = self.bias * LRELU_GAIN
        if self.up:
            # Transposed conv with the weight transposed to [in,out,k,k] and NOT flipped (EG3D's fast path),
            # size 2H+1, then the FIR with gain 4 and zero padding 1 brings it to 2H; then the bias.
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = fir_filter(x, self.resample_filter, padding=1, gain=4.0, bias=bias)
        else:
            x = F.conv2d(x, weight, bias, padding=1)
        return F.leaky_relu_(x, LRELU_SLOPE)


class ToRGB(nn.Module):
    """1×1 modulated conv to RGB: styles affine(w)/√C_in, no demodulation, bias, linear."""

    def __init__(self, in_channels: int, out_channels: int = 3):
        super().__init__()
        self.affine = EqualizedLinear(W_DIM, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return F.conv2d(x, self.weight * styles.reshape(1, -1, 1, 1), self.bias)


class SynthesisBlock(nn.Module):
    """Up-conv, conv, then ToRGB added to the FIR-up-sampled running image ("skip" architecture)."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int):
        super().__init__()
        self.register_buffer("resample_filter", fir_kernel())
        self.conv0 = ModulatedConv(in_channels, out_channels, resolution, up=True)
        self.conv1 = ModulatedConv(out_channels, out_channels, resolution, up=False)
        self.torgb = ToRGB(out_channels)

    def forward(self, x: torch.Tensor, img: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv1(self.conv0(x, w), w)
        return x, upsample2d(img, self.resample_filter) + self.torgb(x, w)


class SuperresolutionHybrid8XDC(nn.Module):
    """rgb [B,3,128,128] + features [B,32,128,128] + one style w [1,512] → image [B,3,512,512], unclamped."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.block0 = SynthesisBlock(channels, 256, resolution=256)
        self.block1 = SynthesisBlock(256, 128, resolution=512)

    def forward(self, rgb: torch.Tensor, features: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != 128:
            # EG3D resizes other neural resolutions to the SR's 128 input (bilinear, antialiased).
            features = F.interpolate(features, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)
            rgb = F.interpolate(rgb, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)
        # Always float32, even under autocast: the official SR runs in fp32 without conv clamp.
        with torch.autocast(device_type=features.device.type, enabled=False):
            w = w.reshape(1, W_DIM).float()
            x, img = self.block0(features.float(), rgb.float(), w)
            _, img = self.block1(x, img, w)
        return img
