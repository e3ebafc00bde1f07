"""JSON records of attack runs: config, versions, seed, per-image metrics and their means."""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import torch

import xaisec
from xaisec.attacks.result import AttackResult

MEAN_KEYS = ("success", "confidence", "l1", "l2", "iou", "noise_rate", "seconds_per_image")


def versions() -> dict[str, str]:
    import numpy

    return {"xaisec": xaisec.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def attack_record(result: AttackResult, *, config: dict[str, Any], seed: int,
                  class_name: Callable[[int], str] = str) -> dict[str, Any]:
    """One JSON-ready record. ``mean`` holds every metric's mean (success as a rate in [0, 1]);
    ``threat_model`` states the budget the attack really used (``eps`` is None on cw and stadv, which have
    their own budgets) with the measured maximum L-inf and L2 (per image in ``images``: ``linf``, ``l2_dist``)."""
    from xaisec.reports.attack_report import threat_model

    summary = result.summary()
    mean = {k: summary[k] for k in MEAN_KEYS if k in summary}
    mean.update({k: v for k, v in summary.items() if k not in mean})
    return {
        "config": {**result.config, **config},
        "versions": versions(),
        "seed": seed,
        "threat_model": threat_model({**result.config, **config}, result.metrics),
        "n": len(result),
        "iterations": result.iterations,
        "seconds": result.seconds,
        "mean": mean,
        "images": result.records(class_name),
    }
