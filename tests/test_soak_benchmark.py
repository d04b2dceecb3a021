"""The soak benchmark runs end to end, briefly: a real server process, real aiortc peers in their own processes."""
from __future__ import annotations

import argparse
import json

import pytest

from benchmarks import soak


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_soak_reports_fps_per_peer_drops_refusals_and_rss(clips, tmp_path):
    parser = argparse.ArgumentParser()
    soak.add_arguments(parser)
    out = tmp_path / "soak"
    args = parser.parse_args(["--peers", "2", "--minutes", "0.25", "--stagger", "2", "--warmup", "0", "--fps", "15",
                              "--clip", str(clips / "d10.mp4"), "--out", str(out)])
    assert soak.main(args) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["sessions_dropped"] == 0 and result["consent_expired_in_server_log"] == 0
    assert result["offer_errors"] == []
    joined = [j is not None for j in result["joined_s"]]
    assert joined[0] and (all(joined) or result["offers_refused"] > 0)       # a busy machine may refuse the 2nd
    assert all(all(0 <= fps <= 45 for _, fps in points) for points in result["series"].values())   # bursts after a stall
    assert result["fps_per_peer_steady"]["0"] > 0
    assert result["rss_mib_start"] > 0 and max(s["connected"] or 0 for s in result["server"]) >= 1
