"""`live3dpe edit`: 3DPE-edit one still image with an image prompt and render it from several yaw angles.

Writes a contact sheet [input crop | prompt | views...] and optionally an orbit video (the official
`--save_video` camera path, spec §1.1 step 8).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from pipeline.device import resolve_device
from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from threedpe.camera import eural_to_camera_label
from threedpe.preprocess import image_to_tensor, prompt_to_tensor, tensor_to_image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="a photo with a face (or an EG3D-aligned 512² crop with --aligned)")
    parser.add_argument("--prompt", required=True, help="the style prompt image (text prompts are not in the release)")
    parser.add_argument("--views", default="-30,0,30", help="yaw angles in degrees, comma-separated (default -30,0,30)")
    parser.add_argument("--orbit", help="also write an orbit video (.mp4, H.264) to this path")
    parser.add_argument("--orbit-frames", type=int, default=288, help="frames of the orbit (official: 288 at 60 fps)")
    parser.add_argument("--fps", type=int, default=60, help="orbit video frame rate")
    parser.add_argument("--out", default="out/edit", help="output folder for the contact sheet (default out/edit)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="3dpe.pt (default: $LIVE3DPE_WEIGHTS, then the cache folder)")
    weights.add_argument("--random-weights", action="store_true", help="random weights: tests/benchmarks only, labelled")
    parser.add_argument("--trust-pickle", action="store_true", help="allow a checkpoint that needs full unpickling")
    parser.add_argument("--allow-untrained-prompt", action="store_true",
                        help="accept a Live3D-LT checkpoint (untrained prompt encoder; output is labelled)")
    parser.add_argument("--aligned", action="store_true", help="the image is already an EG3D-aligned 512² crop")
    parser.add_argument("--face-model", help="face_landmarker.task (default: $LIVE3DPE_FACE_MODEL, cache, download)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="autocast (fp16 on CUDA; bf16 also on CPU)")
    parser.add_argument("--stochastic", action="store_true", help="the official stochastic mode (dropout, random rays)")


def parse_views(text: str) -> list[float]:
    try:
        views = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--views must be comma-separated degrees like -30,0,30, not {text!r}") from None
    if not views or any(not math.isfinite(v) or abs(v) > 90 for v in views):
        raise UserError("--views needs 1 or more yaw angles within -90..90 degrees")
    return views


def read_rgb(path: str, what: str) -> np.ndarray:
    """RGB, alpha dropped (the official RGBA check is broken); errors name the flag."""
    from stages.source_image import load_rgb

    try:
        return load_rgb(path)
    except UserError as exc:
        raise UserError(f"{what}: {exc}") from None


def aligned_crop(rgb: np.ndarray, aligned: bool, face_model: str | None = None) -> np.ndarray:
    """The EG3D-aligned 512² crop: from the face stage, or the image itself with --aligned."""
    if aligned:
        if rgb.shape[:2] != (CROP_SIZE, CROP_SIZE):
            raise UserError(f"--aligned needs a 512×512 image, this one is {rgb.shape[1]}×{rgb.shape[0]}")
        return rgb
    from stages.face import FaceConfig, FaceTracker
    with FaceTracker(FaceConfig(smoothing=False, model_path=face_model)) as tracker:
        result = tracker.detect(rgb)
    if result.face is None:
        raise UserError("no face found in --image; use a photo where one face is clearly visible "
                        "(or pass --aligned for a ready EG3D-aligned 512×512 crop)")
    return result.face.crop


def load_model(args: argparse.Namespace):
    from threedpe.checkpoint import resolve_weights
    from threedpe.model import ThreeDPE
    device = resolve_device(args.device)
    if args.random_weights:
        model = ThreeDPE.random(seed=0, device=device)
    else:
        model = ThreeDPE.load(resolve_weights(args.weights), device=device, trust_pickle=args.trust_pickle,
                              allow_untrained_prompt=args.allow_untrained_prompt)
    if model.renderer is None:
        raise UserError("this build has no threedpe.renderer; cannot render views")
    model.precision = args.precision
    model.stochastic = args.stochastic
    return model


def draw_label(tile: np.ndarray, text: str, warning: bool = False) -> np.ndarray:
    """Caption on a black band: at the bottom, or at the top in red for a warning (ASCII: Hershey has no em dash)."""
    out = tile.copy()
    text = text.replace("—", "-")
    scale = 0.8 if warning else 0.7
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    top = 0 if warning else out.shape[0] - h - 20
    cv2.rectangle(out, (0, top), (min(out.shape[1], w + 16), top + h + 20), (0, 0, 0), -1)
    cv2.putText(out, text, (8, top + h + 10), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 60, 60) if warning else (255, 255, 255), 2, cv2.LINE_AA)
    return out


def contact_sheet(crop: np.ndarray, prompt: np.ndarray, views: list[np.ndarray], yaws: list[float],
                  label: str) -> np.ndarray:
    """[input crop | prompt | views...], 512² tiles; every view carries `label` when the weights are not real."""
    tiles = [draw_label(crop, "input crop"),
             draw_label(cv2.resize(prompt, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA), "prompt")]
    for view, yaw in zip(views, yaws):
        tile = draw_label(view, f"yaw {yaw:+g} deg")
        tiles.append(draw_label(tile, label, warning=True) if label else tile)
    return np.concatenate(tiles, axis=1)


def orbit_cameras(frames: int) -> list[np.ndarray]:
    """The official video path (uses 3.14, not π): pitch 3.14/2 − 0.05 + 0.25·cos, yaw 3.14/2 + 0.35·sin."""
    cams = []
    for k in range(frames):
        phase = 2 * 3.14 * k / frames
        pitch = 3.14 / 2 - 0.05 + 0.25 * math.cos(phase)
        yaw = 3.14 / 2 + 0.35 * math.sin(phase)
        cams.append(eural_to_camera_label(yaw - math.pi / 2, pitch - math.pi / 2))
    return cams


def write_orbit(model, triplane: torch.Tensor, path: Path, frames: int, fps: int, label: str) -> None:
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = CROP_SIZE, CROP_SIZE, "yuv420p"
        for cam in tqdm(orbit_cameras(frames), desc="orbit", unit="frame"):
            img = tensor_to_image(model.render(triplane, torch.from_numpy(cam)[None])["image"])
            if label:
                img = draw_label(img, label, warning=True)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(args: argparse.Namespace) -> int:
    yaws = parse_views(args.views)
    if args.orbit and args.orbit_frames < 1:
        raise UserError("--orbit-frames must be at least 1")
    image, prompt = read_rgb(args.image, "--image"), read_rgb(args.prompt, "--prompt")
    crop = aligned_crop(image, args.aligned, args.face_model)
    model = load_model(args)
    if model.label:
        print(f"WARNING: {model.label}: the output shows what the network does with these weights, not a style edit")
    tokens = model.encode_prompt(prompt_to_tensor(prompt))
    triplane = model.encode(image_to_tensor(crop), tokens)
    views = []
    for yaw in tqdm(yaws, desc="views", unit="view"):
        cam = torch.from_numpy(eural_to_camera_label(math.radians(yaw)))[None]
        views.append(tensor_to_image(model.render(triplane, cam)["image"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sheet_path = out / f"{Path(args.image).stem}_{Path(args.prompt).stem}.png"
    sheet = contact_sheet(crop, prompt, views, yaws, model.label)
    if not cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise UserError(f"cannot write {sheet_path}")
    print(f"contact sheet: {sheet_path}")
    if args.orbit:
        write_orbit(model, triplane, Path(args.orbit), args.orbit_frames, args.fps, model.label)
        print(f"orbit video: {args.orbit} ({args.orbit_frames} frames at {args.fps} fps)")
    return 0
