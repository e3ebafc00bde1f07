"""Interpreters: ``g = get(name, model, **options)``; ``maps = g(x, target)`` -> (N, H, W).

All share :class:`Interpreter`'s call shape: x (N, C, H, W) in [0, 1], target (N,) or int or None
(predicted class), maps on the model's device at input resolution, per-sample min-max normalised by
default; ``create_graph=True`` for a differentiable map where the interpreter supports it.
"""

from __future__ import annotations

import importlib

from torch import nn

from xaisec.interpreters.base import Interpreter, normalize_maps, resize_maps
from xaisec.utils.checks import XaisecError

# name -> ("module:Class", one-line description); modules are imported on first use
INTERPRETERS: dict[str, tuple[str, str]] = {
    "grad": ("xaisec.interpreters.gradient:Gradient", "vanilla gradient |df_c/dx|, max over channels"),
    "grad_x_input": ("xaisec.interpreters.gradient:GradientXInput", "gradient times input, summed over channels"),
    "integrated_gradients": ("xaisec.interpreters.gradient:IntegratedGradients",
                             "integrated gradients from a baseline (Sundararajan et al. 2017)"),
    "smoothgrad": ("xaisec.interpreters.gradient:SmoothGrad",
                   "gradients averaged over noisy copies (Smilkov et al.)"),
    "guided_backprop": ("xaisec.interpreters.propagation:GuidedBackprop",
                        "guided backpropagation (Springenberg et al.)"),
    "deeplift": ("xaisec.interpreters.propagation:DeepLift", "DeepLIFT, rescale rule (Shrikumar et al. 2017)"),
    "lrp": ("xaisec.interpreters.lrp:LRP", "layer-wise relevance propagation, works on residual networks"),
    "cam": ("xaisec.interpreters.cam:CAM", "class activation map (Zhou et al. 2016), global-pool + linear heads"),
    "gradcam": ("xaisec.interpreters.cam:GradCAM", "Grad-CAM (Selvaraju et al. 2017)"),
    "gradcam_pp": ("xaisec.interpreters.cam:GradCAMpp", "Grad-CAM++ (Chattopadhyay et al. 2018)"),
    "rts": ("xaisec.interpreters.rts:RTS", "real-time saliency masking network (Dabkowski & Gal 2017)"),
    "mask": ("xaisec.interpreters.mask:MeaningfulPerturbation",
             "meaningful perturbation: optimised blur/noise mask (Fong & Vedaldi 2017)"),
}


def register(name: str, target: str, description: str) -> None:
    INTERPRETERS[name] = (target, description)


def get(name: str, model: nn.Module, **options: object) -> Interpreter:
    """Build the interpreter ``name`` for ``model``; options are the interpreter's keyword arguments."""
    if name not in INTERPRETERS:
        raise XaisecError(f"unknown interpreter {name!r}; known: {', '.join(INTERPRETERS)}")
    module, cls = INTERPRETERS[name][0].split(":")
    try:
        return getattr(importlib.import_module(module), cls)(model, **options)
    except TypeError as exc:
        raise XaisecError(f"bad options for interpreter {name!r}: {exc}") from exc


__all__ = ["INTERPRETERS", "Interpreter", "get", "normalize_maps", "register", "resize_maps"]
