"""The meter's results as a table, a chart against the targets, and a contact sheet of the edits."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from quality.meter import ClipQuality

# (field, heading, format, target, "≥" or "≤") — the targets of the default engine's presets (docs/quality.md)
COLUMNS = (
    ("id_t", "id_t", "{:.2f}", 0.40, "≥"),
    ("cons3d", "cons3d", "{:.2f}", 0.70, "≥"),
    ("change", "change", "{:.1f}", 30.0, "≥"),
    ("hair", "hair", "{:.1f}", 20.0, "≥"),
    ("flicker", "flicker", "{:.2f}", 1.2, "≤"),
    ("background_db", "bg dB", "{:.1f}", 35.0, "≥"),
    ("pose_error", "pose err°", "{:.1f}", None, ""),
)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value)


def table(results: list[ClipQuality], markdown: bool = False) -> str:
    """One row per clip and style, plus a mean row per style when there are several clips."""
    heads = ["clip", "style", *(c[1] for c in COLUMNS), "missed"]
    rows = [[r.clip, r.style, *(_cell(getattr(r, c[0]), c[2]) for c in COLUMNS), f"{r.id_t_missed}/{r.cons3d_missed}"]
            for r in results]
    for style, group in _by_style(results).items():
        if len(group) > 1:
            rows.append(["mean", style, *(_cell(mean(group, c[0]), c[2]) for c in COLUMNS), ""])
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [heads, *rows])


def mean(group: list[ClipQuality], name: str) -> float | None:
    values = [getattr(r, name) for r in group]
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isinf(v))]
    return float(np.mean(values)) if values else None


def _by_style(results: list[ClipQuality]) -> dict[str, list[ClipQuality]]:
    groups: dict[str, list[ClipQuality]] = {}
    for r in results:
        groups.setdefault(r.style, []).append(r)
    return groups


def plot(results: list[ClipQuality], path: Path) -> None:
    """One panel per criterion: the mean over clips for each style, the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_style(results)
    styles = list(groups)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (name, heading, _, target, sense) in zip(axes.ravel(), COLUMNS):
        values = [mean(groups[s], name) for s in styles]
        ax.barh(styles, [np.nan if v is None else v for v in values], color="#4a7bb7")
        if target is not None:
            ax.axvline(target, color="red", linestyle="--", label=f"target {sense} {target:g}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(heading)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("edit quality, mean over clips (identity: SFace cosine)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, height: int = 200) -> None:
    """A PNG grid: each row a label and its images (RGB), scaled to `height` pixels."""
    strips = []
    for label, images in rows:
        tiles = [cv2.resize(im, (max(1, round(im.shape[1] * height / im.shape[0])), height),
                            interpolation=cv2.INTER_AREA) for im in images]
        strip = np.hstack(tiles)
        cv2.putText(strip, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(strip, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        strips.append(strip)
    width = max(s.shape[1] for s in strips)
    sheet = np.vstack([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips])
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
