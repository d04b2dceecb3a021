"""The perceptual half of the image loss: an LPIPS-style distance on the features of a frozen network.

LPIPS proper (the official trainer's `lpips_lambda` terms) uses ImageNet AlexNet features and learned
linear heads, whose weights are downloaded at run time; that is impossible offline. So by default the
features come from a network every 3DPE checkpoint carries: the frozen MAE ViT-B/16 prompt encoder of
the base weights. Distance = Σ_layers mean_tokens ‖unit(f_a) − unit(f_b)‖² over the patch tokens after
the chosen blocks (LPIPS's channel normalisation and squared difference, with uniform weights since MAE
has no calibrated heads). With user-supplied torchvision AlexNet weights (and optionally the LPIPS v0.1
`alex.pth` heads) the real LPIPS-alex is used instead.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError
from threedpe.encoder import MAEEncoder
from threedpe.preprocess import IMAGENET_MEAN, IMAGENET_STD

MAE_LAYERS = (2, 5, 8, 11)                      # 0-based blocks whose patch tokens are compared
ALEX_CHANNELS = (64, 192, 384, 256, 256)
LPIPS_SHIFT, LPIPS_SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)


def _unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / (x.square().sum(dim, keepdim=True).sqrt() + 1e-10)


class MAEPerceptual(nn.Module):
    """images [B,3,H,W] in [-1,1] → distance [B]; `features` can be computed once for fixed targets."""

    def __init__(self, mae: MAEEncoder, layers: tuple[int, ...] = MAE_LAYERS):
        super().__init__()
        if not layers or min(layers) < 0 or max(layers) >= len(mae.blocks):
            raise UserError(f"perceptual layers must be MAE blocks 0..{len(mae.blocks) - 1}, not {layers}")
        self.mae = mae.requires_grad_(False)
        self.layers = tuple(sorted(set(layers)))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate((image + 1) / 2, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        mae = self.mae
        x = mae.patch_embed(x) + mae.pos_embed[:, 1:]
        x = torch.cat([(mae.cls_token + mae.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
        taps = []
        for index, block in enumerate(mae.blocks[:self.layers[-1] + 1]):
            x = block(x)
            if index in self.layers:
                taps.append(x[:, 1:])                        # patch tokens (the CLS token has no place)
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        fa = self.features(a)
        fb = self.features(b) if torch.is_tensor(b) else b
        return sum((_unit(x, -1) - _unit(y, -1)).square().sum(-1).mean(-1) for x, y in zip(fa, fb))


class AlexNetLPIPS(nn.Module):
    """LPIPS v0.1 'alex' on user-supplied weights: torchvision AlexNet `features.*` (+ LPIPS `lin<i>` heads;
    without them every channel weighs 1, LPIPS's uncalibrated baseline)."""

    def __init__(self):
        super().__init__()
        c = ALEX_CHANNELS
        self.backbone = nn.Sequential(                           # torchvision's `features.*`
            nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU())
        self.taps = (1, 4, 7, 9, 11)                            # after each ReLU
        self.heads = nn.ParameterList([nn.Parameter(torch.ones(1, ch, 1, 1)) for ch in c])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_files(cls, backbone: str | os.PathLike, heads: str | os.PathLike | None = None) -> "AlexNetLPIPS":
        net = cls()
        state = _read_weights(backbone, "--perceptual-weights")
        wanted = net.backbone.state_dict()
        got = {k: state.get(f"features.{k}") for k in wanted}
        bad = [k for k, v in got.items() if not torch.is_tensor(v) or v.shape != wanted[k].shape]
        if bad:
            raise UserError(f"{backbone} is not a torchvision AlexNet state dict (no 'features.{bad[0]}' "
                            f"of shape {list(wanted[bad[0]].shape)})")
        net.backbone.load_state_dict(got)
        if heads is not None:
            lin = _read_weights(heads, "--lpips-heads")
            for i, head in enumerate(net.heads):
                value = lin.get(f"lin{i}.model.1.weight")
                if value is None or tuple(value.shape) != tuple(head.shape):
                    raise UserError(f"{heads} is not an LPIPS v0.1 alex.pth (no 'lin{i}.model.1.weight' "
                                    f"of shape {list(head.shape)})")
                head.data.copy_(value)
        return net.requires_grad_(False).eval()

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.shift.to(image.device)) / self.scale.to(image.device)
        taps = []
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index in self.taps:
                taps.append(x)
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        fa = self.features(a)
        fb = self.features(b) if torch.is_tensor(b) else b
        return sum(F.conv2d((_unit(x, 1) - _unit(y, 1)).square(), head).mean((1, 2, 3))
                   for x, y, head in zip(fa, fb, self.heads))


def build_perceptual(mae: MAEEncoder, weights: str | None = None, heads: str | None = None,
                     layers: tuple[int, ...] = MAE_LAYERS) -> nn.Module:
    """AlexNet-LPIPS when the user gives its weights, else the MAE-feature distance on the frozen `mae`."""
    if weights:
        return AlexNetLPIPS.from_files(weights, heads)
    if heads:
        raise UserError("--lpips-heads needs --perceptual-weights (the AlexNet backbone they calibrate)")
    return MAEPerceptual(mae, layers)


def _read_weights(path: str | os.PathLike, flag: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag}: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:                   # unpickling and format errors of many kinds
        raise UserError(f"{flag}: {path} is not a tensors-only PyTorch file ({str(exc).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{flag}: {path} holds a {type(state).__name__}, not a state dict")
    return state
