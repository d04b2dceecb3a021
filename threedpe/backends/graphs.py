"""The three exportable graphs of 3DPE as plain tensor-in/tensor-out modules: prompt encoder, encoder, renderer + SR.

They are what ONNX export, TensorRT and CUDA-graph capture see: fixed render options baked in, no dicts, no
Python-side options, deterministic sampling only (the stochastic mode draws random numbers per call).
"""
from __future__ import annotations

import torch
from torch import nn

from threedpe.encoder import TAPS, EditingEncoder

RENDER_OUTPUTS = ("image", "feature_image", "image_depth", "weight_sum")


class PromptEncoderGraph(nn.Module):
    """prompt [B,3,224,224] ImageNet-normalised → MAE tokens [B,197,768]."""

    def __init__(self, encoder: EditingEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode_prompt(prompt)


class EncoderGraph(nn.Module):
    """image [B,3,512,512] in [-1,1] + tokens [B,197,768] → triplane [B,96,256,256] (+ the conformance taps
    `elow_decoder, elow, ehigh, xattn` after it when `taps`)."""

    def __init__(self, encoder: EditingEncoder, taps: bool = False):
        super().__init__()
        self.encoder = encoder
        self.taps = taps

    def forward(self, image: torch.Tensor, tokens: torch.Tensor):
        if not self.taps:
            return self.encoder(image, tokens)
        taps: dict[str, torch.Tensor] = {}
        triplane = self.encoder(image, tokens, taps=taps)
        return (triplane,) + tuple(taps[name] for name in TAPS if name != "triplane")


class RendererGraph(nn.Module):
    """planes [B,96,256,256] + one camera each [B,25] → image [B,3,512,512], feature_image [B,32,R,R],
    image_depth [B,1,R,R], weight_sum [B,1,R,R] with the render options fixed at construction."""

    def __init__(self, renderer: nn.Module, options):
        super().__init__()
        if not options.deterministic or not options.superresolution:
            raise ValueError("only the deterministic render with superresolution is exported")
        self.renderer = renderer
        self.options = options

    def forward(self, planes: torch.Tensor, cameras: torch.Tensor):
        out = self.renderer(planes, cameras, self.options)
        return tuple(out[name] for name in RENDER_OUTPUTS)


def encoder_tap_names(taps: bool) -> tuple[str, ...]:
    """Output names of `EncoderGraph`."""
    return ("triplane",) + (tuple(n for n in TAPS if n != "triplane") if taps else ())
