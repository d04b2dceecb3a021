"""Deploying `SessionHost` on Ray Serve: what each replica asks Ray for (one GPU for 3dpe, one CPU per peer
for classic), how many replicas (fixed, or Serve autoscaling on live sessions), and waiting until they run."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from tqdm import tqdm

from cluster.host import HostConfig, SessionHost
from pipeline.config import EngineConfig
from pipeline.errors import UserError

APP_NAME = "live3dpe"
DEPLOYMENT_NAME = "SessionHost"
_RANGE = re.compile(r"(\d+)-(\d+)")


@dataclass(frozen=True)
class ReplicaPlan:
    """`replicas` fixed, or Serve autoscaling between `replicas` and `max_replicas`; each replica holds
    up to `max_peers` sessions and asks Ray for `num_cpus`/`num_gpus`."""

    replicas: int
    max_peers: int
    num_cpus: int
    num_gpus: int = 0
    max_replicas: int | None = None

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None


def replica_resources(engine: EngineConfig, max_peers: int) -> tuple[int, int]:
    """(CPUs, GPUs) one replica asks Ray for: `3dpe` gets a whole GPU (its peers share the model on it) unless
    it is told to run on the CPU; a `classic` peer keeps about one core busy at 30 fps."""
    if engine.name == "3dpe" and engine.device != "cpu":
        return 1, 1
    return max_peers, 0


def plan_replicas(text: str, engine: EngineConfig, max_peers: int,
                  cluster_resources: dict[str, float]) -> ReplicaPlan:
    """`--replicas auto|N|MIN-MAX`; auto = as many as the cluster's CPUs/GPUs hold right now."""
    cpus, gpus = replica_resources(engine, max_peers)
    if text == "auto":
        fits = int(cluster_resources.get("GPU", 0) // gpus) if gpus else int(cluster_resources.get("CPU", 0) // cpus)
        if fits < 1:
            need = "a GPU (the 3dpe engine takes one per replica)" if gpus else \
                f"{cpus:g} CPUs (one per peer: --max-peers {max_peers})"
            raise UserError(f"no node of the cluster has room for one session host: each needs {need}")
        return ReplicaPlan(fits, max_peers, cpus, gpus)
    if text.isdigit() and int(text) >= 1:
        return ReplicaPlan(int(text), max_peers, cpus, gpus)
    if (match := _RANGE.fullmatch(text)) and 1 <= int(match.group(1)) <= int(match.group(2)):
        return ReplicaPlan(int(match.group(1)), max_peers, cpus, gpus, max_replicas=int(match.group(2)))
    raise UserError(f"--replicas must be auto, a count N ≥ 1 or a range MIN-MAX (autoscaling), not {text!r}")


def deployment_options(plan: ReplicaPlan) -> dict:
    options = {
        "max_ongoing_requests": plan.max_peers,       # a session is one ongoing request: the replica's peer limit
        "max_queued_requests": -1,                    # admission (503 when full) is the front's job
        "ray_actor_options": {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus},
        "graceful_shutdown_timeout_s": 5.0,
        "health_check_period_s": 5.0,
    }
    if plan.autoscaling:
        options["autoscaling_config"] = {
            "min_replicas": plan.replicas, "max_replicas": plan.max_replicas,
            "target_ongoing_requests": max(1.0, 0.75 * plan.max_peers),   # add a replica before the last is full
            "upscale_delay_s": 5.0,
            # removing a replica ends its sessions (their pages reconnect elsewhere): be slow to do it
            "downscale_delay_s": 600.0,
        }
    else:
        options["num_replicas"] = plan.replicas
    return options


def deploy(config: HostConfig, plan: ReplicaPlan, timeout_s: float = 300.0):
    """Start Serve (no HTTP proxies: the front is the only ingress), deploy the session hosts and wait
    until `plan.replicas` run; returns the deployment's handle."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    quiet = {"log_level": "WARNING", "enable_access_log": False}      # no line per session start or end
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(proxy_location="Disabled", logging_config=quiet)
    app = serve.deployment(SessionHost, name=DEPLOYMENT_NAME).options(**deployment_options(plan)).bind(config)
    handle = serve.run_many([serve.api.RunTarget(app, name=APP_NAME, route_prefix=None, logging_config=quiet)],
                            wait_for_applications_running=False)[0]
    deadline = time.monotonic() + timeout_s
    with tqdm(total=plan.replicas, desc="starting session hosts", unit="replica") as progress:
        while True:
            app_status, deployment_status = _statuses()
            running = deployment_status.replica_states.get("RUNNING", 0) if deployment_status else 0
            progress.update(max(0, min(running, plan.replicas) - progress.n))
            if app_status and app_status.status == ApplicationStatus.RUNNING and running >= plan.replicas:
                return handle
            why = deployment_status.message if deployment_status and deployment_status.message else \
                app_status.message if app_status else ""
            if app_status and app_status.status == ApplicationStatus.DEPLOY_FAILED:
                raise UserError(f"the session hosts failed to start: {telling_line(why)}")
            if time.monotonic() > deadline:
                raise UserError(f"only {running} of {plan.replicas} session hosts started within {timeout_s:.0f} s: "
                                "the cluster lacks the CPUs/GPUs they ask for, or a node cannot load the engine "
                                f"({telling_line(why)})")
            time.sleep(0.5)


def _statuses():
    """(application status, session host deployment status) from Serve, None where not deployed yet."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    return app, (app.deployments.get(DEPLOYMENT_NAME) if app else None)


def running_replicas() -> int:
    """Replicas of the session host Serve reports RUNNING now (0 before deploy)."""
    _, deployment = _statuses()
    return deployment.replica_states.get("RUNNING", 0) if deployment else 0


def telling_line(message: str) -> str:
    """The most telling line of a Serve error: the replica's own exception, not the traceback around it
    (a UserError's message without its class name)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    line = errors[-1] if errors else lines[0] if lines else "no details"
    return line.removeprefix("pipeline.errors.UserError: ")[:500]
