"""`--cluster auto|ADDRESS|local:N`: parse it, then join that Ray cluster (or start a local one) as the
front's driver; leaving the context disconnects and stops what it started."""
from __future__ import annotations

import contextlib
import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from pipeline.errors import UserError

if TYPE_CHECKING:
    from cluster.local import LocalCluster

NAMESPACE = "live3dpe"
MAX_LOCAL_NODES = 8
_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"(?P<host>[\w.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class ClusterSpec:
    """Where the sessions run: "auto" (the cluster `ray start` made on this machine), a GCS address
    host:port, or `local_nodes` simulated nodes started here."""

    address: str | None = None
    local_nodes: int = 0

    @property
    def local(self) -> bool:
        return self.local_nodes > 0


def parse_cluster_spec(text: str) -> ClusterSpec:
    text = text.strip()
    if text == "auto":
        return ClusterSpec(address="auto")
    if match := _LOCAL.fullmatch(text):
        nodes = int(match.group(1))
        if not 1 <= nodes <= MAX_LOCAL_NODES:
            raise UserError(f"--cluster local:N needs 1 ≤ N ≤ {MAX_LOCAL_NODES}, not {nodes}")
        return ClusterSpec(local_nodes=nodes)
    if text.startswith("ray://"):
        raise UserError("--cluster takes the cluster's GCS address (HEAD:6379), not a Ray Client ray:// URL: "
                        "run the front on a machine of the cluster")
    if (match := _ADDRESS.fullmatch(text)) and 1 <= int(match.group("port")) <= 65535:
        return ClusterSpec(address=text)
    raise UserError(f"--cluster must be auto, HOST:PORT (the Ray head's GCS address) or local:N, not {text!r}")


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds with a clear message (ray.init would retry an unreachable address for minutes)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start its head with "
                        "`ray start --head` there, or check the address and the firewall") from None


@contextlib.contextmanager
def ray_connection(spec: ClusterSpec, cpus_per_node: int = 1,
                   gpus_per_node: int = 0) -> Iterator["LocalCluster | None"]:
    """Connect this process to the cluster as a driver; yields the LocalCluster for local:N (else None), whose
    nodes each declare `cpus_per_node`/`gpus_per_node` (logical: they share this machine)."""
    import ray

    from cluster.local import LocalCluster

    local = LocalCluster(spec.local_nodes, cpus_per_node, gpus_per_node) if spec.local else None
    try:
        if local is not None:
            address = local.address
        elif spec.address == "auto":
            address = "auto"
        else:
            check_reachable(spec.address)
            address = spec.address
        try:
            # The replicas' own logs stay in Ray's log folders (their errors reach us through Serve's status)
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                     configure_logging=False, log_to_driver=False)
        except ConnectionError as exc:
            raise UserError(f"cannot join the Ray cluster ({exc}); start one with `ray start --head`, "
                            "or use --cluster local:N") from None
        yield local
    finally:
        ray.shutdown()
        if local is not None:
            local.shutdown()
