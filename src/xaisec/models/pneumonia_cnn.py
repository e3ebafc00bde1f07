"""A small CNN for 28x28 grey-scale PneumoniaMNIST chest X-rays (2 classes).

forward: normalised (N, 1, 28, 28) -> logits (N, 2). CAM layer: ``features`` (64 channels, 7x7).
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class PneumoniaCNN(nn.Module):
    def __init__(self, num_classes: int = 2, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(in_channels, 32), *_block(32, 32), nn.MaxPool2d(2),
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),
            *_block(64, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))
