"""Loss curves as a picture: total, L2D and L3D per step."""
from __future__ import annotations

from pathlib import Path


def write_loss_plot(history: list[dict], path: str | Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [r["step"] for r in history]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key, style in (("loss", "-"), ("l2d", "--"), ("l3d", ":")):
        ax.plot(steps, [r[key] for r in history], style, label={"loss": "L = L2D + L3D"}.get(key, key.upper()))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
