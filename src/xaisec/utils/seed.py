"""Reproducibility: one call seeds Python, NumPy and torch."""

from __future__ import annotations

import random

import numpy as np
import torch

from xaisec.utils.checks import check_seed


def seed_everything(seed: int) -> torch.Generator:
    """Seed ``random``, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` seeded alike.

    Raises:
        XaisecError: when ``seed`` is not an int in [0, 2**63).
    """
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
