"""The asyncio stage graph: source → stages → sink, each node in its own worker thread.

The event loop only moves packets between nodes over policy queues (pipeline/queues.py); the
runtime records per-node timings into `packet.timings` and `graph.metrics`.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

from pipeline.device import StreamHandoff, default_cuda
from pipeline.errors import StageError
from pipeline.metrics import GraphMetrics, RunMetrics
from pipeline.packets import FramePacket
from pipeline.queues import POLICIES, make_queue
from pipeline.stage import Sink, Source, Stage


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made unique by suffixing repeats: ["a", "a", "b"] → ["a", "a#2", "b"]."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        candidate = name if seen[name] == 1 else f"{name}#{seen[name]}"
        while candidate in out:
            seen[name] += 1
            candidate = f"{name}#{seen[name]}"
        out.append(candidate)
    return out


class Graph:
    """Runs `source → stages → sink` until the source ends or `stop()`; see `run()`."""

    def __init__(self, source: Source, stages: Sequence[Stage], sink: Sink, policy: str | None = None,
                 queue_size: int = 2, name: str = "run", cuda: Any | None = None):
        policy = policy or ("live" if source.live else "offline")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if policy == "live" and not 1 <= queue_size <= 2:
            raise ValueError("live queues hold 1 or 2 packets (queue_size)")
        self.source, self.stages, self.sink = source, list(stages), sink
        self.policy, self.queue_size, self.name = policy, queue_size, name
        names = unique_names([source.name, *(s.name for s in self.stages), sink.name])
        self.source_name, self.stage_names, self.sink_name = names[0], names[1:-1], names[-1]
        self.metrics = GraphMetrics(name, policy)
        self.metrics.add_node(self.source_name, "source")
        for stage_name in self.stage_names:
            self.metrics.add_node(stage_name, "stage")
        self.metrics.add_node(self.sink_name, "sink")
        self._cuda = cuda
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._running = False
        self._calls: dict[str, Future] = {}       # node name → its latest call in its worker thread

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to end gracefully: the source stops reading, queued packets drain. Any thread."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:        # loop closed between the check and the call
                pass

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> RunMetrics:
        """Start every node, move packets until the source ends, close every node; return the metrics.

        Raises `StageError` naming the failing node (original exception as `__cause__`). Cancelling
        run() (Ctrl-C) stops the graph, joins its threads and re-raises the cancellation.
        """
        if self._running:
            raise RuntimeError(f"graph '{self.name}' is already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stop.is_set():
            self._wake.set()
        nodes: list[Any] = [self.source, *self.stages, self.sink]
        names = [self.source_name, *self.stage_names, self.sink_name]
        executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-{n}") for n in names]
        self._calls = {}
        started: list[Any] = []
        tasks: list[asyncio.Task] = []
        close_error: StageError | None = None
        try:
            for node, node_name in zip(nodes, names):
                await self._guard(node_name, node.start())
                started.append(node)
            handoff = StreamHandoff(self._cuda if self._cuda is not None else default_cuda())
            queues = [make_queue(self.policy, self.queue_size) for _ in range(len(self.stages) + 1)]
            self.metrics.reset_clock()
            tasks.append(asyncio.create_task(self._pump_source(executors[0], queues[0], handoff)))
            for i, stage in enumerate(self.stages):
                tasks.append(asyncio.create_task(self._pump_stage(
                    stage, self.stage_names[i], executors[i + 1], queues[i], queues[i + 1], handoff)))
            tasks.append(asyncio.create_task(self._pump_sink(executors[-1], queues[-1], handoff)))
            await self._wait(tasks)
            metrics = self.metrics.finish()
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            # A call already running in a node's thread cannot be interrupted: wait for it without
            # blocking the event loop (a server runs other sessions on it), then join the idle threads.
            running = [asyncio.wrap_future(call) for call in self._calls.values() if not call.done()]
            try:
                await asyncio.gather(*running, return_exceptions=True)
            finally:
                for executor in executors:      # idle by now; blocks only if that wait was cancelled
                    executor.shutdown(wait=True, cancel_futures=True)
            close_error = await self._close_all(started, names)
            self._loop = self._wake = None
            self._running = False
        if close_error is not None:     # only raised when nothing else did: it must not hide that error
            raise close_error
        return metrics

    async def _close_all(self, started: list[Any], names: list[str]) -> StageError | None:
        """Close every started node (last first); the first failure, as a StageError."""
        first: StageError | None = None
        for node, name in reversed(list(zip(started, names))):   # `started` is a prefix of the nodes
            try:
                await node.close()
            except Exception as exc:
                if first is None:
                    first = StageError(name, exc)
                    first.__cause__ = exc
        return first

    async def _wait(self, tasks: list[asyncio.Task]) -> None:
        """Wait for all pumps; on the first failure cancel the others and re-raise it."""
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()

    async def _guard(self, name: str, awaitable) -> Any:
        try:
            return await awaitable
        except (StageError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise StageError(name, exc) from exc

    async def _in_thread(self, executor: ThreadPoolExecutor, name: str, fn: Callable, *args) -> Any:
        """Run `fn` in the node's own thread; its exception becomes a StageError naming the node."""
        call = self._calls[name] = executor.submit(fn, *args)
        try:
            return await asyncio.wrap_future(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise StageError(name, exc) from exc

    async def _pump_source(self, executor, out_queue, handoff: StreamHandoff) -> None:
        def read() -> tuple[FramePacket | None, float, float]:
            enter = time.perf_counter()
            packet = self.source.read()
            return packet, enter, time.perf_counter()

        try:
            while not self._stop.is_set():
                packet, enter, exit_ = await self._read_or_stop(executor, read)
                if packet is None:
                    break
                packet.timings[self.source_name] = (enter, exit_)
                self.metrics.record(self.source_name, enter, exit_)
                await out_queue.put(packet)
        finally:
            await out_queue.close()

    async def _read_or_stop(self, executor, read) -> tuple[FramePacket | None, float, float]:
        """A source read that returns (None, ...) as soon as stop() is called, even mid-read."""
        read_task = asyncio.ensure_future(self._in_thread(executor, self.source_name, read))
        wake_task = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({read_task, wake_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (read_task, wake_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(read_task, wake_task, return_exceptions=True)
        if read_task.cancelled():
            return None, 0.0, 0.0
        return read_task.result()

    def _timed(self, name: str, handoff: StreamHandoff, fn: Callable) -> Callable:
        def call(packet: FramePacket) -> tuple[Any, float, float]:
            enter = time.perf_counter()
            result = handoff.call(name, fn, packet)
            return result, enter, time.perf_counter()
        return call

    async def _pump_stage(self, stage: Stage, name: str, executor, in_queue, out_queue,
                          handoff: StreamHandoff) -> None:
        call = self._timed(name, handoff, stage.process)
        try:
            while (packet := await in_queue.get()) is not None:
                self.metrics.record_drops(name, in_queue.drops)
                result, enter, exit_ = await self._in_thread(executor, name, call, packet)
                self.metrics.record(name, enter, exit_, filtered=result is None)
                if result is None:
                    continue
                result.timings[name] = (enter, exit_)
                await out_queue.put(result)
            self.metrics.record_drops(name, in_queue.drops)
        finally:
            await out_queue.close()

    async def _pump_sink(self, executor, in_queue, handoff: StreamHandoff) -> None:
        call = self._timed(self.sink_name, handoff, self.sink.write)
        while (packet := await in_queue.get()) is not None:
            self.metrics.record_drops(self.sink_name, in_queue.drops)
            _, enter, exit_ = await self._in_thread(executor, self.sink_name, call, packet)
            packet.timings[self.sink_name] = (enter, exit_)
            self.metrics.record(self.sink_name, enter, exit_)
            self.metrics.record_output(packet.capture_time, exit_)
        self.metrics.record_drops(self.sink_name, in_queue.drops)
