"""The `3dpe` engine: image prompt → cached prompt tokens, aligned crop → (smoothed) triplane, triplane →
512² render at any camera. Loaded models are shared between engines (one engine per stream or peer)."""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.config import EngineConfig
from pipeline.device import resolve_device
from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE, FaceObservation, RenderResult
from stages.edit.engine import Style, adapter_path_in
from stages.source_image import image_path_in, load_rgb

NO_TEXT_ENCODER = ("the 3dpe engine takes image prompts only (the official 3DPE release ships no text encoder): "
                   "pass an image, e.g. --style image:/path/to/prompt.jpg, an adapter (adapter:STYLE.safetensors from "
                   "`live3dpe adapt`), or use --engine classic for text presets")

_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()


def shared_model(config: EngineConfig, device: str) -> Any:
    """The network for `config`, loaded once per (weights path or random seed, device, precision, backend,
    acceleration, batch): engines of several streams share it, and with `max_batch` > 1 their calls are batched."""
    from threedpe.checkpoint import resolve_weights

    if config.random_weights:
        source = f"random:{int(config.extra.get('seed', 0))}"
    else:
        source = os.path.realpath(resolve_weights(config.weights))   # --weights → $LIVE3DPE_WEIGHTS → default folder
    key = (source, device, config.precision, config.backend, config.accel, config.max_batch, config.onnx_dir)
    with _models_lock:
        if key not in _models:
            _models[key] = _load_network(config, source, device)
        return _models[key]


def _load_network(config: EngineConfig, source: str, device: str) -> Any:
    from threedpe.backends import create_network
    from threedpe.backends.accelerated import AcceleratedNetwork
    from threedpe.backends.batched import BatchedNetwork
    from threedpe.model import ThreeDPE

    if config.random_weights:
        model = ThreeDPE.random(seed=int(source.split(":")[1]), device=device)
    else:
        model = ThreeDPE.load(source, device=device, trust_pickle=config.trust_pickle)
    model.precision = config.precision
    network = create_network(model, config.backend, onnx_dir=config.onnx_dir, device=device,
                             precision=config.precision)
    if config.accel != "eager":
        if config.backend != "torch":
            raise UserError(f"--accel {config.accel} is for --backend torch (exported backends compile their own)")
        network = AcceleratedNetwork(network, config.accel)
    return BatchedNetwork(network, config.max_batch) if config.max_batch > 1 else network


@dataclass
class _FaceState:
    """What the engine remembers of one face between frames."""

    triplane: torch.Tensor          # the last (smoothed) triplane
    style_key: str
    thumb: np.ndarray               # 32² grey thumbnail of the crop (cut detection)
    pose: tuple[float, float]       # yaw, pitch
    self_tokens: torch.Tensor | None  # the face's own prompt tokens (style "none")


def torch_model(network: Any) -> Any:
    """The ThreeDPE behind a network (batching and CUDA-graph wrappers unwrapped); None for exported backends."""
    from threedpe.model import ThreeDPE

    while not isinstance(network, ThreeDPE):
        network = vars(network).get("network") or vars(network).get("model")
        if network is None:
            return None
    return network


@dataclass(frozen=True)
class AdaptedStyle:
    """What an adapter style holds: its prompt's tokens (from the adapted E_p) and the model with its
    adapted E_t (sharing every other tensor with the engine's model)."""

    tokens: torch.Tensor
    model: Any


@dataclass
class TriplaneScene:
    """What `ThreeDPEEngine.encode` makes: the (temporally smoothed) triplane of one face."""

    triplane: torch.Tensor          # [1, 96, 256, 256] on the engine's device
    style_key: str


class ThreeDPEEngine:
    """Engine `3dpe`. Stateful per stream and face (`face.track`): the triplane EMA (reset on a scene cut or a
    large pose jump) and, without a style, the face's own prompt tokens; the MAX_FACES latest faces are kept."""

    name = "3dpe"
    decoupled = True                # the encoder is the slow part: live streams encode in the background
    takes_text = False              # no text encoder: any text is read as an image file name
    POSE_JUMP_DEG = 25.0
    CUT_DIFFERENCE = 40.0           # mean absolute difference (0..255) of 32² grey thumbnails of the crop
    MAX_FACES = 8

    def __init__(self, config: EngineConfig, model: Any = None, render_options: Any = None):
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model if model is not None else shared_model(config, self.device)
        exported = getattr(self.model, "render_options", None)     # an exported graph renders with its own
        self.render_options = exported() if render_options is None and exported is not None else render_options
        # GPU hot path: frames arrive as device tensors, the crop is warped and the render stays on the device
        self.resident = self.device.startswith("cuda") or bool(config.extra.get("resident", False))
        # the model knows when its output is not a real edit (random or untrained prompt weights)
        self.label = self.model.label
        self._styles: dict[str, Style] = {}
        self._lock = threading.Lock()
        self._faces: OrderedDict[int, _FaceState] = OrderedDict()
        self.triplane_ema = float(config.triplane_ema)      # per engine: a live peer may change it

    def set_triplane_ema(self, weight: float) -> None:
        """Change this engine's triplane EMA weight (the previous triplane's share, 0 = off) while it runs;
        safe from any thread: `encode` reads it once per frame. Raises ValueError outside [0, 1)."""
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) \
                or not 0.0 <= weight < 1.0:
            raise ValueError(f"triplane_ema must be a number in [0, 1) (0 = off); got {weight!r}")
        self.triplane_ema = float(weight)

    # -- prepare -------------------------------------------------------------------------------------
    def prepare(self, prompt: str | np.ndarray | None) -> Style:
        if prompt is None or (isinstance(prompt, str) and prompt.strip().lower() in ("", "none")):
            return Style("none", "none", "none (the face itself as the prompt)")
        if isinstance(prompt, str) and (adapter := adapter_path_in(prompt)) is not None:
            return self._prepare_adapter(adapter)
        if isinstance(prompt, str):
            path = image_path_in(prompt) or Path(prompt.strip())   # any readable file, whatever its suffix
            if not path.is_file():
                raise ValueError(f"{prompt!r} is not an image file; {NO_TEXT_ENCODER}")
            try:
                rgb = load_rgb(path)
            except UserError:
                raise ValueError(f"cannot read the image prompt {str(path)!r} (not an image OpenCV can decode)") from None
            label = path.name
        else:
            rgb, label = np.asarray(prompt), "image prompt"
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 16:
            raise ValueError("an image prompt must be an RGB uint8 array of at least 16×16 pixels")
        key = "image:" + hashlib.sha1(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()
        with self._lock:
            if key not in self._styles:                        # a style is encoded once, keyed by content
                self._styles[key] = Style(key, "image", label, data=self._prompt_tokens(rgb))
            return self._styles[key]

    def _prompt_tokens(self, rgb: np.ndarray, model: Any = None) -> torch.Tensor:
        from threedpe.preprocess import prompt_to_tensor

        with torch.inference_mode():
            return (model or self.model).encode_prompt(prompt_to_tensor(rgb).to(self.device))

    def _prepare_adapter(self, path: Path) -> Style:
        """An adapter file (`live3dpe adapt`): its reference's tokens through the adapted E_p, and the model
        with its adapted E_t for every frame. Keyed by the file's identity, so a re-prepare is free."""
        from threedpe.adapter import AdapterError, load_adapter

        try:
            stat = path.stat()
        except OSError:
            raise ValueError(f"no such adapter file: {path}") from None
        key = f"adapter:{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
        with self._lock:
            if key in self._styles:
                return self._styles[key]
        base = torch_model(self.model)
        if base is None:
            raise ValueError("adapters need --backend torch: an exported network (onnxruntime, TensorRT) holds the "
                             "weights it was exported with")
        try:
            adapter = load_adapter(path)
            tokens = self._prompt_tokens(adapter.prompt, adapter.apply(base))   # refuses other base weights
        except AdapterError as exc:
            raise ValueError(str(exc)) from None
        # per frame: the base's encoder with the adapter's E_t, eagerly (no CUDA graph or batch holds its tensors)
        style = Style(key, "adapter", f"adapter {path.stem}",
                      data=AdaptedStyle(tokens, base.with_tensors(adapter.frame_tensors())))
        with self._lock:
            return self._styles.setdefault(key, style)

    # -- encode --------------------------------------------------------------------------------------
    def encode(self, face: FaceObservation, frame: np.ndarray, style: Style) -> TriplaneScene:
        """`frame` may be the device tensor the edit stage uploaded (GPU-resident): the crop is warped there."""
        from threedpe.preprocess import image_to_tensor

        thumb = cv2.resize(cv2.cvtColor(face.crop, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
        previous = self._faces.pop(face.track, None)
        reset = self._is_new_shot(previous, thumb, (face.yaw, face.pitch), style.key)
        self_tokens = previous.self_tokens if previous is not None else None
        if style.kind == "none" and (reset or self_tokens is None):
            # no style: the face's own crop is the prompt, refreshed at every new shot
            self_tokens = self._prompt_tokens(face.crop)
        model, tokens = self.model, self_tokens if style.kind == "none" else style.data
        if style.kind == "adapter":
            model, tokens = style.data.model, style.data.tokens
        with torch.inference_mode():
            if torch.is_tensor(frame):
                from stages.gpu.warp import crop_to_network, warp_crop
                image = crop_to_network(warp_crop(frame, face.crop_matrix))
            else:
                image = image_to_tensor(face.crop).to(self.device)
            triplane = model.encode(image, tokens)
            ema = self.triplane_ema
            if not reset and ema > 0.0:
                triplane = ema * previous.triplane + (1.0 - ema) * triplane
        self._faces[face.track] = _FaceState(triplane, style.key, thumb, (face.yaw, face.pitch), self_tokens)
        while len(self._faces) > self.MAX_FACES:                # faces long gone
            self._faces.popitem(last=False)
        return TriplaneScene(triplane, style.key)

    def _is_new_shot(self, previous: "_FaceState | None", thumb: np.ndarray, pose: tuple[float, float],
                     style_key: str) -> bool:
        if previous is None:
            return True
        cut = float(np.mean(cv2.absdiff(thumb, previous.thumb))) > self.CUT_DIFFERENCE
        jump = max(abs(pose[0] - previous.pose[0]), abs(pose[1] - previous.pose[1])) > self.POSE_JUMP_DEG
        return cut or jump or previous.style_key != style_key

    def reset(self) -> None:
        """Forget the temporal state of every face (e.g. the stream restarted)."""
        self._faces.clear()

    # -- render --------------------------------------------------------------------------------------
    def render(self, scene: TriplaneScene, camera: np.ndarray) -> RenderResult:
        from threedpe.preprocess import tensor_to_image

        cameras = torch.as_tensor(np.asarray(camera, np.float32).reshape(1, 25), device=self.device)
        with torch.inference_mode():
            out = self.model.render(scene.triplane, cameras, self.render_options)
            if self.resident:
                return self._device_result(out, camera)
            image = np.asarray(tensor_to_image(out["image"]))
            opacity = out["weight_sum"][0, 0].float().clamp(0, 1).cpu().numpy()
            depth = out["image_depth"][0, 0].float().cpu().numpy() if "image_depth" in out else None
        image = image[0] if image.ndim == 4 else image
        if image.shape[:2] != (CROP_SIZE, CROP_SIZE):                   # cheap preview resolutions still give a 512² crop
            image = cv2.resize(image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(opacity, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        return RenderResult(image=image, mask=mask, space="crop", depth=depth,
                            camera=np.asarray(camera, np.float32), label=self.label)

    def _device_result(self, out: dict, camera: np.ndarray) -> RenderResult:
        """The render left on the device: uint8 HWC image and float mask at 512² (the compositor pastes there)."""
        import torch.nn.functional as F

        image = ((out["image"][:1].float().clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8)   # as tensor_to_image
        opacity = out["weight_sum"][:1].float().clamp(0, 1)
        if image.shape[-1] != CROP_SIZE:
            image = F.interpolate(image.float(), size=(CROP_SIZE, CROP_SIZE), mode="bilinear",
                                  align_corners=False).round().to(torch.uint8)
        mask = F.interpolate(opacity, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)[0, 0]
        return RenderResult(image=image[0].permute(1, 2, 0).contiguous(), mask=mask, space="crop",
                            depth=out["image_depth"][0, 0] if "image_depth" in out else None,
                            camera=np.asarray(camera, np.float32), label=self.label)
