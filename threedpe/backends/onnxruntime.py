"""`--backend onnxruntime`: the exported graphs run by ONNX Runtime, behind the same calls as `ThreeDPE`.

float32 only (the export is float32; ORT's CPU provider has no fast fp16). CUDA uses ORT's CUDA provider
when `onnxruntime-gpu` is installed. Tensors in and out are torch tensors on `device`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError
from threedpe.backends.exported import ExportedNetwork


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--backend onnxruntime needs the onnxruntime package: pip install 'live3dpe[onnx]' "
                        "(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


class OnnxRuntimeNetwork(ExportedNetwork):
    """The prompt encoder, encoder and renderer + SR of an export folder as ORT sessions."""

    backend, scheme = "onnxruntime", "onnx"

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", threads: int | None = None):
        ort = _import_onnxruntime()
        super().__init__(folder, torch.device(device))
        providers = ["CPUExecutionProvider"]
        if self._device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("--backend onnxruntime on CUDA needs onnxruntime-gpu (this onnxruntime has only "
                                f"{', '.join(ort.get_available_providers())}); use --device cpu or --backend torch")
            providers = [("CUDAExecutionProvider", {"device_id": self._device.index or 0}), *providers]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._sessions = {part: ort.InferenceSession(str(self.folder / f"{part}.onnx"), options, providers=providers)
                          for part in self.manifest["parts"]}
        self.precision = "fp32"

    def _run(self, part: str, **inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {k: np.ascontiguousarray(v.detach().float().cpu().numpy()) for k, v in inputs.items()}
        return [torch.from_numpy(x).to(self._device) for x in self._sessions[part].run(None, feeds)]
