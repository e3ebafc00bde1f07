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


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / ||b|| (Frobenius), for cross-checks against other libraries."""
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's predicted classes (N,)."""
    with torch.no_grad():
        return model(x).argmax(1)


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


def synthetic_shapes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 images of 5 classes: a faint 6x6 square of class-specific colour at a random place on noise.
    The low contrast keeps a trained model's margins small, as on real images, so 8/255 attacks succeed."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float32)
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.4
    pos = torch.randint(0, 11, (n, 2), generator=g)
    rows = torch.arange(16).view(1, 16, 1)
    cols = torch.arange(16).view(1, 1, 16)
    inside = ((rows >= pos[:, 0, None, None]) & (rows < pos[:, 0, None, None] + 6)
              & (cols >= pos[:, 1, None, None]) & (cols < pos[:, 1, None, None] + 6)).unsqueeze(1)
    square = 0.2 + 0.2 * colours[y].view(n, 3, 1, 1) + torch.rand(n, 3, 16, 16, generator=g) * 0.1
    x = torch.where(inside, square, x)
    return x, y


@pytest.fixture(scope="session")
def trained_tiny() -> Classifier:
    """A TinyNet trained for ~2 s on :func:`synthetic_shapes` (about 70% accurate): a real, attackable
    classifier whose CAM maps follow the square."""
    torch.manual_seed(0)
    net = TinyNet()
    model = wrap(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="features", fc_layer="fc",
                 classes=["red", "green", "blue", "yellow", "cyan"], input_size=(3, 16, 16), name="tiny-trained")
    x, y = synthetic_shapes(1024, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(150):
        idx = torch.arange(step * 64, step * 64 + 64) % 1024
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture
def correct_batch(trained_tiny) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to 8 synthetic test images that ``trained_tiny`` classifies correctly."""
    x, y = synthetic_shapes(64, seed=1)
    with torch.no_grad():
        ok = trained_tiny(x).argmax(1) == y
    return x[ok][:8], y[ok][:8]
