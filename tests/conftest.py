"""Shared test fixtures: the reference folder (clips, images, models, conformance vectors) through `testdata`."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import testdata


def pytest_sessionstart(session):
    """Find (or fetch) the reference data once, before any test; point the product's model lookup at it."""
    try:
        folder = testdata.fetch()
    except testdata.TestDataError as exc:
        pytest.exit(f"test data: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    session.config.stash[FOLDER] = folder
    models = folder / "models"
    os.environ.setdefault("LIVE3DPE_FACE_MODEL", str(models / "face_landmarker.task"))
    os.environ.setdefault("LIVE3DPE_SEGMENTER_MODEL", str(models / "selfie_segmenter.tflite"))
    os.environ.setdefault("LIVE3DPE_YUNET_MODEL", str(models / "face_detection_yunet_2023mar_int8bq.onnx"))
    os.environ.setdefault("LIVE3DPE_SFACE_MODEL", str(models / "face_recognition_sface_2021dec_int8bq.onnx"))


FOLDER = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def shared(request) -> Path:
    return request.config.stash[FOLDER]


@pytest.fixture(scope="session")
def clips(shared) -> Path:
    return shared / "clips"


@pytest.fixture(scope="session")
def images(shared) -> Path:
    return shared / "images"


@pytest.fixture(scope="session")
def conformance_bundle(shared) -> Path:
    """The official-code test vectors; without them (no public download) the tests that need them skip."""
    folder = shared / testdata.CONFORMANCE
    if not all((shared / e.path).is_file() for e in testdata.entries() if e.path.startswith(testdata.CONFORMANCE)):
        pytest.skip(testdata.NO_CONFORMANCE.format(folder=folder))
    return folder
