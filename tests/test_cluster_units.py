"""The cluster's command-line pieces that need no running cluster: `--cluster` and `--replicas` parsing,
what a replica asks Ray for, a clear error for an unreachable head, and the install hint when Ray is missing."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from cluster.connect import ClusterSpec, check_reachable, parse_cluster_spec
from cluster.deploy import deployment_options, plan_replicas, replica_resources
from pipeline.config import EngineConfig
from pipeline.errors import UserError

CLASSIC, THREEDPE = EngineConfig(name="classic"), EngineConfig(name="3dpe")


@pytest.mark.parametrize("text, spec", [
    ("auto", ClusterSpec(address="auto")), ("local:3", ClusterSpec(local_nodes=3)),
    ("10.0.0.5:6379", ClusterSpec(address="10.0.0.5:6379")), ("head.internal:6379", ClusterSpec(address="head.internal:6379")),
])
def test_cluster_spec_forms(text, spec):
    assert parse_cluster_spec(text) == spec


@pytest.mark.parametrize("text, words", [
    ("local:0", "1 ≤ N"), ("local:99", "1 ≤ N"), ("ray://head:10001", "GCS address"), ("head", "HOST:PORT"),
    ("head:99999", "HOST:PORT"), ("local:two", "HOST:PORT"),
])
def test_bad_cluster_spec_says_what_is_accepted(text, words):
    with pytest.raises(UserError, match=words):
        parse_cluster_spec(text)


def test_replicas_follow_the_engine_and_the_cluster():
    assert replica_resources(THREEDPE, 4) == (1, 1)                      # one GPU per 3dpe replica
    assert replica_resources(EngineConfig(name="3dpe", device="cpu"), 2) == (2, 0)
    assert replica_resources(CLASSIC, 3) == (3, 0)                       # a CPU per classic peer
    plan = plan_replicas("auto", THREEDPE, 4, {"CPU": 64.0, "GPU": 8.0})
    assert (plan.replicas, plan.num_gpus, plan.autoscaling) == (8, 1, False)
    assert plan_replicas("auto", CLASSIC, 4, {"CPU": 18.0}).replicas == 4
    scaling = plan_replicas("2-6", CLASSIC, 4, {"CPU": 8.0})
    assert (scaling.replicas, scaling.max_replicas) == (2, 6)
    options = deployment_options(scaling)
    assert options["autoscaling_config"]["min_replicas"] == 2 and "num_replicas" not in options
    assert options["max_ongoing_requests"] == 4                          # Serve never routes a host past its limit
    with pytest.raises(UserError, match="GPU"):
        plan_replicas("auto", THREEDPE, 4, {"CPU": 64.0})
    for bad in ("0", "5-2", "many"):
        with pytest.raises(UserError, match="--replicas"):
            plan_replicas(bad, CLASSIC, 4, {"CPU": 8.0})


def test_unreachable_head_fails_in_seconds_with_a_hint():
    with socket.socket() as probe:                                       # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UserError, match="ray start --head"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 5


def test_cluster_without_ray_says_how_to_install_it(tmp_path):
    # Ray hidden from a fresh interpreter: `import ray` fails as if it were not installed.
    hide = "import sys; sys.modules['ray'] = None; from cli.main import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", hide, "serve", "--cluster", "local:2"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "pip install 'live3dpe[cluster]'" in result.stderr and "Traceback" not in result.stderr


def test_cluster_auto_without_a_running_cluster_says_how_to_start_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "cli", "serve", "--cluster", "auto"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "ray start --head" in result.stderr and "Traceback" not in result.stderr
