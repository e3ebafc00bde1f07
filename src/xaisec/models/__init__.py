"""Models: ``load(name, weights=None)`` from the zoo, or ``wrap(module, mean=..., std=..., cam_layer=...)``.

Every model is a :class:`Classifier`: it takes [0, 1] (N, C, H, W) images, normalises them inside,
returns logits, and names the layer CAM-type interpreters read (``model.cam_layer``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from xaisec.models.registry import DEFAULT_MODEL, MODELS, ModelSpec
from xaisec.models.weights import load_into, model_card, read_state_dict, save_safetensors, shipped_weights
from xaisec.models.wrapper import Classifier, Normalize, wrap
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; a clear error lists the known names."""
    if name not in MODELS:
        raise XaisecError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str) -> Classifier:
    """The architecture ``name`` with freshly initialised weights (no loading)."""
    s = spec(name)
    if s.imagenet_arch is not None:
        from xaisec.models.imagenet import build as build_imagenet

        net, classes = build_imagenet(s.imagenet_arch, pretrained=False)
    else:
        net, classes = s.build(), s.classes
    return Classifier(net, mean=s.mean, std=s.std, cam_layer=s.cam_layer, fc_layer=s.fc_layer, classes=classes,
                      input_size=s.input_size, name=name)


def load(name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | None = None) -> Classifier:
    """Load a zoo model in eval mode.

    Args:
        name: a registered name such as ``"cifar10_resnet20"`` (see ``xaisec info``).
        weights: None for the shipped (CIFAR, PneumoniaMNIST) or downloaded pretrained (ImageNet) weights;
            ``"random"`` for a fresh initialisation; or a path to ``.safetensors`` / a torch checkpoint.
        device: ``"cpu"``, ``"cuda"``, or None for CUDA when available.

    Returns:
        a :class:`Classifier` taking [0, 1] (N, C, H, W) input.
    """
    from xaisec.utils.checks import resolve_device

    s = spec(name)
    if s.imagenet_arch is not None and weights is None:
        from xaisec.models.imagenet import build as build_imagenet

        net, classes = build_imagenet(s.imagenet_arch, pretrained=True)
        model = Classifier(net, mean=s.mean, std=s.std, cam_layer=s.cam_layer, fc_layer=s.fc_layer,
                           classes=classes, input_size=s.input_size, name=name)
    else:
        model = build(name)
        if weights is None:
            path = shipped_weights(name)
            if path is None:
                raise XaisecError(
                    f"no shipped weights for {name!r}; train them with `xaisec train --model {name}`, "
                    "or pass weights=PATH or weights='random'"
                )
            load_into(model.net, path)
        elif str(weights) != "random":
            load_into(model.net, weights)
    return model.to(resolve_device(device)).eval()


__all__ = [
    "DEFAULT_MODEL", "MODELS", "Classifier", "ModelSpec", "Normalize", "build", "load", "load_into",
    "model_card", "read_state_dict", "save_safetensors", "shipped_weights", "spec", "wrap",
]
