"""Shared fixtures: tiny networks, the shared-data skip rule, and the torchvision shim."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from torch import nn

from xaisec._compat.torchvision import import_torchvision
from xaisec.data.paths import shared_path
from xaisec.models import Classifier, wrap

# torchmetrics and captum may import torchvision; make that import work on CPU-only torch builds.
with contextlib.suppress(Exception):  # torchvision absent: the tests that need it skip
    import_torchvision()

torch.set_num_threads(1)  # tests run in parallel workers on a 2-core machine


def shared_or_skip(*parts: str) -> Path:
    """A path inside ../shared, or skip the test with a clear reason when it is absent."""
    p = shared_path(*parts)
    if p is None:
        pytest.skip(f"shared data {'/'.join(parts)} not available (needs ../shared next to the repo)")
    return p


class TinyNet(nn.Module):
    """conv-relu-conv-relu-GAP-linear on 3x16x16: fast, has nn.ReLU modules and a CAM layer ``features``."""

    def __init__(self, num_classes: int = 5, channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


@pytest.fixture
def tiny_model() -> Classifier:
    torch.manual_seed(0)
    return wrap(TinyNet(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="features", fc_layer="fc",
                classes=[f"c{i}" for i in range(5)], input_size=(3, 16, 16), name="tiny").eval()


@pytest.fixture
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 16, 16, generator=g), torch.randint(0, 5, (6,), generator=g)


@pytest.fixture
def resnet20_random() -> Classifier:
    from xaisec.models import load

    torch.manual_seed(0)
    return load("cifar10_resnet20", weights="random", device="cpu")


@pytest.fixture
def resnet20_trained() -> Classifier:
    """The shipped ResNet-20 when its weights are in the package, else the third-party checkpoint."""
    from xaisec.models import load, shipped_weights

    if shipped_weights("cifar10_resnet20") is not None:
        return load("cifar10_resnet20", device="cpu")
    ckpt = shared_or_skip("models", "cifar10-resnet20-akamaster", "resnet20-12fca82f.th")
    return load("cifar10_resnet20", weights=ckpt, device="cpu")
