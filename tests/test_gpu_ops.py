"""The torch hot-path ops (stages/gpu) against the NumPy/OpenCV versions they replace, on CPU tensors:
crop warp (bicubic, area prefilter), the feathered render mask, the paste into the frame."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from pipeline.packets import RenderResult
from stages import composite
from stages.face.alignment import from_params, invert, warp_crop
from stages.gpu import composite as gpu_composite
from stages.gpu.frames import FrameUploader, is_tensor, to_host
from stages.gpu.warp import crop_to_network, warp_affine, warp_crop as gpu_warp_crop
from test_edit_fakes import make_face, textured_frame
from threedpe.preprocess import image_to_tensor


@pytest.fixture(scope="module")
def photo(images):
    return cv2.cvtColor(cv2.imread(str(images / "s1.jpg")), cv2.COLOR_BGR2RGB)


def _levels(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float(diff.mean()), int(diff.max())


@pytest.mark.parametrize("mode,border,flag,cv_border", [
    ("bilinear", "replicate", cv2.INTER_LINEAR, cv2.BORDER_REPLICATE),
    ("bicubic", "constant", cv2.INTER_CUBIC, cv2.BORDER_CONSTANT)])
def test_warp_affine_matches_opencv(photo, mode, border, flag, cv_border):
    matrix = from_params(np.array([photo.shape[1] * 0.45, photo.shape[0] * 0.4, math.log(0.8), 0.3]), 300)
    ours = warp_affine(torch.from_numpy(photo), matrix, (300, 260), mode, border)
    ref = cv2.warpAffine(photo, matrix, (300, 260), flags=flag, borderMode=cv_border, borderValue=0)
    mean, worst = _levels(ours.round().clamp(0, 255).to(torch.uint8).numpy(), ref)
    # OpenCV quantises source positions to 1/32 px and weights to fixed point: a level or two apart
    assert mean < 0.6 and worst <= 8, (mean, worst)


@pytest.mark.parametrize("scale", [1.3, 0.3])      # upscale, and a 3× shrink that goes through the area prefilter
def test_crop_warp_matches_the_face_stage(photo, scale):
    frame = np.ascontiguousarray(photo[: photo.shape[0] // 3 * 3, : photo.shape[1] // 3 * 3])
    matrix = invert(from_params(np.array([frame.shape[1] / 2, frame.shape[0] / 2, math.log(1 / scale), -0.2])))
    ref = warp_crop(frame, matrix)
    crop = gpu_warp_crop(torch.from_numpy(frame), matrix)
    mean, worst = _levels(crop.round().clamp(0, 255).to(torch.uint8).numpy(), ref)
    assert mean < 0.8 and worst <= 12, (mean, worst)
    net = crop_to_network(crop)
    assert net.shape == (1, 3, 512, 512)
    assert float((net - image_to_tensor(ref)).abs().mean()) < 0.01


def test_feathered_mask_matches_opencv():
    mask = np.zeros((128, 128), np.float32)
    cv2.circle(mask, (64, 60), 40, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 2)
    ref = composite.feather_crop_mask(cv2.resize(mask, (512, 512), interpolation=cv2.INTER_LINEAR))
    ours = gpu_composite.feather_crop_mask(torch.from_numpy(mask)).numpy()
    assert np.abs(ours - ref).max() < 2e-3


def test_paste_matches_the_compositor():
    frame = textured_frame(3, (360, 480))
    face = make_face(frame, box=(150, 90, 290, 250))
    render = np.full((512, 512, 3), (200, 120, 40), np.uint8)
    cv2.circle(render, (256, 256), 120, (30, 220, 90), -1)
    mask = np.zeros((512, 512), np.float32)
    cv2.circle(mask, (256, 250), 200, 1.0, -1)
    ref = composite.paste(frame, RenderResult(image=render, mask=mask), face, alpha=0.8)
    ours = gpu_composite.paste(torch.from_numpy(frame), torch.from_numpy(render), torch.from_numpy(mask), face,
                               alpha=0.8)
    assert ours.dtype == torch.uint8 and ours.shape == frame.shape
    mean, worst = _levels(ours.numpy(), ref)
    assert mean < 0.3 and worst <= 6, (mean, worst)
    assert _levels(ours.numpy(), frame)[0] > 5                 # it did paste something


def test_paste_outside_the_frame_returns_the_frame():
    frame = textured_frame(4, (120, 160))
    face = make_face(frame, box=(10, 10, 40, 40))
    face.crop_inverse = face.crop_inverse + np.array([[0, 0, 5000], [0, 0, 0]])
    out = gpu_composite.paste(torch.from_numpy(frame), torch.zeros(512, 512, 3, dtype=torch.uint8),
                              torch.ones(512, 512), face)
    assert torch.equal(out, torch.from_numpy(frame))


def test_uploader_on_cpu_wraps_without_copy_and_host_round_trip():
    frame = textured_frame(5, (48, 64))
    up = FrameUploader("cpu")
    t = up.upload(frame)
    assert is_tensor(t) and not is_tensor(frame) and t.dtype == torch.uint8
    assert np.array_equal(to_host(t), frame) and to_host(frame) is not None
