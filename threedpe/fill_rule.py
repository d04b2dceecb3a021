"""The conformance fill rule: deterministic, documented weights for every key of an official-layout state dict.

Port of the rule in conformance/3dpe_v1/README.md §1 (crc32 seed → MT19937 `random_sample` → uniform with
the key's mean/std). The per-key mean/std/rule come from a bundle's `manifest.json`.
"""
from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable

import numpy as np
import torch

SQRT3 = 1.7320508075688772
COORD_SCALED_KEYS = {("encoder_state_dict", "encoder.conv1.weight"),
                     ("encoder_state_dict", "EHigh_encoder.net.0.weight")}
FIR_FILTER = (np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0).astype(np.float32)


def seed32(global_seed: int, sd_name: str, key: str) -> int:
    return zlib.crc32(f"{global_seed}:{sd_name}/{key}".encode("utf-8")) & 0xFFFFFFFF


def fill_tensor(global_seed: int, sd_name: str, key: str, entry: dict) -> np.ndarray:
    """One filled tensor (float32, C order) for a manifest entry {shape, rule, mean, std}."""
    shape = tuple(entry["shape"])
    if entry["rule"] == "fir_const":
        return FIR_FILTER.reshape(shape).copy()
    if entry["rule"] == "int_keep":
        raise ValueError(f"{sd_name}/{key}: integer tensors keep their constructed value; none are expected")
    numel = int(np.prod(shape, dtype=np.int64))
    u = np.random.RandomState(seed32(global_seed, sd_name, key)).random_sample(numel)
    x = ((2.0 * u - 1.0) * (float(entry["std"]) * SQRT3) + float(entry["mean"])).astype(np.float32).reshape(shape)
    if (sd_name, key) in COORD_SCALED_KEYS:
        x[:, 3:5] *= np.float32(1 / 256)     # the raw 0..511 row/col input channels
    return x


def tensor_sha256(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def fill_state_dicts(manifest: dict, progress: Callable[[Iterable], Iterable] | None = None,
                     verify_sha256: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """All state dicts of a manifest filled by the rule: {sd_name: {key: tensor}}.

    With `verify_sha256` every tensor is checked against the manifest's hash, so a wrong port of the
    rule is caught here rather than as a confusing tap mismatch later.
    """
    global_seed = int(manifest["global_seed"])
    items = [(sd, key, entry) for sd, entries in manifest["state_dicts"].items() for key, entry in entries.items()]
    out: dict[str, dict[str, torch.Tensor]] = {sd: {} for sd in manifest["state_dicts"]}
    for sd, key, entry in (progress(items) if progress else items):
        x = fill_tensor(global_seed, sd, key, entry)
        if verify_sha256 and entry.get("sha256") and tensor_sha256(x) != entry["sha256"]:
            raise ValueError(f"fill rule mismatch at {sd}/{key}: sha256 differs from the manifest")
        out[sd][key] = torch.from_numpy(x)
    return out


def rule_for(sd_name: str, key: str, shape: tuple[int, ...]) -> tuple[str, float, float]:
    """(rule, mean, std) of the README's table (first match wins) for an official key; used for random weights."""
    ndim = len(shape)
    if sd_name == "renderer_state_dict":
        if key.endswith("resample_filter"):
            return "fir_const", 0.0, 0.0
        if key == "const":
            return "w_const", 0.0, 1.0
        if key.endswith(("noise_const", "noise_strength")):
            return "unused_noise", 0.0, 1.0
        if key.endswith("affine.bias"):
            return "style_bias", 1.0, 0.25
        if ndim >= 2:
            return "eqlr_weight", 0.0, 1.0
        return "render_bias", 0.0, 0.1
    if key.endswith(("cls_token", "pos_embed")):
        return "token", 0.0, 0.5
    if ndim >= 2:
        return "he_weight", 0.0, float(np.sqrt(2.0 / int(np.prod(shape[1:]))))
    if key in ("Ref_encoder.patch_emb.norm.weight", "Ref_encoder.mae_encoder.norm.weight"):
        return "xattn_gamma", 3.0, 0.3
    if key.endswith(".weight"):
        return "ln_gamma", 1.0, 0.1
    return "bias", 0.0, 0.1


def fill_by_rule(sd_name: str, shapes: dict[str, tuple[int, ...]], global_seed: int) -> dict[str, torch.Tensor]:
    """A state dict for `shapes` filled by the rule with `global_seed` (no manifest needed)."""
    out = {}
    for key, shape in shapes.items():
        rule, mean, std = rule_for(sd_name, key, tuple(shape))
        entry = {"shape": list(shape), "rule": rule, "mean": mean, "std": std}
        out[key] = torch.from_numpy(fill_tensor(global_seed, sd_name, key, entry))
    return out
