"""A defended model is just a model: ``defend(model, "median", k=2)`` puts a squeezer in front of the
classifier and returns a :class:`~xaisec.models.Classifier` (same ``net``, ``normalize``, ``cam_layer``,
``fc_layer``, ``classes``), so every interpreter and attack runs on it unchanged."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from xaisec.defenses.transforms import Squeezer, build, parse
from xaisec.models.wrapper import Classifier, wrap
from xaisec.utils.checks import XaisecError


class DefendedClassifier(Classifier):
    """``forward(x) = net(normalize(transform(x)))`` for x (N, C, H, W) in [0, 1] -> logits (N, K).

    Shares ``net`` and ``normalize`` with the undefended classifier (no copy: training one trains both);
    ``base`` is that classifier, ``transform`` the squeezer.
    """

    def __init__(self, base: Classifier, transform: nn.Module) -> None:
        spec = getattr(transform, "spec", type(transform).__name__)
        super().__init__(base.net, mean=[0.0], std=[1.0], cam_layer=base.cam_layer, classes=base.classes,
                         input_size=base.input_size, name=f"{base.name}+{spec}", fc_layer=base.fc_layer)
        self.normalize = base.normalize
        self.transform = transform
        self.__dict__["base"] = base  # not a sub-module: its parameters are already ours

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(self.transform(x)))


def defend(model: nn.Module, squeezer: str | Squeezer | nn.Module, *, bpda: bool = False,
           **params: Any) -> DefendedClassifier:
    """``model`` with an input transform in front.

    ``squeezer``: a name with keyword parameters (``"median", k=2``; ``"bits", bits=5``; ``"nlm", search=13,
    patch=3, strength=2``), a spec text (``"median:2"``, ``"bits:5"``, ``"nlm:13-3-2"``), or any module mapping
    [0, 1] images to [0, 1] images. ``bpda=True``: straight-through backward (for adaptive attacks).
    A plain ``nn.Module`` model is wrapped first (inputs taken as already normalised).
    """
    base = model if isinstance(model, Classifier) else wrap(model)
    if isinstance(base, DefendedClassifier):
        raise XaisecError("this model is already defended; defend its .base, or chain transforms in nn.Sequential")
    if isinstance(squeezer, Squeezer):
        if params:
            raise XaisecError("pass either a Squeezer or a name with parameters, not both")
        transform: nn.Module = squeezer
        if bpda:
            transform.bpda = True
    elif isinstance(squeezer, str):
        transform = build(squeezer, bpda=bpda, **params) if params else parse(squeezer, bpda=bpda)
    elif isinstance(squeezer, nn.Module):
        transform = squeezer
    else:
        raise XaisecError(f"squeezer must be a name, a spec like 'median:2' or an nn.Module, got {squeezer!r}")
    device = base.device
    return DefendedClassifier(base, transform.to(device)).train(base.training)


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (hex, 16 characters) of a model's parameters and buffers, to tie saved detectors to it."""
    if isinstance(model, DefendedClassifier):
        model = model.base
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]
