"""The server's shared frame budget and admission, driven step by step with made-up measurements."""
from __future__ import annotations

import math
import threading
import time

import pytest

from webrtc.admission import Admission
from webrtc.fair_share import FairShareScheduler, PeerGate, ShareLimits, fair_shares, usable_cores
from webrtc.loop_lag import LoopLagMonitor


def test_fair_shares_give_nobody_more_than_asked_and_split_the_rest_evenly():
    assert fair_shares(30.0, [25.0, 25.0, 25.0]) == pytest.approx([10.0, 10.0, 10.0])
    assert fair_shares(30.0, [5.0, 25.0, 25.0]) == pytest.approx([5.0, 12.5, 12.5])
    assert fair_shares(100.0, [5.0, 25.0]) == pytest.approx([5.0, 25.0])
    assert fair_shares(math.inf, [5.0, 25.0]) == pytest.approx([5.0, 25.0])
    assert fair_shares(10.0, []) == []


class Peers:
    """Gates of a scheduler fed with made-up traffic: each peer offers `offered` fps, its graph takes what its
    gate allows (or `can_take` fps when the stages are slower than that) and sends back at most `can_send` fps
    of it (a busy graph drops the rest)."""

    def __init__(self, scheduler: FairShareScheduler, count: int):
        self.scheduler, self.gates = scheduler, [scheduler.add() for _ in range(count)]
        self.now, self.cpu, self.idle = 0.0, 0.0, 0.0

    def second(self, lag_ms: float, offered: float = 25.0, can_take: float = math.inf, cpu_cores: float = 1.0,
               idle_cores: float = 0.5, can_send: float = math.inf):
        for gate in self.gates:
            taken = round(min(offered, gate.fps, can_take))
            gate.arrived += round(offered)
            gate.taken += taken
            gate.sent += round(min(taken, can_send))
        self.now += 1.0
        self.cpu += cpu_cores
        self.idle += idle_cores
        return self.scheduler.step(lag_ms, now=self.now, cpu=self.cpu, idle=self.idle)


def scheduler(**limits) -> FairShareScheduler:
    s = FairShareScheduler(LoopLagMonitor(), ShareLimits(**limits))
    s._clock = (0.0, 0.0, 0.0)
    return s


def test_a_late_loop_pulls_everyones_rate_down_evenly_and_an_on_time_loop_lets_it_back_up():
    s = scheduler(scale_hold_s=1e9)                # resolution held: only the rate moves here
    peers = Peers(s, 4)
    peers.second(lag_ms=5.0)
    assert s.rate == math.inf and all(g.fps == math.inf for g in peers.gates)     # nothing to limit
    tick = peers.second(lag_ms=400.0)                  # the loop is late: stage work gives way
    assert tick.taken_fps == 100 and s.rate == pytest.approx(75.0)
    assert [g.fps for g in peers.gates] == pytest.approx([18.75] * 4)              # the same for everyone
    for _ in range(10):
        peers.second(lag_ms=400.0)
    assert s.rate == pytest.approx(8.0) and [g.fps for g in peers.gates] == [2.0] * 4   # the floor, not zero
    rates = []
    for _ in range(40):
        peers.second(lag_ms=5.0)                       # on time again: probe upwards
        rates.append(s.rate)
    assert rates[0] == pytest.approx(9.8) and all(b > a for a, b in zip(rates, rates[1:]) if b < math.inf)
    assert s.rate == math.inf and all(g.fps == math.inf for g in peers.gates)
    peers.second(lag_ms=40.0)                          # between the thresholds: hold
    assert s.rate == math.inf


def test_stages_slower_than_their_share_are_not_pushed_and_new_peers_get_an_even_share():
    s = scheduler(scale_hold_s=1e9)
    peers = Peers(s, 2)
    peers.second(lag_ms=400.0)
    peers.second(lag_ms=400.0, can_take=12.0)
    assert s.rate == pytest.approx(0.75 * 24.0)
    before = s.rate
    peers.second(lag_ms=5.0, can_take=5.0)             # on time, but nobody uses their share: no probing up
    assert s.rate in (before, math.inf)
    third = s.add()
    assert third.fps == pytest.approx(max(s.rate / 3, 2.0))


def test_resolution_steps_down_together_when_the_share_is_low_and_back_up_with_hysteresis():
    s = scheduler(scale_hold_s=3.0, scale_up_hold_s=6.0)
    peers = Peers(s, 4)
    for _ in range(12):
        peers.second(lag_ms=400.0)
    assert s.scale == 0.5 and all(g.scale == 0.5 for g in peers.gates)   # 1 → 0.75 → 0.5, 3 s apart
    scales = []
    for _ in range(60):
        peers.second(lag_ms=5.0)
        scales.append(s.scale)
    assert scales[-1] == 1.0 and scales == sorted(scales)                  # back up, never flapping down


def test_capacity_is_extrapolated_from_the_frames_sent_back_and_the_cpu_left_and_survives_an_idle_server():
    s = scheduler(capacity_window=1)                 # one estimate: each second's arithmetic shows
    peers = Peers(s, 2)
    assert s.capacity_fps() is None
    peers.second(lag_ms=5.0, offered=25.0, cpu_cores=0.5, idle_cores=0.25)     # 50 fps cost half a core,
    assert s.capacity_fps() == pytest.approx(50.0 * (0.5 + 0.8 * 0.25) / 0.5)  # others left a quarter idle
    peers.second(lag_ms=5.0, offered=25.0, cpu_cores=0.5, idle_cores=100.0)    # an idle machine: our cores cap it
    assert s.capacity_fps() == pytest.approx(50.0 * 0.8 * usable_cores() / 0.5)
    peers.second(lag_ms=400.0, cpu_cores=2.0, idle_cores=0.0)                  # late: no more than the budget
    assert s.capacity_fps() == pytest.approx(0.75 * 50.0) == s.rate            # lateness left
    peers.second(lag_ms=5.0, offered=25.0, cpu_cores=0.2, idle_cores=100.0)    # cheap again, but lateness
    assert s.capacity_fps() == pytest.approx(s.rate) and s.rate < 50.0         # capped the rate 1 s ago
    for gate in list(peers.gates):
        s.remove(gate)
    remembered = s.capacity_fps()
    s.step(5.0, now=peers.now + 1, cpu=peers.cpu)
    assert s.capacity_fps() == remembered             # kept for the next admission


def test_capacity_counts_the_frames_sent_back_not_those_a_busy_graph_took_and_dropped():
    # The 4-peer soak on this box: three peers offer 25 fps, their graphs take every frame but the stages
    # finish ~8 fps each, on 1.6 of 2 cores. Counting frames taken said ~50 fps and let a 4th peer in.
    s = scheduler()
    peers = Peers(s, 3)
    for _ in range(10):
        peers.second(lag_ms=30.0, offered=25.0, can_send=8.0, cpu_cores=1.6, idle_cores=0.0)
    assert s.last.taken_fps == pytest.approx(75.0) and s.capacity_fps() == pytest.approx(24.0)
    assert "at capacity: 3 people" in Admission(s, min_fps=10.0).refusal(3)


def test_capacity_measured_at_a_lower_resolution_counts_its_share_of_the_pixels():
    s = scheduler(scale_hold_s=0.0, scale_up_hold_s=1e9)
    peers = Peers(s, 4)
    while s.scale > 0.5:                              # late: the rate falls and the resolution steps down
        peers.second(lag_ms=400.0, can_send=6.0)
    for _ in range(60):                               # on time at half resolution, 14 fps per peer sent back
        peers.second(lag_ms=5.0, offered=14.0, cpu_cores=1.0, idle_cores=0.0)
    assert s.rate == math.inf and s.scale == 0.5 and s.last.sent_fps == 56.0
    assert s.capacity_fps() == pytest.approx(56.0 * 0.5 ** 2)       # 56 fps of 1/4 the pixels
    assert "at capacity" in Admission(s, min_fps=10.0).refusal(4)   # 56 / 5 ≥ 10 on paper, but not at full size


def test_capacity_is_the_median_of_recent_seconds_so_one_busy_second_does_not_open_the_door():
    s = scheduler(capacity_window=10)
    peers = Peers(s, 2)
    for _ in range(9):
        peers.second(lag_ms=5.0, offered=10.0, cpu_cores=1.6, idle_cores=0.0)   # 20 fps on all we may use
    peers.second(lag_ms=5.0, offered=25.0, cpu_cores=0.5, idle_cores=1.5)       # one cheap second: 50 → 160
    assert s.capacity_fps() == pytest.approx(20.0)


def test_admission_refuses_before_everyone_would_fall_under_the_floor():
    s = scheduler()
    admission = Admission(s, max_peers=None, min_fps=10.0)
    assert admission.refusal(0) is None and admission.refusal(3) is None       # nothing measured yet
    s._estimates.append(45.0)
    assert admission.refusal(3) is None                      # 45 / 4 ≥ 10
    assert "at capacity: 4 people" in admission.refusal(4)   # 45 / 5 < 10
    assert "full (2 people connected, at most 2)" in Admission(s, max_peers=2).refusal(2)
    s.lag.record(time.perf_counter(), 1.0)                   # the loop ran a second late just now
    assert "overloaded" in admission.refusal(1) and admission.refusal(0) is None
    status = admission.status(1)
    assert status["capacity_fps"] == 45.0 and status["peers_at_min_fps"] == 4


def test_a_gate_paces_its_source_and_lets_a_stopping_graph_go():
    gate = PeerGate()
    gate.set(10.0, 1.0)
    start, taken = time.perf_counter(), 0
    while time.perf_counter() - start < 0.5:
        assert gate.wait_turn(lambda: False)
        taken += 1
    assert taken <= 0.5 * 10 + 2                             # never faster than allowed (slower is the machine)
    gate.set(0.01, 1.0)                                      # one frame per 100 s
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert gate.wait_turn(stop.is_set) is True               # the first turn after a slow one comes at once...
    assert gate.wait_turn(stop.is_set) is False              # ...the next waits, but not past the graph stopping
