"""Adapters: a style taught to 3DPE by fast adaptation, as the few tensors it tunes (safetensors).

What adaptation tunes (paper §3.3): the prompt encoder E_p (`Ref_encoder.mae_encoder.*`) and the
LayerNorms of E_t — or, for small files, LoRA factors on E_p's linear layers instead of E_p itself.
A file holds those tensors under the encoder's own key names (LoRA factors as `<linear>.lora_A/B`),
the style reference image (`prompt.image`, 512² uint8, so the file is self-contained), and metadata
naming the base weights' fingerprint: an adapter is refused on other base weights. Applying one
shares every other tensor with the base model (`ThreeDPE.with_tensors`), so adapters cost memory only
for what they tune.
"""
from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError
from threedpe.checkpoint import first_line
from threedpe.preprocess import prompt_at_512

FORMAT = "live3dpe-adapter-v1"
SUFFIX = ".safetensors"
PROMPT_ENCODER = "Ref_encoder.mae_encoder."
TRIPLANE_NORMS = tuple(f"Final_encoder.{norm}.{p}" for norm in
                       ("pathembed.norm", "block.norm1", "block.attn.norm", "block.norm2") for p in ("weight", "bias"))
LORA_LAYERS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")      # in every E_p (MAE) block
LORA_A, LORA_B = ".lora_A", ".lora_B"
PROMPT_IMAGE = "prompt.image"
PROMPT_SIDE = 512

_fingerprints: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


class AdapterError(UserError):
    """An adapter file that cannot be used (not an adapter, damaged, or made for other base weights)."""


def tunable_keys(encoder_keys) -> list[str]:
    """The encoder keys full adaptation tunes: all of E_p and E_t's LayerNorms."""
    return [k for k in encoder_keys if k.startswith(PROMPT_ENCODER) or k in TRIPLANE_NORMS]


def lora_weight_keys(encoder_keys) -> list[str]:
    """The E_p linear weights LoRA adapts (`...blocks.<i>.attn.qkv.weight` etc.)."""
    return [k for k in encoder_keys if k.startswith(PROMPT_ENCODER + "blocks.")
            and any(k.endswith(f".{layer}.weight") for layer in LORA_LAYERS)]


def lora_merge(weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, scale: float) -> torch.Tensor:
    """W + scale·(B @ A): the one formula training and inference both use, so an adapter reproduces the
    adapted model exactly."""
    return weight + (lora_b @ lora_a) * scale


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over named tensors (names, shapes, float32 values), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}{list(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """`tensors_digest` of every tensor of the model; cached per model object."""
    if model not in _fingerprints:
        _fingerprints[model] = tensors_digest(model.state_dict().items())
    return _fingerprints[model]


@dataclass
class Adapter:
    """The tuned tensors of one style, its reference image and where it came from."""

    tensors: dict[str, torch.Tensor]                        # encoder key → tuned tensor (full replacement)
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]      # E_p linear weight key → (A [r,in], B [out,r])
    lora_scale: float
    prompt: np.ndarray                                      # (512, 512, 3) uint8: the style reference
    base_fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)      # base source, prompt, steps, loss (text once saved)

    @property
    def name(self) -> str:
        return self.meta.get("name", "adapter")

    def check_base(self, model: torch.nn.Module, what: str = "adapter") -> None:
        """Refuse base weights other than those the adapter was made from."""
        found = weights_fingerprint(model)
        if found != self.base_fingerprint:
            raise AdapterError(
                f"{what} was made for other base weights ({self.meta.get('base_source', '?')}, fingerprint "
                f"{self.base_fingerprint[:12]}); these are {getattr(model, 'source', '?')} (fingerprint {found[:12]}). "
                "Adapt again on these weights, or load the weights it was made for.")

    def replacements(self, encoder_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Encoder key → tensor to use: the tuned tensors plus the LoRA-merged E_p weights."""
        out = dict(self.tensors)
        for key, (a, b) in self.lora.items():
            weight = encoder_state[key]
            out[key] = lora_merge(weight, a.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype),
                                  self.lora_scale)
        return out

    def apply(self, model):
        """`model` (a ThreeDPE with the base weights) with this adapter: a new model sharing the rest."""
        self.check_base(model)
        return model.with_tensors(self.replacements(model.encoder.state_dict()))

    def frame_tensors(self) -> dict[str, torch.Tensor]:
        """The tuned tensors used per frame (E_t's); E_p only matters for the prompt's tokens."""
        return {k: v for k, v in self.tensors.items() if not k.startswith(PROMPT_ENCODER)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a temp file renamed into place): never a half-written adapter."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != SUFFIX:
            raise UserError(f"an adapter file must end in {SUFFIX}: {path}")
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in self.tensors.items()}
        for key, (a, b) in self.lora.items():
            stem = key[:-len(".weight")]
            tensors[stem + LORA_A] = a.detach().to("cpu", torch.float32).contiguous().clone()
            tensors[stem + LORA_B] = b.detach().to("cpu", torch.float32).contiguous().clone()
        tensors[PROMPT_IMAGE] = torch.from_numpy(np.array(prompt_at_512(np.asarray(self.prompt, np.uint8)), np.uint8, order="C"))
        meta = {**{k: str(v) for k, v in self.meta.items()}, "format": FORMAT,
                "base_fingerprint": self.base_fingerprint, "lora_scale": repr(float(self.lora_scale))}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.chmod(tmp, 0o644)                  # safetensors creates it private; an adapter is for sharing
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an adapter file, reading only its header (cheap, for listings)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:                  # safetensors raises its own error types for damaged headers
        raise AdapterError(f"{path} is not a safetensors adapter ({first_line(exc)})") from None
    if meta.get("format") != FORMAT:
        raise AdapterError(f"{path} is a safetensors file but not a live3dpe adapter (made by `live3dpe adapt`)")
    return meta


def load_adapter(path: str | os.PathLike) -> Adapter:
    """Read an adapter file; every problem is one AdapterError naming the file."""
    from safetensors.torch import load_file

    path = _existing(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise AdapterError(f"{path} is damaged ({first_line(exc)})") from None
    prompt = tensors.pop(PROMPT_IMAGE, None)
    if prompt is None or prompt.dtype != torch.uint8 or tuple(prompt.shape) != (PROMPT_SIDE, PROMPT_SIDE, 3):
        raise AdapterError(f"{path} has no 512×512 style reference ('{PROMPT_IMAGE}')")
    full, lora = {}, {}
    for key, value in tensors.items():
        if key.endswith(LORA_B):
            continue
        if key.endswith(LORA_A):
            stem = key[:-len(LORA_A)]
            if stem + LORA_B not in tensors:
                raise AdapterError(f"{path}: '{key}' has no matching '{stem + LORA_B}'")
            lora[stem + ".weight"] = (value, tensors[stem + LORA_B])
        elif not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise AdapterError(f"{path}: '{key}' is not a finite floating-point tensor")
        else:
            full[key] = value
    try:
        scale = float(meta.get("lora_scale", "1.0"))
    except ValueError:
        raise AdapterError(f"{path}: bad lora_scale {meta.get('lora_scale')!r}") from None
    extra = {k: v for k, v in meta.items() if k not in ("format", "base_fingerprint", "lora_scale")}
    return Adapter(full, lora, scale, prompt.numpy(), meta.get("base_fingerprint", ""), extra)


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise AdapterError(f"no such adapter file: {path}")
    return path
