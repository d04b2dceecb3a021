"""Where the 3DPE network runs: `torch` (eager, CUDA graphs or torch.compile), `onnxruntime`, `tensorrt`.

Every backend offers the calls the engine and the conformance check use — `encode_prompt(prompt)`,
`encode(image, tokens, taps=None)`, `render(triplane, cameras, opts)` — plus `label`, `is_random`,
`device`, `precision`. The exported backends run the graphs of `graphs.py` from an ONNX export folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pipeline.errors import UserError

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ACCELERATIONS = ("eager", "cuda-graphs", "compile")          # the torch backend's (see accelerated.py)


def create_network(model: Any, backend: str = "torch", *, onnx_dir: str | Path | None = None, options: Any = None,
                   taps: bool = False, device: str | None = None, precision: str = "fp32",
                   progress: Callable[[str], None] = print) -> Any:
    """`model` (a ThreeDPE) itself for `torch`; otherwise the exported graphs of it, exported into `onnx_dir`
    (default: the export cache) unless that folder already holds an export with the same options and taps."""
    if backend == "torch":
        return model
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "tensorrt":
        from threedpe.backends.tensorrt import import_tensorrt
        import_tensorrt()                       # say what is missing before a minute of export
    elif precision != "fp32":
        raise UserError(f"--backend onnxruntime runs float32 only (asked for {precision}); use --backend torch "
                        "or tensorrt for fp16/bf16")
    folder = _ensure_export(model, onnx_dir, options, taps, progress)
    device = device or str(model.device)
    if backend == "onnxruntime":
        from threedpe.backends.onnxruntime import OnnxRuntimeNetwork
        return OnnxRuntimeNetwork(folder, device=device)
    from threedpe.backends.tensorrt import TensorRTNetwork
    return TensorRTNetwork(folder, device=device, precision=precision)


def _ensure_export(model, onnx_dir, options, taps: bool, progress) -> Path:
    from threedpe.backends.onnx_export import (default_export_dir, export_onnx, read_manifest,
                                               render_options_dict)
    from threedpe.renderer import RenderOptions

    options = options or RenderOptions()
    folder = Path(onnx_dir) if onnx_dir is not None else default_export_dir(model, options, taps)
    if (folder / "manifest.json").is_file():
        manifest = read_manifest(folder)
        same = (manifest["source"] == getattr(model, "source", "") and manifest["is_random"] == model.is_random
                and manifest["render_options"] == render_options_dict(options))
        if same and (manifest["taps"] or not taps):
            progress(f"using the ONNX export in {folder}")
            return folder
    progress(f"exporting the network to ONNX in {folder} (about a minute on CPU) ...")
    return export_onnx(model, folder, options, taps=taps, progress=progress)
