"""Checkpoints: where the weights are, reading them safely, and strict key/shape validation against our modules.

Reads the official `3dpe.pt`, the Live3D-LT checkpoint (no `Ref_encoder.*`) and our own saves; always with
`torch.load(weights_only=True)` unless the caller trusts the file. Every problem is a one-line `UserError`.
"""
from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.assets import cache_dir
from pipeline.errors import UserError
from threedpe.fill_rule import FIR_FILTER

WEIGHTS_ENV = "LIVE3DPE_WEIGHTS"
OFFICIAL_URL = "https://drive.google.com/file/d/1ZRH9WGHcostGAywqdJJp1kJBUiqN-xxF"
OUR_FORMAT = "live3dpe-3dpe-v1"
KIND_3DPE, KIND_LIVE3D_LT, KIND_OURS = "3dpe", "live3d-lt", "live3dpe"
PROMPT_PREFIX = "Ref_encoder."


class CheckpointError(UserError):
    """A checkpoint that cannot be used as is; the message names the file and the first bad key."""


def default_weights_path() -> Path:
    return cache_dir() / "weights" / "3dpe.pt"


def missing_weights_message(why: str) -> str:
    return (f"3DPE weights not found ({why}). The official weights are published in the 3DPE README's Google Drive "
            f"archive {OFFICIAL_URL} (extract it and take pretrained_models/3dpe.pt). Put the file at "
            f"{default_weights_path()}, or set {WEIGHTS_ENV}=/path/to/3dpe.pt, or pass --weights /path/to/3dpe.pt. "
            "Licence: the weights are non-commercial (EG3D: NVIDIA Source Code License; MAE: CC-BY-NC 4.0). "
            "Without them, use --random-weights (benchmarks/tests only; output is labelled) or the classic engine.")


def resolve_weights(explicit: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Weights path: explicit flag → $LIVE3DPE_WEIGHTS → the cache default; a clear UserError when absent."""
    env = os.environ if env is None else env
    if explicit:
        path, why = Path(explicit), f"no such file: {explicit} (--weights)"
    elif env.get(WEIGHTS_ENV):
        path, why = Path(env[WEIGHTS_ENV]), f"no such file: {env[WEIGHTS_ENV]} (${WEIGHTS_ENV})"
    else:
        path, why = default_weights_path(), f"nothing at the default location {default_weights_path()}"
    if not path.is_file():
        raise UserError(missing_weights_message(why))
    return path


def read_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> dict:
    """`torch.load` onto the CPU; without `trust_pickle` only tensors and plain containers are accepted.

    `argparse.Namespace` is allowed too: it is how training scripts store `opts`, and it cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(missing_weights_message(f"no such file: {path}"))
    try:
        if trust_pickle:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():
            raise CheckpointError(
                f"{path} contains Python objects that need full unpickling, which can run arbitrary code. "
                "Only if you trust where the file came from, pass --trust-pickle (trust_pickle=True).") from None
        raise CheckpointError(f"{path} is corrupted or not a PyTorch checkpoint ({first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupted or not a PyTorch checkpoint ({first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


@dataclass
class CheckpointContents:
    """The two state dicts of a checkpoint and what kind of file they came from."""

    encoder: dict[str, torch.Tensor]
    renderer: dict[str, torch.Tensor]
    kind: str                              # KIND_3DPE, KIND_LIVE3D_LT or KIND_OURS
    meta: dict = field(default_factory=dict)

    @property
    def prompt_trained(self) -> bool:
        """False for Live3D-LT: its encoder has no prompt encoder / cross-attention (`Ref_encoder.*`)."""
        return self.kind != KIND_LIVE3D_LT and bool(self.meta.get("prompt_trained", True))


def split_checkpoint(obj: dict, path: str | os.PathLike = "checkpoint") -> CheckpointContents:
    """Take `encoder_state_dict` + `renderer_state_dict` (extra top-level keys such as opts/step are ignored)."""
    for name in ("encoder_state_dict", "renderer_state_dict"):
        if not isinstance(obj.get(name), Mapping):
            raise CheckpointError(f"{path} has no '{name}': not a 3DPE/Live3D checkpoint "
                                  f"(top-level keys: {', '.join(map(str, list(obj)[:8]))})")
    encoder, renderer = dict(obj["encoder_state_dict"]), dict(obj["renderer_state_dict"])
    if obj.get("format") == OUR_FORMAT:
        return CheckpointContents(encoder, renderer, KIND_OURS, dict(obj.get("meta") or {}))
    if any(k.startswith("module.") for k in encoder):
        raise CheckpointError(f"{path}: keys start with 'module.' (a DataParallel save); strip the prefix first")
    kind = KIND_3DPE if any(k.startswith(PROMPT_PREFIX) for k in encoder) else KIND_LIVE3D_LT
    opts = obj.get("opts")                       # `live3dpe train` marks a run that started from random weights
    random = isinstance(opts, Mapping) and opts.get("is_random") is True
    return CheckpointContents(encoder, renderer, kind, {"is_random": True} if random else {})


def check_state_dict(given: Mapping[str, object], expected: Mapping[str, tuple[int, ...]], what: str,
                     known_unused: Mapping[str, tuple[int, ...]] | None = None,
                     require_unused: bool = False) -> dict[str, torch.Tensor]:
    """Strict check of `given` against expected shapes; returns it without the known-unused keys.

    Raises CheckpointError on the first unexpected key, wrong shape, non-float or non-finite tensor, or
    missing key (checked in that order, each in the file's key order).
    """
    known_unused = known_unused or {}
    kept: dict[str, torch.Tensor] = {}
    for key, value in given.items():
        shape = expected.get(key, known_unused.get(key))
        if shape is None:
            raise CheckpointError(f"{what}: unexpected key '{key}'")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise CheckpointError(f"{what}: '{key}' is not a floating-point tensor ({type(value).__name__})")
        if tuple(value.shape) != tuple(shape):
            raise CheckpointError(f"{what}: '{key}' has shape {list(value.shape)}, expected {list(shape)}")
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{what}: '{key}' contains NaN or infinite values (corrupted weights)")
        if key in expected:
            kept[key] = value.float()        # a half-precision save still loads as float32
    wanted = list(expected) + (list(known_unused) if require_unused else [])
    missing = [k for k in wanted if k not in given]
    if missing:
        raise CheckpointError(f"{what}: missing key '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return kept


def official_renderer_aux() -> dict[str, tuple[int, ...]]:
    """Official renderer tensors unused with noise_mode='none' (noise) or constant (FIR filters)."""
    aux: dict[str, tuple[int, ...]] = {}
    for block, res in (("block0", 256), ("block1", 512)):
        aux[f"superresolution.{block}.resample_filter"] = (4, 4)
        for conv in ("conv0", "conv1"):
            p = f"superresolution.{block}.{conv}"
            aux.update({f"{p}.noise_const": (res, res), f"{p}.noise_strength": (), f"{p}.resample_filter": (4, 4)})
    return aux


def check_fir_filters(state: Mapping[str, torch.Tensor], what: str) -> None:
    """The FIR buffers are always outer([1,3,3,1])/64; a renderer that bakes them in must not get other values."""
    for key, value in state.items():
        if key.endswith("resample_filter") and not torch.equal(value.float(), torch.from_numpy(FIR_FILTER)):
            raise CheckpointError(f"{what}: '{key}' is not the standard [1,3,3,1] FIR filter")


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters) for a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
