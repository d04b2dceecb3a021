"""Re-render a frame from a virtual camera: turn the depth proxy about the head centre, z-buffer splat, fill, remap.

The forward map is splatted on the coarse grid (nearest surface wins), holes are filled by
push-pull, and the backward displacement is upsampled so the full frame is resampled only once.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.edit.classic.depth_proxy import DepthProxy
from stages.edit.classic.holes import fill_holes
from threedpe.camera import split_label

_INDEX_BITS = 22                    # grids up to 4M cells; depth key above it


@dataclass
class ViewWarp:
    """The coarse backward map of one virtual view over a block of the grid (identity outside it), and the depth
    the styles' light needs in that view."""

    grid_shape: tuple[int, int]     # the whole grid (gh, gw)
    block: tuple[int, int, int, int]  # grid rows r0:r1, columns c0:c1 that may change
    displacement: np.ndarray        # (r1-r0, c1-c0, 2) source − target pixel offset at each target cell
    depth: np.ndarray               # (r1-r0, c1-c0) depth of the visible surface, head pixels (+ = away)
    identity: bool                  # True when the view equals the source view (no resampling needed)


def relative_view(source_label: np.ndarray, target_label: np.ndarray,
                  crop_matrix: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Rotation taking the webcam's camera coordinates to the virtual camera's (OpenCV axes), and zoom.

    Both labels are cam2world poses around the same head, so p_target = R_tᵀ R_s p_source about it.
    The labels live in the axes of the aligned crop, which the face stage may have turned in the
    image plane (`crop_matrix`, frame → crop); the rotation is carried back into frame axes.
    """
    pose_s, k_s = split_label(source_label)
    pose_t, k_t = split_label(target_label)
    rotation = pose_t[:3, :3].T @ pose_s[:3, :3]
    if crop_matrix is not None:
        a, b = np.asarray(crop_matrix, np.float64)[:, 0]
        c, s = np.array([a, b]) / max(np.hypot(a, b), 1e-12)
        in_plane = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])    # frame axes → crop axes
        rotation = in_plane.T @ rotation @ in_plane
    return rotation, float(k_t[0, 0] / k_s[0, 0])


def warp_view(proxy: DepthProxy, rotation: np.ndarray, zoom: float = 1.0) -> ViewWarp:
    """Splat the proxy, turned by `rotation` about the head centre and zoomed, into the target grid."""
    gh, gw = proxy.u.shape
    if np.allclose(rotation, np.eye(3), atol=1e-6) and abs(zoom - 1.0) < 1e-6:
        return ViewWarp((gh, gw), (0, gh, 0, gw), np.zeros((gh, gw, 2), np.float32), proxy.depth, True)
    r0, r1, c0, c1 = _moving_block(proxy, zoom)
    h, w = proxy.shape
    f, (cu, cv) = proxy.focal, proxy.centre
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    u = proxy.u[r0:r1, c0:c1].ravel().astype(np.float64)
    v = proxy.v[r0:r1, c0:c1].ravel().astype(np.float64)
    own_depth = proxy.depth[r0:r1, c0:c1].ravel().astype(np.float64)
    follow = proxy.follow[r0:r1, c0:c1].ravel().astype(np.float64)
    z = f + own_depth                                        # the head centre sits at depth f
    points = np.stack([(u - cx) * z / f, (v - cy) * z / f, z], 1)
    centre = np.array([cu - cx, cv - cy, f])
    turned = (points - centre) @ rotation.T + centre
    tz = np.maximum(turned[:, 2], 0.1 * f)
    tu = u + follow * (cx + f * turned[:, 0] / tz - u)
    tv = v + follow * (cy + f * turned[:, 1] / tz - v)
    if zoom != 1.0:
        tu, tv = cu + zoom * (tu - cu), cv + zoom * (tv - cv)
    depth = follow * (tz - f) + (1.0 - follow) * own_depth

    # Each source cell covers the 2×2 target cells around where it lands; the nearest surface wins.
    bh, bw = r1 - r0, c1 - c0
    gx = (tu + 0.5) * (gw / w) - 0.5 - c0
    gy = (tv + 0.5) * (gh / h) - 0.5 - r0
    j0, i0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    index = np.arange(u.size, dtype=np.int64)
    quantised = np.clip((depth - depth.min()) * 16.0, 0, 2 ** 36).astype(np.int64)
    key = (quantised << _INDEX_BITS) | index
    best = np.full(bh * bw, np.iinfo(np.int64).max, np.int64)
    for di in (0, 1):
        for dj in (0, 1):
            i, j = i0 + di, j0 + dj
            ok = (i >= 0) & (i < bh) & (j >= 0) & (j < bw)
            np.minimum.at(best, i[ok] * bw + j[ok], key[ok])
    hit = best != np.iinfo(np.int64).max
    winner = best[hit] & ((1 << _INDEX_BITS) - 1)

    values = np.zeros((bh * bw, 3), np.float32)
    values[hit, 0] = u[winner] - tu[winner]
    values[hit, 1] = v[winner] - tv[winner]
    values[hit, 2] = depth[winner]
    filled = fill_holes(values.reshape(bh, bw, 3), hit.reshape(bh, bw))
    # Soften the cell staircase along occlusion edges into a one-cell stretch.
    filled[..., :2] = cv2.GaussianBlur(filled[..., :2], (3, 3), 0)
    return ViewWarp((gh, gw), (r0, r1, c0, c1), filled[..., :2].copy(), filled[..., 2].copy(), False)


def _moving_block(proxy: DepthProxy, zoom: float, pad: int = 3) -> tuple[int, int, int, int]:
    """Grid rows/columns that can change: around the cells that follow the head (all of them when zooming)."""
    gh, gw = proxy.u.shape
    rows, cols = np.nonzero(proxy.follow > 0)
    if zoom != 1.0 or rows.size == 0:
        return 0, gh, 0, gw
    return (max(0, rows.min() - pad), min(gh, rows.max() + 1 + pad),
            max(0, cols.min() - pad), min(gw, cols.max() + 1 + pad))


class FrameResampler:
    """Brings a warp's coarse block to full resolution and resamples the frame there (one cv2.remap)."""

    def __init__(self):
        self._grid: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    @staticmethod
    def region(warp: ViewWarp, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Pixel rows y0:y1, columns x0:x1 of the warp's block (the whole frame if cells aren't whole pixels)."""
        h, w = shape
        gh, gw = warp.grid_shape
        r0, r1, c0, c1 = warp.block
        if h % gh or w % gw:
            return 0, h, 0, w
        sy, sx = h // gh, w // gw
        return r0 * sy, r1 * sy, c0 * sx, c1 * sx

    def upsample(self, coarse: np.ndarray, warp: ViewWarp, shape: tuple[int, int]) -> np.ndarray:
        """A block-shaped coarse field resized to the warp's pixel region (cell centres stay aligned)."""
        y0, y1, x0, x1 = self.region(warp, shape)
        h, w = shape
        if (y1 - y0, x1 - x0) == (h, w) and coarse.shape[:2] != warp.grid_shape:
            full = np.zeros((*warp.grid_shape, *coarse.shape[2:]), coarse.dtype)
            r0, r1, c0, c1 = warp.block
            full[r0:r1, c0:c1] = coarse
            coarse = full
        return cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)

    def source_map(self, warp: ViewWarp, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel of the warp's region comes from in the frame: (map_x, map_y), float32."""
        h, w = shape
        if self._grid is None or self._grid[0] != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = ((h, w), xs, ys)
        _, xs, ys = self._grid
        y0, y1, x0, x1 = self.region(warp, (h, w))
        offset = self.upsample(warp.displacement, warp, (h, w))
        return xs[y0:y1, x0:x1] + offset[..., 0], ys[y0:y1, x0:x1] + offset[..., 1]

    def remap(self, image: np.ndarray, warp: ViewWarp, source_map: tuple[np.ndarray, np.ndarray] | None = None,
              border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        """A copy of a frame-sized `image` resampled at pixel + displacement inside the warp's region (linear)."""
        h, w = image.shape[:2]
        map_x, map_y = source_map if source_map is not None else self.source_map(warp, (h, w))
        y0, y1, x0, x1 = self.region(warp, (h, w))
        out = image.copy()
        out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=border)
        return out
