"""Causal One-Euro filters driven by real timestamps: one for vectors, one for rotations on SO(3)."""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012) per channel: the cutoff rises with speed, so slow jitter is
    removed while fast motion is followed with little lag. `speed_unit` divides the speed per channel
    (e.g. the face scale, so that beta means the same for small and large faces)."""

    def __init__(self, min_cutoff: float | np.ndarray, beta: float | np.ndarray, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = np.asarray(min_cutoff, float), np.asarray(beta, float), d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    @property
    def value(self) -> np.ndarray | None:
        """The last filtered value (None before the first sample)."""
        return None if self._x is None else self._x.copy()

    def __call__(self, x: np.ndarray, t: float, speed_unit: np.ndarray | float = 1.0) -> np.ndarray:
        x = np.asarray(x, float)
        if self._x is None or t <= self._t:
            # first sample, or no time elapsed: nothing to filter against
            if self._x is None:
                self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t = max(self._t, t)
            return self._x.copy()
        dt = t - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / speed_unit
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()


class RotationOneEuroFilter:
    """One-Euro filter on SO(3): speed is the angular speed, and each step moves the estimate along the
    geodesic towards the new rotation (a slerp), never element-wise on the matrix."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._r: Rotation | None = None
        self._speed = 0.0
        self._t = 0.0

    def __call__(self, rotation: np.ndarray, t: float) -> np.ndarray:
        r = Rotation.from_matrix(rotation)
        if self._r is None or t <= self._t:
            if self._r is None:
                self._r = r
            self._t = max(self._t, t)
            return self._r.as_matrix()
        dt = t - self._t
        delta = (self._r.inv() * r).as_rotvec()            # body-frame step towards the new rotation
        speed = float(np.linalg.norm(delta)) / dt
        self._speed += _alpha(self.d_cutoff, dt) * (speed - self._speed)
        a = _alpha(self.min_cutoff + self.beta * self._speed, dt)
        self._r = self._r * Rotation.from_rotvec(a * delta)
        self._t = t
        return self._r.as_matrix()
