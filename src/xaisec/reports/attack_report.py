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
from xaisec.reports.html import _ENV
from xaisec.reports.images import display_scale, heatmap_overlay, outline_mask, to_data_uri
from xaisec.reports.plots import curve_uri, histogram_uri

SUMMARY_KEYS = ("success", "confidence", "l1", "l2", "iou", "l1_target", "iou_target", "noise_rate", "linf",
                "l2_dist", "seconds_per_image")


def threat_model(config: dict[str, Any], metrics: dict[str, torch.Tensor] | None = None) -> str:
    """The perturbation budget an attack really ran under (from its config), with the measured maximum
    L-inf and L2 distances when ``metrics`` holds them (``linf``, ``l2_dist`` per image)."""
    fw = config.get("framework", "pgd")
    if fw == "pgd" and config.get("eps") is not None:
        text = f"L-inf <= {config['eps'] * 255:.4g}/255 (pgd)"
    elif fw == "cw":
        b = config.get("cw_max_l2")
        text = f"L2 <= {b:.4g} per image (cw)" if b is not None else "no hard budget: L2 distance penalised (cw)"
    elif fw == "stadv":
        b = config.get("stadv_max_flow")
        text = (f"flow <= {b:.4g} px per axis (stadv)" if b is not None
                else "no hard budget: flow roughness penalised (stadv)")
    elif fw == "patch":
        text = (f"patch of {config.get('size', 0):.3g} of the side, ratio {config.get('ratio', 1):.3g}, "
                f"map mode {config.get('map_mode')}; pixels off the patch unchanged")
    else:
        text = f"{fw}" + (f", eps {config['eps']:.4g}" if config.get("eps") is not None else "")
    if metrics and "linf" in metrics and "l2_dist" in metrics and len(metrics["linf"]):
        text += (f"; measured max L-inf {float(metrics['linf'].max()) * 255:.1f}/255, "
                 f"max L2 {float(metrics['l2_dist'].max()):.3f}")
    return text


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
    """Write an HTML report of one or more attack runs on the same images (see :func:`attack_report_html`)."""
    from xaisec.utils.io import atomic_write_text

    return atomic_write_text(path, attack_report_html(runs, title=title, class_name=class_name, max_rows=max_rows,
                                                      meta=meta, map_alpha=map_alpha))


def attack_report_html(
    runs: Sequence[tuple[str, AttackResult]], *, title: str, class_name: Callable[[int], str] = str,
    max_rows: int = 50, meta: dict[str, Any] | None = None, map_alpha: float = 0.55,
) -> str:
    """The HTML text of a report of one or more attack runs on the same images. The header states each run's
    threat model (its real budget and the measured L-inf / L2), whatever ``meta`` says.

    Args:
        runs: (label, result) pairs; all results must hold the same clean images.
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
            # patch attacks: maps_target holds the patch mask; outline it on the adversarial image and map
            patch = r.config.get("framework") == "patch"
            adv_img = outline_mask(r.x_adv[i], r.maps_target[i]) if patch else r.x_adv[i]
            map_img = heatmap_overlay(r.x_adv[i], r.maps_adv[i], map_alpha)
            map_img = outline_mask(map_img, r.maps_target[i]) if patch else map_img
            cells.append({
                "run": label,
                "adv": to_data_uri(adv_img, scale),
                "pert": to_data_uri(amplified_perturbation(x, r.x_adv[i]), scale),
                "map_adv": to_data_uri(map_img, scale),
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
    curves = {label: (r.history["queries"], r.history["best_fitness"]) for label, r in runs
              if r.history.get("queries") and r.history.get("best_fitness")}
    if curves:  # black-box attacks (AttaXAI): best fitness so far against the queries spent per image
        hists.append(curve_uri(curves, title="Fitness vs queries (mean over images)", xlabel="queries per image",
                               ylabel="best fitness so far", log_y=True))
    meta = dict(meta or {})
    meta.pop("eps", None)  # the budget is stated by the threat model, from what the attack really used
    for label, r in runs:
        meta["threat model" if len(runs) == 1 else f"threat model ({label})"] = threat_model(r.config, r.metrics)
    return _ENV.get_template("attack.html").render(
        title=title, summary=summary, keys=keys, notes=METRIC_NOTES, rows=rows,
        hists=hists, size=size, meta=meta, shown=len(rows), total=len(base), version=xaisec.__version__,
        torch=torch.__version__,
    )
