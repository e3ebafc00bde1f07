"""Perturbation models: ``pgd`` (L-infinity), ``cw`` (L2, tanh space), ``stadv`` (flow field)."""

from __future__ import annotations

from xaisec.attacks.frameworks.base import AdamFramework, Framework
from xaisec.attacks.frameworks.cw import CW
from xaisec.attacks.frameworks.pgd import PGD
from xaisec.attacks.frameworks.stadv import StAdv, flow_smoothness, warp

FRAMEWORKS: dict[str, type[Framework]] = {"pgd": PGD, "cw": CW, "stadv": StAdv}

__all__ = ["CW", "FRAMEWORKS", "PGD", "AdamFramework", "Framework", "StAdv", "flow_smoothness", "warp"]
