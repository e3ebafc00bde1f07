"""Forward hooks that capture a layer's output, released by a context manager."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from xaisec.utils.checks import XaisecError


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """The module to hook: ``layer`` itself, a dotted name inside ``model`` (or inside ``model.net``
    for an xaisec Classifier), or the model's declared ``cam_layer`` when ``layer`` is None."""
    if isinstance(layer, nn.Module):
        return layer
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if layer is None:
            raise XaisecError("this interpreter needs a layer: pass layer='name' or wrap the model with cam_layer=")
    for root in (getattr(model, "net", None), model):
        if root is None:
            continue
        modules = dict(root.named_modules())
        if layer in modules:
            return modules[layer]
    raise XaisecError(f"layer {layer!r} not found in the model")


@contextmanager
def capture(layer: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``layer``'s forward output in ``store["out"]`` while the context is open."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        store["out"] = out

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
