"""Fast adaptation (paper §3.3, §4.3): teach the network a new style from ~10 (input, edited target) pairs.

Only E_p and E_t's LayerNorms are optimised (AdamW), with the training objective of `training.losses`.
The teacher of L3D is the frozen starting network run on each target with the target itself as the
prompt — or a Live3D-LT checkpoint (no prompt) when the user has one. The encoder runs in eval mode
(no dropout), so E_low and E_high, which neither depend on the prompt nor are trained, are computed
once per pair, as are the teacher's triplanes and the targets' perceptual features: a step costs the
prompt encoder, the cross-attention, E_t and the renders.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.packets import CROP_SIZE
from threedpe.adapter import TRIPLANE_NORMS, Adapter
from threedpe.model import ThreeDPE
from threedpe.renderer import RenderOptions
from training.data import Sample, image_batch, prompt_batch
from training.losses import LossWeights, Objective
from training.perceptual import MAE_LAYERS, build_perceptual
from training.student import Student, make_student


@dataclass(frozen=True)
class AdaptConfig:
    """How long and how to adapt. Defaults: the official model settings (512² crops, 128² rays, 48+48
    samples, superresolution); `resolution` and `render` give reduced configurations."""

    steps: int | None = None            # stop after this many steps ...
    minutes: float | None = 5.0         # ... or after this long (whichever comes first)
    lr: float = 1e-4                    # E_p (or its LoRA factors)
    norm_lr: float | None = None        # E_t's LayerNorms (default 10 × lr: 8k well-conditioned parameters)
    warmup_steps: int = 5               # learning rates: linear warm-up, then a cosine to 0 over the budget
    batch: int = 2
    lora_rank: int | None = None
    lora_alpha: float | None = None
    resolution: int = CROP_SIZE         # encoder input side
    render: RenderOptions = field(default_factory=RenderOptions)
    views: int = 1                      # random cameras per sample for L3D
    weights: LossWeights = field(default_factory=LossWeights)
    perceptual_layers: tuple[int, ...] = MAE_LAYERS
    perceptual_weights: str | None = None
    lpips_heads: str | None = None
    seed: int = 0

    def validated(self) -> "AdaptConfig":
        if self.steps is None and self.minutes is None:
            raise ValueError("give a number of steps or minutes")
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and not self.minutes > 0):
            raise ValueError("steps must be at least 1 and minutes above 0")
        if not self.lr > 0 or (self.norm_lr is not None and not self.norm_lr > 0) or self.batch < 1:
            raise ValueError("learning rates must be above 0 and batch at least 1")
        if self.warmup_steps < 0:
            raise ValueError("warm-up steps must not be negative")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError("the LoRA rank must be at least 1")
        if not 64 <= self.resolution <= CROP_SIZE or self.resolution % 32:
            raise ValueError(f"resolution must be a multiple of 32 within 64..{CROP_SIZE}")
        return self


@dataclass
class AdaptResult:
    student: Student
    adapter: Adapter
    history: list[dict]                 # one record per step: step, loss, l2d, l3d, seconds
    setup_seconds: float


@dataclass
class _PairTensors:
    """What a step needs of every pair, computed once (on the model's device)."""

    high: torch.Tensor
    low: torch.Tensor
    teacher: torch.Tensor
    cameras: torch.Tensor
    targets: torch.Tensor
    target_features: dict[str, list[torch.Tensor]]


def teacher_tokens(teacher: ThreeDPE, targets: list[np.ndarray]) -> torch.Tensor | None:
    """The teacher's prompt: each target for itself; None for Live3D-LT, which has no prompt encoder."""
    if not teacher.prompt_trained:
        return None
    return teacher.encode_prompt(prompt_batch(targets))


@torch.no_grad()
def _prepare(base: ThreeDPE, teacher: ThreeDPE, samples: list[Sample], config: AdaptConfig,
             objective: Objective, progress: bool) -> _PairTensors:
    device = base.device
    highs, lows, planes = [], [], []
    for sample in _progress(samples, "prepare", "pair", progress):
        high, low = base.encoder.image_features(image_batch([sample.input], config.resolution).to(device))
        highs.append(high)
        lows.append(low)
        planes.append(teacher.encode(image_batch([sample.target], config.resolution),
                                     teacher_tokens(teacher, [sample.target])))
    targets = image_batch([s.target for s in samples], CROP_SIZE).to(device)
    cameras = torch.from_numpy(np.stack([s.camera for s in samples])).to(device, torch.float32)
    return _PairTensors(torch.cat(highs), torch.cat(lows), torch.cat(planes), cameras, targets,
                        objective.target_features(targets))


def adapt(base: ThreeDPE, samples: list[Sample], reference: np.ndarray, config: AdaptConfig,
          teacher: ThreeDPE | None = None, meta: dict[str, str] | None = None,
          on_step: Callable[[dict], None] | None = None, progress: bool = True) -> AdaptResult:
    """Adapt `base` to the style of the pairs; each pair's prompt is its own reference, else `reference`
    (which the adapter keeps as its style image). The base model is not changed."""
    config = config.validated()
    if not samples:
        raise ValueError("adaptation needs at least one pair")
    start = time.perf_counter()
    teacher = teacher or base
    perceptual = build_perceptual(base.encoder.Ref_encoder.mae_encoder, config.perceptual_weights,
                                  config.lpips_heads, config.perceptual_layers).to(base.device)
    objective = Objective(base.renderer, perceptual, config.render, config.weights, config.views)
    pairs = _prepare(base, teacher, samples, config, objective, progress)
    student = make_student(base, config.lora_rank, config.lora_alpha, config.seed)
    norms = [p for k, p in student.trainable.items() if k in TRIPLANE_NORMS]
    others = [p for k, p in student.trainable.items() if k not in TRIPLANE_NORMS]
    optimizer = torch.optim.AdamW([{"params": others, "lr": config.lr},
                                   {"params": norms, "lr": config.norm_lr or 10 * config.lr}], weight_decay=0.0,
                                  fused=True)              # one pass over E_p's 86 M parameters, not six
    peaks = [group["lr"] for group in optimizer.param_groups]
    prompts = [s.prompt if s.prompt is not None else reference for s in samples]
    unique = list({id(p): p for p in prompts}.values())
    prompt_tensors = prompt_batch(unique).to(base.device)
    prompt_index = torch.tensor([next(i for i, u in enumerate(unique) if u is p) for p in prompts], device=base.device)
    generator = torch.Generator().manual_seed(config.seed)
    order = _batches(len(samples), min(config.batch, len(samples)), generator)
    setup = time.perf_counter() - start

    history: list[dict] = []
    budget = config.minutes * 60.0 if config.minutes is not None else float("inf")
    bar = _progress(None, "adapt", "step", progress, total=config.steps)
    loop_start = time.perf_counter()
    while (config.steps is None or len(history) < config.steps) and time.perf_counter() - loop_start < budget:
        index = next(order).to(base.device)
        encoder = student.model.encoder
        used, inverse = prompt_index[index].unique(return_inverse=True)
        tokens = encoder.encode_prompt(prompt_tensors[used])[inverse]
        planes = encoder.triplane_from_features(pairs.high[index], pairs.low[index], tokens)
        features = {k: [f[index] for f in v] for k, v in pairs.target_features.items()}
        losses = objective(planes, pairs.teacher[index], pairs.cameras[index], pairs.targets[index], features,
                           generator)
        done = max(len(history) / config.steps if config.steps else 0.0, (time.perf_counter() - loop_start) / budget)
        for group, peak in zip(optimizer.param_groups, peaks):
            group["lr"] = peak * lr_factor(len(history), done, config.warmup_steps)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        record = {"step": len(history) + 1, **{k: float(v.detach()) for k, v in losses.items()},
                  "seconds": round(time.perf_counter() - loop_start, 3)}
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if on_step is not None:
            on_step(record)
    bar.close()
    info = {**(meta or {}), "steps": len(history), "lr": config.lr, "resolution": config.resolution,
            "final_loss": history[-1]["loss"] if history else float("nan"),
            "teacher": "base weights on the target as its own prompt" if teacher is base else teacher.source,
            "is_random": base.is_random}
    adapter = student.adapter(reference, info)                    # `Adapter.save` writes the values as text
    return AdaptResult(student, adapter, history, setup)


def lr_factor(step: int, done: float, warmup: int) -> float:
    """A linear warm-up over the first `warmup` steps (Adam's first updates are full-size whatever the
    gradient: they would throw E_p off), then a cosine from 1 to 0 over the budget (`done`: the fraction of
    the steps or of the time spent, whichever is larger), so the adapter ends annealed."""
    return min(1.0, (step + 1) / (warmup + 1)) * 0.5 * (1.0 + math.cos(math.pi * min(max(done, 0.0), 1.0)))


class _Quiet:
    """What `_progress` gives without a progress bar: the same calls, doing nothing."""

    def __init__(self, items=None):
        self.items = items or []

    def __iter__(self):
        return iter(self.items)

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(items, desc: str, unit: str, enabled: bool, total: int | None = None):
    """A tqdm bar when wanted (tqdm is imported only then: the GPU machines have none)."""
    if not enabled:
        return _Quiet(items)
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total)


def _batches(n: int, batch: int, generator: torch.Generator):
    """Endless batches of pair indices: a fresh permutation per pass, every pair once per pass."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n - batch + 1, batch):
            yield perm[s:s + batch]


@torch.no_grad()
def adapted_output(student: Student, sample: Sample, prompt: np.ndarray, camera: torch.Tensor,
                   render: RenderOptions) -> torch.Tensor:
    """The in-memory adapted model's edit of `sample` seen from `camera`, as the engine computes it (the
    superresolved image, or the raw render when `render` has no superresolution)."""
    model = student.model
    tokens = model.encode_prompt(prompt_batch([prompt]))
    out = model.render(model.encode(image_batch([sample.input], CROP_SIZE), tokens), camera, render)
    return out.get("image", out["image_raw"])
