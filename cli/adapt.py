"""`live3dpe adapt`: teach 3DPE a new style from ~10 (portrait, edited portrait) pairs; writes an adapter.

    live3dpe adapt --pairs DIR --out STYLE.safetensors [--weights 3dpe.pt | --random-weights]
                   [--minutes 5 | --steps N] [--lr 1e-4] [--lora-rank R] [--json LOG]

Use the adapter as a style: `--style adapter:STYLE.safetensors` (run, cam, serve), or list a folder of
them in the page with `live3dpe serve --adapters DIR`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.device import resolve_device
from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from training import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", required=True,
                        help="folder of NAME_input.png + NAME_target.png (+ optional NAME_prompt.png) files")
    parser.add_argument("--out", required=True, help="the adapter file to write (.safetensors)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="adapt for this long (default 5, as in the paper)")
    budget.add_argument("--steps", type=int, help="adapt for this many steps instead")
    parser.add_argument("--norm-lr", type=float, help="learning rate of E_t's LayerNorms (default 10 × --lr)")
    parser.add_argument("--lora-rank", type=int, help="train LoRA factors of this rank on E_p instead of E_p itself "
                                                      "(a small adapter)")
    parser.add_argument("--lora-alpha", type=float, help="LoRA scale numerator (default: the rank)")
    parser.add_argument("--json", metavar="LOG", help='write one JSON line per step: {"step", "loss", "l2d", "l3d", "seconds"}')
    parser.add_argument("--plot", metavar="PNG", help="loss curve (default: next to --out, <name>_loss.png)")
    parser.add_argument("--preview", metavar="PNG",
                        help="also write [input | target | adapted edit] rows for the first pairs (full-size renders)")
    options.add_common_arguments(parser)


def reference_image(samples) -> tuple[np.ndarray, str]:
    """The style reference the adapter keeps: the first pair's prompt image, else the first target."""
    for sample in samples:
        if sample.prompt is not None:
            return sample.prompt, f"{sample.name}_prompt"
    return samples[0].target, f"{samples[0].name}_target"


def main(args: argparse.Namespace) -> int:
    from threedpe.adapter import SUFFIX
    from training.adapt import AdaptConfig, adapt
    from training.data import find_pairs, load_samples
    from training.plot import write_loss_plot

    out = Path(args.out)
    if out.suffix != SUFFIX:
        raise UserError(f"--out must name a {SUFFIX} file, not {out}")
    try:
        minutes = None if args.steps is not None else (AdaptConfig.minutes if args.minutes is None else args.minutes)
        config = AdaptConfig(steps=args.steps, minutes=minutes,
                             lr=AdaptConfig.lr if args.lr is None else args.lr, norm_lr=args.norm_lr,
                             batch=AdaptConfig.batch if args.batch is None else args.batch, lora_rank=args.lora_rank,
                             lora_alpha=args.lora_alpha, resolution=args.resolution,
                             render=options.render_options(args), views=args.views,
                             perceptual_layers=options.perceptual_layers(args),
                             perceptual_weights=args.perceptual_weights, lpips_heads=args.lpips_heads,
                             seed=args.seed).validated()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    files = find_pairs(args.pairs)
    samples = load_samples(files, args.face_model)
    reference, reference_name = reference_image(samples)
    device = resolve_device(args.device)
    base = _load_base(args, device)
    teacher = options.load_teacher(args, device)
    if base.label:
        print(f"WARNING: base weights are {base.label}: the adapter is for testing the machinery, not a style")
    log = open(args.json, "w") if args.json else None
    try:
        def on_step(record: dict) -> None:
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()

        result = adapt(base, samples, reference, config, teacher,
                       meta={"name": out.stem, "prompt": reference_name, "pairs": str(len(samples))}, on_step=on_step)
    finally:
        if log is not None:
            log.close()
    if not result.history:
        raise UserError("no adaptation step fitted in the time given; give more --minutes")
    result.adapter.save(out)
    first, last = result.history[0], result.history[-1]
    print(f"adapter: {out} ({len(result.history)} steps in {last['seconds']:.0f} s after {result.setup_seconds:.0f} s "
          f"of setup; loss {first['loss']:.4f} → {last['loss']:.4f})")
    plot = Path(args.plot) if args.plot else out.with_name(f"{out.stem}_loss.png")
    write_loss_plot(result.history, plot, f"live3dpe adapt {out.name}: {len(samples)} pairs")
    print(f"loss curve: {plot}")
    if args.preview:
        print(f"preview: {write_preview(result, samples, reference, config, Path(args.preview), base.label)}")
    print(f"use it: --style adapter:{out}")
    return 0


def _load_base(args: argparse.Namespace, device: str):
    from threedpe.model import ThreeDPE

    if args.random_weights:
        return ThreeDPE.random(seed=0, device=device)
    return ThreeDPE.load(args.weights, device=device, trust_pickle=args.trust_pickle)


def write_preview(result, samples, reference, config, path: Path, label: str, rows: int = 4) -> Path:
    """[input | target | the adapted model's edit at the input's camera] for the first `rows` pairs."""
    import cv2
    import torch

    from cli.edit import draw_label
    from threedpe.preprocess import tensor_to_image
    from training.adapt import adapted_output

    lines = []
    for sample in samples[:rows]:
        camera = torch.from_numpy(sample.camera)[None]
        edit = tensor_to_image(adapted_output(result.student, sample, sample.prompt if sample.prompt is not None
                                              else reference, camera, config.render))
        edit = cv2.resize(edit, (CROP_SIZE, CROP_SIZE)) if edit.shape[0] != CROP_SIZE else edit
        edit = draw_label(edit, label, warning=True) if label else draw_label(edit, "adapted")
        lines.append(np.concatenate([draw_label(sample.input, sample.name), draw_label(sample.target, "target"),
                                     edit], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines), cv2.COLOR_RGB2BGR)):
        raise UserError(f"cannot write {path}")
    return path
