"""Defenses at inference time: input transforms, the feature-squeezing detector, the ensemble-of-interpreters
detector.

* ``defend(model, "median", k=2)`` / ``defend(model, "bits:5", bpda=True)``: the model behind a squeezer,
  still a :class:`~xaisec.models.Classifier` (interpreters and attacks run on it unchanged).
* ``squeeze_detector(model, ["median:2", "bits:5", "nlm:13-3-2"])``: feature squeezing; ``calibrate``,
  ``score``, ``flag``, ``save`` / ``load``.
* ``EnsembleDetector`` (:mod:`xaisec.defenses.ensemble`): maps of 2-3 interpreters stacked as channels, a
  small CNN and a gradient-boosting head.
"""

from __future__ import annotations

from typing import Any

from xaisec.defenses.defended import DefendedClassifier, defend, fingerprint
from xaisec.defenses.squeeze import FS_CIFAR, SqueezeDetector, squeeze_detector, threshold_at_fpr
from xaisec.defenses.transforms import SQUEEZERS, BitDepth, MedianSmoothing, NonLocalMeans, Squeezer, parse


def __getattr__(name: str) -> Any:  # the ensemble detector imports scikit-learn: load it on first use
    if name in ("EnsembleDetector", "MapStack", "split_by_source"):
        from xaisec.defenses import ensemble

        return getattr(ensemble, name)
    raise AttributeError(name)


__all__ = [
    "FS_CIFAR", "SQUEEZERS", "BitDepth", "DefendedClassifier", "EnsembleDetector", "MapStack", "MedianSmoothing",
    "NonLocalMeans", "SqueezeDetector", "Squeezer", "defend", "fingerprint", "parse", "split_by_source",
    "squeeze_detector", "threshold_at_fpr",
]
