"""The graph runtime: timings, threads, error propagation with the stage name, stop, Ctrl-C, no leaks, CUDA handoff."""
import asyncio
import threading
import time

import numpy as np
import pytest

from pipeline.device import StreamHandoff
from pipeline.errors import StageError
from pipeline.graph import Graph, unique_names
from pipeline.harness import ListSink, run_stage
from pipeline.packets import FaceEdit, FramePacket
from pipeline.stage import Stage
from stages.sink_null import NullSink
from stages.source_synthetic import SyntheticSource
from test_edit_fakes import make_face


class Recorder(Stage):
    """Notes which thread ran it and whether start/close were called."""

    def __init__(self, name, fail_at=None, fail_in_start=False, ms=0.0):
        self.name, self.fail_at, self.fail_in_start, self.ms = name, fail_at, fail_in_start, ms
        self.threads, self.started, self.closed = set(), False, False

    async def start(self):
        if self.fail_in_start:
            raise RuntimeError("model file missing")
        self.started = True

    def process(self, packet):
        self.threads.add(threading.current_thread().name)
        if self.ms:
            time.sleep(self.ms / 1000)
        if packet.seq == self.fail_at:
            raise ValueError(f"bad frame {packet.seq}")
        return packet

    async def close(self):
        self.closed = True


def thread_ids():
    return {t.ident for t in threading.enumerate()}


def assert_no_leaks(before):
    assert thread_ids() <= before, [t.name for t in threading.enumerate() if t.ident not in before]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_runtime_records_ordered_timings_for_every_node_and_each_stage_has_its_own_thread():
    before = thread_ids()
    stages = [Recorder("a"), Recorder("b")]
    sink = ListSink()
    metrics = await Graph(SyntheticSource(32, 24, count=10), stages, sink).run()
    assert len(sink.packets) == 10
    for packet in sink.packets:
        assert list(packet.timings) == ["synthetic", "a", "b", "collect"]
        spans = list(packet.timings.values())
        assert all(enter <= exit_ for enter, exit_ in spans)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    (ta,), (tb,) = stages[0].threads, stages[1].threads
    assert ta != tb and threading.main_thread().name not in (ta, tb)
    assert set(metrics.stages) == {"synthetic", "a", "b", "collect"}
    assert metrics.stages["a"]["processed"] == 10 and metrics.e2e["p50_ms"] > 0
    assert "end-to-end" in metrics.table() and metrics.as_dict()["frames_out"] == 10
    assert_no_leaks(before)


async def test_stages_overlap_in_time():
    stages = [Recorder("a", ms=30), Recorder("b", ms=30)]
    sink = ListSink()
    await Graph(SyntheticSource(32, 24, count=12), stages, sink).run()
    # While b works on frame n, a must already be working on frame n+1 somewhere.
    overlaps = sum(1 for p, q in zip(sink.packets, sink.packets[1:]) if q.timings["a"][0] < p.timings["b"][1])
    assert overlaps >= 8


def test_duplicate_stage_names_are_suffixed():
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a#2", "b", "a#3"]
    out = run_stage([Recorder("x"), Recorder("x")], [np.zeros((4, 4, 3), np.uint8)])
    assert "x" in out[0].timings and "x#2" in out[0].timings


def test_harness_runs_one_stage_on_bare_frames():
    class Invert(Stage):
        name = "invert"

        def process(self, packet):
            packet.output = 255 - packet.frame
            return packet

    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)]
    out = run_stage(Invert(), frames)
    assert [int(p.out_frame[0, 0, 0]) for p in out] == [255, 254, 253]
    assert all("invert" in p.timings for p in out)


async def test_stage_returning_none_drops_the_packet_and_is_counted():
    class Odd(Stage):
        name = "odd"

        def process(self, packet):
            return packet if packet.seq % 2 else None

    sink = ListSink()
    metrics = await Graph(SyntheticSource(16, 16, count=10), [Odd()], sink).run()
    assert [p.seq for p in sink.packets] == [1, 3, 5, 7, 9]
    assert metrics.stages["odd"]["filtered"] == 5


async def test_stage_error_stops_the_graph_names_the_stage_closes_everything_and_leaks_nothing():
    before = thread_ids()
    good, bad = Recorder("good"), Recorder("bad", fail_at=5)
    sink = ListSink()
    with pytest.raises(StageError) as info:
        await Graph(SyntheticSource(16, 16, count=None), [good, bad], sink).run()   # endless source
    assert info.value.stage == "bad" and "bad frame 5" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert good.closed and bad.closed
    assert len(sink.packets) <= 5
    assert_no_leaks(before)


async def test_error_in_start_names_the_stage_and_closes_those_already_started():
    first, broken = Recorder("first"), Recorder("broken", fail_in_start=True)
    with pytest.raises(StageError, match="broken.*model file missing"):
        await Graph(SyntheticSource(16, 16, count=3), [first, broken], NullSink()).run()
    assert first.closed and not broken.closed


async def test_errors_in_source_and_sink_are_named():
    class BadSink(NullSink):
        name = "writer"

        def write(self, packet):
            raise OSError("disk full")

    with pytest.raises(StageError) as info:
        await Graph(SyntheticSource(16, 16, count=3), [], BadSink()).run()
    assert info.value.stage == "writer"

    class BadSource(SyntheticSource):
        def read(self):
            raise EOFError("camera unplugged")

    with pytest.raises(StageError) as info:
        await Graph(BadSource(16, 16), [], NullSink()).run()
    assert info.value.stage == "synthetic"


async def test_stop_from_another_thread_ends_an_endless_live_run():
    before = thread_ids()
    stage = Recorder("work", ms=5)
    graph = Graph(SyntheticSource(16, 16, fps=200, count=None, live=True), [stage], NullSink())
    run = asyncio.create_task(graph.run())
    while graph.metrics.frames_out < 6 and not run.done():
        await asyncio.sleep(0.01)
    stopper = threading.Thread(target=graph.stop)
    stopper.start()
    metrics = await asyncio.wait_for(run, timeout=10)
    stopper.join()
    assert metrics.frames_out >= 6 and stage.closed
    assert_no_leaks(before)


async def test_cancelling_run_like_ctrl_c_joins_threads_and_closes_stages():
    before = thread_ids()
    stage = Recorder("work", ms=20)
    graph = Graph(SyntheticSource(16, 16, count=None), [stage], NullSink())
    task = asyncio.create_task(graph.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stage.closed
    assert_no_leaks(before)


async def test_shutdown_waits_for_a_running_stage_call_without_blocking_the_event_loop():
    # A server runs many sessions on one loop: stopping one must not freeze the others for a frame.
    before = thread_ids()
    entered = threading.Event()

    class Slow(Recorder):
        def process(self, packet):
            entered.set()
            return super().process(packet)

    stage = Slow("slow", ms=800)
    task = asyncio.create_task(Graph(SyntheticSource(16, 16, count=None), [stage], NullSink()).run())
    for _ in range(2):                                 # the second time, an 800 ms call has just begun
        entered.clear()
        while not entered.is_set():
            await asyncio.sleep(0.005)
    task.cancel()
    ticks = [time.perf_counter()]
    while not task.done():
        await asyncio.sleep(0.01)
        ticks.append(time.perf_counter())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stage.closed
    assert ticks[-1] - ticks[0] > 0.3                # run() did wait for the call in flight ...
    assert max(b - a for a, b in zip(ticks, ticks[1:])) < 0.3   # ... while the loop kept running
    assert_no_leaks(before)


async def test_graph_rejects_bad_policy_and_live_queue_size():
    with pytest.raises(ValueError):
        Graph(SyntheticSource(16, 16), [], NullSink(), policy="fast")
    with pytest.raises(ValueError):
        Graph(SyntheticSource(16, 16), [], NullSink(), policy="live", queue_size=5)
    assert Graph(SyntheticSource(16, 16, live=True), [], NullSink()).policy == "live"
    assert Graph(SyntheticSource(16, 16), [], NullSink()).policy == "offline"


async def test_snapshot_is_available_while_running():
    graph = Graph(SyntheticSource(16, 16, count=30), [Recorder("w", ms=5)], NullSink())
    task = asyncio.create_task(graph.run())
    while graph.metrics.frames_out == 0 and not task.done():     # no fixed sleep: the machine may be slow
        await asyncio.sleep(0.005)
    snap = graph.metrics.snapshot()
    await task
    # 30 frames of at least 5 ms each cannot all be out within one 5 ms poll of the first.
    assert 0 < snap["frames_out"] < 30 and snap["stages"]["w"]["processed"] >= 1
    assert snap["stages"]["w"]["p50_ms"] >= 5 and "p95_ms" in snap["stages"]["w"]


def test_stream_handoff_is_a_no_op_on_cpu():
    handoff = StreamHandoff(None)
    packet = FramePacket(seq=0, frame=np.zeros((2, 2, 3), np.uint8))
    assert handoff.call("s", lambda p: p, packet) is packet and packet.cuda_event is None
    assert not handoff.enabled


class FakeCuda:
    """Stands in for torch.cuda (no GPU here): logs stream/event calls."""

    def __init__(self):
        self.log, self.current = [], threading.local()

    def Stream(self):
        cuda = self

        class Stream:
            def wait_event(self, event):
                cuda.log.append(("wait", self, event))
        return Stream()

    def Event(self):
        cuda = self

        class Event:
            def record(self, stream):
                cuda.log.append(("record", stream, self))
                self.stream = stream
        return Event()

    def stream(self, s):
        cuda = self

        class Use:
            def __enter__(self):
                cuda.current.stream = s

            def __exit__(self, *exc):
                cuda.current.stream = None
        return Use()

    def synchronize(self):
        raise AssertionError("no global synchronize")


async def test_each_stage_runs_on_its_own_stream_and_waits_on_the_producers_event_fake_cuda():
    cuda = FakeCuda()
    seen = {}

    class Note(Stage):
        def __init__(self, name):
            self.name = name

        def process(self, packet):
            seen.setdefault(self.name, set()).add(cuda.current.stream)
            return packet

    await Graph(SyntheticSource(16, 16, count=4), [Note("a"), Note("b")], NullSink(), cuda=cuda).run()
    stream_a, stream_b = next(iter(seen["a"])), next(iter(seen["b"]))
    assert len(seen["a"]) == len(seen["b"]) == 1 and stream_a is not stream_b
    records = [(s, e) for kind, s, e in cuda.log if kind == "record"]
    waits = [(s, e) for kind, s, e in cuda.log if kind == "wait"]
    # b's stream waits on events that a's stream recorded; the sink waits on b's.
    assert any(s is stream_b and e.stream is stream_a for s, e in waits)
    assert all(e.stream is not s for s, e in waits)
    assert len(records) == 8


async def test_a_failing_close_after_a_good_run_is_reported_with_the_name():
    class LeakyClose(Recorder):
        async def close(self):
            raise OSError("flush failed")

    with pytest.raises(StageError) as info:
        await Graph(SyntheticSource(16, 16, count=3), [LeakyClose("enc")], NullSink()).run()
    assert info.value.stage == "enc" and isinstance(info.value.__cause__, OSError)


async def test_gpu_tensors_handed_on_are_recorded_on_the_consumer_stream_fake_cuda():
    """A scene tensor made on stage a's stream is marked in use on b's (allocator safety across streams)."""
    cuda = FakeCuda()

    class FakeGpuTensor:
        is_cuda = True

        def __init__(self):
            self.streams = []

        def record_stream(self, stream):
            self.streams.append(stream)

    tensor, frame = FakeGpuTensor(), FakeGpuTensor()

    class Make(Stage):
        name = "make"

        def process(self, packet):
            packet.edits = [FaceEdit(make_face(packet.frame), scene={"triplane": tensor, "note": "not a tensor"})]
            packet.device_frame = frame                          # the GPU hot path's uploaded frame
            return packet

    class Use(Stage):
        name = "use"

        def process(self, packet):
            return packet

    await Graph(SyntheticSource(16, 16, count=1), [Make(), Use()], NullSink(), cuda=cuda).run()
    assert len(tensor.streams) == 2 and tensor.streams[0] is not tensor.streams[1]   # "use" and the sink
    assert len(frame.streams) == 2
