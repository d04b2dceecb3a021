"""`live3dpe serve --cluster local:1` as a user runs it: it starts a one-node cluster, serves the page and
/api/health with the node, keeps its token out of the access log, and on Ctrl-C stops every Ray process it
started and removes Ray's files."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(command[:200])
    return found


def test_serve_cluster_local_serves_health_and_cleans_up_on_ctrl_c(tmp_path):
    port = free_port()
    token = "cluster-front-token-4f1c"
    command = [sys.executable, "-m", "cli", "serve", "--cluster", "local:1", "--max-peers", "2", "--port", str(port),
               "--token", token]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "HOME": str(tmp_path)}, start_new_session=True)
    output, temp_root = [], None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            output.append(line)
            if match := re.search(r"logs are in (/tmp/live3dpe-ray-\w+)/", line):
                temp_root = match.group(1)
            if f"open http://127.0.0.1:{port}/" in line:
                break
        else:
            pytest.fail("serve --cluster did not start in time:\n" + "".join(output[-30:]))
        assert temp_root and Path(temp_root).is_dir(), "".join(output[-30:])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as response:
            health = json.load(response)
        assert health["mode"] == "cluster" and health["status"] == "ok"
        assert health["session_hosts"] == 1 and health["capacity"] == 2
        assert sum(node["alive"] and node["cpus"] == 2 for node in health["nodes"]) == 1     # the session node
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=30) as response:
            assert b"live3dpe" in response.read()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            rest, _ = server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)            # its whole session: the cluster's processes too
            rest = "serve --cluster did not stop within 120 s of Ctrl-C"
    assert server.returncode == 0, rest[-3000:]
    assert "Traceback" not in rest, rest[-3000:]
    access = [line for line in ("".join(output) + rest).splitlines() if '"GET /' in line]   # the access log
    assert any("token=[redacted]" in line for line in access) and not [l for l in access if token in l], access
    assert not Path(temp_root).exists()
    assert not processes_mentioning(temp_root)            # raylets, GCS, agents, workers: all gone
