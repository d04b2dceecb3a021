"""Where the styles paint: the face plus the hair (and ears) joined to it, told apart from the backdrop by colour.

Works on the proxy's coarse grid. A cell is head when its colour is commoner near the skull (the face and the
inner part of an ellipse around it) than in a ring farther out, it lies in that ellipse, and it is joined to
the face. The result stays inside an elliptical window within 1.5× the landmark box.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import uniform_filter

from stages.edit.classic.depth_proxy import CHIN, FOREHEAD, DepthProxy, smoothstep

# The head's reach: an ellipse (in face widths) around the skull, cut just below the chin.
HAIR_HALF_WIDTH, HAIR_HALF_HEIGHT, HAIR_UP_SHIFT = 0.95, 1.05, 0.3
NEAR = 0.75                         # head colours: the face and this radius of the head ellipse
RING = (1.15, 1.8)                  # backdrop colours: between these radii, above the chin
HEAD_ODDS = (0.5, 0.8)              # head / (head + backdrop) histogram share: backdrop … surely head
STYLE_WINDOW = (1.25, 1.5)          # styles fade out between these radii of the ellipse inscribed in the landmark box


def styled_head(proxy: DepthProxy, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(gh, gw) soft weight of the head on the proxy's grid: face, hair and ears, not backdrop."""
    gh, gw = proxy.u.shape
    h, w = proxy.shape
    width = proxy.face_width
    up = landmarks[FOREHEAD, :2] - landmarks[CHIN, :2]
    up /= max(np.linalg.norm(up), 1e-6)
    right = np.array([-up[1], up[0]])
    centre = landmarks[:, :2].mean(0) + HAIR_UP_SHIFT * width * up
    reach = RING[1] * max(HAIR_HALF_WIDTH, HAIR_HALF_HEIGHT) * width        # the ring's extent: work there only
    cols = np.nonzero(np.abs(proxy.u[0] - centre[0]) < reach)[0]
    rows = np.nonzero(np.abs(proxy.v[:, 0] - centre[1]) < reach)[0]
    if rows.size == 0 or cols.size == 0:
        return proxy.head
    block = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    u, v = proxy.u[block], proxy.v[block]
    du, dv = u - centre[0], v - centre[1]
    along = du * up[0] + dv * up[1]
    radius = np.hypot((du * right[0] + dv * right[1]) / (HAIR_HALF_WIDTH * width), along / (HAIR_HALF_HEIGHT * width))
    chin = float((landmarks[CHIN, :2] - centre) @ up)                         # the chin's height (negative)

    face = _face_hull(landmarks, (gh, gw), (h, w))[block]
    lab = cv2.cvtColor(cv2.resize(frame, (gw, gh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)[block]
    # Colour histograms: the head's (face, then everything near the skull) against the backdrop's (a ring
    # farther out). Hair hanging into the ring or backdrop showing near the skull only dilutes the ratio.
    near = (face > 0) | (radius < NEAR)
    ring = (radius > RING[0]) & (radius < RING[1]) & (along > chin)
    hair = np.zeros(u.shape, np.float32)
    candidates = (radius < 1.1) & (along > chin - 0.1 * width) & (face == 0)
    if ring.sum() >= 16 and candidates.any():
        bins = _colour_bins(lab)
        head_hist, back_hist = _histogram(bins[near]), _histogram(bins[ring])
        odds = head_hist / np.maximum(head_hist + back_hist, 1e-9)
        hair[candidates] = smoothstep((odds[bins[candidates]] - HEAD_ODDS[0]) / (HEAD_ODDS[1] - HEAD_ODDS[0]))
        hair = cv2.morphologyEx(hair, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))   # lone specks are backdrop
        hair *= _joined_to(hair > 0.5, face > 0)                # backdrop that merely looks like hair stays out
    inside = (1.0 - smoothstep((radius - 0.9) / 0.2)) * smoothstep((along - chin + 0.05 * width) / (0.15 * width))
    soft = max(0.7, 0.03 * width / (w / gw))
    grown = cv2.GaussianBlur(np.maximum(hair * inside, face.astype(np.float32)), (0, 0), soft)
    head = np.zeros((gh, gw), np.float32)
    head[block] = grown * _window(u, v, landmarks)
    return head


def _face_hull(landmarks: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(gh, gw) uint8: 1 inside the landmarks' convex hull."""
    (gh, gw), (h, w) = grid, shape
    scale = np.array([gw / w, gh / h])
    points = np.round((landmarks[:, :2] + 0.5) * scale - 0.5).astype(np.int32)
    mask = np.zeros((gh, gw), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 1)
    return mask


def _joined_to(region: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """1 where `region` (or `seed`) is 8-connected to `seed`, else 0 (float32)."""
    count, labels = cv2.connectedComponents((region | seed).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, np.float32)
    keep[np.unique(labels[seed])] = 1.0
    keep[0] = 0.0
    return keep[labels]


def _window(u: np.ndarray, v: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """1 inside, 0 outside an ellipse inscribed in 1.5× the landmark box (round, so no corner shows)."""
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1.0)
    r = np.hypot((u - mid[0]) / half[0], (v - mid[1]) / half[1])
    start, end = STYLE_WINDOW
    return 1.0 - smoothstep((r - start) / (end - start))


def _colour_bins(lab: np.ndarray) -> np.ndarray:
    """Each cell's colour-histogram bin: L in 16 steps, a and b in steps of 8 (uint8 Lab)."""
    lab = lab.astype(np.int32)
    return ((lab[..., 0] >> 4) * 32 + (lab[..., 1] >> 3)) * 32 + (lab[..., 2] >> 3)


def _histogram(bins: np.ndarray) -> np.ndarray:
    """Normalised, slightly smoothed colour histogram (neighbouring bins share, so few samples still generalise)."""
    counts = np.bincount(bins, minlength=16 * 32 * 32).astype(np.float32).reshape(16, 32, 32)
    counts = uniform_filter(counts, size=3, mode="constant")
    return counts.ravel() / max(float(counts.sum()), 1e-9)
