"""Fit the crop correction (stages/face/alignment.py CORRECTION) on the official EG3D-aligned crops.

Usage: python -m benchmarks.face_template [CROPS_DIR]   (default: the reference images/eg3d_crops via testdata)
Re-crops every official crop without correction, prints the mean error to paste into CORRECTION,
then the re-crop error of each crop with the stored correction and with a leave-one-out one.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import minimize

import testdata
from pipeline.assets import FACE_LANDMARKER
from stages.face.alignment import CROP_SIZE, CORRECTION, crop_matrix, to_params
from stages.face.landmarker import Landmarker


def measure_crops(folder: Path) -> tuple[np.ndarray, list[str]]:
    """MediaPipe landmarks (n, 478, 3) of the face in every input_*.png of `folder`, in name order."""
    paths = sorted(folder.glob("input_*.png"), key=lambda p: int(p.stem.split("_")[-1]))
    landmarker = Landmarker(str(FACE_LANDMARKER.resolve()), 1, 0.5, video=False)
    try:
        landmarks = [landmarker.detect(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))[0].landmarks for p in paths]
    finally:
        landmarker.close()
    return np.array(landmarks), [p.name for p in paths]


def recrop_error(landmarks: np.ndarray, correction: np.ndarray = CORRECTION) -> tuple[float, float, float]:
    """(scale change, centre shift px, rotation deg) of re-cropping a correct 512² crop; identity is (0, 0, 0)."""
    cx, cy, log_scale, angle = to_params(crop_matrix(landmarks, CROP_SIZE, correction))
    return math.expm1(log_scale), math.hypot(cx - CROP_SIZE / 2, cy - CROP_SIZE / 2), math.degrees(angle)


def ideal_correction(landmarks: np.ndarray) -> np.ndarray:
    """The (dx, dy, log scale) that would make re-cropping this correct crop exactly the identity."""
    raw = crop_matrix(landmarks, CROP_SIZE, np.zeros(3))
    log_scale = -math.log(math.hypot(raw[0, 0], raw[1, 0]))
    unit = raw[:, :2] * math.exp(log_scale)                   # the rotation left once the scale is fixed
    centre = np.full(2, CROP_SIZE / 2)
    shift = centre - (unit @ centre + raw[:, 2] * math.exp(log_scale) + (1 - math.exp(log_scale)) * (CROP_SIZE / 2 - 0.5))
    return np.array([shift[0], shift[1], log_scale])


def fit_correction(landmarks: np.ndarray) -> np.ndarray:
    """CORRECTION fitted on correct crops for the smallest worst case (the issue bounds every crop):
    the centre of the smallest circle around their ideal shifts, and the mid-range of their log scales."""
    ideal = np.array([ideal_correction(lm) for lm in landmarks])
    worst = lambda c: float(np.max(np.hypot(*(ideal[:, :2] - c).T)))  # noqa: E731
    shift = minimize(worst, ideal[:, :2].mean(0), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9}).x
    return np.array([shift[0], shift[1], (ideal[:, 2].min() + ideal[:, 2].max()) / 2])


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else testdata.path("images/eg3d_crops")
    landmarks, names = measure_crops(folder)
    print("CORRECTION =", np.round(fit_correction(landmarks), 4).tolist())
    for i, name in enumerate(names):
        loo = fit_correction(np.delete(landmarks, i, axis=0))
        s, d, r = recrop_error(landmarks[i])
        ls, ld, lr = recrop_error(landmarks[i], loo)
        print(f"{name:14s} stored: scale {s:+.3f} shift {d:5.2f}px rot {r:+.2f}°"
              f" | leave-one-out: scale {ls:+.3f} shift {ld:5.2f}px rot {lr:+.2f}°")


if __name__ == "__main__":
    main()
