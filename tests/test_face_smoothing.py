"""One-Euro filters: noise is removed when still, motion is followed, rotations stay rotations."""
import numpy as np
from scipy.spatial.transform import Rotation

from stages.face.smoothing import OneEuroFilter, RotationOneEuroFilter


def test_one_euro_removes_jitter_and_follows_a_step():
    rng = np.random.default_rng(1)
    f = OneEuroFilter(min_cutoff=0.6, beta=0.02)
    still = [f(np.array([100.0 + rng.normal(0, 1.0)]), i / 30)[0] for i in range(90)]
    assert np.std(still[30:]) < 0.35                      # raw noise is 1.0
    moved = [f(np.array([200.0]), 3 + i / 30)[0] for i in range(30)]
    assert abs(moved[-1] - 200.0) < 2.0                   # a 100 px jump is followed within a second


def test_one_euro_uses_real_timestamps():
    """The same samples with twice the time between them are smoothed less (a higher effective alpha)."""
    fast, slow = OneEuroFilter(1.0, 0.0), OneEuroFilter(1.0, 0.0)
    for f, dt in ((fast, 1 / 60), (slow, 1 / 15)):
        f(np.array([0.0]), 0.0)
    assert fast(np.array([1.0]), 1 / 60)[0] < slow(np.array([1.0]), 1 / 15)[0]


def test_rotation_filter_stays_on_so3_and_converges():
    rng = np.random.default_rng(2)
    f = RotationOneEuroFilter(0.8, 1.0)
    target = Rotation.from_euler("xyz", [10, -20, 5], degrees=True)
    out = None
    for i in range(120):
        noisy = Rotation.from_rotvec(rng.normal(0, 0.01, 3)) * target
        out = f(noisy.as_matrix(), i / 30)
        np.testing.assert_allclose(out @ out.T, np.eye(3), atol=1e-9)
    assert np.degrees((Rotation.from_matrix(out) * target.inv()).magnitude()) < 0.5
