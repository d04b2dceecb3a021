"""The cluster benchmark's glass-to-glass meter: the frame index stamped into a camera frame survives a real
VP8 round trip and a styled face, and the summary computes scaling against the single process."""
from __future__ import annotations

import av
import numpy as np

from benchmarks.cluster import read_stamp, stamp, summarise
from webrtc.client import decode_clip


def vp8_round_trip(frames: list[np.ndarray]) -> list[np.ndarray]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    encoder.bit_rate = 500_000                                  # aiortc's starting VP8 bitrate
    decoder = av.CodecContext.create("libvpx", "r")
    out = []
    for frame in frames + [None]:
        packets = encoder.encode(av.VideoFrame.from_ndarray(frame, format="rgb24") if frame is not None else None)
        for packet in packets:
            out += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    return out


def test_stamped_index_survives_vp8(clips):
    frames = decode_clip(clips / "d10.mp4", limit=20)[0]
    decoded = vp8_round_trip([stamp(frame, index) for index, frame in enumerate(frames)])
    assert [read_stamp(image) for image in decoded] == list(range(len(frames)))
    assert read_stamp(frames[0]) is None                        # an unstamped frame is not misread


def test_summary_scales_against_the_single_process():
    run = lambda peers, fps, answer: {"peers": peers, "fps_total": fps, "answer_ms": answer, "first_frame_ms": 900.0}
    summary = summarise([run(1, 20.0, 10.0), run(2, 20.0, 12.0)], {2: [run(1, 19.0, 30.0), run(2, 30.0, 40.0)]})
    assert summary["scaling_ratio"] == {2: {1: 0.95, 2: 1.5}}
    assert summary["ray_overhead_per_session_ms"] == {"answer": 24.0, "first_frame": 0.0}
