"""Cluster benchmark: real aiortc peers against `serve --cluster local:N` (Ray Serve session hosts, classic engine)
on 1, 2 and 3 simulated nodes, and against one process without Ray, in the same run.

Per configuration: total edited fps delivered to the peers, glass-to-glass latency p50/p95 (each camera frame
carries its index in a corner of black and white blocks, read back from the edited frame it becomes), where
the sessions landed, peers refused (admission by measured capacity, in the single process and in each session
host alike), and Ray's per-session overhead (offer → answer, offer → first edited frame). On one
machine the simulated nodes share its cores, so the scaling ratio (cluster fps / single-process fps, same
peers) shows Ray's cost and the spread of load, not the gain of real extra machines.

    python -m benchmarks.cluster --nodes 1,2,3 --peers 1-6 --seconds 20 --out benchmark-cluster   (~15 min)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import testdata
from pipeline.errors import UserError
from webrtc.client import ClipCameraTrack, EditClient, connect, decode_clip

BLOCK = 24                    # stamp block side, px: survives VP8 at the default bitrate
BITS = 7                      # frame index modulo 128 (the looped clip is shorter)


def stamp(frame: np.ndarray, index: int) -> np.ndarray:
    """`frame` with a white and a black reference block, then `index`'s bits, along its top-left edge."""
    out = frame.copy()
    for slot, white in enumerate([True, False] + [bool(index >> bit & 1) for bit in range(BITS)]):
        out[:BLOCK, slot * BLOCK:(slot + 1) * BLOCK] = 255 if white else 0
    return out


def read_stamp(image: np.ndarray) -> int | None:
    """The index `stamp` wrote, or None when the references are not clearly white and black."""
    inner = slice(BLOCK // 4, BLOCK - BLOCK // 4)
    means = [float(image[inner, slot * BLOCK + BLOCK // 4: (slot + 1) * BLOCK - BLOCK // 4].mean())
             for slot in range(BITS + 2)]
    white, black = means[0], means[1]
    if white - black < 100:
        return None
    middle = (white + black) / 2
    return sum(1 << bit for bit, value in enumerate(means[2:]) if value > middle)


class PeerMeter:
    """One connected peer: reads the stamp of every edited frame as it arrives and pairs it with the time the
    camera sent that frame (the newest send of that index before the arrival)."""

    def __init__(self, client: EditClient, camera: ClipCameraTrack, clip_length: int, answer_ms: float):
        self.client, self.camera, self.clip_length = client, camera, clip_length
        self.answer_ms = answer_ms
        self.first_frame_ms: float | None = None
        self.samples: list[tuple[float, float]] = []          # (arrival, latency ms)
        self.unread = 0
        self._seen = 0
        self._opened = time.perf_counter() - answer_ms / 1000

    def read_new(self) -> None:
        frames = self.client.frames
        recent = list(self.camera.send_times.items())[-self.clip_length:]      # latencies stay below one loop
        sends = [(round(pts * self.camera.fps / 90000), at) for pts, at in recent]
        for frame in frames[self._seen:]:
            if frame.image is None:                            # dropped by the client before we read it
                self.unread += 1
                continue
            if self.first_frame_ms is None:
                self.first_frame_ms = (frame.arrived - self._opened) * 1000
            mark = read_stamp(frame.image)
            sent = [at for index, at in sends if mark is not None and index % self.clip_length == mark
                    and at <= frame.arrived]
            if sent:
                self.samples.append((frame.arrived, (frame.arrived - sent[-1]) * 1000))
            else:
                self.unread += 1
        self._seen = len(frames)


async def wait_idle(url: str, timeout: float = 30.0) -> None:
    """Until the server's /api/health counts no peer (the previous run's sessions have closed)."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{url}/api/health") as response:
                if (await response.json())["peers"] == 0:
                    return
            await asyncio.sleep(0.5)
    raise UserError(f"the server at {url} still has peers {timeout:.0f} s after the last run")


async def run_peers(url: str, frames: list[np.ndarray], fps: float, peers: int, style: str,
                    warmup: float, seconds: float, label: str) -> dict:
    """Connect `peers` peers one after another, measure for `seconds` after `warmup`, disconnect them. A peer
    refused with a 503 (a server or session host at its measured capacity) is counted, not measured."""
    await wait_idle(url)
    meters: list[PeerMeter] = []
    refused = 0
    try:
        for _ in range(peers):
            camera = ClipCameraTrack(frames, fps=fps)
            started = time.perf_counter()
            try:
                client = await connect(url, camera)
            except ConnectionError as exc:
                if not str(exc).startswith("HTTP 503"):
                    raise
                refused += 1
                continue
            meters.append(PeerMeter(client, camera, len(frames), (time.perf_counter() - started) * 1000))
            for _ in range(100):
                if client.channel.readyState == "open":
                    break
                await asyncio.sleep(0.05)
            client.send(style=style)
        deadline = time.perf_counter() + warmup
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.25)
            for meter in meters:
                meter.read_new()
        start = time.perf_counter()
        with tqdm(total=int(seconds), desc=label, unit="s", leave=False) as progress:
            while (elapsed := time.perf_counter() - start) < seconds:
                await asyncio.sleep(0.25)
                for meter in meters:
                    meter.read_new()
                progress.update(int(elapsed) - progress.n)
        end = time.perf_counter()
        for meter in meters:
            meter.read_new()
    finally:
        await asyncio.gather(*(meter.client.close() for meter in meters), return_exceptions=True)
    window = [[ms for at, ms in m.samples if start <= at <= end] for m in meters]
    latencies = np.array([ms for peer in window for ms in peer] or [np.nan])
    fps_out = [len(peer) / (end - start) for peer in window]
    return {
        "peers": peers, "refused": refused, "fps_total": round(sum(fps_out), 2),
        "fps_per_peer": [round(f, 2) for f in fps_out],
        "latency_ms": {"p50": _round(np.nanpercentile(latencies, 50)), "p95": _round(np.nanpercentile(latencies, 95))},
        "answer_ms": _median([m.answer_ms for m in meters]),
        "first_frame_ms": _median([m.first_frame_ms or math.nan for m in meters]),
        "frames_unread": sum(m.unread for m in meters),
    }


def _round(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 1)


def _median(values: list[float]) -> float | None:
    return _round(statistics.median(values)) if values else None


def single_process(peer_counts: list[int], frames, fps, style, warmup, seconds) -> list[dict]:
    """The same peers against one `live3dpe serve` process without Ray (its own process, as the session hosts
    are: the peers' encoding in this process must not share its interpreter)."""
    import socket
    import subprocess
    import tempfile

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
                                   "--max-peers", str(max(peer_counts))], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "open http://" not in (output := log.seek(0) or log.read()):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise UserError(f"live3dpe serve did not start: {output[-2000:].strip()}")
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}"
            return [asyncio.run(run_peers(url, frames, fps, peers, style, warmup, seconds,
                                          f"1 process, {peers} peers")) for peers in peer_counts]
        finally:
            server.terminate()                             # aiohttp closes the peers on SIGTERM
            server.wait(timeout=60)


def on_cluster(nodes: int, peer_counts: list[int], frames, fps, style, warmup, seconds) -> list[dict]:
    """The same peers against the front of a local cluster of `nodes` simulated nodes; each host holds an even
    share of the largest peer count, so that count spreads evenly (smaller ones land where Serve routes them)."""
    from cluster.connect import ClusterSpec
    from cluster.front import FRONT
    from cluster.host import HostConfig
    from cluster.service import deployed_cluster, front_app, front_config
    from pipeline.config import EngineConfig
    from stages.face import FaceConfig
    from webrtc.pipeline_factory import preset_names
    from webrtc.server import running_app

    host = HostConfig(engine=EngineConfig(name="classic"), face=FaceConfig(), presets=tuple(preset_names()),
                      max_peers=math.ceil(max(peer_counts) / nodes))

    async def measure(deployment, peers: int) -> dict:
        async with running_app(front_app(front_config(host, None), deployment)) as (app, url):
            result = await run_peers(url, frames, fps, peers, style, warmup, seconds,
                                     f"{nodes} nodes, {peers} peers")
            result["placement"] = sorted(
                [sum(s.node == node for s in app[FRONT].sessions.values()) for node in deployment.local.node_ids],
                reverse=True)
            return result

    with deployed_cluster(ClusterSpec(local_nodes=nodes), host) as deployment:
        return [asyncio.run(measure(deployment, peers)) for peers in peer_counts]


def parse_counts(text: str) -> list[int]:
    counts = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        counts += list(range(int(low), int(high or low) + 1))
    if not counts or min(counts) < 1:
        raise UserError(f"counts must be positive, e.g. 1-6 or 1,2,4: {text!r}")
    return sorted(set(counts))


def summarise(single: list[dict], clusters: dict[int, list[dict]]) -> dict:
    """Scaling ratio (cluster fps / single-process fps at the same peers) and Ray's per-session overhead."""
    base = {r["peers"]: r for r in single}
    ratios = {nodes: {r["peers"]: round(r["fps_total"] / base[r["peers"]]["fps_total"], 2)
                      if base[r["peers"]]["fps_total"] else None for r in runs} for nodes, runs in clusters.items()}
    pairs = [(r, base[r["peers"]]) for runs in clusters.values() for r in runs]

    def extra(key: str) -> float | None:
        return _median([c[key] - s[key] for c, s in pairs if c[key] is not None and s[key] is not None])
    return {"scaling_ratio": ratios,
            "ray_overhead_per_session_ms": {"answer": extra("answer_ms"), "first_frame": extra("first_frame_ms")}}


def plot(single: list[dict], clusters: dict[int, list[dict]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (fps_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4))
    series = [("1 process, no Ray", single, "k--")] + [(f"{n} simulated node{'s' * (n > 1)}", runs, "-o")
                                                      for n, runs in clusters.items()]
    for label, runs, style in series:
        peers = [r["peers"] for r in runs]
        fps_axis.plot(peers, [r["fps_total"] for r in runs], style, label=label)
        latency_axis.plot(peers, [r["latency_ms"]["p95"] for r in runs], style, label=label)
    for axis in (fps_axis, latency_axis):
        axis.set_xticks(sorted({r["peers"] for r in single}))
    fps_axis.set(xlabel="peers", ylabel="edited fps delivered (all peers)", title="throughput")
    latency_axis.set(xlabel="peers", ylabel="glass-to-glass p95 (ms)", title="latency")
    fps_axis.legend()
    fig.suptitle("live3dpe on Ray Serve: classic engine, simulated nodes sharing one machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip", default=None, help="default: the reference clip d10.mp4 (testdata)")
    parser.add_argument("--nodes", default="1,2,3", help="simulated node counts, e.g. 1,2,3")
    parser.add_argument("--peers", default="1-6", help="peer counts, e.g. 1-6 or 1,2,4")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds ignored after the peers connect")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate of each peer")
    parser.add_argument("--style", default="bronze statue")
    parser.add_argument("--out", default="benchmark-cluster", help="writes OUT.json and OUT.png")


def main(args: argparse.Namespace) -> int:
    from cluster import require_ray

    require_ray()
    args.clip = str(args.clip or testdata.path("clips/d10.mp4"))
    if not Path(args.clip).is_file():
        raise UserError(f"clip not found: {args.clip} (pass --clip)")
    if args.seconds < 1 or args.warmup < 0:
        raise UserError("--seconds must be at least 1 and --warmup not negative")
    node_counts, peer_counts = parse_counts(args.nodes), parse_counts(args.peers)
    frames = [stamp(frame, index) for index, frame in enumerate(decode_clip(args.clip, limit=1 << BITS)[0])]
    single = single_process(peer_counts, frames, args.fps, args.style, args.warmup, args.seconds)
    clusters = {nodes: on_cluster(nodes, peer_counts, frames, args.fps, args.style, args.warmup, args.seconds)
                for nodes in node_counts}
    result = {"clip": args.clip, "engine": "classic", "camera_fps": args.fps, "seconds": args.seconds,
              "single_process": single, "cluster": clusters, **summarise(single, clusters)}
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1))
    plot(single, clusters, Path(f"{args.out}.png"))
    print(json.dumps({"scaling_ratio": result["scaling_ratio"],
                      "ray_overhead_per_session_ms": result["ray_overhead_per_session_ms"]}, indent=1))
    print(f"wrote {args.out}.json and {args.out}.png")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except UserError as exc:
        print(f"benchmarks.cluster: error: {exc}", file=sys.stderr)
        sys.exit(2)
