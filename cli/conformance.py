"""`live3dpe conformance`: run our network on a conformance bundle's inputs and check every tap against its tolerance."""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import UserError
from threedpe.backends import BACKENDS, create_network
from threedpe.conformance import LOW_PRECISION_MARGIN, PRECISIONS, RENDER_TAPS, Bundle, compare, compute_taps, format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder (manifest.json + vectors.npz)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights-from-rule", action="store_true",
                        help="fill the official-layout weights with the bundle's fill rule (the default)")
    source.add_argument("--weights", help="a checkpoint (official 3dpe.pt layout or ours) to run instead")
    source.add_argument("--taps", help="only compare an .npz of taps computed elsewhere (e.g. by a port)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need full unpickling")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 (TF32 is turned off)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="run the network eagerly in torch (default), or its ONNX export through onnxruntime "
                             "or TensorRT")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default) or autocast fp16/bf16, checked against the tolerances stated for it")
    parser.add_argument("--onnx-dir", help="keep (or reuse) the ONNX export here (default: a temporary folder)")
    parser.add_argument("--encoder-only", action="store_true", help="skip the render taps (faster)")
    parser.add_argument("--dump-taps", help="write our float32 taps to this .npz")


def build_model(bundle: Bundle, args: argparse.Namespace):
    from threedpe.fill_rule import fill_state_dicts
    from threedpe.model import ThreeDPE
    if args.weights:
        return ThreeDPE.load(args.weights, device=args.device, trust_pickle=args.trust_pickle)
    sds = fill_state_dicts(bundle.manifest, progress=lambda items: tqdm(items, desc="fill rule", unit="tensor"))
    model = ThreeDPE.from_state_dicts(sds["encoder_state_dict"], sds["renderer_state_dict"], source="fill rule")
    return model.to(args.device)


def main(args: argparse.Namespace) -> int:
    if args.backend == "tensorrt":
        from threedpe.backends.tensorrt import import_tensorrt
        import_tensorrt()                           # before a minute of filling weights and exporting
    bundle = Bundle(args.bundle)
    if args.taps:
        if not Path(args.taps).is_file():
            raise UserError(f"no such taps file: {args.taps}")
        with np.load(args.taps) as data:
            taps = {k: data[k] for k in data.files}
    else:
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise UserError(f"--device must be cpu, cuda or cuda:N, not {args.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device here; use --device cpu")
        # TF32 has a 10-bit mantissa: far outside the tolerances (bundle README §5)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model = build_model(bundle, args)
        if model.renderer is None and not args.encoder_only:
            print("note: threedpe.renderer is not available; render taps are not run")
        model.precision = args.precision
        taps = _run_backend(model, bundle, args)
    if args.dump_taps:
        np.savez(args.dump_taps, **taps)
    results = compare(taps, bundle, args.precision)
    if args.encoder_only:              # only the render taps are skipped: a missing encoder tap is still a miss
        results = [r for r in results if r.tap not in RENDER_TAPS]
    if not results:
        raise UserError(f"{bundle.folder}: the manifest lists no array to compare")
    if args.precision != "fp32":
        print(f"{args.precision} tolerances: {LOW_PRECISION_MARGIN:g}x the measured {args.precision} spread, never "
              "below the bundle's fp32 ones (threedpe/conformance.py)")
    print(format_table(results))
    misses = [r.array for r in results if not r.passed]
    print(f"{len(results) - len(misses)}/{len(results)} arrays within tolerance"
          + (f"; missed: {', '.join(misses)}" if misses else ""))
    return 1 if misses else 0


def _run_backend(model, bundle: Bundle, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Our taps through the chosen backend (an exported backend gets a fresh export with the encoder taps)."""
    where = f"{args.backend} on {model.device}, {args.precision}, deterministic mode"
    if args.backend == "torch":
        print(f"running the network on {bundle.folder} ({where}) ...", flush=True)
        return compute_taps(model, bundle, render=not args.encoder_only)
    folder = Path(args.onnx_dir) if args.onnx_dir else Path(tempfile.mkdtemp(prefix="live3dpe-conformance-"))
    try:
        network = create_network(model, args.backend, onnx_dir=folder, taps=True, device=args.device,
                                 precision=args.precision, progress=lambda text: print(text, flush=True))
        print(f"running the exported network on {bundle.folder} ({where}) ...", flush=True)
        return compute_taps(network, bundle, render=not args.encoder_only)
    finally:
        if not args.onnx_dir:
            shutil.rmtree(folder, ignore_errors=True)
