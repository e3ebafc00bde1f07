"""The classifier wrapper every xaisec model is: [0, 1] NCHW in, logits out, normalisation inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaisec.utils.checks import XaisecError


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a module, so the model takes [0, 1] images."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise XaisecError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise XaisecError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A classifier on [0, 1] images: ``Normalize`` then the network.

    Args:
        net: the network; takes normalised (N, C, H, W) and returns logits (N, K).
        mean, std: per-channel normalisation applied inside ``forward``.
        cam_layer: dotted name, inside ``net``, of the layer CAM-type interpreters read
            (the last convolutional feature map, before global pooling).
        classes: class names, index = label.
        input_size: (C, H, W) the network was built for.
        name: registry name, for reports.

    ``forward(x)``: x (N, C, H, W) float in [0, 1] -> logits (N, K).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        cam_layer: str | None = None,
        classes: Sequence[str] | None = None,
        input_size: tuple[int, int, int] | None = None,
        name: str = "custom",
        fc_layer: str | None = None,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.name = name
        self.classes = list(classes) if classes is not None else None
        self.input_size = input_size
        if cam_layer is not None:
            self._check_layer(cam_layer)
        if fc_layer is not None:
            self._check_layer(fc_layer)
        self.cam_layer = cam_layer
        self.fc_layer = fc_layer

    def _check_layer(self, dotted: str) -> None:
        names = dict(self.net.named_modules())
        if dotted not in names:
            sample = ", ".join(n for n in list(names)[1:12])
            raise XaisecError(f"layer {dotted!r} is not in the network; some of its layers: {sample}, ...")

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return self.normalize.mean.device

    def layer(self, dotted: str | None = None) -> nn.Module:
        """The module at ``dotted`` inside ``net`` (default: the CAM layer)."""
        dotted = dotted or self.cam_layer
        if dotted is None:
            raise XaisecError(
                f"model {self.name!r} declares no CAM layer; pass layer=... or wrap it with cam_layer=..."
            )
        self._check_layer(dotted)
        return dict(self.net.named_modules())[dotted]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def class_name(self, index: int) -> str:
        if self.classes is None or not 0 <= index < len(self.classes):
            return str(index)
        return self.classes[index]


def wrap(
    module: nn.Module,
    *,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    cam_layer: str | None = None,
    classes: Sequence[str] | None = None,
    input_size: tuple[int, int, int] | None = None,
    name: str = "custom",
    fc_layer: str | None = None,
) -> Classifier:
    """Wrap any user ``nn.Module`` (normalised input -> logits) as an xaisec :class:`Classifier`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
        >>> model = wrap(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="1")
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if not isinstance(module, nn.Module):
        raise XaisecError(f"wrap() expects an nn.Module, got {type(module).__name__}")
    if isinstance(module, Classifier):
        return module
    return Classifier(
        module, mean=mean, std=std, cam_layer=cam_layer, classes=classes, input_size=input_size,
        name=name, fc_layer=fc_layer,
    )
