"""Shared set-up for the benchmark scripts: the shipped ResNet-20 (or a stand-in) and a real batch."""

from __future__ import annotations

import logging

import torch

from xaisec.data import load as load_data
from xaisec.data import samples
from xaisec.models import Classifier, load, shipped_weights
from xaisec.utils.checks import XaisecError

log = logging.getLogger("benchmarks")


def resnet20(device: str | None = None) -> tuple[Classifier, str]:
    """The shipped ResNet-20, else the third-party checkpoint from ../shared, else random weights."""
    if shipped_weights("cifar10_resnet20") is not None:
        return load("cifar10_resnet20", device=device), "shipped weights"
    from xaisec.data.paths import shared_path

    ckpt = shared_path("models", "cifar10-resnet20-akamaster", "resnet20-12fca82f.th")
    if ckpt is not None:
        return load("cifar10_resnet20", weights=ckpt, device=device), "third-party checkpoint"
    return load("cifar10_resnet20", weights="random", device=device), "RANDOM weights (no shipped weights)"


def cifar_batch(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n real CIFAR-10 test images (shared JPEG set, else the bundled samples repeated)."""
    try:
        ds = load_data("cifar10", "test").sample(n, seed=seed)
    except XaisecError:
        ds = samples("cifar10")
        reps = (n + len(ds) - 1) // len(ds)
        ds = ds.subset(torch.arange(len(ds)).repeat(reps)[:n])
    return ds.float_images(device), ds.labels.to(device)
