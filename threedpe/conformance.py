"""Conformance bundles (format `3dpe-conformance-v1`): read one, compute our taps on its inputs, compare, report.

The comparison is the bundle README's elementwise check |ours - ref| <= atol + rtol·|ref| per stored array;
`_f16` arrays are compared with the full tap, `_crop32` ones with the centred 32×32 crop.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError

FORMAT = "3dpe-conformance-v1"
PRECISIONS = ("fp32", "fp16", "bf16")
# Low-precision tolerances, by the bundle README's recipe one level down. The README's fp32 atol is 20× the
# spread between the official code in float32 and in float64; here the spread is between our network under
# torch's autocast (fp16/bf16) and the bundle's float32 reference: max |ours − ref| per stored array, measured
# on CPU (2026-12, torch 2.13, `live3dpe conformance --precision bf16` prints it as "max |err|"; the GPU suite
# prints the GPU's). atol = LOW_PRECISION_MARGIN × that spread, never below the fp32 atol; rtol as fp32. The
# margin is 4, not 20: a low-precision error is dominated by rounding weights and activations to 8 (bf16) or
# 11 (fp16) bits, which is the same on every machine, while the README's 20× covers float32 summation order.
# fp16 was not measured on CPU (its CPU kernels are emulated: far too slow here); its spread is bf16's divided
# by 8, the ratio of their unit roundoffs (2^-8 / 2^-11) — the GPU suite measures the real one.
LOW_PRECISION_MARGIN = 4.0
LOW_PRECISION_SPREAD = {
    "bf16": {"elow_decoder_crop32": 0.888, "elow_f16": 0.176, "elow_crop32": 0.147, "ehigh_f16": 0.0469,
             "ehigh_crop32": 0.0381, "mae_tokens": 0.0942, "xattn_f16": 0.388, "xattn_crop32": 0.292,
             "triplane_f16": 0.170, "triplane_crop32": 0.118, "render_features": 0.0107, "render_depth": 0.00349,
             "render_weight_sum": 0.00570, "sr_image": 0.0185},
}
LOW_PRECISION_SPREAD["fp16"] = {name: spread / 8 for name, spread in LOW_PRECISION_SPREAD["bf16"].items()}
RENDER_TAPS = ("render_features", "render_depth", "render_weight_sum", "sr_image")
RENDER_OUTPUTS = {"render_features": "feature_image", "render_depth": "image_depth",
                  "render_weight_sum": "weight_sum", "sr_image": "image"}


class Bundle:
    """A bundle folder: `manifest.json` + `vectors.npz`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest_path, vectors_path = self.folder / "manifest.json", self.folder / "vectors.npz"
        if not manifest_path.is_file() or not vectors_path.is_file():
            raise UserError(f"{self.folder} is not a conformance bundle: it needs manifest.json and vectors.npz")
        try:
            self.manifest = json.loads(manifest_path.read_text())
            self._vectors = np.load(vectors_path)
        except (ValueError, OSError) as exc:                # JSONDecodeError is a ValueError; so is a bad npz
            raise UserError(f"{self.folder}: unreadable bundle ({type(exc).__name__}: {exc})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            found = self.manifest.get("format") if isinstance(self.manifest, dict) else None
            raise UserError(f"{manifest_path}: format {found!r} is not {FORMAT!r}")

    def array(self, name: str) -> np.ndarray:
        return self._vectors[name]

    def has(self, name: str) -> bool:
        return name in self._vectors.files

    @property
    def tolerances(self) -> dict[str, dict[str, float]]:
        return self.manifest["recommended_tolerances"]

    def tolerances_for(self, precision: str = "fp32") -> dict[str, dict[str, float]]:
        """The bundle's (fp32) tolerances, or those stated above for fp16/bf16."""
        if precision == "fp32":
            return self.tolerances
        spread = LOW_PRECISION_SPREAD[precision]
        return {name: {"atol": max(float(tol["atol"]), LOW_PRECISION_MARGIN * spread.get(name, math.inf)),
                       "rtol": float(tol["rtol"])} for name, tol in self.tolerances.items()}

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image [1,3,512,512] in [-1,1], prompt [1,3,224,224] normalised, camera labels [C,25])."""
        return tuple(torch.from_numpy(np.ascontiguousarray(self.array(n)))  # type: ignore[return-value]
                     for n in ("input_image", "input_prompt", "camera_labels"))


@dataclass
class ArrayResult:
    array: str                  # stored array name, e.g. "triplane_f16"
    tap: str
    atol: float
    rtol: float
    max_abs: float = math.nan
    worst_ratio: float = math.nan   # max |diff| / (atol + rtol·|ref|); pass <= 1
    status: str = "not run"     # "pass", "FAIL", "not run"
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def tap_of(array_name: str) -> tuple[str, str]:
    """'triplane_f16' → ('triplane', 'full'); 'elow_crop32' → ('elow', 'crop'); 'sr_image' → ('sr_image', 'full')."""
    for suffix, kind in (("_f16", "full"), ("_crop32", "crop")):
        if array_name.endswith(suffix):
            return array_name[: -len(suffix)], kind
    return array_name, "full"


def centre_crop(x: np.ndarray, size: int = 32) -> np.ndarray:
    h, w = x.shape[-2:]
    return x[..., h // 2 - size // 2: h // 2 + size // 2, w // 2 - size // 2: w // 2 + size // 2]


def compare(taps: dict[str, np.ndarray], bundle: Bundle, precision: str = "fp32") -> list[ArrayResult]:
    """Check every stored array with a tolerance against our taps (missing taps are reported 'not run')."""
    results = []
    for name, tol in bundle.tolerances_for(precision).items():
        tap, kind = tap_of(name)
        res = ArrayResult(name, tap, float(tol["atol"]), float(tol["rtol"]))
        results.append(res)
        if not bundle.has(name):
            res.status, res.note = "FAIL", "listed in the manifest but not in vectors.npz"
            continue
        if tap not in taps:
            continue
        ref = bundle.array(name).astype(np.float64)
        ours = np.asarray(taps[tap], dtype=np.float64)
        if kind == "crop":
            ours = centre_crop(ours)
        if ours.shape != ref.shape:
            res.status, res.note = "FAIL", f"shape {list(ours.shape)} != {list(ref.shape)}"
            continue
        diff = np.abs(ours - ref)
        res.max_abs = float(np.nan_to_num(diff, nan=np.inf).max())
        res.worst_ratio = float(np.nan_to_num(diff / (res.atol + res.rtol * np.abs(ref)), nan=np.inf).max())
        res.status = "pass" if res.worst_ratio <= 1.0 else "FAIL"
    return results


def format_table(results: list[ArrayResult]) -> str:
    rows = [("array", "worst ratio", "max |err|", "atol", "rtol", "result")]
    for r in results:
        rows.append((r.array, "-" if math.isnan(r.worst_ratio) else f"{r.worst_ratio:.3g}",
                     "-" if math.isnan(r.max_abs) else f"{r.max_abs:.3g}", f"{r.atol:.3g}", f"{r.rtol:.3g}",
                     r.status + (f" ({r.note})" if r.note else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@torch.no_grad()
def compute_taps(model, bundle: Bundle, render: bool = True) -> dict[str, np.ndarray]:
    """Run `model` (a `threedpe.model.ThreeDPE` or a backend network) in deterministic mode on the bundle's inputs."""
    image, prompt, cameras = bundle.inputs()
    device = model.device
    taps: dict[str, torch.Tensor] = {}
    tokens = model.encode_prompt(prompt.to(device))
    triplane = model.encode(image.to(device), tokens, taps=taps)
    taps["mae_tokens"] = tokens
    out = {k: v.float().cpu().numpy() for k, v in taps.items()}
    if render and model.can_render:
        per_camera = [model.render(triplane, cameras[i: i + 1].to(device)) for i in range(cameras.shape[0])]
        for tap, key in RENDER_OUTPUTS.items():
            out[tap] = torch.cat([r[key] for r in per_camera]).float().cpu().numpy()
    return out
