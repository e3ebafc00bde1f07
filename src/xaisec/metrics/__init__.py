"""Metrics the papers report, as batched torch functions.

Convention: every metric function returns one value per sample, a tensor of shape (N,) (bool for
success-type metrics, float otherwise), on the input's device. ``aggregate(values)`` turns it into
the number a table shows (the mean; for bools, the rate); ``summarize(values)`` adds std, min, max, n.

``METRICS`` maps each name to a :class:`MetricSpec` (function, description, higher_is_better,
normalisation) so reports and ``xaisec info`` can list them. ``higher_is_better`` reads each metric
the usual way: for attack, image and map-similarity metrics from the attacker's side (success,
confidence, stealth, benign map preserved); for deletion/insertion, the map's faithfulness; for
cost, cheaper is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from xaisec.metrics.attack import attack_success_rate, fooling_ratio, misclassification_confidence
from xaisec.metrics.cost import Cost, CostMeter
from xaisec.metrics.faithfulness import curve_auc, deletion_auc, faithfulness_curve, insertion_auc
from xaisec.metrics.images import image_mse, l2_norm, linf_norm, noise_rate, ssim
from xaisec.metrics.maps import (
    binarize_top_k,
    kendall_tau,
    map_iou,
    map_l1,
    map_l2,
    map_mse,
    minmax_normalize,
    spearman,
)
from xaisec.metrics.patch import area_share, off_patch_fidelity, patch_mass_ratio
from xaisec.utils.checks import XaisecError


class MetricSpec(NamedTuple):
    """Registry entry: the callable, a one-line description, its direction, and its normalisation."""

    fn: Callable[..., Any]
    description: str
    higher_is_better: bool
    normalisation: str


def _values(values: torch.Tensor) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() != 1:
        raise XaisecError(
            "values must be a per-sample tensor of shape (N,), "
            f"got {getattr(values, 'shape', type(values).__name__)}"
        )
    if values.numel() == 0:
        raise XaisecError("cannot aggregate an empty tensor of metric values")
    return values.detach().double()


def aggregate(values: torch.Tensor, *, ignore_nan: bool = False) -> float:
    """Mean of per-sample metric values (N,) as a Python float; bool values give the rate.

    NaN values (e.g. a rank correlation of a constant map) propagate unless ``ignore_nan=True``,
    which averages the finite values only (NaN if none is finite).
    """
    v = _values(values)
    if ignore_nan:
        v = v[~v.isnan()]
        if v.numel() == 0:
            return math.nan
    return float(v.mean())


def summarize(values: torch.Tensor, *, ignore_nan: bool = False) -> dict[str, float]:
    """``{"mean", "std", "min", "max", "n"}`` of per-sample values (std is the sample std, 0 for n = 1)."""
    v = _values(values)
    if ignore_nan:
        v = v[~v.isnan()]
    if v.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    std = float(v.std()) if v.numel() > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()),
            "n": int(v.numel())}


_MAPS = "maps min-max normalised per sample"
METRICS: dict[str, MetricSpec] = {
    "attack_success_rate": MetricSpec(
        attack_success_rate, "targeted: prediction == target; untargeted: prediction != true label", True,
        "bool per sample; the mean is the rate in [0, 1]"),
    "misclassification_confidence": MetricSpec(
        misclassification_confidence, "softmax probability of the target class (or of the predicted class)",
        True,
        "probability in [0, 1]"),
    "fooling_ratio": MetricSpec(
        fooling_ratio, "prediction changed between clean and adversarial input", True,
        "bool per sample; the mean is the ratio in [0, 1]"),
    "map_l1": MetricSpec(
        map_l1, "L1 distance between attribution maps", False, f"{_MAPS}; sum |a-b| / (H*W), in [0, 1]"),
    "map_l2": MetricSpec(
        map_l2, "L2 distance between attribution maps", False,
        f"{_MAPS}; sqrt(sum (a-b)^2) / sqrt(H*W), in [0, 1]"),
    "map_mse": MetricSpec(
        map_mse, "mean squared difference between attribution maps", False,
        f"{_MAPS}; sum (a-b)^2 / (H*W), in [0, 1]"),
    "map_iou": MetricSpec(
        map_iou, "IoU of the top-k% pixels of two attribution maps", True,
        "top round(k/100*H*W) pixels per map, k=20 by default, ties to the lower row-major index; in [0, 1]"),
    "kendall_tau": MetricSpec(
        kendall_tau, "Kendall rank correlation between attribution maps", True,
        "tau-b over all pixels (scipy default), in [-1, 1]; NaN for a constant map"),
    "spearman": MetricSpec(
        spearman, "Spearman rank correlation between attribution maps", True,
        "average ranks for ties (scipy default), in [-1, 1]; NaN for a constant map"),
    "ssim": MetricSpec(
        ssim, "structural similarity of clean and adversarial images", True,
        "Gaussian window 11, sigma 1.5, data range 1, reflect padding; mean over channels and pixels; <= 1"),
    "noise_rate": MetricSpec(
        noise_rate, "AdvEdge noise rate 1 - SSIM(clean, adversarial)", False,
        "1 - ssim (same settings); >= 0"),
    "image_mse": MetricSpec(
        image_mse, "mean squared pixel difference of clean and adversarial images", False,
        "mean over C*H*W of [0, 1] images, in [0, 1]"),
    "linf_norm": MetricSpec(
        linf_norm, "L-infinity norm of the perturbation", False, "max |adv - clean| over C*H*W, in [0, 1]"),
    "l2_norm": MetricSpec(
        l2_norm, "L2 norm of the perturbation", False,
        "sqrt(sum (adv - clean)^2) over C*H*W, not normalised"),
    "deletion_auc": MetricSpec(
        deletion_auc, "RISE deletion: target probability as top-ranked pixels are removed", False,
        "trapezoid AUC on x in [0, 1], steps=50, baseline zeros; in [0, 1]"),
    "insertion_auc": MetricSpec(
        insertion_auc, "RISE insertion: target probability as top-ranked pixels are restored", True,
        "trapezoid AUC on x in [0, 1], steps=50, baseline blurred copy; in [0, 1]"),
    "seconds_per_image": MetricSpec(
        CostMeter, "wall time per image (CostMeter.result().seconds_per_image)", False, "seconds / images"),
    "queries_per_image": MetricSpec(
        CostMeter, "model queries per image (CostMeter.result().queries_per_image)", False,
        "input rows through model.forward / images"),
    "patch_mass_ratio": MetricSpec(
        patch_mass_ratio, "share of the ReLU'd class-map mass inside the patch (Grad-CAM patch attacks)", True,
        "raw CAM map, no min-max; cells weighted by patch coverage (or upsampled bilinearly); in [0, 1]"),
    "patch_area_share": MetricSpec(
        area_share, "patch area / image area (the mass ratio of an evenly spread map)", False, "in [0, 1]"),
    "off_patch_fidelity": MetricSpec(
        off_patch_fidelity, "Pearson r of adversarial and benign maps over the cells off the patch", True,
        "raw CAM maps, ReLU'd; cells the patch does not touch; 0 for a constant map; in [-1, 1]"),
}

__all__ = [
    "METRICS",
    "Cost",
    "CostMeter",
    "MetricSpec",
    "aggregate",
    "attack_success_rate",
    "binarize_top_k",
    "curve_auc",
    "deletion_auc",
    "faithfulness_curve",
    "fooling_ratio",
    "image_mse",
    "insertion_auc",
    "kendall_tau",
    "l2_norm",
    "linf_norm",
    "map_iou",
    "map_l1",
    "map_l2",
    "map_mse",
    "minmax_normalize",
    "misclassification_confidence",
    "noise_rate",
    "spearman",
    "ssim",
    "summarize",
]
