"""Trainer checkpoints in the official key layout (`3dpe.pt`-style) and the base weights they start from.

A checkpoint is {"encoder_state_dict", "renderer_state_dict", "step", "encoder_optimizer", "opts",
"best_val_loss"} like the official trainer's, tensors and plain values only (loads with
`weights_only=True`, and as weights with `ThreeDPE.load`). The encoder dict includes the ResNet's
never-executed `layer3/4` tensors, carried over from the base file, so strict official loaders accept it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import UserError
from threedpe import checkpoint as ckpt
from threedpe.fill_rule import fill_by_rule
from threedpe.model import ThreeDPE, unused_encoder_keys


@dataclass
class Base:
    """The starting weights: the model and the unused encoder tensors its file carried."""

    model: ThreeDPE
    unused: dict[str, torch.Tensor]          # "encoder.layer3.*" / "encoder.layer4.*"


def load_base(weights: str | None, random_seed: int | None, device: str | torch.device,
              trust_pickle: bool = False) -> Base:
    """A 3dpe.pt, Live3D-LT checkpoint (the official trainer's start: its prompt encoder is untrained) or
    our own save; or random weights (tests only) when `random_seed` is given."""
    shapes = unused_encoder_keys()
    if random_seed is not None:
        return Base(ThreeDPE.random(random_seed, device), fill_by_rule("encoder_state_dict", shapes, random_seed))
    path = ckpt.resolve_weights(weights)
    contents = ckpt.split_checkpoint(ckpt.read_checkpoint(path, trust_pickle), path)
    unused = {k: contents.encoder[k].float() for k in shapes if k in contents.encoder}
    if len(unused) != len(shapes):                       # our saves drop them: they are never executed
        unused = {k: torch.zeros(s) for k, s in shapes.items()}
    return Base(ThreeDPE.from_contents(contents, str(path)).to(device), unused)


def checkpoint_dict(model: ThreeDPE, unused: dict[str, torch.Tensor], step: int, optimizer: torch.optim.Optimizer,
                    opts: dict) -> dict:
    encoder = {k: v.detach().cpu().clone() for k, v in model.encoder.state_dict().items()}
    encoder.update({k: v.cpu() for k, v in unused.items()})
    return {"encoder_state_dict": encoder,
            "renderer_state_dict": {k: v.detach().cpu().clone() for k, v in model.renderer.state_dict().items()},
            "step": int(step), "encoder_optimizer": optimizer.state_dict(), "opts": dict(opts), "best_val_loss": None}


def save_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """torch.save to a temp file, then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_resume(path: str | os.PathLike, trainable: dict[str, torch.nn.Parameter], base_fingerprint: str) -> dict:
    """Load a trainer checkpoint's trainable tensors into `trainable` (in place); returns the checkpoint
    (for its step and optimizer state). Refused when it was made from other base weights."""
    path = _existing(path, "--resume")
    obj = ckpt.read_checkpoint(path)
    opts = obj.get("opts") if isinstance(obj.get("opts"), dict) else {}
    if "encoder_optimizer" not in obj or not isinstance(obj.get("step"), int):
        raise UserError(f"--resume: {path} is not a live3dpe train checkpoint (no step/encoder_optimizer)")
    if opts.get("base_fingerprint") != base_fingerprint:
        raise UserError(f"--resume: {path} was trained from other base weights ({opts.get('base', '?')}); "
                        "pass the --weights it started from")
    encoder = obj.get("encoder_state_dict") or {}
    for key, param in trainable.items():
        value = encoder.get(key)
        if not torch.is_tensor(value) or value.shape != param.shape:
            raise UserError(f"--resume: {path} has no tensor '{key}' of shape {list(param.shape)}")
        with torch.no_grad():
            param.copy_(value)
    return obj


def load_mae_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """MAE ViT-B/16 encoder weights (the official `mae_pretrain_vit_base.pth`: {"model": state dict}; its
    decoder keys are ignored) as encoder replacements under `Ref_encoder.mae_encoder.`."""
    from threedpe.adapter import PROMPT_ENCODER
    from threedpe.encoder import MAEEncoder

    path = _existing(path, "--mae-weights")
    obj = ckpt.read_checkpoint(path)
    state = obj.get("model", obj)
    with torch.device("meta"):
        wanted = ckpt.shapes_of(MAEEncoder())
    out = {}
    for key, shape in wanted.items():
        value = state.get(key)
        if not torch.is_tensor(value) or tuple(value.shape) != tuple(shape):
            raise UserError(f"--mae-weights: {path} is not MAE ViT-B/16 encoder weights (no '{key}' of shape {list(shape)})")
        out[PROMPT_ENCODER + key] = value.float()
    return out


def _existing(path: str | os.PathLike, flag: str) -> Path:
    """`path`, or a UserError naming the flag (read_checkpoint's own message is about the 3DPE weights)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag}: no such file: {path}")
    return path
