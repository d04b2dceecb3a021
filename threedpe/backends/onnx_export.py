"""Export 3DPE to ONNX: `prompt_encoder.onnx`, `encoder.onnx`, `renderer.onnx` (+ weights beside them) and a
`manifest.json` saying what was exported (render options, taps, weights' source, random or not).

The batch dimension is dynamic (1..MAX_BATCH); everything else is fixed: 512² crops, 224² prompts and the
render options of the export. The renderer's data-dependent steps (importance sampling, depth sort) are
static-shape tensor ops; the two with no ONNX operator (cumprod, searchsorted) switch to exact ONNX-friendly
forms while exporting (see `threedpe.renderer`). Uses torch's exporter (`torch.export` + onnxscript).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.assets import cache_dir
from pipeline.errors import UserError
from threedpe.backends.graphs import (RENDER_OUTPUTS, EncoderGraph, PromptEncoderGraph, RendererGraph,
                                      encoder_tap_names)

FORMAT = "live3dpe-onnx-v1"
PARTS = ("prompt_encoder", "encoder", "renderer")
MAX_BATCH = 64
MANIFEST = "manifest.json"


def require_onnx_exporter() -> None:
    """Raise a UserError naming the extra to install when torch's ONNX exporter cannot run here."""
    missing = [name for name in ("onnx", "onnxscript") if _absent(name)]
    if missing:
        raise UserError(f"exporting to ONNX needs the {' and '.join(missing)} package(s): "
                        "pip install 'live3dpe[onnx]' (or pip install onnx onnxscript onnxruntime)")


def _absent(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is None


def render_options_dict(options) -> dict:
    """The render options as JSON (the generator is never part of an export)."""
    return {k: v for k, v in dataclasses.asdict(options).items() if k != "generator"}


def export_key(model, options, taps: bool) -> str:
    """A short id for (weights, render options, taps, torch version): the folder name in the export cache."""
    source = getattr(model, "source", "")
    if source and os.path.isfile(source):
        stat = os.stat(source)
        source = f"{os.path.realpath(source)}:{stat.st_size}:{stat.st_mtime_ns}"
    text = json.dumps([source, model.is_random, render_options_dict(options), taps, torch.__version__, FORMAT])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def default_export_dir(model, options, taps: bool = False) -> Path:
    """Where exports of `model` are cached: <cache>/onnx/<key> (see `pipeline.assets.cache_dir`).

    Random or in-memory weights have no stable identity across runs, so they get a fresh temporary folder."""
    if model.is_random or not os.path.isfile(getattr(model, "source", "")):
        return Path(tempfile.mkdtemp(prefix="live3dpe-onnx-"))
    return cache_dir() / "onnx" / export_key(model, options, taps)


def read_manifest(folder: str | Path) -> dict:
    """The manifest of an export folder; a clear UserError when the folder is not (or not fully) one."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{folder} is not an ONNX export of live3dpe (no readable {MANIFEST}); "
                        "--backend onnxruntime or tensorrt exports one there when --onnx-dir names an empty "
                        "or new folder") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                        f"is not {FORMAT!r}")
    for part in PARTS:
        if not (folder / f"{part}.onnx").is_file():
            raise UserError(f"{folder}: {part}.onnx is missing (an interrupted export?); export again")
    return manifest


def export_onnx(model, folder: str | Path, options=None, taps: bool = False,
                progress: Callable[[str], None] = print) -> Path:
    """Export `model` (a float32 `threedpe.model.ThreeDPE`) into `folder`; returns it.

    Written into a temporary sibling and renamed at the end, so a folder with a manifest is always complete.
    `taps` adds the encoder's intermediate features as extra outputs (for conformance checks).
    """
    from threedpe.renderer import RenderOptions

    require_onnx_exporter()
    if model.renderer is None:
        raise UserError("this build has no threedpe.renderer: nothing to export for the render")
    options = options or RenderOptions()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not _is_export(folder):
        raise UserError(f"{folder} is not empty and holds no live3dpe ONNX export: name a new or empty folder "
                        "(an export replaces the folder's contents)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _export_parts(model.cpu().float(), work, options, taps, progress)
        manifest = {"format": FORMAT, "parts": list(PARTS), "taps": taps, "max_batch": MAX_BATCH,
                    "render_options": render_options_dict(options), "render_outputs": list(RENDER_OUTPUTS),
                    "encoder_outputs": list(encoder_tap_names(taps)), "source": getattr(model, "source", ""),
                    "is_random": bool(model.is_random), "prompt_trained": bool(model.prompt_trained),
                    "label": model.label, "torch": torch.__version__}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return folder


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _export_parts(model, folder: Path, options, taps: bool, progress: Callable[[str], None]) -> None:
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # a batch of 2 in the examples keeps the exporter from specialising the batch dimension to 1
    prompt = torch.randn(2, 3, 224, 224, generator=gen)
    image = torch.rand(2, 3, 512, 512, generator=gen) * 2 - 1
    with torch.no_grad():
        tokens = model.encoder.encode_prompt(prompt)
        triplane = model.encoder(image, tokens)
    from threedpe.camera import eural_to_camera_label
    cameras = torch.stack([torch.from_numpy(eural_to_camera_label(a, 0.0)) for a in (0.2, -0.2)]).float()
    jobs = [
        ("prompt_encoder", PromptEncoderGraph(model.encoder), (prompt,), ["prompt"], ["tokens"],
         {"prompt": {0: batch}}),
        ("encoder", EncoderGraph(model.encoder, taps), (image, tokens), ["image", "tokens"],
         list(encoder_tap_names(taps)), {"image": {0: batch}, "tokens": {0: batch}}),
        ("renderer", RendererGraph(model.renderer, options), (triplane, cameras), ["planes", "cameras"],
         list(RENDER_OUTPUTS), {"planes": {0: batch}, "cameras": {0: batch}}),
    ]
    for name, graph, args, inputs, outputs, dynamic in jobs:
        progress(f"exporting {name}.onnx ...")
        with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter_log():
            warnings.simplefilter("ignore")           # the exporter's own chatter; failures still raise
            program = torch.onnx.export(graph.eval(), args, dynamo=True, input_names=inputs, output_names=outputs,
                                        dynamic_shapes=dynamic, verbose=False)
        program.save(str(folder / f"{name}.onnx"), external_data=True)


@contextlib.contextmanager
def _quiet_exporter_log():
    """The exporter logs a warning per optional torchvision op it cannot find; we export none of them."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
