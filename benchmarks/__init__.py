"""Benchmarks: pipeline fps / latency measurements (`live3dpe bench`)."""
