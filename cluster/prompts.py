"""Uploaded image prompts in a cluster: the page uploads to the front, its session runs on some node.

The front validates an upload as a single server does, then publishes the stored PNG on a small board
actor pinned to the front's node; a node fetches a prompt id it has not seen the first time one of its
peers asks for it. Ids are content hashes, so every copy has the same id.
"""
from __future__ import annotations

import collections
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.connect import NAMESPACE
from webrtc.prompts import MAX_PROMPTS, MAX_STORED_BYTES, PromptError, PromptStore, is_prompt_id

BOARD_NAME = "prompt-board"
BOARD_MAX_BYTES = 256 * 1024 * 1024
FETCH_TIMEOUT_S = 10.0


class PromptBoard:
    """id → PNG bytes, least recently used dropped beyond `max_bytes` (a Ray actor on the front's node)."""

    def __init__(self, max_bytes: int = BOARD_MAX_BYTES):
        self.max_bytes = max_bytes
        self._prompts: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0

    def put(self, prompt_id: str, png: bytes) -> None:
        self._bytes += len(png) - len(self._prompts.pop(prompt_id, b""))
        self._prompts[prompt_id] = png
        while self._bytes > self.max_bytes and len(self._prompts) > 1:
            self._bytes -= len(self._prompts.popitem(last=False)[1])

    def get(self, prompt_id: str) -> bytes | None:
        if prompt_id in self._prompts:
            self._prompts.move_to_end(prompt_id)
        return self._prompts.get(prompt_id)


def start_board() -> ray.actor.ActorHandle:
    """The board, on this (the front's) node: it lives and dies with the front's driver."""
    node = ray.get_runtime_context().get_node_id()
    return ray.remote(PromptBoard).options(
        name=BOARD_NAME, namespace=NAMESPACE, num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)).remote()


class FrontPromptStore(PromptStore):
    """The front's store: validates and keeps uploads as usual, and publishes each one to the board."""

    def __init__(self, board: ray.actor.ActorHandle, max_bytes: int, max_prompts: int = MAX_PROMPTS,
                 max_stored_bytes: int = MAX_STORED_BYTES):
        super().__init__(max_bytes, max_prompts, max_stored_bytes)
        self._board = board

    def add(self, data: bytes) -> str:          # runs in a worker thread (the /prompt route)
        prompt_id = super().add(data)
        ray.get(self._board.put.remote(prompt_id, self.path(prompt_id).read_bytes()), timeout=FETCH_TIMEOUT_S)
        return prompt_id


class NodePromptStore(PromptStore):
    """A node's store: a prompt id it does not hold yet is fetched from the front's board, then kept within
    the node's own quota like an upload."""

    def path(self, prompt_id: str) -> Path:
        try:
            return super().path(prompt_id)
        except PromptError:
            if not is_prompt_id(prompt_id):
                raise
        # Blocks this replica's event loop for one small fetch (milliseconds), once per prompt and node.
        board = ray.get_actor(BOARD_NAME, namespace=NAMESPACE)
        png = ray.get(board.get.remote(prompt_id), timeout=FETCH_TIMEOUT_S)
        if png is None:
            raise PromptError("unknown image prompt id: upload it again with POST /prompt")
        self.put(prompt_id, png)
        return super().path(prompt_id)
