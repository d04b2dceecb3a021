"""The objective alone (tiny planes, 8² rays, a 1-block MAE for the perceptual term): L2D and L3D terms, the
teacher's renders take no gradient, the student's planes get one, and random cameras stay in the official
multi-view range."""
from __future__ import annotations

import math

import numpy as np
import torch

from threedpe.camera import camera_angles, orbit_label
from threedpe.encoder import MAEEncoder
from threedpe.renderer import RenderOptions, TriplaneRenderer
from training.losses import LossWeights, Objective, random_cameras
from training.perceptual import MAEPerceptual

RENDER = RenderOptions(neural_resolution=8, depth_resolution=4, depth_resolution_importance=4, superresolution=False)


def objective(views: int, weights: LossWeights = LossWeights()) -> Objective:
    torch.manual_seed(0)
    renderer = TriplaneRenderer().requires_grad_(False)
    return Objective(renderer, MAEPerceptual(MAEEncoder(depth=1), layers=(0,)), RENDER, weights, views)


def test_l3d_pulls_towards_the_teacher_and_only_the_student_gets_gradients():
    torch.manual_seed(1)
    planes = torch.randn(2, 96, 16, 16, requires_grad=True)
    teacher = torch.randn(2, 96, 16, 16, requires_grad=True)          # must not receive a gradient
    cameras = torch.from_numpy(np.stack([orbit_label(0), orbit_label(10)]))
    targets = torch.rand(2, 3, 512, 512) * 2 - 1
    losses = objective(views=2)(planes, teacher, cameras, targets, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "l2d", "l3d"} and torch.isclose(losses["loss"], losses["l2d"] + losses["l3d"])
    losses["loss"].backward()
    assert planes.grad.abs().sum() > 0
    assert teacher.grad is None or teacher.grad.abs().sum() == 0
    same = objective(views=2)(teacher.detach(), teacher.detach(), cameras, targets,
                              generator=torch.Generator().manual_seed(0))
    assert float(same["l3d"]) < 1e-5 < float(losses["l3d"].detach())    # a student equal to the teacher: L3D = 0


def test_triplane_term_is_l1_weighted():
    planes, teacher = torch.zeros(1, 96, 8, 8), torch.full((1, 96, 8, 8), 0.5)
    cameras = torch.from_numpy(orbit_label(0))[None]
    targets = torch.zeros(1, 3, 512, 512)
    a = objective(views=0, weights=LossWeights(triplane=1.0))(planes, teacher, cameras, targets)
    b = objective(views=0, weights=LossWeights(triplane=3.0))(planes, teacher, cameras, targets)
    assert math.isclose(float(a["l3d"]), 0.5, rel_tol=1e-6) and math.isclose(float(b["l3d"]), 1.5, rel_tol=1e-6)


def test_random_cameras_follow_the_official_multi_view_range():
    cams = random_cameras(64, torch.Generator().manual_seed(0)).numpy()
    angles = np.array([camera_angles(c) for c in cams])
    assert np.abs(angles[:, 0]).max() <= 49.5 and np.abs(angles[:, 1]).max() <= 26.5
    assert np.abs(angles[:, 0]).max() > 30                              # the range is used, not a point
    focal = cams[:, 16]
    assert 3.7 < focal.min() and focal.max() < 4.9
    assert np.all(np.abs(cams[:, [18, 21]] - 0.5) <= 0.1 + 1e-6)
