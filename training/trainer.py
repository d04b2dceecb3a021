"""The distillation trainer (paper §3.2–3.3, the released recipe of spec §4), data-parallel done right.

The student starts from the base weights (officially Live3D-LT, whose prompt encoder is untrained) and
trains E_t (`Final_encoder`) and the prompt encoder with its cross-attention (`Ref_encoder`); E_low,
E_high and the renderer stay frozen and shared. The teacher is the frozen base run on the pseudo-label
(Live3D-LT without a prompt, as officially; other weights with the target as their own prompt). Losses:
`training.losses` (L2D + L3D). Under `torchrun` every rank trains on its own shard and DDP all-reduces
the gradients: the loss is computed inside `DistillationStep.forward`, which is called through the DDP
wrapper, because DDP arms its gradient all-reduce in its own forward. The official trainer calls the
wrapped module's inner modules directly, so its ranks never synchronise (spec §4.4); `sync_gradients=False`
reproduces that for comparison. Ranks compare parameter digests at every checkpoint.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from threedpe.adapter import tensors_digest, weights_fingerprint
from threedpe.model import ThreeDPE
from threedpe.renderer import RenderOptions
from training.checkpoints import Base, checkpoint_dict, read_resume, save_atomic
from training.data import resize
from training.losses import LossWeights, Objective
from training.perceptual import MAE_LAYERS, build_perceptual
from training.plot import write_loss_plot
from training.student import trainable_copy

TRAINABLE = ("Final_encoder.", "Ref_encoder.")


@dataclass(frozen=True)
class TrainConfig:
    """The official recipe's values by default (lr 1e-4, AdamW weight decay 0.01, batch 2 per GPU)."""

    steps: int = 60000
    batch: int = 2                      # per rank
    lr: float = 1e-4
    weight_decay: float = 0.01
    amp: bool = False                   # CUDA float16 autocast + gradient scaling
    resolution: int = CROP_SIZE
    render: RenderOptions = field(default_factory=RenderOptions)
    views: int = 1
    weights: LossWeights = field(default_factory=LossWeights)
    perceptual_layers: tuple[int, ...] = MAE_LAYERS
    perceptual_weights: str | None = None
    lpips_heads: str | None = None
    checkpoint_every: int = 2000
    seed: int = 42
    workers: int = 0
    sync_gradients: bool = True         # False: the official trainer's bypass of DDP (ranks drift apart)

    def validated(self) -> "TrainConfig":
        if self.steps < 1 or self.batch < 1 or self.checkpoint_every < 1 or self.workers < 0:
            raise UserError("steps, batch and checkpoint interval must be at least 1, workers at least 0")
        if not self.lr > 0 or self.weight_decay < 0:
            raise UserError("lr must be above 0 and weight decay at least 0")
        if not 64 <= self.resolution <= CROP_SIZE or self.resolution % 32:
            raise UserError(f"resolution must be a multiple of 32 within 64..{CROP_SIZE}")
        return self


class DistillationStep(nn.Module):
    """What DDP wraps: prompt encoder + encoder (trainable parts inside) → triplane → losses.

    The objective (frozen renderer and perceptual network) is a plain attribute, not a submodule."""

    def __init__(self, student: ThreeDPE, objective: Objective, generator: torch.Generator | None = None):
        super().__init__()
        self.encoder = student.encoder
        self.objective = objective
        self.generator = generator

    def forward(self, image, prompt, target, camera, teacher_planes):
        planes = self.encoder(image, self.encoder.encode_prompt(prompt))
        losses = self.objective(planes, teacher_planes, camera, target, generator=self.generator)
        return losses["loss"], losses["l2d"], losses["l3d"]


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) — from torchrun's environment when launched by it (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = device.startswith("cuda")
    if world > 1 and not dist.is_initialized():
        if on_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if on_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, torch.device(f"cuda:{local}" if on_cuda and world > 1 else device)


def replicas_in_sync(params: dict[str, torch.Tensor]) -> bool:
    """Whether every rank holds bit-identical trainable parameters (digests compared across ranks)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return True
    gathered: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, tensors_digest(params.items()))
    return len(set(gathered)) == 1


def make_trainee(model: ThreeDPE) -> tuple[ThreeDPE, dict[str, nn.Parameter]]:
    """The base with E_t and Ref_encoder copied and trainable; all else shared and frozen."""
    student, trainable = trainable_copy(model, [k for k in model.encoder.state_dict() if k.startswith(TRAINABLE)])
    student.encoder.train()             # as the official trainer: the (frozen) ASPP dropout is active
    return student, trainable


def train(config: TrainConfig, base: Base, dataset: torch.utils.data.Dataset, out_dir: str | os.PathLike,
          teacher: ThreeDPE | None = None, resume: str | None = None, progress: bool = True) -> dict:
    """Run the trainer on this rank; rank 0 writes `train_log.jsonl`, `iteration_<step>.pt` and `loss.png`
    to `out_dir`. Returns a summary (last step, loss, whether the ranks were in sync)."""
    config = config.validated()
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if len(dataset) < config.batch * world:
        raise UserError(f"{len(dataset)} samples cannot fill a batch of {config.batch} on {world} rank(s)")
    torch.manual_seed(config.seed + rank)                     # dropout masks: reproducible, different per rank
    model = base.model
    device = model.device
    teacher = teacher or model
    fingerprint = weights_fingerprint(model)
    student, trainable = make_trainee(model)
    perceptual = build_perceptual(model.encoder.Ref_encoder.mae_encoder, config.perceptual_weights,
                                  config.lpips_heads, config.perceptual_layers).to(device)
    objective = Objective(model.renderer, perceptual, config.render, config.weights, config.views)
    step_module = DistillationStep(student, objective, torch.Generator().manual_seed(config.seed + rank))
    run = step_module
    if world > 1:
        frozen = [n for n, p in step_module.named_parameters() if not p.requires_grad]
        frozen += [n for n, _ in step_module.named_buffers()]
        # every rank loaded the same frozen weights: DDP need not broadcast or watch them
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(step_module, frozen)
        wrapped = nn.parallel.DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None)
        run = wrapped if config.sync_gradients else wrapped.module
    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp)
    step = 0
    if resume:
        state = read_resume(resume, trainable, fingerprint)
        optimizer.load_state_dict(state["encoder_optimizer"])
        step = int(state["step"])
    opts = {**{k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool, type(None)))},
            "world_size": world, "base": model.source, "base_fingerprint": fingerprint, "is_random": model.is_random,
            "teacher": "base weights" if teacher is model else teacher.source}

    sampler = (torch.utils.data.DistributedSampler(dataset, world, rank, shuffle=True, seed=config.seed, drop_last=True)
               if world > 1 else torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch, sampler=sampler, drop_last=True,
                                         num_workers=config.workers)
    out = Path(out_dir)
    log_path = out / "train_log.jsonl"
    history = [r for r in _read_lines(log_path) if r["step"] <= step] if resume else []
    if rank == 0:                       # a resumed run continues the log from its checkpoint's step
        out.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    in_sync = True
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=rank != 0 or not progress)
    start = time.perf_counter()
    epoch = step // max(len(loader), 1)
    while step < config.steps:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, torch.float16, enabled=config.amp):
                teacher_planes = teacher.encode(resize(batch["target"], config.resolution),
                                                teacher.encode_prompt(batch["target_prompt"])
                                                if teacher.prompt_trained else None)
                loss, l2d, l3d = run(batch["image"], batch["prompt"], batch["target"], batch["camera"], teacher_planes)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            record = {"step": step, "loss": float(loss.detach()), "l2d": float(l2d.detach()),
                      "l3d": float(l3d.detach()), "seconds": round(time.perf_counter() - start, 3)}
            if step % config.checkpoint_every == 0 or step == config.steps:
                in_sync = replicas_in_sync(trainable)
                record["ranks_in_sync"] = in_sync
                if rank == 0:
                    path = save_atomic(checkpoint_dict(student, base.unused, step, optimizer, opts),
                                       out / f"iteration_{step}.pt")
                    record["checkpoint"] = str(path)
            if rank == 0:
                history.append(record)
                _append_line(log_path, record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if "checkpoint" in record:
                    write_loss_plot(history, out / "loss.png", f"live3dpe train ({world} rank(s))")
            if step >= config.steps:
                break
        epoch += 1
    bar.close()
    if rank == 0 and not in_sync and config.sync_gradients:
        print("WARNING: the ranks' parameters differ although gradients were synchronised")
    return {"step": step, "loss": history[-1]["loss"] if history else None, "ranks_in_sync": in_sync}


def _append_line(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _read_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
