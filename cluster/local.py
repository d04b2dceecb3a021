"""`--cluster local:N`: N simulated Ray nodes on this machine, for development, tests and benchmarks.

Each node is its own raylet (Ray's `cluster_utils.Cluster`), so one can be stopped without touching the
others, as a lost machine would be. Everything stays on loopback, Ray's files live in a private temp
folder, and the cluster uses token authentication with a per-process token kept in the environment:
nothing is written under the user's home and no other user on the machine can submit work to it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile

LOOPBACK = "127.0.0.1"
OBJECT_STORE_BYTES = 100 * 1024 * 1024     # per node; sessions pass only small messages through it


def loopback_environment(temp_root: str) -> dict[str, str]:
    """Environment that keeps a local Ray cluster (and every process it starts) on this machine only.
    Token auth with a token that lives in the environment, one per process (Ray caches it): without
    RAY_AUTH_TOKEN Ray would write one to ~/.ray/auth_token. An explicit RAY_AUTH_MODE is respected."""
    return {
        # Ray's "no multi-machine cluster" switch: every address it derives becomes 127.0.0.1
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_TMPDIR": temp_root,                   # sessions, sockets, logs and the address file (not /tmp/ray)
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
        "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32),
    }


def apply_to_this_process() -> None:
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER and RAY_AUTH_MODE once, when it is first imported, and this
    process may have imported it before the environment above was set: bring its copies up to date, or the
    driver would look for 127.0.0.1 nodes at the machine's network address, or connect without the token."""
    from ray._private import ray_constants
    from ray._private.authentication.authentication_token_setup import _enable_token_auth
    from ray._raylet import AuthenticationTokenLoader

    ray_constants.ENABLE_RAY_CLUSTER = False
    if os.environ.get("RAY_AUTH_MODE") == "token":
        _enable_token_auth()
        AuthenticationTokenLoader.instance().reset_cache()


class LocalCluster:
    """A head node that carries no sessions (Serve's controller and the front's driver) plus `nodes` session
    nodes of `cpus_per_node` logical CPUs (and `gpus_per_node` GPUs) each. Stop it with `shutdown()`."""

    def __init__(self, nodes: int, cpus_per_node: int, gpus_per_node: int = 0):
        from ray.cluster_utils import Cluster

        # short path: Ray's unix sockets live under it and socket paths are limited to 107 bytes
        self.temp_root = tempfile.mkdtemp(prefix="live3dpe-ray-", dir="/tmp")
        os.makedirs(os.path.join(self.temp_root, "ray"))
        os.environ.update(loopback_environment(self.temp_root))
        apply_to_this_process()
        node_args = {"node_ip_address": LOOPBACK, "include_dashboard": False,
                     "object_store_memory": OBJECT_STORE_BYTES}
        head_args = {**node_args, "num_cpus": 0, "temp_dir": os.path.join(self.temp_root, "ray"),
                     # no idle Python workers started ahead of need (each costs a process per logical CPU)
                     "_system_config": {"enable_worker_prestart": False, "prestart_worker_first_driver": False}}
        self._nodes: dict[str, object] = {}
        self._cluster = None
        try:
            self._cluster = Cluster(initialize_head=True, head_node_args=head_args)
            for _ in range(nodes):
                node = self._cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node, **node_args)
                self._nodes[node.node_id] = node
        except BaseException:
            self.shutdown()
            raise

    @property
    def address(self) -> str:
        return self._cluster.address

    @property
    def node_ids(self) -> list[str]:
        """The session nodes still running (Ray node ids, hex)."""
        return list(self._nodes)

    def remove_node(self, node_id: str) -> None:
        """Kill one session node's processes at once, as a machine that drops off the network would."""
        self._cluster.remove_node(self._nodes.pop(node_id), allow_graceful=False)

    def shutdown(self) -> None:
        """Stop every node and delete Ray's temp folder (disconnect the driver first: `ray.shutdown()`)."""
        try:
            if self._cluster is not None:
                self._cluster.shutdown()
        finally:
            shutil.rmtree(self.temp_root, ignore_errors=True)
