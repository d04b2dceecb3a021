"""Training data: adaptation pairs and distillation triplets as aligned 512² crops with the input's camera.

A pairs folder holds `NAME_input.png` (a portrait), `NAME_target.png` (the same portrait in the new
style) and optionally `NAME_prompt.png` (a style reference). A manifest is JSON lines
`{"input": ..., "target": ..., "prompt": ..., "camera": [25 numbers]}` with paths relative to it.
Inputs go through our face stage (MediaPipe) for the EG3D crop and the camera, unless they already
are aligned 512² crops (then they are used as they are); the target gets the input's crop.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from stages.source_image import IMAGE_SUFFIXES, load_rgb
from threedpe.preprocess import image_to_tensor, prompt_to_tensor

ROLES = ("input", "target", "prompt")
# An image already is an aligned crop when the face stage's crop of it is this close to the image itself
# (the ten official EG3D crops in ../shared: centre within 5.5 px, scale within 2 %, angle within 1°).
ALIGNED_CENTRE_PX, ALIGNED_LOG_SCALE, ALIGNED_ANGLE = 12.0, 0.06, math.radians(3.5)


@dataclass(frozen=True)
class SampleFiles:
    """Where one sample's images are; `camera` when the manifest gives it (EG3D label of the input)."""

    name: str
    input: Path
    target: Path
    prompt: Path | None = None
    camera: tuple[float, ...] | None = None


@dataclass
class Sample:
    """One aligned sample: 512² crops of input and target (same alignment), the prompt, the input's camera."""

    name: str
    input: np.ndarray
    target: np.ndarray
    prompt: np.ndarray | None
    camera: np.ndarray


def find_pairs(folder: str | os.PathLike) -> list[SampleFiles]:
    """The samples of a pairs folder, sorted by name; a UserError for any file that does not fit."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--pairs: no such folder: {folder}")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        stem, _, role = path.stem.rpartition("_")
        if role not in ROLES or not stem:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise UserError(f"{path}: name it NAME_input, NAME_target or NAME_prompt (with an image suffix)")
            continue                                   # notes, logs, ... are not ours to judge
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{path} is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        roles = found.setdefault(stem, {})
        if role in roles:
            raise UserError(f"two {role} images for '{stem}': {roles[role].name} and {path.name}")
        roles[role] = path
    if not found:
        raise UserError(f"{folder} has no pairs: put NAME_input.png and NAME_target.png files there")
    samples = []
    for name, roles in sorted(found.items()):
        for needed in ("input", "target"):
            if needed not in roles:
                have = ", ".join(p.name for p in roles.values())
                raise UserError(f"'{name}' has no {needed} image (found {have}): add {name}_{needed}.png")
        samples.append(SampleFiles(name, roles["input"], roles["target"], roles.get("prompt")))
    return samples


def read_manifest(path: str | os.PathLike) -> list[SampleFiles]:
    """JSON lines {"input", "target", "prompt"?, "camera"?, "name"?}; paths relative to the manifest."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--manifest: no such file: {path}")
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{where}: not JSON ({exc})") from None
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("input", "target")):
            raise UserError(f'{where}: needs {{"input": "<image>", "target": "<image>"}} (prompt and camera optional)')
        camera = entry.get("camera")
        if camera is not None:
            if not isinstance(camera, list) or len(camera) != 25 or not all(
                    isinstance(v, (int, float)) and math.isfinite(v) for v in camera):
                raise UserError(f"{where}: camera must be the 25-number EG3D label")
            camera = tuple(float(v) for v in camera)
        prompt = entry.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise UserError(f"{where}: prompt must be a path")
        resolve = (lambda p: p if p.is_absolute() else path.parent / p)
        samples.append(SampleFiles(str(entry.get("name", number)), resolve(Path(entry["input"])),
                                   resolve(Path(entry["target"])), resolve(Path(prompt)) if prompt else None, camera))
    if not samples:
        raise UserError(f"{path} lists no samples")
    return samples


def read_image(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except UserError as exc:
        raise UserError(f"{exc} (not an image OpenCV can decode?)") from None


class Aligner:
    """Crops and poses samples with the face stage; one MediaPipe landmarker, made on first use."""

    def __init__(self, face_model: str | None = None):
        self.face_model = face_model
        self._tracker = None

    def __call__(self, files: SampleFiles) -> Sample:
        image, target = read_image(files.input), read_image(files.target)
        target = _same_size(target, image, files)
        prompt = read_image(files.prompt) if files.prompt is not None else None
        if files.camera is not None:                  # a labelled EG3D crop (e.g. the official dataset.json)
            if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
                raise UserError(f"{files.input}: a camera is given, so it must be an aligned {CROP_SIZE}² crop, "
                                f"not {image.shape[1]}×{image.shape[0]} (leave the camera out to crop it here)")
            return Sample(files.name, image, target, prompt, np.asarray(files.camera, np.float32))
        face = self._detect(image)
        if face is None:
            raise UserError(f"no face found in {files.input}: use a portrait where one face is clearly visible")
        camera = np.asarray(face.camera, np.float32)
        if is_aligned_crop(image.shape, face.crop_matrix):
            return Sample(files.name, image, target, prompt, camera)
        from stages.face.alignment import warp_crop

        return Sample(files.name, face.crop, warp_crop(target, face.crop_matrix), prompt, camera)

    def _detect(self, image: np.ndarray):
        if self._tracker is None:
            from stages.face import FaceConfig, FaceTracker

            self._tracker = FaceTracker(FaceConfig(smoothing=False, model_path=self.face_model))
        return self._tracker.detect(image).face

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None


def is_aligned_crop(shape: tuple[int, ...], crop_matrix: np.ndarray) -> bool:
    """True when a 512² image is its own EG3D crop (the face stage would hardly move it)."""
    from stages.face.alignment import to_params

    if tuple(shape[:2]) != (CROP_SIZE, CROP_SIZE):
        return False
    cx, cy, log_scale, angle = to_params(crop_matrix)
    centre = (CROP_SIZE - 1) / 2
    return (math.hypot(cx - centre, cy - centre) <= ALIGNED_CENTRE_PX and abs(log_scale) <= ALIGNED_LOG_SCALE
            and abs(math.remainder(angle, 2 * math.pi)) <= ALIGNED_ANGLE)


def load_samples(files: list[SampleFiles], face_model: str | None = None, progress: bool = True) -> list[Sample]:
    from tqdm import tqdm

    aligner = Aligner(face_model)
    try:
        return [aligner(f) for f in tqdm(files, desc="align", unit="pair", disable=not progress)]
    finally:
        aligner.close()


def image_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """512² uint8 crops → [B,3,size,size] in [-1,1] (area-averaged when smaller than 512)."""
    x = torch.cat([image_to_tensor(img) for img in images])
    return resize(x, size)


def prompt_batch(images: list[np.ndarray]) -> torch.Tensor:
    """Style references → [B,3,224,224] MAE input, exactly as the engine prepares prompts."""
    return torch.cat([prompt_to_tensor(img) for img in images])


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square images [B,3,S,S] → [B,3,size,size] (bilinear, antialiased; unchanged at that size)."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _same_size(target: np.ndarray, image: np.ndarray, files: SampleFiles) -> np.ndarray:
    """The target at the input's size: resized when only the scale differs, refused otherwise."""
    (h, w), (th, tw) = image.shape[:2], target.shape[:2]
    if (th, tw) == (h, w):
        return target
    if abs(tw / th - w / h) > 0.01:
        raise UserError(f"{files.target} is {tw}×{th} but {files.input} is {w}×{h}: the target must be the "
                        "same portrait, edited (same framing)")
    return cv2.resize(target, (w, h), interpolation=cv2.INTER_AREA if tw > w else cv2.INTER_CUBIC)


class TripletDataset(torch.utils.data.Dataset):
    """Distillation triplets, aligned on access (the face stage runs in the loading worker): dict of image
    [3,R,R], target [3,512,512], prompt and target_prompt [3,224,224] (the prompt is the target itself when
    the sample has none), camera [25]."""

    def __init__(self, files: list[SampleFiles], resolution: int = CROP_SIZE, face_model: str | None = None):
        self.files = files
        self.resolution = resolution
        self.aligner = Aligner(face_model)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.aligner(self.files[index])
        target_prompt = prompt_to_tensor(sample.target)[0]                # the teacher's prompt
        return {"image": image_batch([sample.input], self.resolution)[0],
                "target": image_to_tensor(sample.target)[0],
                "prompt": target_prompt if sample.prompt is None else prompt_to_tensor(sample.prompt)[0],
                "target_prompt": target_prompt,
                "camera": torch.from_numpy(sample.camera)}
