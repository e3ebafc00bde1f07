"""The classifier wrapper every xaisec model is: [0, 1] NCHW in, logits out, normalisation inside."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from xaisec.utils.checks import XaisecError, check_layout

log = logging.getLogger(__name__)

# inputs whose values lie this far outside [0, 1] are 0-255 images or pre-normalised ones (smaller excursions are
# legitimate: SmoothGrad's noisy copies, interpolation overshoot)
INPUT_RANGE_SLACK = 1.0


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

    ``forward(x)``: x (N, C, H, W) float in [0, 1] -> logits (N, K). The input is checked first (cheap, no copy):
    a non-float dtype (uint8), a channel count or (with ``input_size``) a spatial size the network was not built
    for, channels-last layout, or values far outside [0, 1] (below -1 or above 2: 0-255 or pre-normalised
    images) raise :class:`XaisecError`; other float dtypes (float64 from ``torch.from_numpy``) are converted to
    the weights' dtype. Set
    ``check_inputs = False`` on the instance to skip the checks.
    """

    check_inputs: bool = True

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

    @property
    def in_channels(self) -> int | None:
        if self.input_size is not None:
            return int(self.input_size[0])
        c = int(self.normalize.mean.shape[1])
        return c if c > 1 else None

    def validate_input(self, x: torch.Tensor) -> torch.Tensor:
        """The checks of :meth:`forward` (see the class docstring); returns x in the weights' dtype."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise XaisecError(f"{self.name}: input must be a float tensor (N, C, H, W) in [0, 1], got {shape}")
        if not x.is_floating_point():
            raise XaisecError(
                f"{self.name}: input must be float in [0, 1], got dtype {x.dtype} (convert uint8 with x.float() / 255)"
            )
        size = tuple(self.input_size[1:]) if self.input_size is not None else None
        check_layout(x, channels=self.in_channels, size=size, name=f"{self.name} input")
        weight = next(self.net.parameters(), None)
        dtype = weight.dtype if weight is not None and weight.is_floating_point() else self.normalize.mean.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled():
            x = x.to(dtype)  # float64 from torch.from_numpy -> the weights' dtype
        if x.numel():
            v = x.detach()
            lo, hi = torch.aminmax(v)
            if float(lo) < -INPUT_RANGE_SLACK or float(hi) > 1 + INPUT_RANGE_SLACK:
                raise XaisecError(
                    f"{self.name}: input must be in [0, 1] (normalisation is inside the model), got range "
                    f"[{float(lo):.3g}, {float(hi):.3g}]; divide 0-255 images by 255, do not normalise them yourself"
                )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            x = self.validate_input(x)
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
    if not isinstance(input_size, (tuple, list, type(None))) or (input_size is not None and len(input_size) != 3):
        raise XaisecError(f"input_size must be (C, H, W), got {input_size!r}")
    return Classifier(
        module, mean=mean, std=std, cam_layer=cam_layer, classes=classes, input_size=input_size,
        name=name, fc_layer=fc_layer,
    )


_warned: set[int] = set()


def ensure_classifier(model: nn.Module, who: str = "this attack") -> nn.Module:
    """Warn once per model when ``model`` is a bare nn.Module rather than an xaisec :class:`Classifier`:
    xaisec then feeds it [0, 1] images with no normalisation and cannot check its input."""
    if not isinstance(model, nn.Module):
        raise XaisecError(f"{who} needs an nn.Module model, got {type(model).__name__}")
    if not isinstance(model, Classifier) and id(model) not in _warned:
        _warned.add(id(model))
        log.warning(
            "%s got a bare %s, not an xaisec Classifier: it receives [0, 1] images with no normalisation and "
            "no input checks. Wrap it: xaisec.models.wrap(module, mean=..., std=..., cam_layer=..., classes=...)",
            who, type(model).__name__,
        )
    return model
