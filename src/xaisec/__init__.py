"""xaisec: red-team interpretable deep learning systems.

An interpretable deep learning system is a classifier ``f`` paired with an interpreter ``g`` that
draws an attribution map. xaisec crafts inputs that fool both, measures them, and tests defenses.

Conventions: images are float tensors (N, C, H, W) in [0, 1]; normalisation lives inside the model;
every entry point takes a seed.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
