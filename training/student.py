"""The model being adapted: the base weights with E_p and E_t's LayerNorms trainable (or LoRA on E_p).

The student is `base.with_tensors(...)`: trainable tensors are fresh copies, everything else is the base
model's own tensors, shared and frozen — the base stays bit-identical and costs no second copy.
LoRA wraps each E_p block's qkv/proj/fc1/fc2 in `LoRALinear`, whose weight is merged in every forward
by `threedpe.adapter.lora_merge`, the same formula the engine applies to an adapter file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from threedpe.adapter import (PROMPT_ENCODER, Adapter, lora_merge, lora_weight_keys, tunable_keys,
                              weights_fingerprint)
from threedpe.model import ThreeDPE


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update (B starts at zero: the layer starts as the base)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device)
                                   .uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, lora_merge(self.base.weight, self.lora_A, self.lora_B, self.scale), self.base.bias)


@dataclass
class Student:
    """The adapted model and its trainable parameters (encoder keys; LoRA factors under '<weight key>.lora_A/B')."""

    model: ThreeDPE
    base: ThreeDPE
    trainable: dict[str, nn.Parameter]
    lora: dict[str, LoRALinear] = field(default_factory=dict)       # E_p weight key → its LoRA layer
    lora_rank: int | None = None

    def adapter(self, prompt: np.ndarray, meta: dict[str, Any]) -> Adapter:
        """The tuned tensors as an adapter for `self.base` (the style reference `prompt` goes with it)."""
        tensors = {k: p.detach().clone() for k, p in self.trainable.items() if not k.endswith((".lora_A", ".lora_B"))}
        lora = {k: (m.lora_A.detach().clone(), m.lora_B.detach().clone()) for k, m in self.lora.items()}
        scale = next(iter(self.lora.values())).scale if self.lora else 1.0
        meta = {**meta, "base_source": self.base.source, **({"lora_rank": self.lora_rank} if self.lora else {})}
        return Adapter(tensors, lora, scale, prompt, weights_fingerprint(self.base), meta)


def trainable_copy(base: ThreeDPE, keys: list[str]) -> tuple[ThreeDPE, dict[str, nn.Parameter]]:
    """`base` with the encoder tensors `keys` copied and trainable; every other tensor shared (and frozen)."""
    state = base.encoder.state_dict()
    model = base.with_tensors({k: state[k].clone() for k in keys})
    params = dict(model.encoder.named_parameters())
    return model, {k: params[k].requires_grad_(True) for k in keys}


def make_student(base: ThreeDPE, lora_rank: int | None = None, lora_alpha: float | None = None,
                 seed: int = 0) -> Student:
    """Full: E_p and E_t's LayerNorms are trained. LoRA (`lora_rank`): E_p stays frozen, rank-r factors on
    its block linears and E_t's LayerNorms are trained."""
    state = base.encoder.state_dict()
    keys = tunable_keys(state)
    if lora_rank is not None:
        if lora_rank < 1:
            raise ValueError("the LoRA rank must be at least 1")
        keys = [k for k in keys if not k.startswith(PROMPT_ENCODER)]
    model, trainable = trainable_copy(base, keys)
    student = Student(model, base, trainable, lora_rank=lora_rank)
    if lora_rank is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for key in lora_weight_keys(state):
                parent_name, _, child = key[:-len(".weight")].rpartition(".")
                parent = model.encoder.get_submodule(parent_name)
                layer = LoRALinear(getattr(parent, child), lora_rank, float(lora_alpha or lora_rank))
                setattr(parent, child, layer)
                student.lora[key] = layer
                trainable[key[:-len(".weight")] + ".lora_A"] = layer.lora_A
                trainable[key[:-len(".weight")] + ".lora_B"] = layer.lora_B
    for p in trainable.values():
        p.requires_grad_(True)
    return student
