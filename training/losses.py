"""The training objective (paper Eq. 7): L = L2D + L3D.

    L2D = ℓ_I(Î(c_ref), I_target)                                   the student's render at the input's
                                                                     camera against the edited target
    L3D = ℓ_T(T̂, T) + mean_{c ∈ C} [ℓ_I(Î(c), I_T(c)) + ℓ_D(D̂(c), D_T(c))]
                                                                     against the frozen 3D teacher's
                                                                     triplane T, renders I_T and depths D_T
    ℓ_I = L2 + 2·perceptual (on the 512² image when superresolved, and on the raw neural render),
    ℓ_T = ℓ_D = L1.

C is `views` random cameras per sample from the official multi-view distribution (yaw ±49°, pitch ±26°,
"fov" 18.837 ± 2.4, principal point 0.5 ± 0.1; spec §4.3); the official trainer draws one per batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from threedpe.camera import DEFAULT_FOV_DEG, eural_to_camera_label
from threedpe.renderer import RenderOptions
from training.data import resize

YAW_RANGE, PITCH_RANGE = math.radians(49.0), math.radians(26.0)
FOV_RANGE, PRINCIPAL_RANGE = 2.4, 0.1


@dataclass(frozen=True)
class LossWeights:
    l2: float = 1.0                 # inside ℓ_I
    perceptual: float = 2.0         # inside ℓ_I
    triplane: float = 1.0           # ℓ_T
    depth: float = 1.0              # ℓ_D


def random_cameras(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[n,25] EG3D labels drawn like the official trainer's multi-view cameras."""
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64) * 2 - 1
    return torch.stack([torch.from_numpy(eural_to_camera_label(
        float(yaw) * YAW_RANGE, float(pitch) * PITCH_RANGE, DEFAULT_FOV_DEG + float(fov) * FOV_RANGE,
        0.5 + float(cx) * PRINCIPAL_RANGE, 0.5 + float(cy) * PRINCIPAL_RANGE)) for yaw, pitch, fov, cx, cy in u])


def _images(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The images a render gives: the 512² one when superresolved, and always the raw neural render."""
    return {k: out[k] for k in ("image", "image_raw") if k in out}


class Objective:
    """Computes the losses for a batch; holds the frozen renderer and perceptual network (never trained,
    and deliberately not an nn.Module, so a DDP-wrapped module that keeps one does not own them)."""

    def __init__(self, renderer: nn.Module, perceptual: nn.Module, render: RenderOptions | None = None,
                 weights: LossWeights = LossWeights(), views: int = 1):
        if views < 0:
            raise ValueError("views must be 0 or more")
        self.renderer = renderer
        self.perceptual = perceptual
        self.render = render or RenderOptions()
        self.weights = weights
        self.views = views

    def image_loss(self, a: torch.Tensor, b: torch.Tensor, b_features=None) -> torch.Tensor:
        """ℓ_I per sample: L2 + weight·perceptual."""
        l2 = (a.float() - b.float()).square().flatten(1).mean(1)
        perceptual = self.perceptual(a.float(), b.float() if b_features is None else b_features)
        return self.weights.l2 * l2 + self.weights.perceptual * perceptual

    def target_features(self, targets: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Perceptual features of the targets at each image size the render gives (cache them for fixed
        targets): {"image": …, "image_raw": …}."""
        sides = {"image_raw": self.render.neural_resolution}
        if self.render.superresolution:
            sides["image"] = targets.shape[-1]
        with torch.no_grad():
            return {k: self.perceptual.features(resize(targets, side)) for k, side in sides.items()}

    def __call__(self, planes: torch.Tensor, teacher_planes: torch.Tensor, cameras: torch.Tensor,
                 targets: torch.Tensor, target_features: dict[str, list[torch.Tensor]] | None = None,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """planes (student, with grad) and teacher_planes [B,96,H,W], cameras [B,25] (the inputs'), targets
        [B,3,512,512] in [-1,1] → {"loss", "l2d", "l3d"}, each a scalar (batch mean)."""
        device = planes.device
        teacher_planes = teacher_planes.detach()                # the teacher is frozen: nothing flows back
        out = self.renderer(planes, cameras.to(device), self.render)
        l2d = sum(self.image_loss(img, resize(targets.to(device), img.shape[-1]),
                                  target_features.get(k) if target_features else None)
                  for k, img in _images(out).items())
        l3d = self.weights.triplane * (planes.float() - teacher_planes.float()).abs().flatten(1).mean(1)
        for _ in range(self.views):
            cams = random_cameras(planes.shape[0], generator).to(device, torch.float32)
            student = self.renderer(planes, cams, self.render)
            with torch.no_grad():
                teacher = self.renderer(teacher_planes, cams, self.render)
            views = sum(self.image_loss(student[k], teacher[k]) for k in _images(student))
            depth = (student["image_depth"].float() - teacher["image_depth"].float()).abs().flatten(1).mean(1)
            l3d = l3d + (views + self.weights.depth * depth) / self.views
        return {"loss": (l2d + l3d).mean(), "l2d": l2d.mean(), "l3d": l3d.mean()}
