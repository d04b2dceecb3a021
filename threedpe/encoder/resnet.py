"""E_low trunk: ResNet34 stem + layer1 + layer2 with BatchNorm removed (every conv has a bias), output stride 8.

Only the layers the official forward runs exist as modules; the checkpoint's `encoder.layer3/4.*`
tensors are never executed (smp builds them, `encoder_depth=3` skips them) and are handled as
known-unused keys by `threedpe.checkpoint` instead of being kept as 80 MB of dead modules.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block without BN: relu(conv2(relu(conv1(x))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        # key `downsample.0` as in torchvision's ResNet (the BN that was `downsample.1` is gone)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + shortcut)


class ResNetTrunk(nn.Module):
    """5 → 128 channels at 1/8 resolution (conv1 7×7 s2, maxpool, 3 blocks of 64, 4 blocks of 128)."""

    def __init__(self, in_channels: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(*[BasicBlock(64, 64) for _ in range(3)])
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), *[BasicBlock(128, 128) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.conv1(x)))
        return self.layer2(self.layer1(x))


def unused_resnet_keys() -> dict[str, tuple[int, ...]]:
    """Shapes of the official `layer3`/`layer4` tensors (ResNet34: 6 blocks of 256, 3 of 512), keys without prefix."""
    shapes: dict[str, tuple[int, ...]] = {}
    cin = 128
    for layer, (cout, blocks) in (("layer3", (256, 6)), ("layer4", (512, 3))):
        for b in range(blocks):
            block_in = cin if b == 0 else cout
            shapes[f"{layer}.{b}.conv1.weight"] = (cout, block_in, 3, 3)
            shapes[f"{layer}.{b}.conv1.bias"] = (cout,)
            shapes[f"{layer}.{b}.conv2.weight"] = (cout, cout, 3, 3)
            shapes[f"{layer}.{b}.conv2.bias"] = (cout,)
            if b == 0:
                shapes[f"{layer}.{b}.downsample.0.weight"] = (cout, cin, 1, 1)
                shapes[f"{layer}.{b}.downsample.0.bias"] = (cout,)
        cin = cout
    return shapes
