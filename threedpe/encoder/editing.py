"""`EditingEncoder`: the full 3DPE LT encoder (E_low, E_high, E_p + cross-attention, E_t) with official key names."""
from __future__ import annotations

import torch
from torch import nn

from threedpe.encoder.deeplab import DeepLabV3Decoder
from threedpe.encoder.heads import EncoderEhigh, EncoderF, EncoderFinal
from threedpe.encoder.reference import EncoderRef
from threedpe.encoder.resnet import ResNetTrunk

TAPS = ("elow_decoder", "elow", "ehigh", "xattn", "triplane")


def append_coordinates(image: torch.Tensor) -> torch.Tensor:
    """RGB B×3×H×W → B×5×H×W with raw row and column indices (0..H-1, 0..W-1, unnormalised) as channels 3, 4."""
    if image.shape[1] == 5:
        return image
    b, _, h, w = image.shape
    rows = torch.arange(h, dtype=image.dtype, device=image.device).view(1, 1, h, 1).expand(b, 1, h, w)
    cols = torch.arange(w, dtype=image.dtype, device=image.device).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([image, rows, cols], dim=1)


class EditingEncoder(nn.Module):
    """image [B,3,512,512] in [-1,1] + prompt tokens [B,197,768] → triplane [B,96,256,256]."""

    def __init__(self):
        super().__init__()
        self.encoder = ResNetTrunk(5)
        self.decoder = DeepLabV3Decoder(128, 256)
        self.F_encoder = EncoderF()
        self.EHigh_encoder = EncoderEhigh()
        self.Ref_encoder = EncoderRef()
        self.Final_encoder = EncoderFinal()

    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        """prompt [B,3,224,224] ImageNet-normalised → MAE tokens [B,197,768]."""
        return self.Ref_encoder.encode_prompt(prompt)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor | None,
                taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        high, f_feature = self.image_features(image, taps)
        return self.triplane_from_features(high, f_feature, tokens, taps)

    def image_features(self, image: torch.Tensor, taps: dict[str, torch.Tensor] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """E_high and E_low features of the image: the part of the encoder the prompt does not reach."""
        x = append_coordinates(image)
        elow_decoder = self.decoder(self.encoder(x))
        f_feature = self.F_encoder(elow_decoder)
        high = self.EHigh_encoder(x)
        if taps is not None:
            taps.update(elow_decoder=elow_decoder, elow=f_feature, ehigh=high)
        return high, f_feature

    def triplane_from_features(self, high: torch.Tensor, f_feature: torch.Tensor, tokens: torch.Tensor | None,
                               taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The prompt-dependent part: cross-attention and E_t on `image_features` (adaptation computes those
        once per image). `tokens` None is Live3D-LT, which has no cross-attention: the E_high features go
        to E_t as they are."""
        if tokens is None:
            fused = high
        else:
            fused = self.Ref_encoder(high, tokens.to(high.dtype) if tokens.dtype != high.dtype else tokens)
        triplane = self.Final_encoder(torch.cat([fused, f_feature], dim=1))   # high (prompt-fused) first
        if taps is not None:
            taps.update(xattn=fused, triplane=triplane)
        return triplane
