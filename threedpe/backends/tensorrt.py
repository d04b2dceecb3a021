"""`--backend tensorrt`: TensorRT engines built from the ONNX export, run on torch CUDA tensors.

Needs NVIDIA's `tensorrt` Python package and a CUDA GPU. It cannot be installed from the registries this
project's CI reaches, so this module is not exercised by the test suite: only its missing-package error is.
Engines (`<part>.<precision>.plan`) are cached beside the ONNX files; fp16/bf16 set the builder's
precision flags (TensorRT keeps layers it cannot run at that precision in fp32).
"""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import UserError
from threedpe.backends.exported import ExportedNetwork
from threedpe.backends.graphs import RENDER_OUTPUTS

MISSING = ("--backend tensorrt needs NVIDIA's TensorRT Python package (`import tensorrt` failed) and a CUDA GPU: "
           "install it on the GPU machine (pip install tensorrt, matching its CUDA), or use --backend torch "
           "(eager, CUDA graphs or torch.compile) or --backend onnxruntime")


def import_tensorrt():
    """The tensorrt module, or a UserError saying what to install."""
    try:
        import tensorrt
    except ImportError:
        raise UserError(MISSING) from None
    return tensorrt


class TensorRTNetwork(ExportedNetwork):
    """One engine per exported part; batch profile 1..max_batch (optimised for `opt_batch`)."""

    backend = scheme = "tensorrt"

    def __init__(self, folder: str | Path, device: str | torch.device = "cuda", precision: str = "fp16",
                 max_batch: int = 8, opt_batch: int = 1, workspace_gib: float = 4.0):
        trt = import_tensorrt()
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise UserError("--backend tensorrt runs on a CUDA GPU only; none is visible to torch here")
        super().__init__(folder, device)
        self.precision = precision
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        shapes = {"prompt_encoder": {"prompt": (3, 224, 224)},
                  "encoder": {"image": (3, 512, 512), "tokens": (197, 768)},
                  "renderer": {"planes": (96, 256, 256), "cameras": (25,)}}
        self._contexts = {}
        for part in self.manifest["parts"]:
            engine = self._engine(part, shapes[part], max_batch, opt_batch, workspace_gib)
            self._contexts[part] = (engine, engine.create_execution_context())

    def _engine(self, part: str, shapes: dict, max_batch: int, opt_batch: int, workspace_gib: float):
        trt = self._trt
        plan = self.folder / f"{part}.{self.precision}.b{max_batch}.plan"
        runtime = trt.Runtime(self._logger)
        if plan.is_file():
            return runtime.deserialize_cuda_engine(plan.read_bytes())
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(self.folder / f"{part}.onnx")):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f"TensorRT could not parse {part}.onnx: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        flag = {"fp16": "FP16", "bf16": "BF16"}.get(self.precision)
        if flag is not None:
            if not hasattr(trt.BuilderFlag, flag):
                raise UserError(f"this TensorRT ({trt.__version__}) has no {flag} builder flag; use --precision fp32")
            config.set_flag(getattr(trt.BuilderFlag, flag))
        profile = builder.create_optimization_profile()
        for name, tail in shapes.items():
            profile.set_shape(name, (1, *tail), (opt_batch, *tail), (max_batch, *tail))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise UserError(f"TensorRT failed to build an engine for {part}.onnx (see its log above)")
        plan.write_bytes(serialized)                    # IHostMemory has the buffer protocol
        return runtime.deserialize_cuda_engine(serialized)

    def _run(self, part: str, **inputs: torch.Tensor) -> list[torch.Tensor]:
        trt = self._trt
        engine, context = self._contexts[part]
        keep = []
        for name, tensor in inputs.items():
            tensor = tensor.to(self._device, torch.float32).contiguous()
            keep.append(tensor)
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device=self._device)
            context.set_tensor_address(name, out.data_ptr())
            outputs.append((name, out))
        if not context.execute_async_v3(torch.cuda.current_stream(self._device).cuda_stream):
            raise RuntimeError(f"TensorRT execution of {part} failed")
        order = {"prompt_encoder": ["tokens"], "encoder": self.manifest["encoder_outputs"],
                 "renderer": list(RENDER_OUTPUTS)}[part]
        by_name = dict(outputs)
        return [by_name[n] for n in order]
