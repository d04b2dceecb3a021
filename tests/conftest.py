"""Shared test fixtures: paths into ../shared (the reference clips, images, models and vectors)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIVE3DPE_SHARED", REPO.parent / "shared"))

if not SHARED.is_dir():
    raise RuntimeError(f"tests need the shared reference folder at {SHARED} (set LIVE3DPE_SHARED)")

# The product resolves models by env var; point it at the official files in ../shared.
os.environ.setdefault("LIVE3DPE_FACE_MODEL", str(SHARED / "models" / "face_landmarker.task"))
os.environ.setdefault("LIVE3DPE_SEGMENTER_MODEL", str(SHARED / "models" / "selfie_segmenter.tflite"))
os.environ.setdefault("LIVE3DPE_YUNET_MODEL", str(SHARED / "models" / "face_detection_yunet_2023mar_int8bq.onnx"))
os.environ.setdefault("LIVE3DPE_SFACE_MODEL", str(SHARED / "models" / "face_recognition_sface_2021dec_int8bq.onnx"))


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def clips(shared) -> Path:
    return shared / "clips"


@pytest.fixture(scope="session")
def images(shared) -> Path:
    return shared / "images"
