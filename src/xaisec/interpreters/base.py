"""The one call shape every interpreter shares: ``maps = g(x, target)`` -> (N, H, W)."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.models.wrapper import ensure_classifier
from xaisec.utils.checks import XaisecError, check_images, check_targets, module_device

NORMALISATIONS = ("minmax", "sum", "none")


def normalize_maps(maps: torch.Tensor, mode: str = "minmax", eps: float = 1e-12) -> torch.Tensor:
    """Normalise (N, H, W) maps per sample; differentiable.

    ``minmax``: (m - min) / (max - min), in [0, 1] (a constant map becomes 0).
    ``sum``: m / sum(m) for non-negative maps (sums to 1). ``none``: unchanged.
    """
    if mode == "none":
        return maps
    flat = maps.flatten(1)
    if mode == "minmax":
        lo = flat.min(1, keepdim=True).values
        hi = flat.max(1, keepdim=True).values
        return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)
    if mode == "sum":
        return (flat / flat.sum(1, keepdim=True).clamp_min(eps)).view_as(maps)
    raise XaisecError(f"unknown map normalisation {mode!r}; choose from {NORMALISATIONS}")


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, h, w) maps to ``size`` (differentiable); unchanged if already that size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


class Interpreter(abc.ABC):
    """Base class. Subclasses implement :meth:`attribute` returning raw (N, h, w) maps.

    Args:
        model: a classifier taking [0, 1] (N, C, H, W) images (an ``xaisec.models.Classifier`` or any
            ``nn.Module``; CAM-type interpreters need the classifier's ``cam_layer`` or ``layer=``).
        normalize: per-sample map normalisation, ``"minmax"`` (default), ``"sum"`` or ``"none"``.

    Call: ``g(x, target=None, create_graph=False)`` with x (N, C, H, W) in [0, 1] and target (N,) or an
    int (None: the model's predicted class) returns (N, H, W) maps on the model's device at input
    resolution. ``create_graph=True`` keeps the graph so a loss on the maps backpropagates to x
    (only for interpreters with ``differentiable = True``).
    """

    name: ClassVar[str] = "interpreter"
    differentiable: ClassVar[bool] = False

    def __init__(self, model: nn.Module, *, normalize: str = "minmax") -> None:
        if not isinstance(model, nn.Module):
            raise XaisecError(f"model must be an nn.Module, got {type(model).__name__}")
        ensure_classifier(model, f"interpreter {getattr(self, 'name', type(self).__name__)!r}")
        if normalize not in NORMALISATIONS:
            raise XaisecError(f"unknown map normalisation {normalize!r}; choose from {NORMALISATIONS}")
        self.model = model
        self.normalize = normalize

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    @property
    def num_classes(self) -> int | None:
        return getattr(self.model, "num_classes", None)

    def prepare(self, x: torch.Tensor, target: torch.Tensor | int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate and move inputs; resolve ``target=None`` to the predicted class."""
        check_images(x)
        x = x.to(self.device)
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmax(1)
        return x, check_targets(target, x.shape[0], num_classes=self.num_classes, device=self.device)

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor | int | None = None, *, create_graph: bool = False
    ) -> torch.Tensor:
        if create_graph and not self.differentiable:
            raise XaisecError(f"interpreter {self.name!r} has no differentiable mode (create_graph=True)")
        x, t = self.prepare(x, target)
        maps = self.attribute(x, t, create_graph=create_graph)
        maps = normalize_maps(resize_maps(maps, tuple(x.shape[-2:])), self.normalize)
        return maps if create_graph else maps.detach()

    def explain(
        self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hot path for attacks: no input validation. x (N, C, H, W) on the device, target (N,) long.

        Returns (maps (N, H, W) resized and normalised, logits (N, K) of the same forward pass or None when
        the interpreter's pass does not produce them). Interpreters that compute the logits anyway store
        them in ``self._last_logits`` inside :meth:`attribute`, which saves the attack a forward pass.
        """
        self._last_logits: torch.Tensor | None = None
        maps = self.attribute(x, target, create_graph=create_graph)
        maps = normalize_maps(resize_maps(maps, tuple(x.shape[-2:])), self.normalize)
        logits, self._last_logits = self._last_logits, None
        return maps, logits

    @abc.abstractmethod
    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """Raw maps (N, h, w) for validated x (N, C, H, W) on the device and target (N,)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize!r})"
