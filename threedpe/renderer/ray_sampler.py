"""Camera rays: one ray per pixel centre of the neural-rendering grid, from 25-number EG3D camera labels."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_rays(cameras: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cameras [B,25] (cam2world 4×4 + normalised intrinsics 3×3) → (origins, unit directions), each [B,R²,3].

    Ray order is row-major over the image (row i, column j); pixel centres at ((j+0.5)/R, (i+0.5)/R).
    The arithmetic follows EG3D's RaySampler step by step (lift with skew, rotate the point, subtract the
    origin, normalise) so the directions match it to the last bit, not only mathematically.
    """
    cameras = cameras.to(torch.float32)
    # Under CUDA autocast the bmm below would run in fp16 and bend every ray by ~1e-3 rad (about a texel).
    with torch.autocast(device_type=cameras.device.type, enabled=False):
        return _sample_rays_fp32(cameras, resolution)


def _sample_rays_fp32(cameras: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    B, device = cameras.shape[0], cameras.device
    cam2world = cameras[:, :16].reshape(B, 4, 4)
    K = cameras[:, 16:25].reshape(B, 3, 3)
    fx, fy, cx, cy, sk = (K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None], K[:, 0, 1, None])

    steps = torch.arange(resolution, dtype=torch.float32, device=device) * (1.0 / resolution) + (0.5 / resolution)
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    x_cam = cols.reshape(1, -1).expand(B, -1)
    y_cam = rows.reshape(1, -1).expand(B, -1)
    z_cam = torch.ones_like(x_cam)
    x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx * z_cam
    y_lift = (y_cam - cy) / fy * z_cam
    cam_points = torch.stack((x_lift, y_lift, z_cam, torch.ones_like(z_cam)), dim=1)        # [B,4,M]
    world_points = torch.bmm(cam2world, cam_points).transpose(1, 2)[..., :3]
    origins = cam2world[:, None, :3, 3]
    directions = F.normalize(world_points - origins, dim=2)
    return origins.expand(-1, directions.shape[1], -1), directions
