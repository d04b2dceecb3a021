"""Several faces: `faces="all"` edits every face with its own track, per-face state and hold, pasted far to near;
`face_index` still picks one. End to end on a frame made of two real clips side by side."""
from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from quality.identity import IdentityMeter
from pipeline.config import EditControls, EditSettings
from pipeline.graph import Graph
from pipeline.harness import ListSink, ListSource
from pipeline.packets import FaceEdit, FaceResult, FramePacket, RenderResult
from stages.chain import build_edit_stages
from stages.composite import CompositeStage, compose_faces
from stages.edit.classic import ClassicEngine
from stages.edit.stage import EditStage
from stages.face import FaceConfig
from test_edit_fakes import IdentityEngine, make_face, packet, textured_frame

FRAMES = 24


def clip_frames(path, count=FRAMES):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


@pytest.fixture(scope="module")
def two_clips(clips):
    """(left frames, right frames, side-by-side frames): d10 (a woman) beside d12 (a man), 512² each."""
    left, right = clip_frames(clips / "d10.mp4"), clip_frames(clips / "d12.mp4")
    return left, right, [np.hstack([a, b]) for a, b in zip(left, right)]


def run_chain(frames, face_config, **settings):
    controls = EditControls(EditSettings(**settings))
    stages = build_edit_stages(controls, ClassicEngine(), face_config)
    packets = [FramePacket(seq=i, frame=f, pts=i, time_base=Fraction(1, 25)) for i, f in enumerate(frames)]
    sink = ListSink()
    asyncio.run(Graph(ListSource(packets), stages, sink, policy="offline").run())
    return sink.packets


def changed(a, b, box):
    x0, y0, x1, y1 = (int(v) for v in box)
    return float(np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1]).mean())


@pytest.mark.slow
def test_all_faces_are_edited_each_on_its_own_track_without_swapping(two_clips):
    left, right, frames = two_clips
    out = run_chain(frames, FaceConfig(smoothing=True), faces="all", style="bronze statue", yaw=15)
    width = left[0].shape[1]
    sides = {}
    meter = IdentityMeter()
    for i, p in enumerate(out):
        assert len(p.edits) == 2 and all(e.render is not None for e in p.edits), p.seq
        for edit in p.edits:
            side = "left" if edit.face.box[2] <= width else "right"
            sides.setdefault(edit.face.track, set()).add(side)
            assert changed(p.out_frame, p.frame, edit.face.box) > 10          # this face was edited
        if i % 8 == 0:                                                       # the crops are who they should be
            for edit in p.edits:
                own, other = (left, right) if edit.face.box[2] <= width else (right, left)
                assert meter.similarity(edit.face.crop, own[i]) > meter.similarity(edit.face.crop, other[i])
    assert len(sides) == 2 and sorted(len(s) for s in sides.values()) == [1, 1]   # two tracks, never swapped
    assert {next(iter(s)) for s in sides.values()} == {"left", "right"}


@pytest.mark.slow
def test_face_index_still_edits_one_face(two_clips):
    _, _, frames = two_clips
    width = frames[0].shape[1] // 2
    out = run_chain(frames[:4], FaceConfig(smoothing=False, face_index=1), style="bronze statue", yaw=15)
    for p in out:
        assert len(p.edits) == 1 and p.edits[0].face.box[0] >= width                 # the right one
        assert np.array_equal(p.out_frame[:, :width // 2], p.frame[:, :width // 2])   # the left face untouched


def test_the_nearer_face_is_pasted_last_whatever_the_order():
    frame = textured_frame(size=(360, 480))
    far, near = make_face(frame, (40, 40, 240, 240), track=1), make_face(frame, (150, 90, 410, 350), track=2)
    head = np.zeros((512, 512), np.float32)
    head[128:384, 128:384] = 1.0                                     # the face's box inside its crop
    red = RenderResult(image=np.full((512, 512, 3), (255, 0, 0), np.uint8), mask=head)
    blue = RenderResult(image=np.full((512, 512, 3), (0, 0, 255), np.uint8), mask=head)
    for layers in ([(red, far, 1.0), (blue, near, 1.0)], [(blue, near, 1.0), (red, far, 1.0)]):
        out = compose_faces(frame, layers, EditSettings())
        assert out[180, 200, 2] > 200 and out[180, 200, 0] < 60      # where they overlap: the nearer face
        assert out[80, 80, 0] > 200 and out[80, 80, 2] < 60          # the far face elsewhere


def test_a_lost_face_fades_on_its_own_while_the_other_stays_edited():
    frame = textured_frame(size=(360, 480))
    a, b = make_face(frame, (20, 80, 180, 240), track=1), make_face(frame, (300, 80, 460, 240), track=2)
    engine = IdentityEngine()
    style = engine.prepare("red")

    def edit(face):
        return FaceEdit(face, render=engine.render(engine.encode(face, frame, style), face.camera))

    stage = CompositeStage(EditControls(EditSettings(hold_seconds=0.2, fade_seconds=0.2)))
    outs = []
    for i in range(8):                                               # 10 fps: b is gone from frame 2 on
        p = packet(i, frame, a)
        p.edits = [edit(a)] + ([edit(b)] if i < 2 else [])
        outs.append(stage.process(p).out_frame)
    centre_a, centre_b = (100, 160), (380, 160)
    assert all(o[centre_a[1], centre_a[0], 0] > 200 for o in outs)  # a: edited throughout
    assert outs[3][centre_b[1], centre_b[0], 0] > 200               # b: held 0.2 s
    assert np.array_equal(outs[7][:, 270:], frame[:, 270:])          # then faded out (a reaches x = 260)


def test_every_face_gets_its_own_scene_from_the_background_encoder():
    engine = IdentityEngine(decoupled=True)
    stage = EditStage(EditControls(EditSettings(faces="all")), engine, live=True)
    stage.styles.prepare_blocking("none")
    frame = textured_frame(size=(360, 480))
    a, b = make_face(frame, (20, 80, 180, 240), track=4), make_face(frame, (300, 80, 460, 240), track=9)
    faces = FaceResult(face=b, faces=[a, b])
    first = stage.process(FramePacket(seq=0, frame=frame, face=faces))
    assert [e.face.track for e in first.edits] == [9, 4] and all(e.scene is None for e in first.edits)
    deadline = time.monotonic() + 10
    while engine.encoded < 2 or not stage._encoder._job.done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    later = stage.process(FramePacket(seq=1, frame=frame, face=faces))
    assert [e.scene["face"].track for e in later.edits] == [9, 4]
    asyncio.run(stage.close())


def test_a_face_no_longer_chosen_is_not_held_over_the_live_person():
    frame = textured_frame(size=(360, 480))
    a, b = make_face(frame, (20, 80, 180, 240), track=1), make_face(frame, (300, 80, 460, 240), track=2)
    engine = IdentityEngine()
    style = engine.prepare("red")
    stage = CompositeStage(EditControls(EditSettings(hold_seconds=1.0)))
    for i, chosen in enumerate((a, a, b)):                           # the chosen face switches from a to b
        p = packet(i, frame, chosen)
        p.face = FaceResult(face=chosen, faces=[a, b])
        p.edits = [FaceEdit(chosen, render=engine.render(engine.encode(chosen, frame, style), chosen.camera))]
        out = stage.process(p).out_frame
    assert np.array_equal(out[:, :200], frame[:, :200])              # a is in view, unedited, at once
    assert out[160, 380, 0] > 200                                    # b is edited
