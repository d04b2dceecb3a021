"""Edit and render stages with a stand-in engine: controls read per frame, style changes that never stall,
bad styles reported, background encoding for slow engines, the virtual camera passed to the engine."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from pipeline.config import EditControls, EditSettings
from pipeline.harness import run_stage
from stages.composite import CompositeStage
from stages.edit.stage import EditStage
from stages.render import RenderStage
from test_edit_fakes import IdentityEngine, make_face, packet, textured_frame
from threedpe.camera import apply_offsets, camera_angles, orbit_label


def _packets(n, frame=None, yaw=0.0):
    frame = textured_frame() if frame is None else frame
    return [packet(i, frame, make_face(frame, yaw=yaw)) for i in range(n)]


def test_chain_through_the_runtime_applies_the_style_and_passes_through_when_disabled():
    engine = IdentityEngine()
    controls = EditControls(EditSettings(style="red"))
    stages = [EditStage(controls, engine), RenderStage(controls, engine), CompositeStage(controls)]
    out = run_stage(stages, _packets(3))
    assert len(out) == 3 and all(p.render is not None for p in out)
    face = out[0].face.face
    x0, y0, x1, y1 = face.box
    assert out[0].output[(y0 + y1) // 2, (x0 + x1) // 2, 0] > 200
    controls.update(enabled=False)
    stages = [EditStage(controls, engine), RenderStage(controls, engine), CompositeStage(controls)]
    out = run_stage(stages, _packets(2))
    assert all(p.scene is None and p.render is None and p.out_frame is p.frame for p in out)


def test_style_change_live_does_not_stall_and_switches_when_ready():
    engine = IdentityEngine(prepare_seconds=0.4)
    controls = EditControls(EditSettings(style="red"))
    stage = EditStage(controls, engine, live=True)
    stage.styles.prepare_blocking("red")
    controls.update(style="blue")
    t0 = time.perf_counter()
    first = stage.process(_packets(1)[0])
    assert time.perf_counter() - t0 < 0.2                       # the 0.4 s preparation runs elsewhere
    assert first.scene["style"].key == "red"                    # old style kept meanwhile
    deadline = time.time() + 5
    while time.time() < deadline:
        p = stage.process(_packets(1)[0])
        if p.scene["style"].key == "blue":
            break
        time.sleep(0.05)
    assert p.scene["style"].key == "blue"
    asyncio.run(stage.close())


def test_bad_style_is_reported_and_the_previous_style_stays():
    engine = IdentityEngine()
    errors = []
    controls = EditControls(EditSettings(style="red"))
    stage = EditStage(controls, engine, on_error=errors.append)
    assert stage.process(_packets(1)[0]).scene["style"].key == "red"
    controls.update(style="sparkly unicorn")
    p = stage.process(_packets(1)[0])
    assert p.scene["style"].key == "red"
    assert stage.error and "sparkly unicorn" in stage.error and len(errors) == 1
    stage.process(_packets(1)[0])
    assert len(errors) == 1                                     # reported once, not retried every frame
    controls.update(style="blue")
    assert stage.process(_packets(1)[0]).scene["style"].key == "blue" and stage.error is None


def test_slow_decoupled_engine_encodes_in_background_live():
    engine = IdentityEngine(encode_seconds=0.3, decoupled=True)
    controls = EditControls(EditSettings(style="none"))
    stage = EditStage(controls, engine, live=True)
    stage.styles.prepare_blocking("none")
    t0 = time.perf_counter()
    scenes = []
    for p in _packets(12):
        scenes.append(stage.process(p).scene)
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    assert elapsed < 12 * 0.05 + 0.4                            # never waited for a 0.3 s encode
    assert scenes[0] is None and scenes[-1] is not None         # the latest finished scene is attached
    assert 1 <= engine.encoded <= 4                             # only the newest crops were encoded
    asyncio.run(stage.close())


def test_offline_encodes_every_frame_in_order():
    engine = IdentityEngine(decoupled=True)
    controls = EditControls(EditSettings())
    out = run_stage([EditStage(controls, engine)], _packets(5))
    assert engine.encoded == 5 and [p.seq for p in out] == list(range(5))
    assert all(p.scene["frame"] is p.frame for p in out)


def test_render_stage_camera_offsets_look_at_lens_and_grid():
    engine = IdentityEngine()
    controls = EditControls(EditSettings(yaw=20, pitch=-5, zoom=1.2))
    edit, render = EditStage(controls, engine), RenderStage(controls, engine)
    p = render.process(edit.process(_packets(1, yaw=10)[0]))
    expected = apply_offsets(p.face.face.camera, 20, -5, 0, 1.2)
    np.testing.assert_allclose(engine.cameras[-1], expected, atol=1e-6)
    assert abs(camera_angles(engine.cameras[-1])[0] - 30) < 0.5
    controls.update(look_at_lens=True, yaw=0, pitch=0, zoom=1.0)
    render.process(edit.process(_packets(1, yaw=10)[0]))
    np.testing.assert_allclose(engine.cameras[-1], orbit_label(), atol=1e-6)
    controls.update(look_at_lens=False, mode="grid", grid_yaws=(-25.0, 0.0, 25.0), yaw=15.0)
    p = render.process(edit.process(_packets(1)[0]))
    assert len(p.render.views) == 3
    assert [round(camera_angles(c)[0]) for c in engine.cameras[-3:]] == [-25, 0, 25]


def test_no_face_gives_no_scene():
    engine = IdentityEngine()
    controls = EditControls(EditSettings())
    edit, render = EditStage(controls, engine), RenderStage(controls, engine)
    p = packet(0, textured_frame(), None)
    p = render.process(edit.process(p))
    assert p.scene is None and p.render is None and engine.encoded == 0
