"""The EG3D crop: POS fit, equivariance, matrix parameters, warp, and re-cropping the official EG3D crops."""
import math

import numpy as np
import pytest

from benchmarks.face_template import fit_correction, measure_crops, recrop_error
from stages.face import alignment


def test_pos_fit_recovers_a_known_projection():
    """Five points made by a scaled orthographic projection of the standard 3D landmarks (turned head)
    give back that projection's scale and the image of the model origin."""
    c, s = math.cos(0.4), math.sin(0.4)
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, math.cos(0.2), -math.sin(0.2)], [0, math.sin(0.2), math.cos(0.2)]])
    points = 150.0 * (alignment.STANDARD_3D @ rotation.T)[:, :2] * [1, -1] + [300.0, 200.0]   # image y is down
    t, scale = alignment.pos_fit(points)
    np.testing.assert_allclose(t, [300.0, 200.0], atol=1e-9)
    assert scale == pytest.approx(150.0, rel=1e-9)


def test_crop_follows_the_face_turned_in_the_frame():
    """Turning and scaling the frame turns and scales the crop with it: the crop content stays the same."""
    rng = np.random.default_rng(3)
    landmarks = rng.uniform(100, 400, (478, 2))
    base = alignment.crop_matrix(landmarks)
    a, k, shift = 0.3, 1.6, np.array([40.0, -25.0])
    turn = k * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = (landmarks - 0.5) @ turn.T + shift + 0.5           # the same turn in pixel-index coordinates
    frame_move = np.vstack([np.hstack([turn, shift[:, None]]), [0, 0, 1]])
    np.testing.assert_allclose(alignment.crop_matrix(moved) @ frame_move, base, atol=1e-9)


def test_params_round_trip_and_inverse():
    matrix = alignment.from_params(np.array([300.0, 200.0, math.log(0.8), 0.2]))
    np.testing.assert_allclose(alignment.to_params(matrix), [300.0, 200.0, math.log(0.8), 0.2], atol=1e-9)
    centre = alignment.invert(matrix) @ np.array([256.0, 256.0, 1.0])
    np.testing.assert_allclose(centre, [300.0, 200.0], atol=1e-9)


def test_warp_crop_area_filters_a_large_downscale():
    """A fine checkerboard shrunk 8× must come out mid-grey, not as aliasing patterns."""
    board = (np.indices((2048, 2048)).sum(0) % 2 * 255).astype(np.uint8)
    frame = np.repeat(board[..., None], 3, axis=2)
    crop = alignment.warp_crop(frame, np.array([[0.125, 0, 0], [0, 0.125, 0]]), 256)[4:-4, 4:-4]
    assert abs(float(crop.mean()) - 127.5) < 3 and float(crop.std()) < 4


@pytest.mark.slow
def test_recropping_the_official_eg3d_crops_is_close_to_identity(images):
    """Every official crop, re-cropped, is within the issue's bounds: < 3 % scale, < 6 px shift, < 2°.

    With the stored CORRECTION and with one refitted without the crop being checked (leave-one-out).
    Measured (MediaPipe 1.2.3): stored ≤ 2.0 %, ≤ 5.5 px, ≤ 1.1°; leave-one-out ≤ 2.3 %, ≤ 5.6 px.
    The rotation (FFHQ's quad angle) is not fitted at all. Not held out: the choice of which MediaPipe
    points stand in for MTCNN's was made on these ten crops too (see docs/cameras.md).
    """
    landmarks, names = measure_crops(images / "eg3d_crops")
    assert len(names) == 10
    for i, name in enumerate(names):
        held_out = fit_correction(np.delete(landmarks, i, axis=0))
        for correction in (alignment.CORRECTION, held_out):
            scale, shift, rotation = recrop_error(landmarks[i], correction)
            assert abs(scale) < 0.03 and shift < 6.0 and abs(rotation) < 2.0, (name, scale, shift, rotation)
