"""Find model files: explicit path → environment variable → user cache → official URL (sha256-checked).

Every model the product loads is described once as a `ModelAsset`; `resolve` never returns an
unverified download, and offline it raises a `UserError` that says where to put the file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


from pipeline.errors import UserError


def cache_dir() -> Path:
    """Per-user cache folder (`$LIVE3DPE_CACHE`, else `$XDG_CACHE_HOME/live3dpe`, else ~/.cache/live3dpe)."""
    if os.environ.get("LIVE3DPE_CACHE"):
        return Path(os.environ["LIVE3DPE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "live3dpe"


@dataclass(frozen=True)
class ModelAsset:
    filename: str
    env_var: str
    url: str | None
    sha256: str | None
    description: str
    flag: str | None = None         # the command-line flag that takes an explicit path

    def cached_path(self) -> Path:
        return cache_dir() / self.filename

    def resolve(self, explicit: str | os.PathLike | None = None, download: bool = True) -> Path:
        """Return a local path to the model, downloading it into the cache if needed."""
        if explicit:
            return _existing(Path(explicit), f"{self.description} (given path)")
        if os.environ.get(self.env_var):
            return _existing(Path(os.environ[self.env_var]), f"{self.description} (${self.env_var})")
        cached = self.cached_path()
        if cached.is_file():
            return cached
        if not download or not self.url:
            raise UserError(self._missing_message("downloading is off" if self.url else "it has no public download"))
        try:
            download_verified(self.url, cached, self.sha256, self.description)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise UserError(self._missing_message(f"download failed: {exc}")) from None
        return cached

    def _missing_message(self, why: str) -> str:
        where = f"download it from {self.url} and " if self.url else ""
        return (f"{self.description} not found ({why}). To fix: {where}put it at {self.cached_path()}, "
                f"or set {self.env_var}=/path/to/{self.filename}, or pass {self.flag or 'its path'} {'PATH' if self.flag else 'explicitly'}.")


def download_verified(url: str, target: Path, sha256: str | None, what: str, timeout: float = 30.0) -> None:
    """Fetch `url` into `target` with a progress bar; the file appears only complete and, when `sha256` is
    given, verified (a `.part` file next to it is removed on any failure). Raises OSError on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        part = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                size = int(response.headers.get("Content-Length") or 0) or None
                from tqdm import tqdm          # only when downloading: GPU benchmark machines have no tqdm
                with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=what, leave=False) as bar:
                    while chunk := response.read(1 << 20):
                        tmp.write(chunk)
                        bar.update(len(chunk))
        except BaseException:
            tmp.close()
            part.unlink()
            raise
    digest = sha256_of(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise OSError(f"sha256 mismatch for {url}: got {digest}, expected {sha256}")
    os.replace(part, target)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise UserError(f"{what}: no such file: {path}")
    return path


FACE_LANDMARKER = ModelAsset(
    filename="face_landmarker.task",
    env_var="LIVE3DPE_FACE_MODEL",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    description="MediaPipe Face Landmarker model (face_landmarker.task)",
    flag="--face-model",
)

YUNET = ModelAsset(
    filename="face_detection_yunet_2023mar_int8bq.onnx",
    env_var="LIVE3DPE_YUNET_MODEL",
    url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    description="OpenCV Zoo YuNet face detector",
)

SFACE = ModelAsset(
    filename="face_recognition_sface_2021dec_int8bq.onnx",
    env_var="LIVE3DPE_SFACE_MODEL",
    url="https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    description="OpenCV Zoo SFace identity model",
)

SELFIE_SEGMENTER = ModelAsset(
    filename="selfie_segmenter.tflite",
    env_var="LIVE3DPE_SEGMENTER_MODEL",
    url="https://storage.googleapis.com/mediapipe-models/image_segmenter/selfie_segmenter/float16/latest/selfie_segmenter.tflite",
    sha256="191ac9529ae506ee0beefa6b2c945a172dab9d07d1e802a290a4e4038226658b",
    description="MediaPipe selfie segmenter model (selfie_segmenter.tflite)",
    flag="--segmenter-model",
)
