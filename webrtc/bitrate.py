"""Bitrate bounds of the edited video. aiortc's VP8 and H.264 encoders start at a default bitrate and then
follow the browser's estimate (REMB), clamped to bounds they read from their codec modules; aiortc 1.16 has
no RTCRtpSender.setParameters, so the bounds are set there, once, for every peer of the process."""
from __future__ import annotations

from aiortc.codecs import h264, vpx

# codec module → (start, floor, ceiling) in bits per second. aiortc's own (VP8 0.5/0.25/1.5 Mbps, H.264
# 1/0.5/3 Mbps) start a 640×480 face blurry and cap the 1280- and 1920-wide side-by-side and grid modes low.
VIDEO_BITRATES = {vpx: (1_200_000, 400_000, 4_000_000), h264: (2_000_000, 600_000, 6_000_000)}


def configure_video_bitrates() -> None:
    """Set the bounds (idempotent)."""
    for codec, (start, floor, ceiling) in VIDEO_BITRATES.items():
        codec.DEFAULT_BITRATE, codec.MIN_BITRATE, codec.MAX_BITRATE = start, floor, ceiling
