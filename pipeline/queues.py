"""Queues on the graph's edges: the queue policy (live drop-oldest / offline backpressure) lives here.

Both queues are used only from the event loop; `close()` marks end of stream, and `get()`
returns None once a closed queue is empty.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

POLICIES = ("live", "offline")


class _EdgeQueue(Generic[T]):
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self.drops = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, item: T) -> None:
        raise NotImplementedError

    async def get(self) -> T | None:
        """Next item, or None at end of stream (closed and empty)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._items or self._closed)
            if not self._items:
                return None
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    async def close(self) -> None:
        """End of stream: consumers drain what is queued, then get None."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()


class LatestFrameQueue(_EdgeQueue[T]):
    """Live policy: never blocks the producer; when full, the oldest item is dropped and counted."""

    async def put(self, item: T) -> None:
        async with self._changed:
            if self._closed:
                return
            while len(self._items) >= self.capacity:
                self._items.popleft()
                self.drops += 1
            self._items.append(item)
            self._changed.notify_all()


class BackpressureQueue(_EdgeQueue[T]):
    """Offline policy: the producer waits for room, so every item arrives, in order."""

    async def put(self, item: T) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._items) < self.capacity or self._closed)
            if self._closed:
                return
            self._items.append(item)
            self._changed.notify_all()


def make_queue(policy: str, capacity: int) -> _EdgeQueue:
    """The queue for one graph edge under `policy` ("live" or "offline")."""
    if policy == "live":
        return LatestFrameQueue(capacity)
    if policy == "offline":
        return BackpressureQueue(capacity)
    raise ValueError(f"queue policy must be one of {', '.join(POLICIES)}, not {policy!r}")
