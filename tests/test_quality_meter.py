"""The quality meter measures what it says: no edit reads as no change and no added flicker; a known edit moves
exactly the criteria it should; the head region covers the hair on a real frame."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import EngineConfig
from pipeline.packets import FramePacket
from pipeline.stage import Stage
from quality.identity import IdentityMeter, PoseMeter
from quality.meter import QualityOptions, measure_clip
from stages.face import FaceConfig, FaceStage

FRAMES = 12


class NoisyFace(Stage):
    """A known edit: fresh noise (±amplitude) over the face box of every frame, nothing elsewhere."""

    name = "noisy-face"

    def __init__(self, amplitude: int):
        self.amplitude = amplitude
        self.rng = np.random.default_rng(0)

    def process(self, packet: FramePacket) -> FramePacket:
        face = packet.face.face
        if face is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)          # the meter's face box
            out = packet.frame.astype(np.int16)
            noise = self.rng.integers(-self.amplitude, self.amplitude + 1, out[y0:y1, x0:x1].shape)
            out[y0:y1, x0:x1] += noise
            packet.output = np.clip(out, 0, 255).astype(np.uint8)
        return packet


@pytest.fixture(scope="module")
def meters():
    pose = PoseMeter(FaceConfig(smoothing=False))
    yield IdentityMeter(), pose
    pose.close()


def measure(clips, meters, style="none", yaws=(0.0,), chain=None):
    options = QualityOptions(yaws=yaws, frames=FRAMES, stride=4)
    result, _ = measure_clip(clips / "d10.mp4", style, EngineConfig(), options, *meters, progress=False, chain=chain)
    return result


def test_no_edit_reads_as_no_change_and_no_added_flicker(clips, meters):
    result = measure(clips, meters)
    assert result.frames == FRAMES
    assert result.change == 0.0 and result.hair == 0.0 and result.flicker == pytest.approx(1.0)
    assert result.id_t == pytest.approx(1.0, abs=1e-4) and result.background_db == float("inf")


def test_a_known_edit_moves_change_and_flicker_and_not_the_background(clips, meters):
    result = measure(clips, meters, chain=lambda style, yaw: [FaceStage(FaceConfig(smoothing=False)), NoisyFace(40)])
    assert 15 < result.change < 25                                 # mean |uniform noise in ±40| ≈ 20
    assert result.flicker > 2.0                                     # fresh noise every frame
    assert result.hair == 0.0 and result.background_db == float("inf")


def test_statue_changes_the_face_and_the_hair_and_measures_both_yaws(clips, meters):
    result = measure(clips, meters, style="bronze statue", yaws=(-20.0, 0.0, 20.0))
    assert result.change > 30 and result.hair > 20
    assert result.background_db > 35
    assert set(result.pose) == {"yaw +0", "yaw -20", "yaw +20"}
    assert result.pose["yaw +20"]["yaw"] > 10 and result.pose["yaw -20"]["yaw"] < -10
