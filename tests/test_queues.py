"""Edge queue policies: offline loses nothing and keeps order; live drops the oldest and counts."""
import asyncio

import pytest

from pipeline.graph import Graph
from pipeline.harness import ListSink
from pipeline.queues import BackpressureQueue, LatestFrameQueue, make_queue
from stages.source_synthetic import SyntheticSource, frame_number
from benchmarks.synthetic_stages import SleepStage


async def test_live_queue_keeps_newest_and_counts_drops():
    q = LatestFrameQueue(2)
    for i in range(5):
        await q.put(i)
    assert q.drops == 3
    await q.close()
    assert [await q.get(), await q.get(), await q.get()] == [3, 4, None]


async def test_offline_queue_blocks_producer_until_room_and_keeps_order():
    q = BackpressureQueue(2)
    seen_sizes = []

    async def produce():
        for i in range(20):
            await q.put(i)
            seen_sizes.append(len(q))
        await q.close()

    async def consume():
        out = []
        while (item := await q.get()) is not None:
            await asyncio.sleep(0.001)
            out.append(item)
        return out

    _, out = await asyncio.gather(produce(), consume())
    assert out == list(range(20))
    assert max(seen_sizes) <= 2 and q.drops == 0


async def test_closed_queue_drains_then_ends():
    q = make_queue("offline", 2)
    await q.put("a")
    await q.close()
    assert await q.get() == "a"
    assert await q.get() is None
    await q.put("late")             # after end of stream: ignored, not queued
    assert await q.get() is None


def test_unknown_policy_and_bad_capacity_are_rejected():
    with pytest.raises(ValueError, match="policy"):
        make_queue("leaky", 2)
    with pytest.raises(ValueError, match="capacity"):
        make_queue("live", 0)


async def test_offline_graph_with_slow_stage_delivers_every_frame_in_order():
    sink = ListSink()
    metrics = await Graph(SyntheticSource(32, 24, count=40), [SleepStage("slow", 3)], sink).run()
    assert [frame_number(p.frame) for p in sink.packets] == list(range(40))
    assert [p.seq for p in sink.packets] == list(range(40))
    assert metrics.drops == 0 and metrics.frames_out == 40 and metrics.policy == "offline"


async def test_live_graph_drops_oldest_counts_every_drop_and_delivers_the_newest():
    sink = ListSink()
    source = SyntheticSource(32, 24, fps=100, count=60, live=True)   # 10 ms per frame into a 40 ms stage
    metrics = await Graph(source, [SleepStage("slow", 40)], sink, queue_size=1).run()
    seqs = [p.seq for p in sink.packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert metrics.drops > 20
    assert metrics.frames_in == 60 and metrics.frames_out + metrics.drops == 60
    assert metrics.stages["slow"]["dropped"] == metrics.drops
    assert seqs[-1] == 59            # the newest frame wins; the oldest were dropped
