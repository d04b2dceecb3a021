"""Whole-frame depth proxy on a coarse grid: the face mesh, an ellipsoid head around it, a fall-off to the background.

Depth is in "head pixels": 1 unit = 1 image pixel at the depth of the head centre, + = away from
the camera (MediaPipe's z has this scale). Each grid cell also says how rigidly it follows the head
(`follow`: 1 on the head, smoothly 0 on the background; the engine raises it on the segmented head).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay, QhullError

from stages.edit.classic.holes import fill_holes

CHEEK_RIGHT, CHEEK_LEFT, FOREHEAD, CHIN = 234, 454, 10, 152
MIN_FACE_WIDTH = 10.0              # pixels; smaller faces are passed through untouched
# Head proportions in face widths (cheek to cheek ≈ 14 cm): an adult head is ≈ 16 wide, 23 tall, 19 deep.
HEAD_HALF_WIDTH, HEAD_HALF_HEIGHT, HEAD_HALF_DEPTH = 0.68, 0.85, 0.6
HEAD_UP_SHIFT = 0.15               # the skull's centre sits above the face centroid (forehead, crown)
PIVOT_BEHIND_FACE = 0.5            # the head turns about a point this far behind the face surface
FALLOFF = 0.5                      # follow weight drops to 0 over this much ellipse radius beyond the head
BACKGROUND_BEHIND = 1.0            # background depth behind the head centre, in face widths
MIN_FOCAL_FACES = 3.0              # focal length ≥ 3 face widths (camera ≥ ≈ 40 cm from a 14 cm wide face)


@dataclass
class DepthProxy:
    """The proxy of one frame, sampled at the centres of a (gh, gw) grid over the (H, W) frame."""

    shape: tuple[int, int]          # frame (H, W)
    u: np.ndarray                   # (gh, gw) pixel x of each cell centre
    v: np.ndarray                   # (gh, gw) pixel y
    depth: np.ndarray               # (gh, gw) depth relative to the head centre, head pixels
    follow: np.ndarray              # (gh, gw) in [0, 1]: how rigidly the cell turns with the head
    centre: tuple[float, float]     # head centre projected into the frame (pixels)
    face_width: float               # pixels
    focal: float                    # pinhole focal length of the webcam model, pixels


def webcam_focal(width: int, face_width: float, fov_deg: float = 60.0) -> float:
    """Focal length (pixels) of the assumed webcam.

    A 60° horizontal field of view (typical laptop camera), but never less than MIN_FOCAL_FACES face
    widths: a face can't be nearer than ≈ 40 cm, and tightly cropped video (a 512² clip of a face)
    would otherwise get a 25 cm camera distance and grossly exaggerated perspective.
    """
    return max(0.5 * width / np.tan(np.radians(fov_deg) / 2.0), MIN_FOCAL_FACES * face_width)


def grid_centres(shape: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of the grid cells, matching cv2.resize's linear sampling when upsampling."""
    h, w = shape
    gh, gw = max(2, round(h / step)), max(2, round(w / step))
    u = (np.arange(gw, dtype=np.float32) + 0.5) * (w / gw) - 0.5
    v = (np.arange(gh, dtype=np.float32) + 0.5) * (h / gh) - 0.5
    return np.meshgrid(u, v)


def build_proxy(landmarks: np.ndarray, shape: tuple[int, int], step: int = 4,
                fov_deg: float = 60.0) -> DepthProxy | None:
    """Depth proxy of a frame from the 478 face landmarks (pixels); None when the face is unusable."""
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (478, 3) or not np.isfinite(pts).all():
        return None
    width = float(np.linalg.norm(pts[CHEEK_RIGHT] - pts[CHEEK_LEFT]))
    if width < MIN_FACE_WIDTH:
        return None
    try:
        tri = Delaunay(pts[:, :2])
    except QhullError:
        return None
    u, v = grid_centres(shape, step)

    centroid = pts.mean(0)
    up = pts[FOREHEAD, :2] - pts[CHIN, :2]
    up /= max(np.linalg.norm(up), 1e-6)
    right = np.array([-up[1], up[0]])
    pivot = centroid + PIVOT_BEHIND_FACE * width * _into_head(pts - centroid)

    mesh, inside = _mesh_depth(tri, pts[:, 2], u, v)
    centre2 = pivot[:2] + HEAD_UP_SHIFT * width * up           # the skull, not the face, centres the head
    du, dv = u - centre2[0], v - centre2[1]
    across = (du * right[0] + dv * right[1]) / (HEAD_HALF_WIDTH * width)
    along = (du * up[0] + dv * up[1]) / (HEAD_HALF_HEIGHT * width)
    radius = np.sqrt(across ** 2 + along ** 2)
    ellipsoid = -HEAD_HALF_DEPTH * width * np.sqrt(np.clip(1.0 - radius ** 2, 0.0, None))
    # Seat the ellipsoid on the mesh: match depths where the mesh ends (its convex hull).
    rim = tri.convex_hull.ravel()
    offset = np.median(pts[rim, 2] - _sample(ellipsoid, u, v, pts[rim, :2]))
    ellipsoid += offset
    # Bend the ellipsoid onto the mesh: the mesh−ellipsoid gap, extrapolated outwards from the hull,
    # fades out towards the silhouette, so the two surfaces meet without a crease.
    gap = fill_holes(np.where(inside > 0, mesh - ellipsoid, 0.0)[..., None].astype(np.float32), inside > 0)[..., 0]
    gap = cv2.GaussianBlur(gap, (0, 0), max(1.0, 0.1 * width / step))       # no push-pull blocks
    ellipsoid += np.where(radius < 1.0, gap * (1.0 - smoothstep((radius - 0.6) / 0.4)), 0.0)
    # Around the head the surface stays at the silhouette's depth (a short lever about the pivot, so
    # the background barely moves while the follow weight fades); it recedes only where nothing follows.
    behind = np.clip((radius - 1.05 - FALLOFF) / FALLOFF, 0.0, 1.0)
    around = offset + smoothstep(behind) * BACKGROUND_BEHIND * width

    # A wide feather hides the seam between the mesh and the ellipsoid once the view turns.
    hull_alpha = inside * cv2.GaussianBlur(inside, (0, 0), max(1.0, 0.15 * width / step)) ** 2
    depth = hull_alpha * mesh + (1.0 - hull_alpha) * np.where(radius <= 1.0, ellipsoid, around)
    follow = 1.0 - smoothstep((radius - 1.05) / FALLOFF)
    return DepthProxy(shape=tuple(shape[:2]), u=u, v=v, depth=(depth - pivot[2]).astype(np.float32),
                      follow=follow.astype(np.float32), centre=(float(pivot[0]), float(pivot[1])),
                      face_width=width, focal=webcam_focal(shape[1], width, fov_deg))


def _into_head(centred: np.ndarray) -> np.ndarray:
    """Unit normal of the face's best-fit plane (smallest principal axis), pointing away from the camera."""
    normal = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    return normal if normal[2] > 0 else -normal


def _mesh_depth(tri: Delaunay, z: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark z interpolated linearly over the triangles, and the (0/1) coverage, on the grid.

    A vectorised rasteriser: every triangle tests the grid cells of its bounding box (scipy's own
    point location is very slow for points outside the hull and its transforms contend for BLAS threads).
    """
    gh, gw = u.shape
    corners = tri.points[tri.simplices]                                  # (n, 3, 2) pixels
    gx = (corners[..., 0] - u[0, 0]) / (u[0, 1] - u[0, 0])               # grid coordinates
    gy = (corners[..., 1] - v[0, 0]) / (v[1, 0] - v[0, 0])
    j0 = np.clip(np.ceil(gx.min(1)), 0, gw).astype(np.int64)
    j1 = np.clip(np.floor(gx.max(1)), -1, gw - 1).astype(np.int64)
    i0 = np.clip(np.ceil(gy.min(1)), 0, gh).astype(np.int64)
    i1 = np.clip(np.floor(gy.max(1)), -1, gh - 1).astype(np.int64)
    nx, ny = np.maximum(j1 - j0 + 1, 0), np.maximum(i1 - i0 + 1, 0)
    counts = nx * ny
    mesh = np.zeros(u.shape, np.float64)
    inside = np.zeros(u.shape, np.float32)
    if counts.sum() == 0:
        return mesh, inside
    t = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    jj, ii = j0[t] + k % nx[t], i0[t] + k // nx[t]
    ax, ay = gx[t, 0], gy[t, 0]
    e1x, e1y, e2x, e2y = gx[t, 1] - ax, gy[t, 1] - ay, gx[t, 2] - ax, gy[t, 2] - ay
    px, py = jj - ax, ii - ay
    det = e1x * e2y - e2x * e1y
    det = np.where(np.abs(det) < 1e-9, np.nan, det)                    # degenerate triangles test false
    b1 = (px * e2y - e2x * py) / det
    b2 = (e1x * py - px * e1y) / det
    hit = (b1 >= -1e-6) & (b2 >= -1e-6) & (b1 + b2 <= 1 + 1e-6)
    zt = z[tri.simplices[t[hit]]]
    b1, b2 = b1[hit], b2[hit]
    mesh[ii[hit], jj[hit]] = (1 - b1 - b2) * zt[:, 0] + b1 * zt[:, 1] + b2 * zt[:, 2]
    inside[ii[hit], jj[hit]] = 1.0
    return mesh, inside


def _sample(grid: np.ndarray, u: np.ndarray, v: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Nearest grid value at pixel positions (clamped to the grid)."""
    j = np.clip(np.searchsorted(u[0], xy[:, 0]), 0, u.shape[1] - 1)
    i = np.clip(np.searchsorted(v[:, 0], xy[:, 1]), 0, u.shape[0] - 1)
    return grid[i, j]


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
