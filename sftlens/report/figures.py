"""Figures written to files: the Agg backend and atomic PNG writes (a crash never leaves half a PNG)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..core.record import process_umask


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically and close it; returns the path."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.chmod(tmp, 0o666 & ~process_umask())  # mkstemp makes 0600; a figure is as readable as any file written here
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def grouped_bars(path: str | os.PathLike, groups: list[str], series: dict[str, list[float]], *, ylabel: str,
                 title: str) -> Path:
    """One bar chart with a group of bars per entry of ``groups`` and one bar per series in each (a
    model's values, one per group, as fractions: drawn in %). Saved atomically to ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ax.bar([j + i * width for j in range(len(groups))], [100 * v for v in values], width=width, label=label)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels([g.replace("_", " ") for g in groups], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


__all__ = ["grouped_bars", "pyplot", "save_png"]
