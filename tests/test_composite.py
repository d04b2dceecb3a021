"""Compositor: paste through the inverse crop transform, crop/side-by-side/grid sizes, face-lost policies, labels."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import EditControls, EditSettings
from pipeline.packets import FaceEdit, RenderResult
from stages.composite import CompositeStage, compose, draw_label
from test_edit_fakes import IdentityEngine, make_face, packet, textured_frame


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _render(frame, face, style="red", space="crop"):
    engine = IdentityEngine(space=space)
    return engine.render(engine.encode(face, frame, engine.prepare(style)), face.camera)


def test_paste_identity_render_gives_back_the_frame():
    frame = textured_frame()
    face = make_face(frame)
    out = compose(frame, _render(frame, face, "none"), face, EditSettings())
    assert out.shape == frame.shape
    assert psnr(out, frame) > 30                      # only interpolation error of the crop round trip


def test_paste_changes_the_face_and_nothing_far_from_it():
    frame = textured_frame()
    face = make_face(frame)
    out = compose(frame, _render(frame, face, "red"), face, EditSettings())
    x0, y0, x1, y1 = face.box
    centre = out[(y0 + y1) // 2 - 10:(y0 + y1) // 2 + 10, (x0 + x1) // 2 - 10:(x0 + x1) // 2 + 10]
    assert centre[..., 0].mean() > 200 and centre[..., 2].mean() < 60
    far = np.ones(frame.shape[:2], bool)
    far[:, :x1 + 170] = False                         # the crop spans 2× the box: right of that is untouched
    assert np.array_equal(out[far], frame[far])
    # the seam is feathered: no hard step from red to the frame at the mask edge
    row = out[(y0 + y1) // 2, :, 0].astype(int)
    assert np.abs(np.diff(row[x0 - 40:x0 + 40])).max() < 120


def test_paste_frame_space_uses_the_mask():
    frame = textured_frame()
    face = make_face(frame)
    out = compose(frame, _render(frame, face, "blue", space="frame"), face, EditSettings())
    x0, y0, x1, y1 = face.box
    assert out[y0 + 5, x0 + 5, 2] > 250
    assert np.array_equal(out[:y0], frame[:y0])


@pytest.mark.parametrize("space", ["crop", "frame"])
def test_mode_sizes(space):
    frame = textured_frame()
    face = make_face(frame)
    render = _render(frame, face, "red", space)
    h, w = frame.shape[:2]
    assert compose(frame, render, face, EditSettings(mode="crop")).shape == (512, 512, 3)
    sbs = compose(frame, render, face, EditSettings(mode="side-by-side"))
    assert sbs.shape == (h, 2 * w, 3) and np.array_equal(sbs[:, :w], frame)
    render.views = [render.image] * 3
    assert compose(frame, render, face, EditSettings(mode="grid")).shape == (512, 3 * 512, 3)


def _run(stage, frames_faces, fps=10.0):
    outs = []
    for i, (frame, face, render) in enumerate(frames_faces):
        p = packet(i, frame, face, fps)
        p.edits = [FaceEdit(face, render=render)] if face is not None and render is not None else []
        outs.append(stage.process(p).out_frame)
    return outs


def test_grid_keeps_its_size_for_a_render_made_for_another_mode():
    """A held paste render (or settings changed between render and composite) still gives one tile per angle."""
    frame = textured_frame()
    face = make_face(frame)
    render = _render(frame, face, "red")                        # no views: rendered for paste
    out = compose(frame, render, face, EditSettings(mode="grid", grid_yaws=(-20.0, 0.0, 20.0)))
    assert out.shape == (512, 3 * 512, 3)
    assert np.array_equal(out[:, :512], out[:, 512:1024])       # unedited tiles, not the paste render
    assert out[..., 0].mean() < 200


def test_side_by_side_label_is_on_the_edited_half():
    frame = textured_frame()
    face = make_face(frame)
    render = _render(frame, face, "none")
    render.label = "RANDOM WEIGHTS — NOT AN EDIT"
    p = packet(0, frame, face)
    p.edits = [FaceEdit(face, render=render)]
    out = CompositeStage(EditControls(EditSettings(mode="side-by-side"))).process(p).out_frame
    w = frame.shape[1]
    assert np.array_equal(out[:, :w], frame)                    # the input half is untouched
    plain = compose(frame, render, face, EditSettings(mode="side-by-side"))
    assert not np.array_equal(out[:20, w:w + 200], plain[:20, w:w + 200])


def test_hold_then_fade_to_the_original():
    frame = textured_frame()
    face = make_face(frame)
    edited_render = _render(frame, face, "red")
    edited = compose(frame, edited_render, face, EditSettings())
    controls = EditControls(EditSettings(hold_seconds=0.3, fade_seconds=0.4))
    stage = CompositeStage(controls)
    black = np.zeros_like(frame)
    # 10 fps: frame 0 has a face; 1..3 within the hold (0.1..0.3 s); 5 mid-fade (0.5 s: alpha 0.5); 8+ original
    seq = [(frame, face, edited_render)] + [(frame, None, None)] * 3 + [(black, None, None)] * 6
    outs = _run(stage, seq)
    assert np.array_equal(outs[0], edited)
    assert all(np.array_equal(o, edited) for o in outs[1:4])
    held_on_black = compose(black, edited_render, face, EditSettings())
    expected = held_on_black.astype(np.float32) * 0.5
    assert np.abs(outs[5].astype(np.float32) - expected).max() <= 2
    assert np.array_equal(outs[8], black) and np.array_equal(outs[9], black)


def test_blur_policy_never_shows_the_raw_frame():
    frame = textured_frame()
    stage = CompositeStage(EditControls(EditSettings(on_face_lost="blur")))
    out = _run(stage, [(frame, None, None)])[0]
    assert out.shape == frame.shape
    assert psnr(out, frame) < 20
    assert np.abs(np.diff(out.astype(int), axis=1)).mean() < 0.3 * np.abs(np.diff(frame.astype(int), axis=1)).mean()


def test_no_face_ever_keeps_mode_sizes():
    frame = textured_frame()
    for mode, shape in [("paste", frame.shape), ("crop", (512, 512, 3)), ("grid", (512, 1536, 3)),
                        ("side-by-side", (frame.shape[0], 2 * frame.shape[1], 3))]:
        out = _run(CompositeStage(EditControls(EditSettings(mode=mode))), [(frame, None, None)])[0]
        assert out.shape == shape


def test_disabled_passes_through_and_label_is_drawn():
    frame = textured_frame()
    face = make_face(frame)
    controls = EditControls(EditSettings(enabled=False))
    stage = CompositeStage(controls)
    render = RenderResult(image=face.crop, mask=np.ones((512, 512), np.float32), label="RANDOM WEIGHTS — NOT AN EDIT")
    assert _run(stage, [(frame, face, render)])[0] is frame
    controls.update(enabled=True)
    out = _run(stage, [(frame, face, render)])[0]
    plain = compose(frame, render, face, EditSettings())
    assert not np.array_equal(out[:20, :200], plain[:20, :200])
    assert np.array_equal(out[-50:], plain[-50:])
    assert np.array_equal(draw_label(plain, "x")[-50:], plain[-50:])
