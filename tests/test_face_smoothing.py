"""One-Euro filters: noise is removed when still, motion is followed, rotations stay rotations;
the clock that feeds them and MediaPipe real, strictly increasing times."""
import numpy as np
from scipy.spatial.transform import Rotation

from stages.face.smoothing import OneEuroFilter, RotationOneEuroFilter
from stages.face.tracker import VideoClock


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


def test_video_clock_keeps_real_intervals_when_the_source_clock_goes_back():
    """A clip that loops (pts back to 0) or a restarted stream: timestamps stay strictly increasing
    and, after one frame interval, go on with the source's own intervals (not 1 ms nudges)."""
    clock = VideoClock()
    first = [clock(i / 30) for i in range(30)]                        # 0 … 0.967 s
    looped = [clock(i / 30) for i in range(30)]                       # the clip starts again at 0
    ms = [m for m, _ in first + looped]
    assert np.all(np.diff(ms) > 0)
    assert [went_back for _, went_back in first + looped].count(True) == 1 and looped[0][1]
    assert ms[30] - ms[29] == ms[29] - ms[28]                          # the jump costs one frame interval
    assert np.all(np.abs(np.diff(ms[30:]) - 1000 / 30) <= 1)          # later frames keep their real spacing


def test_video_clock_repeated_and_negative_timestamps():
    clock = VideoClock()
    assert clock(-2.0) == (0, False)                                  # MediaPipe needs non-negative times
    assert clock(-1.96) == (40, False)
    assert clock(-1.96) == (80, False)                                # repeated: one interval on, not a cut
    assert clock(-1.92) == (120, False)
