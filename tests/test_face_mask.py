"""The soft face mask: where it is 1, 0 and feathered, in frame pixels, also at and beyond the frame's edge."""
import numpy as np

from stages.face.mask import FACE_OVAL, face_mask


def oval_landmarks(cx, cy, radius):
    """478 landmarks whose face oval is a circle (other points do not matter for the mask)."""
    landmarks = np.zeros((478, 3), np.float32)
    angles = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    landmarks[FACE_OVAL, 0] = cx + radius * np.cos(angles)
    landmarks[FACE_OVAL, 1] = cy + radius * np.sin(angles)
    return landmarks


def test_mask_is_one_inside_zero_outside_and_centred_on_the_face():
    # MediaPipe pixels: pixel i spans [i, i + 1), so a circle centred at 200.5 is centred on pixel 200
    mask = face_mask(oval_landmarks(200.5, 150.5, 60), (300, 401, 3), downscale=4)
    assert mask.shape == (300, 401) and mask.dtype == np.float32
    assert mask[150, 200] > 0.99 and mask[150, 200 + 45] > 0.9            # inside
    assert 0.2 < mask[150, 200 + 60] < 0.8                                 # the edge is soft
    assert mask[150, 200 + 85] == 0.0 and mask[:40].max() == 0.0           # well outside: exactly 0
    ys, xs = np.indices(mask.shape)
    centroid = np.array([(mask * xs).sum(), (mask * ys).sum()]) / mask.sum()
    np.testing.assert_allclose(centroid, [200.0, 150.0], atol=0.5)         # no shift from the coarse grid


def test_mask_of_a_face_cut_by_the_frame_edge_or_outside_it():
    cut = face_mask(oval_landmarks(390.0, 290.0, 60), (300, 401, 3), downscale=4)
    assert cut[290, 390] > 0.99 and cut[-1, -1] > 0.99 and cut[200:240, 330:340].max() < 0.5
    assert face_mask(oval_landmarks(-500.0, 150.0, 60), (300, 401, 3)).max() == 0.0
