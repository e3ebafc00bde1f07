"""The attack report: a summary table, per-image rows of images and maps, and metric histograms.

Several runs on the same images (e.g. plain PGD next to ADV^2) are shown side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import xaisec
from xaisec.attacks.evaluate import METRIC_NOTES
from xaisec.attacks.result import AttackResult
from xaisec.reports.html import render
from xaisec.reports.images import display_scale, heatmap_overlay, to_data_uri
from xaisec.reports.plots import histogram_uri

SUMMARY_KEYS = ("success", "confidence", "l1", "l2", "iou", "l1_target", "iou_target", "noise_rate", "linf",
                "seconds_per_image")


def amplified_perturbation(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """(C, H, W) perturbation scaled so its largest component fills [0, 1] around mid-grey."""
    d = x_adv - x
    scale = d.abs().max().clamp_min(1e-12)
    return (0.5 + 0.5 * d / scale).clamp(0, 1)


def _fmt(v: float, key: str) -> str:
    if key in ("success",):
        return f"{v * 100:.1f}%"
    if key == "seconds_per_image":
        return f"{v:.3f}"
    if key == "linf":
        return f"{v * 255:.1f}/255"
    return f"{v:.3f}"


def attack_report(
    runs: Sequence[tuple[str, AttackResult]], path: str | Path, *, title: str, class_name: Callable[[int], str] = str,
    max_rows: int = 50, meta: dict[str, Any] | None = None, map_alpha: float = 0.55,
) -> Path:
    """Write an HTML report of one or more attack runs on the same images.

    Args:
        runs: (label, result) pairs; all results must hold the same clean images.
        path: the HTML file to write (atomically).
        title: page title.
        class_name: maps a label index to a readable class name.
        max_rows: at most this many per-image rows.
        meta: extra facts shown under the title (model, interpreter, eps, seed...).
    """
    if not runs:
        raise ValueError("no runs to report")
    base = runs[0][1]
    for label, r in runs[1:]:
        if r.x.shape != base.x.shape or not torch.equal(r.x, base.x):
            raise ValueError(f"run {label!r} was made on different images than {runs[0][0]!r}")
    scale = display_scale(base.x.shape[-1], 96)
    size = base.x.shape[-1] * scale
    summary = [{"label": label, "n": len(r), "vals": {k: _fmt(v, k) for k, v in r.summary().items()
                                                        if k in SUMMARY_KEYS}}
               for label, r in runs]
    keys = [k for k in SUMMARY_KEYS if k in base.metrics]
    rows = []
    for i in range(min(len(base), max_rows)):
        x = base.x[i]
        cells = []
        for label, r in runs:
            ok = bool(r.success[i])
            cells.append({
                "run": label,
                "adv": to_data_uri(r.x_adv[i], scale),
                "pert": to_data_uri(amplified_perturbation(x, r.x_adv[i]), scale),
                "map_adv": to_data_uri(heatmap_overlay(r.x_adv[i], r.maps_adv[i], map_alpha), scale),
                "map_target": to_data_uri(heatmap_overlay(x, r.maps_target[i], map_alpha), scale),
                "target_is_benign": torch.equal(r.maps_target[i], r.maps_benign[i]),
                "pred": class_name(int(r.pred_adv[i])),
                "target": None if r.target is None else class_name(int(r.target[i])),
                "conf": float(r.metrics["confidence"][i]),
                "success": ok,
                "l1": float(r.metrics["l1"][i]), "iou": float(r.metrics["iou"][i]),
                "linf": float(r.metrics["linf"][i]) * 255,
            })
        rows.append({
            "index": i, "true": class_name(int(base.y[i])), "pred_clean": class_name(int(base.pred_clean[i])),
            "benign": to_data_uri(x, scale),
            "map_benign": to_data_uri(heatmap_overlay(x, base.maps_benign[i], map_alpha), scale),
            "cells": cells,
        })
    hists = [
        histogram_uri({label: r.metrics["l1"] for label, r in runs}, title="L1 distance to the benign map",
                      xlabel="L1 (lower = adversarial map closer to benign)", value_range=(0.0, 0.5)),
        histogram_uri({label: r.metrics["iou"] for label, r in runs}, title="IoU with the benign map (top 20%)",
                      xlabel="IoU (higher = closer)"),
    ]
    return render(
        "attack.html", path, title=title, summary=summary, keys=keys, notes=METRIC_NOTES, rows=rows,
        hists=hists, size=size, meta=meta or {}, shown=len(rows), total=len(base), version=xaisec.__version__,
        torch=torch.__version__,
    )
