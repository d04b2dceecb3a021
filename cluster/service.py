"""One cluster run: join (or start) the Ray cluster, deploy the session hosts, share uploads; then the front
app for it. Used by `live3dpe serve --cluster`, the tests and the benchmark."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from aiohttp import web

from cluster.connect import ClusterSpec, ray_connection
from cluster.deploy import ReplicaPlan, deploy, plan_replicas, replica_resources
from cluster.front import ClusterFront, create_front_app
from cluster.host import HostConfig
from cluster.local import LocalCluster
from webrtc.server import ServerConfig


@dataclass
class ClusterDeployment:
    """The deployed session hosts: Serve's handle, the replica plan, the prompt board, the local cluster (if any)."""

    handle: Any
    plan: ReplicaPlan
    board: Any
    local: LocalCluster | None


@contextlib.contextmanager
def deployed_cluster(spec: ClusterSpec, host: HostConfig, replicas: str = "auto",
                     deploy_timeout_s: float = 300.0) -> Iterator[ClusterDeployment]:
    """Session hosts running on the cluster `spec` names; torn down (Serve, then Ray) on exit. For local:N each
    simulated node gets exactly one replica's resources, so `replicas` auto means one per node."""
    import ray
    from ray import serve

    from cluster.prompts import start_board

    cpus, gpus = replica_resources(host.engine, host.max_peers)
    with ray_connection(spec, cpus_per_node=cpus, gpus_per_node=gpus) as local:
        plan = plan_replicas(replicas, host.engine, host.max_peers, ray.cluster_resources())
        try:
            handle = deploy(host, plan, deploy_timeout_s)
            yield ClusterDeployment(handle, plan, start_board(), local)
        finally:
            serve.shutdown()


def front_app(config: ServerConfig, deployment: ClusterDeployment, placement_timeout_s: float = 30.0) -> web.Application:
    """The front's aiohttp app for `deployment` (create it inside the event loop that will serve it)."""
    from cluster.prompts import FrontPromptStore

    front = ClusterFront(deployment.handle, deployment.plan, placement_timeout_s)
    prompts = FrontPromptStore(deployment.board, config.max_upload_bytes, config.max_prompts, config.max_prompt_storage)
    return create_front_app(config, front, prompts)


def front_config(host: HostConfig, token: str | None) -> ServerConfig:
    """The front's ServerConfig: the page's presets and settings; it never builds a pipeline itself."""
    return ServerConfig(make_pipeline=_no_pipeline_on_the_front, presets=list(host.presets), settings=host.settings,
                        token=token, max_peers=host.max_peers, ice_servers=host.ice_servers)


def _no_pipeline_on_the_front(controls, on_style_error):
    raise RuntimeError("the cluster front runs no pipelines: sessions run on the session hosts")
