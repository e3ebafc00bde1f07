"""Small matplotlib figures for reports, returned as PNG data URIs (headless Agg backend)."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _finish(fig: Any, ax: Any, title: str, xlabel: str, ylabel: str, *, legend: bool) -> str:
    """Label the axes, close the figure and return it as a PNG data URI."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if legend:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def histogram_uri(series: dict[str, torch.Tensor], *, title: str, xlabel: str, bins: int = 20,
                  value_range: tuple[float, float] = (0.0, 1.0)) -> str:
    """Overlaid histograms, one per named series of values, as a PNG data URI."""
    fig, ax = plt.subplots(figsize=(4.6, 2.8), dpi=110)
    for i, (label, values) in enumerate(series.items()):
        ax.hist(values.float().cpu().numpy(), bins=bins, range=value_range, alpha=0.55, label=label,
                color=PALETTE[i % len(PALETTE)], edgecolor="white", linewidth=0.5)
    return _finish(fig, ax, title, xlabel, "images", legend=len(series) > 1)


def curve_uri(series: dict[str, tuple[list[float], list[float]]], *, title: str, xlabel: str, ylabel: str,
              log_y: bool = False) -> str:
    """Line plots, one per named (x values, y values) series (e.g. fitness against queries), as a PNG data URI."""
    fig, ax = plt.subplots(figsize=(4.6, 2.8), dpi=110)
    for i, (label, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, label=label, color=PALETTE[i % len(PALETTE)], linewidth=1.4)
    if log_y and all(v > 0 for _, ys in series.values() for v in ys):
        ax.set_yscale("log")
    return _finish(fig, ax, title, xlabel, ylabel, legend=len(series) > 1)
