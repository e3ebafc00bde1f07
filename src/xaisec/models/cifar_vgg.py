"""A VGG-11 with batch norm sized for CIFAR: half the ImageNet widths and no fourth and fifth max-pool,
so the last feature map is 4x4 (2.3M parameters).

forward: normalised (N, 3, 32, 32) -> logits. CAM layer: ``features`` (the last ReLU output, 4x4),
followed by global average pooling and one linear layer, so CAM applies as for the ResNets.
"""

from __future__ import annotations

import torch
from torch import nn

VGG11_HALF = (32, "M", 64, "M", 128, 128, "M", 256, 256, 256, 256)


class CifarVGG(nn.Module):
    def __init__(self, cfg: tuple = VGG11_HALF, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))
