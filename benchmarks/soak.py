"""Soak benchmark: N real aiortc peers against `live3dpe serve` (its own process) for M minutes.

Each peer is its own process sending a clip as a live camera (VP8 encoded once up front, so the peers
cost the machine little besides decoding what comes back) and joins `--stagger` seconds after the
previous one, as people do; a refused offer is counted and retried `--retry` seconds later. Reports
per-peer delivered fps over time, sessions dropped (must be 0), offers refused, the server's capacity,
fair share, resolution scale and loop lateness, and its RSS growth after the warm-up; writes JSON + PNG.

    python -m benchmarks.soak --peers 4 --minutes 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.errors import UserError
from webrtc.admission import ADMIT_MIN_FPS

REPO = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", default=str(REPO.parent / "shared/clips/d10.mp4"))
    parser.add_argument("--fps", type=float, default=25.0, help="camera rate of every peer (default 25)")
    parser.add_argument("--style", default="bronze statue")
    parser.add_argument("--stagger", type=float, default=5.0, help="seconds between two peers joining")
    parser.add_argument("--retry", type=float, default=10.0, help="seconds before a refused peer tries again")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds after the last peer joined before RSS growth is measured from")
    parser.add_argument("--server-args", default="", help="extra `live3dpe serve` flags, e.g. '--max-peers 6'")
    parser.add_argument("--out", default="benchmark-soak", help="writes OUT.json and OUT.png")


# --- one peer (its own process) ---------------------------------------------------------------------

def run_peer(index: int, url: str, packets: list[bytes], fps: float, style: str, start_at: float,
             stop_at: float, retry_s: float, events) -> None:
    """Join at `start_at` (time.time()), stay until `stop_at`; report to `events` as (peer, time, kind, value)."""
    asyncio.run(_peer(index, url, packets, fps, style, start_at, stop_at, retry_s, events))


async def _peer(index, url, packets, fps, style, start_at, stop_at, retry_s, events) -> None:
    from webrtc.client import EncodedClipTrack, connect

    def report(kind: str, value=None) -> None:
        events.put((index, time.time(), kind, value))

    await asyncio.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        try:
            client = await connect(url, EncodedClipTrack(packets, fps), codec="video/VP8")
        except ConnectionError as exc:
            report("refused" if "503" in str(exc) else "error", str(exc))
            await asyncio.sleep(retry_s)
            continue
        client.keep_images = 1
        report("offer", "answered")
        client.pc.on("connectionstatechange", lambda c=client: report("state", c.pc.connectionState))
        if client.channel.readyState == "open":
            client.send(style=style)
        else:
            client.channel.on("open", lambda c=client: c.send(style=style))
        ended = False
        while time.time() < stop_at and not ended:
            await asyncio.sleep(1.0)
            report("frames", len(client.frames))
            ended = client.pc.connectionState in ("failed", "closed") or client.channel.readyState == "closed"
        if ended:
            report("dropped", client.pc.connectionState)
        await client.close()
        if ended:
            await asyncio.sleep(retry_s)


# --- the server -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=2) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def start_server(port: int, extra: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port), *extra], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while health(url) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise UserError(f"the server did not start: see {log_path}")
        time.sleep(0.5)
    return proc, url


# --- the run ----------------------------------------------------------------------------------------

def soak(args: argparse.Namespace) -> dict:
    from webrtc.client import decode_clip, encode_vp8

    frames, _ = decode_clip(args.clip, limit=round(6 * args.fps))
    packets = encode_vp8(frames, args.fps)
    out = Path(args.out)
    server_log = out.with_suffix(".server.log")
    server, url = start_server(free_port(), args.server_args.split(), server_log)
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    seconds = args.minutes * 60.0
    t0 = time.time() + 5.0                              # the peers' processes need a moment to start
    stop_at = t0 + seconds
    peers = [context.Process(target=run_peer, daemon=True,
                             args=(i, url, packets, args.fps, args.style, t0 + i * args.stagger, stop_at, args.retry,
                                   events)) for i in range(args.peers)]
    for p in peers:
        p.start()
    log: list[tuple[int, float, str, object]] = []
    samples: list[dict] = []                            # once a second: server RSS and health
    try:
        with tqdm(total=round(seconds + 5), desc=f"soak, {args.peers} peers", unit="s") as bar:
            while time.time() < stop_at:
                time.sleep(1.0)
                while True:
                    try:
                        log.append(events.get_nowait())
                    except queue.Empty:
                        break
                samples.append({"t": time.time() - t0, "rss_mib": rss_mib(server.pid), "health": health(url)})
                bar.update(1)
        for p in peers:
            p.join(timeout=20)
        while True:
            try:
                log.append(events.get(timeout=0.5))
            except queue.Empty:
                break
    finally:
        for p in peers:
            if p.is_alive():
                p.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return summarise(args, log, samples, t0, server_log)


def summarise(args, log, samples, t0: float, server_log: Path) -> dict:
    series = {i: [] for i in range(args.peers)}          # peer → [(seconds, delivered fps)]
    last = {}
    for peer, when, kind, value in log:
        if kind == "frames":
            then, count = last.get(peer, (None, 0))
            if then is not None and value >= count:
                series[peer].append((when - t0, (value - count) / max(when - then, 1e-3)))
            last[peer] = (when, value)
        elif kind == "offer":
            last.pop(peer, None)
    joined = [min((w for p, w, k, _ in log if p == i and k == "offer"), default=None) for i in range(args.peers)]
    all_in = max((w - t0 for w in joined if w is not None), default=0.0)
    settle = min(15.0, max(0.0, args.minutes * 60.0 - all_in) / 2)   # newcomers settle the shares within seconds;
    steady = all_in + settle                                          # short runs keep the latter half after the last join
    rss = [(s["t"], s["rss_mib"]) for s in samples if s["rss_mib"] is not None]
    warm = [m for t, m in rss if t >= all_in + args.warmup]
    server_text = server_log.read_text(errors="replace") if server_log.exists() else ""
    lags = [s["health"]["loop_lag_p95_ms"] for s in samples if s["health"]]
    return {
        "peers": args.peers, "minutes": args.minutes, "fps_in": args.fps, "clip": args.clip, "style": args.style,
        "machine": f"{os.cpu_count()} cores", "joined_s": [None if w is None else round(w - t0, 1) for w in joined],
        "sessions_dropped": sum(1 for _, _, k, _ in log if k == "dropped"),
        "consent_expired_in_server_log": server_text.count("Consent to send expired"),
        "offers_refused": sum(1 for _, _, k, _ in log if k == "refused"),
        "refused_s": [round(w - t0, 1) for _, w, k, _ in log if k == "refused"],
        "offer_errors": sorted({str(v) for _, _, k, v in log if k == "error"}),
        "refusal_messages": sorted({str(v) for _, _, k, v in log if k == "refused"}),
        "fps_per_peer_steady": {i: _mean([f for t, f in s if t >= steady]) for i, s in series.items()},
        "fps_per_peer_min_5s": {i: _min_window([(t, f) for t, f in s if t >= steady], 5) for i, s in series.items()},
        "rss_mib_start": rss[0][1] if rss else None,
        "rss_mib_after_warmup": warm[0] if warm else None, "rss_mib_end": rss[-1][1] if rss else None,
        "rss_mib_peak_after_warmup": max(warm) if warm else None,    # growth = the peak's: sessions closing at
        "rss_growth_after_warmup_pct": (round(100.0 * (max(warm) - warm[0]) / warm[0], 1)    # the end hide none
                                        if len(warm) > 1 else None),
        "loop_lag_p95_ms": {"median": _pct(lags, 50), "max": _pct(lags, 100)},
        "series": {i: [(round(t, 1), round(f, 2)) for t, f in s] for i, s in series.items()},
        "server": [{"t": round(s["t"], 1), "rss_mib": s["rss_mib"],
                    **{k: (s["health"] or {}).get(k) for k in ("peers", "connected", "capacity_fps", "share_fps",
                                                                 "scale", "loop_lag_p95_ms", "cpu_cores")}}
                   for s in samples],
    }


def _mean(values):
    return round(float(np.mean(values)), 2) if values else None


def _pct(values, q):
    return round(float(np.percentile(values, q)), 1) if values else None


def _min_window(points, width):
    """The lowest mean fps over any `width` consecutive seconds (None when the run is shorter)."""
    fps = [f for _, f in points]
    if len(fps) < width:
        return None
    return round(float(min(np.convolve(fps, np.ones(width) / width, mode="valid"))), 2)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for peer, points in result["series"].items():
        if points:
            t, fps = zip(*points)
            top.plot(t, fps, linewidth=0.8, label=f"peer {peer}")
    top.axhline(ADMIT_MIN_FPS, color="grey", linestyle="--", linewidth=0.8, label="admission floor")
    for when in result.get("refused_s", []):
        top.axvline(when, color="tab:red", alpha=0.15, linewidth=0.8)
    top.set_ylabel("delivered fps (red: offer refused)")
    top.set_title(f"soak: {result['peers']} peers, {result['minutes']:g} min — {result['sessions_dropped']} sessions "
                  f"dropped, {result['offers_refused']} offers refused, RSS growth after warm-up "
                  f"{result['rss_growth_after_warmup_pct']}%", fontsize=9)
    top.legend(fontsize=7, ncol=4)
    server = result["server"]
    t = [s["t"] for s in server]
    mid.plot(t, [s["loop_lag_p95_ms"] or 0 for s in server], color="tab:red", label="loop lag p95, ms")
    mid.plot(t, [(s["scale"] or 1) * 100 for s in server], color="tab:green", label="resolution scale × 100")
    mid.plot(t, [s["share_fps"] or np.nan for s in server], color="tab:purple", label="fair share, fps")
    mid.legend(fontsize=7)
    bottom.plot(t, [s["rss_mib"] or np.nan for s in server], color="tab:blue")
    bottom.set_ylabel("server RSS, MiB")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    if not Path(args.clip).is_file():
        raise UserError(f"clip not found: {args.clip} (pass --clip)")
    if args.peers < 1 or args.minutes <= 0 or args.fps <= 0:
        raise UserError("--peers, --minutes and --fps must be positive")
    result = soak(args)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    print(f"{result['peers']} peers, {result['minutes']:g} min: sessions dropped {result['sessions_dropped']}, "
          f"offers refused {result['offers_refused']}, steady fps per peer {result['fps_per_peer_steady']}, "
          f"RSS {result['rss_mib_after_warmup']} → peak {result['rss_mib_peak_after_warmup']} MiB "
          f"({result['rss_growth_after_warmup_pct']}% after warm-up); wrote {out}.json, {out}.png")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
