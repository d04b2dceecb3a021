"""Where the styles paint: face, hair, ears and the neck above the collar — the person mask of MediaPipe's selfie
segmenter, run on a square around the head, cut to the head by the face landmarks.

The cut, in face units (W: cheek-to-cheek width, F: chin-to-forehead height, measured along the face's own
up axis): above the eyes everything of the person within 1.4 W of the face's centre line, narrowing to 0.65 W at
the mouth; below the chin the neck — person pixels coloured like the face's skin rather than the hair or the
clothes further down, so the collar stops it — and hair hanging beside the neck — coloured like the hair above
rather than skin or clothes, and joined to hair beside the chin (short hair has none there). The weight is smoothed over time in
the square's coordinates, which follow the face, so its edge neither lags the head nor crawls.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import uniform_filter

from stages.edit.classic.depth_proxy import CHEEK_LEFT, CHEEK_RIGHT, CHIN, FOREHEAD, smoothstep
from stages.person_mask import INPUT_SIDE, PersonSegmenter

SQUARE_FACES = 4.0                  # the segmented square's side, in face widths
SQUARE_DOWN = 0.4                   # its centre sits this many face widths below the landmarks' centroid (the
                                    # segmenter sees head and shoulders, as in a selfie)
SIDE_REACH = 1.4                    # from mid-face up: person pixels this many face widths from the centre line
JAW_REACH = 0.65                    # … narrowing to this at the mouth (the jaw, the ears' lobes)
NECK_HALF_WIDTH = 0.6               # below the chin: skin-coloured person pixels this many face widths either side
COLLAR = 0.7                        # … down to this many face heights below the chin at most
HAIR_REACH = 1.2                    # hair-coloured person pixels beside the neck down to this many face heights
FADE = 0.12                         # soft edges of the cut, in face units
ODDS = (0.55, 0.8)                  # a colour's share in the wanted region's histogram: not it … surely it
MIN_SAMPLES = 32                    # pixels a colour histogram needs
SMOOTHING = 0.5                     # weight of the previous frame's region (motion-compensated)
CUT_SIDE = INPUT_SIDE // 2          # the cut is worked out at this size
JUMP = 0.35                         # a square moving by this many face widths between frames is a cut
SEGMENT_EVERY = 3                   # segment every Nth frame; in between, the last region follows the head


@dataclass
class HeadRegion:
    """The head's soft weight on the square around it (side × side), and where that square sits in the frame."""

    weight: np.ndarray              # (side, side) float32 in [0, 1]
    hair: np.ndarray                # (side, side) float32: the part of `weight` that is not skin (hair, hats)
    matrix: np.ndarray              # (2, 3) frame → square
    face_width: float

    def in_frame(self, shape: tuple[int, int], field: str = "weight") -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The field warped into the frame over its bounding box: (values, (y0, y1, x0, x1))."""
        h, w = shape
        inverse = cv2.invertAffineTransform(self.matrix)
        side = self.weight.shape[0]
        corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inverse.T
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 1, 0, [w, h])
        if x1 <= x0 or y1 <= y0:
            return np.zeros((0, 0), np.float32), (0, 0, 0, 0)
        shifted = self.matrix.copy()
        shifted[:, 2] += self.matrix[:, :2] @ np.array([x0, y0], np.float64)
        values = cv2.warpAffine(getattr(self, field), shifted, (x1 - x0, y1 - y0),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)
        return values, (y0, y1, x0, x1)

    def on_grid(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The weight sampled at frame pixel positions (u, v) (e.g. a depth proxy's grid)."""
        m = self.matrix
        su = (m[0, 0] * u + m[0, 1] * v + m[0, 2]).astype(np.float32)
        sv = (m[1, 0] * u + m[1, 1] * v + m[1, 2]).astype(np.float32)
        return cv2.remap(self.weight, su, sv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def square_matrix(landmarks: np.ndarray, side: int = INPUT_SIDE) -> tuple[np.ndarray, float]:
    """The frame → square transform (axis-aligned: the segmenter wants people upright) and the face width."""
    width = float(np.linalg.norm(landmarks[CHEEK_RIGHT, :2] - landmarks[CHEEK_LEFT, :2]))
    centre = landmarks[:, :2].mean(0) + np.array([0.0, SQUARE_DOWN * width])
    scale = side / (SQUARE_FACES * width)
    return np.array([[scale, 0.0, side / 2 - scale * centre[0]], [0.0, scale, side / 2 - scale * centre[1]]]), width


class HeadRegionTracker:
    """Frames and landmarks in, `HeadRegion`s out; keeps the previous region for temporal smoothing, and between
    segmentations (every `every` frames) carries it along with the head."""

    def __init__(self, segmenter: PersonSegmenter, smoothing: float = SMOOTHING, every: int = SEGMENT_EVERY):
        self.segmenter = segmenter
        self.smoothing = smoothing
        self.every = every
        self._previous: HeadRegion | None = None
        self._count = 0

    def reset(self) -> None:
        self._previous = None

    def __call__(self, frame: np.ndarray, landmarks: np.ndarray) -> HeadRegion:
        matrix, width = square_matrix(landmarks)
        self._count += 1
        carried = self._carried(matrix, width) if self._count % self.every else None
        if carried is not None:                # between segmentations the last region follows the head
            return carried
        side = INPUT_SIDE
        square = cv2.warpAffine(frame, matrix, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpAffine(np.ones(frame.shape[:2], np.float32), matrix, (side, side), flags=cv2.INTER_LINEAR)
        person = self.segmenter.segment(square) * inside            # nothing of the person beyond the frame
        # The cut is worked out at half size (its colours and shapes are broad) and applied to the full-size
        # person mask, whose edge is the hair's.
        half = (CUT_SIDE, CUT_SIDE)
        lm = (landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]) * (CUT_SIDE / side)   # landmarks in cut pixels
        cut, skin = _cut_to_head(cv2.resize(person, half, interpolation=cv2.INTER_AREA),
                                 cv2.resize(square, half, interpolation=cv2.INTER_AREA), lm,
                                 width * matrix[0, 0] * CUT_SIDE / side)
        weight = person * cv2.resize(cut, (side, side), interpolation=cv2.INTER_LINEAR)
        skin = weight * cv2.resize(skin, (side, side), interpolation=cv2.INTER_LINEAR)
        region = HeadRegion(weight=weight, hair=np.clip(weight - skin, 0.0, 1.0), matrix=matrix, face_width=width)
        return self._smoothed(region)

    def _moved_here(self, matrix: np.ndarray, width: float) -> np.ndarray | None:
        """The previous square → this square (both scale + translation of the frame), or None after a cut."""
        previous = self._previous
        if previous is None:
            return None
        relative = matrix[:, :2] @ np.linalg.inv(previous.matrix[:, :2])
        offset = matrix[:, 2] - relative @ previous.matrix[:, 2]
        moved = np.hypot(*(offset + relative @ np.full(2, INPUT_SIDE / 2) - INPUT_SIDE / 2)) / matrix[0, 0]
        if moved > JUMP * width or not 0.7 < relative[0, 0] < 1.4:
            return None
        return np.hstack([relative, offset[:, None]])

    def _carry(self, field: str, to_current: np.ndarray) -> np.ndarray:
        side = INPUT_SIDE
        return cv2.warpAffine(getattr(self._previous, field), to_current, (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _carried(self, matrix: np.ndarray, width: float) -> HeadRegion | None:
        """The previous region moved with the head to this frame's square (None: there is none to carry)."""
        to_current = self._moved_here(matrix, width)
        if to_current is None:
            return None
        region = HeadRegion(weight=self._carry("weight", to_current), hair=self._carry("hair", to_current),
                            matrix=matrix, face_width=width)
        self._previous = region
        return region

    def _smoothed(self, region: HeadRegion) -> HeadRegion:
        to_current = self._moved_here(region.matrix, region.face_width) if self.smoothing > 0 else None
        if to_current is not None:
            a = self.smoothing
            for name in ("weight", "hair"):
                setattr(region, name, (a * self._carry(name, to_current) + (1 - a) * getattr(region, name)).astype(np.float32))
        self._previous = region
        return region


def _cut_to_head(person: np.ndarray, square: np.ndarray, lm: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(cut, skin) in [0, 1] on the square: which of the person is head, and which of the head is skin (the face's
    landmark hull and the neck)."""
    side = person.shape[0]
    up = lm[FOREHEAD] - lm[CHIN]
    height = max(float(np.linalg.norm(up)), 1.0)
    up /= height
    right = np.array([-up[1], up[0]])
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    centre = lm.mean(0)
    across = np.abs((xs - centre[0]) * right[0] + (ys - centre[1]) * right[1]) / width
    below = -((xs - lm[CHIN, 0]) * up[0] + (ys - lm[CHIN, 1]) * up[1]) / height      # face heights under the chin
    # The skull's outline narrows towards the jaw: full reach from the eyes up, JAW_REACH from the mouth down
    # (hair hanging lower at the sides is `hanging`, below).
    reach = JAW_REACH + (SIDE_REACH - JAW_REACH) * smoothstep((-below - 0.3) / 0.4)
    head = (1.0 - smoothstep((across - reach) / FADE)) * (1.0 - smoothstep(below / FADE))
    face = np.zeros((side, side), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(lm).astype(np.int32)), 1)
    people = person > 0.5
    bins = _colour_bins(cv2.cvtColor(square, cv2.COLOR_RGB2LAB))
    skin, hair = plain_skin(square, face > 0), people & (head > 0.9) & (face == 0) & (below < -0.5)
    # Clothes: the person beyond the hair's reach (shoulders, the chest further down), minus the colours that are
    # commoner in the hair or on the face (long hair and bare shoulders reach there too).
    body = people & (((across > SIDE_REACH + FADE) & (below > -0.2)) | (below > HAIR_REACH))
    clothes = body & _commoner_in(bins, body, hair) & _commoner_in(bins, body, skin)
    # Beside the jaw, shoulders or a collar may rise to the chin's height: keep what is coloured like skin or hair.
    jaw_zone = (below > -0.5) & (head > 0.01) & (face == 0)
    head_or_jaw = _coloured_like(bins, skin | hair, [clothes], people & jaw_zone,
                                 seeds=people & jaw_zone & (below < -0.4))
    head = np.where(jaw_zone, head * head_or_jaw, head)
    neck_zone = (below > -0.1) & (below < COLLAR) & (across < NECK_HALF_WIDTH)
    neck = _coloured_like(bins, skin, [clothes, hair], people & neck_zone, seeds=people & neck_zone & (below < 0.05))
    neck *= (1.0 - smoothstep((below - COLLAR + FADE) / FADE)) * (1.0 - smoothstep((across - NECK_HALF_WIDTH + FADE) / FADE))
    # Hair hanging beside the neck: a band of hair from the temples down past the chin (short hair has none).
    beside = (across > JAW_REACH - FADE) & (across < SIDE_REACH)
    # told apart from the clothes; with no clothes in view, from the skin (bare shoulders)
    unlike = clothes if clothes.sum() >= MIN_SAMPLES else skin
    hanging = _coloured_like(bins, hair, [unlike], people & beside & (below > -0.9) & (below < HAIR_REACH),
                             seeds=people & beside & (below < -0.6))
    hanging *= 1.0 - smoothstep((below - HAIR_REACH + FADE) / FADE)
    cut = np.clip(np.maximum.reduce([head, neck, hanging]), 0.0, 1.0).astype(np.float32)
    skin_part = cv2.GaussianBlur(np.maximum(face.astype(np.float32), neck), (0, 0), 0.02 * width + 0.5)
    return cut, skin_part


def plain_skin(square: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """The face's plain skin: hull pixels of typical lightness (not brows, eyes, lips, nostrils or glints)."""
    light = cv2.cvtColor(square, cv2.COLOR_RGB2GRAY)
    lo, hi = np.percentile(light[hull], (25, 90)) if hull.any() else (0, 0)
    return hull & (light >= lo) & (light <= hi)


def _commoner_in(bins: np.ndarray, region: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pixels whose colour is commoner in `region` than in `other` (all True when `other` is too small to tell)."""
    if other.sum() < MIN_SAMPLES or region.sum() < MIN_SAMPLES:
        return np.ones(bins.shape, bool)
    mine, theirs = _histogram(bins[region]), _histogram(bins[other])
    return (mine > theirs)[bins]


def _coloured_like(bins: np.ndarray, like: np.ndarray, unlike: list[np.ndarray], candidates: np.ndarray,
                   seeds: np.ndarray) -> np.ndarray:
    """Soft weight of the `candidates` whose colour is commoner in `like` than in the `unlike` regions (each
    counts equally; an empty one is skipped), joined to such pixels among `seeds`."""
    unlike = [u for u in unlike if u.sum() >= MIN_SAMPLES]
    if like.sum() < MIN_SAMPLES or not unlike or not candidates.any():
        return np.zeros(bins.shape, np.float32)
    wanted = _histogram(bins[like])
    other = sum(_histogram(bins[u]) for u in unlike) / len(unlike)
    odds = wanted / np.maximum(wanted + other, 1e-9)
    share = np.zeros(bins.shape, np.float32)
    share[candidates] = smoothstep((odds[bins[candidates]] - ODDS[0]) / (ODDS[1] - ODDS[0]))
    share = cv2.morphologyEx(share, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))      # lone specks are not it
    kept = share > 0.5
    return cv2.GaussianBlur(share * _joined_to(kept, kept & seeds), (0, 0), 1.0)


def _joined_to(region: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """1 where `region` is 8-connected to `seed`, else 0 (float32)."""
    count, labels = cv2.connectedComponents((region | seed).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, np.float32)
    keep[np.unique(labels[seed])] = 1.0
    keep[0] = 0.0
    return keep[labels] * region


def _colour_bins(lab: np.ndarray) -> np.ndarray:
    """Each pixel's colour-histogram bin: L in 16 steps, a and b in steps of 8 (uint8 Lab)."""
    lab = lab.astype(np.int32)
    return ((lab[..., 0] >> 4) * 32 + (lab[..., 1] >> 3)) * 32 + (lab[..., 2] >> 3)


def _histogram(bins: np.ndarray) -> np.ndarray:
    """Normalised, slightly smoothed colour histogram (neighbouring bins share, so few samples generalise)."""
    counts = np.bincount(bins, minlength=16 * 32 * 32).astype(np.float32).reshape(16, 32, 32)
    counts = uniform_filter(counts, size=3, mode="constant")
    return counts.ravel() / max(float(counts.sum()), 1e-9)
