"""What every runtime of the ONNX export shares: the export folder's manifest, and `ThreeDPE`'s calls
(`encode_prompt`, `encode`, `render`) over one `_run(part, **inputs) -> outputs` that each runtime supplies."""
from __future__ import annotations

from pathlib import Path

import torch

from threedpe.backends.graphs import RENDER_OUTPUTS
from threedpe.backends.onnx_export import read_manifest


class ExportedNetwork:
    """Base of `OnnxRuntimeNetwork` and `TensorRTNetwork`; subclasses set `backend`, `scheme` (of `source`) and
    implement `_run`."""

    backend = scheme = ""

    def __init__(self, folder: str | Path, device: torch.device):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self._device = device
        self.is_random = bool(self.manifest["is_random"])
        self.prompt_trained = bool(self.manifest["prompt_trained"])
        self.label = self.manifest["label"]
        self.source = f"{self.scheme}:{self.folder}"
        self.stochastic = False

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def can_render(self) -> bool:
        return True

    def render_options(self):
        """The render options baked into this export."""
        from threedpe.renderer import RenderOptions
        return RenderOptions(**self.manifest["render_options"])

    def _run(self, part: str, **inputs: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        return self._run("prompt_encoder", prompt=prompt)[0]

    @torch.no_grad()
    def encode(self, image: torch.Tensor, tokens: torch.Tensor,
               taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if taps is not None and not self.manifest["taps"]:
            raise ValueError(f"{self.folder} was exported without the encoder taps (export with taps for conformance)")
        outs = self._run("encoder", image=image, tokens=tokens.expand(image.shape[0], -1, -1))
        if taps is not None:
            taps.update(zip(self.manifest["encoder_outputs"], outs))
        return outs[0]

    @torch.no_grad()
    def render(self, triplane: torch.Tensor, cameras: torch.Tensor, opts=None) -> dict[str, torch.Tensor]:
        """As `ThreeDPE.render`; `opts` must be the exported options (or None)."""
        check_render_options(self.render_options(), opts, self.folder)
        cameras = cameras.reshape(-1, 25)
        if triplane.shape[0] == 1 and cameras.shape[0] > 1:
            triplane = triplane.expand(cameras.shape[0], -1, -1, -1)   # the graph takes one camera per triplane
        out = dict(zip(RENDER_OUTPUTS, self._run("renderer", planes=triplane, cameras=cameras)))
        out["image_raw"] = out["feature_image"][:, :3]
        return out


def check_render_options(exported, asked, where) -> None:
    """A render through an exported graph can only use the options it was exported with."""
    if asked is None:
        return
    from threedpe.backends.onnx_export import render_options_dict
    a, b = render_options_dict(exported), render_options_dict(asked)
    a.pop("ray_chunk"), b.pop("ray_chunk")                         # chunking changes memory, not the result
    if a != b:
        diff = ", ".join(f"{k}={b[k]!r} (exported {a[k]!r})" for k in a if a[k] != b[k])
        raise ValueError(f"{where} was exported for other render options: {diff}; export again with these")
