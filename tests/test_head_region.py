"""Where the classic styles paint: the selfie segmenter's person cut to the head — face, hair, ears and neck,
not the clothes or the backdrop — and an edge that holds still from frame to frame."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from quality.regions import frame_regions
from stages.edit.classic.head_region import HeadRegionTracker
from stages.person_mask import PersonSegmenter
from test_classic_support import observation, read_frames


@pytest.fixture(scope="module")
def segmenter():
    with PersonSegmenter() as s:
        yield s


def head_in_frame(region, shape):
    full = np.zeros(shape, np.float32)
    values, (y0, y1, x0, x1) = region.in_frame(shape)
    full[y0:y1, x0:x1] = values
    return full


@pytest.mark.parametrize("clip", ["d10", "s18", "d12"])
def test_the_region_covers_the_hair_and_not_the_clothes_or_backdrop(clips, segmenter, clip):
    rgb = read_frames(clips / f"{clip}.mp4", [40])[0]
    face = observation(rgb)
    person = segmenter.segment(rgb)
    head = head_in_frame(HeadRegionTracker(segmenter)(rgb, face.landmarks.astype(np.float64)), rgb.shape[:2])
    regions = frame_regions(face, person)
    assert regions.hair is not None and (head[regions.hair] > 0.5).mean() > 0.9
    hull = np.zeros(head.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(face.landmarks[:, :2].astype(np.int32)), 1)
    assert (head[hull > 0] > 0.5).mean() > 0.97
    assert head[regions.background].max() < 0.01
    x0, y0, x1, y1 = face.box
    chest = np.zeros(head.shape, bool)                    # well below the chin: clothes (or skin of the chest)
    chest[int(y1 + 0.9 * (y1 - y0)):, int(x0):int(x1)] = True
    chest &= person > 0.5
    if chest.any():
        assert (head[chest] > 0.5).mean() < 0.05


def test_the_edge_holds_still_from_frame_to_frame(clips, segmenter):
    """On consecutive frames of a talking head the region's edge moves little; smoothing moves it less."""
    frames = read_frames(clips / "d10.mp4", list(range(30, 40)))
    faces = [observation(rgb).landmarks.astype(np.float64) for rgb in frames]

    def edge_motion(smoothing: float) -> float:
        tracker = HeadRegionTracker(segmenter, smoothing=smoothing)
        heads = [head_in_frame(tracker(rgb, lm), rgb.shape[:2]) for rgb, lm in zip(frames, faces)]
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(heads, heads[1:])]))

    smoothed, raw = edge_motion(0.5), edge_motion(0.0)
    assert smoothed < raw
    assert smoothed < 0.01                                   # under 1 % of the frame's pixels flip per frame


def test_engines_share_one_segmenter_that_outlives_them(clips):
    from stages.edit.classic import ClassicEngine

    first, second = ClassicEngine(), ClassicEngine()
    assert first._segmenter is second._segmenter           # loaded once per process, never left to the collector
    first.close()
    rgb = read_frames(clips / "d10.mp4", [0])[0]
    assert second._segmenter.segment(rgb).max() > 0.5
