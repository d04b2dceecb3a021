"""Edit and render stages with a stand-in engine: controls read per frame, style changes that never stall,
bad styles reported, background encoding for slow engines, the virtual camera passed to the engine."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from pipeline.config import EditControls, EditSettings
from pipeline.harness import run_stage
from stages.composite import CompositeStage
from stages.edit.stage import EditStage
from stages.render import RenderStage, virtual_camera
from test_edit_fakes import IdentityEngine, make_face, packet, textured_frame
from threedpe.camera import apply_offsets, camera_angles, camera_from_head_rotation, orbit_label, split_label


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


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_style_change_live_does_not_stall_and_switches_when_ready():
    engine = IdentityEngine()
    controls = EditControls(EditSettings(style="red"))
    stage = EditStage(controls, engine, live=True)
    stage.styles.prepare_blocking("red")
    engine.prepare_gate = threading.Event()                     # "blue" takes until the test says so
    controls.update(style="blue")
    t0 = time.monotonic()
    kept = [stage.process(p).scene["style"].key for p in _packets(3)]
    assert time.monotonic() - t0 < engine.GATE_TIMEOUT / 2      # frames went on while "blue" was blocked
    assert kept == ["red"] * 3 and not engine.prepare_gate.is_set()
    engine.prepare_gate.set()
    _wait_until(lambda: "blue" in engine.prepared)
    _wait_until(lambda: stage.process(_packets(1)[0]).scene["style"].key == "blue")
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
    engine = IdentityEngine(decoupled=True)
    controls = EditControls(EditSettings(style="none"))
    stage = EditStage(controls, engine, live=True)
    stage.styles.prepare_blocking("none")
    engine.encode_gate = threading.Event()                      # the encoder is stuck on the first crop
    frames = [textured_frame(seed) for seed in range(4)]
    packets = [packet(i, f, make_face(f)) for i, f in enumerate(frames)]
    t0 = time.monotonic()
    assert stage.process(packets[0]).scene is None              # nothing encoded yet: not waited for
    assert stage.process(packets[1]).scene is None
    assert time.monotonic() - t0 < engine.GATE_TIMEOUT / 2
    engine.encode_gate.set()
    _wait_until(lambda: engine.encoded == 1)
    _wait_until(lambda: stage._encoder._job.done())
    latest = stage.process(packets[2]).scene                    # the finished scene, while frame 2 is encoded
    assert latest["frame"] is frames[0]
    _wait_until(lambda: engine.encoded == 2)
    _wait_until(lambda: stage._encoder._job.done())
    assert stage.process(packets[3]).scene["frame"] is frames[2]   # frame 1 was never encoded: newest only
    asyncio.run(stage.close())


def test_close_waits_for_a_slow_preparation_off_the_event_loop():
    engine = IdentityEngine()
    controls = EditControls(EditSettings(style="red"))
    stage = EditStage(controls, engine, live=True)
    stage.styles.prepare_blocking("red")
    engine.prepare_gate = threading.Event()
    controls.update(style="blue")
    stage.process(_packets(1)[0])                               # "blue" is now being prepared, blocked

    async def main():
        closing = asyncio.ensure_future(stage.close())
        for _ in range(5):                                      # the loop keeps running meanwhile
            await asyncio.sleep(0.01)
        assert not closing.done()
        engine.prepare_gate.set()
        await asyncio.wait_for(closing, engine.GATE_TIMEOUT)

    asyncio.run(main())


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


def test_virtual_camera_is_the_tracked_camera_at_zero_offsets():
    """The face stage's camera aims at the origin, not the pivot: zero offsets must not move the render."""
    a = np.radians(20.0)
    turned = camera_from_head_rotation(np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]))
    np.testing.assert_allclose(virtual_camera(turned, EditSettings()), turned, atol=1e-6)
    moved = virtual_camera(turned, EditSettings(yaw=15.0, pitch=-5.0, zoom=1.2))
    (y0, p0, _), (y1, p1, _) = camera_angles(turned), camera_angles(moved)
    assert (y1 - y0, p1 - p0) == (pytest.approx(15.0, abs=1e-3), pytest.approx(-5.0, abs=1e-3))
    assert split_label(moved)[1][0, 0] == pytest.approx(1.2 * split_label(turned)[1][0, 0])
    grid = EditSettings(mode="grid", grid_yaws=())                # no grid angle: the user's yaw, not a crash
    engine = IdentityEngine()
    controls = EditControls(grid)
    p = RenderStage(controls, engine).process(EditStage(controls, engine).process(_packets(1)[0]))
    assert len(p.render.views) == 1


def test_no_face_gives_no_scene():
    engine = IdentityEngine()
    controls = EditControls(EditSettings())
    edit, render = EditStage(controls, engine), RenderStage(controls, engine)
    p = packet(0, textured_frame(), None)
    p = render.process(edit.process(p))
    assert p.scene is None and p.render is None and engine.encoded == 0


def test_background_encoder_orders_its_gpu_work_against_the_stage_streams_fake_cuda(monkeypatch):
    """The worker thread waits for an event recorded on the edit stage's stream (the uploaded frame is there)
    and finishes its own stream before the scene is handed out (the render stage reads it on another stream)."""
    import stages.edit.stage as edit_stage
    from stages.edit.stage import BackgroundEncoder

    log: list[tuple[str, str]] = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_event(self, event):
            log.append(("wait", self.name + ":" + event.on))

        def synchronize(self):
            log.append(("synchronize", self.name))

    class GpuEvent:
        def record(self):
            self.on = threading.current_thread().name
            log.append(("record", self.on))

    class FakeCuda:
        def Event(self):                                       # noqa: N802 (torch.cuda's name)
            return GpuEvent()

        def current_stream(self):
            return Stream(threading.current_thread().name)

    monkeypatch.setattr(edit_stage, "default_cuda", lambda: FakeCuda())
    engine = IdentityEngine()
    encoder = BackgroundEncoder(engine)
    frame = textured_frame()
    style = engine.prepare("none")
    encoder.scenes_for([make_face(frame)], frame, style)
    encoder.close()
    stage_thread = threading.current_thread().name
    kinds = [kind for kind, _ in log]
    assert kinds == ["record", "wait", "synchronize"] and log[0][1] == stage_thread
    assert log[1][1].startswith("edit-encode") and log[1][1].endswith(":" + stage_thread)
    assert log[2][1].startswith("edit-encode")
