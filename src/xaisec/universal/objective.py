"""The JUAP objective (Eq. 16): max(L_cls, delta) + lambda * ||I(x_hat) - I(x)||_2, shared by JUAP, GAP, JAP.

L_cls (Eq. 7-9, note the log of the cross-entropy CE):

* ``"least_likely"`` (Eq. 8, the paper's main loss): log CE(f(x_hat), argmin f(x)), the clean image's
  least-likely class;
* ``"untargeted"`` (Eq. 7): -log CE(f(x_hat), y) with y the labels (the clean predictions when none are given);
* ``"targeted"`` (Eq. 9): log CE(f(x_hat), t) toward one target class t.

The cross-entropies come from :func:`xaisec.attacks.objectives.prediction_loss`. ``per_sample=False`` (JUAP's
default) takes the log of the batch-mean CE and clamps the batch scalar at delta; ``per_sample=True`` (JAP)
clamps each image's own term. The map term is the L2 norm (not squared) of the difference of the
interpreter's normalised maps, each explaining its own predicted class (the wrong one for x_hat), built with
``create_graph=True``; for gradient-based interpreters (Grad-CAM, Grad-CAM++, gradients) the map pass runs
inside :func:`xaisec.interpreters.surrogate.soft_relu` (Eq. 15) and the classification term uses a separate
pass of the real model. For RTS the distance of the RTS encoder's logits is added with the same lambda (the
paper's L_rts, weight not given).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import torch
from torch import nn

from xaisec.attacks.objectives import map_loss, prediction_loss
from xaisec.interpreters.base import Interpreter
from xaisec.utils.checks import XaisecError

log = logging.getLogger(__name__)

LOSSES = ("least_likely", "untargeted", "targeted")
DELTA = -0.8
# interpreters whose maps involve gradients of the class score: second-order terms need the soft-ReLU surrogate
GRADIENT_INTERPRETERS = {"gradcam", "gradcam_pp", "grad", "grad_x_input", "integrated_gradients", "smoothgrad"}


def differentiable_interpreters() -> list[str]:
    """Names of the registered interpreters with a differentiable mode (create_graph=True)."""
    import importlib

    from xaisec.interpreters import INTERPRETERS

    names = []
    for name, (target, _) in INTERPRETERS.items():
        module, cls = target.split(":")
        try:
            if getattr(getattr(importlib.import_module(module), cls), "differentiable", False):
                names.append(name)
        except Exception:  # a broken optional interpreter must not hide the others
            continue
    return names


def resolve_interpreter(model: nn.Module, interpreter: str | Interpreter | None,
                        options: dict[str, Any] | None = None, *, differentiable: bool = True) -> Interpreter:
    """A name or an Interpreter -> an Interpreter of ``model``; checks the differentiable mode when needed."""
    from xaisec.interpreters import get

    if interpreter is None:
        raise XaisecError("this method needs an interpreter (e.g. 'cam' or 'gradcam')")
    if isinstance(interpreter, str):
        interpreter = get(interpreter, model, **(options or {}))
    if not isinstance(interpreter, Interpreter):
        raise XaisecError(f"interpreter must be a name or an xaisec Interpreter, got {type(interpreter).__name__}")
    if differentiable and not interpreter.differentiable:
        raise XaisecError(f"interpreter {interpreter.name!r} has no differentiable mode, so its map cannot be "
                          f"attacked; use one of: {', '.join(differentiable_interpreters())} (or lam=0)")
    return interpreter


def _is_layer_cam(interpreter: Interpreter) -> bool:
    from xaisec.interpreters.cam import _LayerCAM

    return isinstance(interpreter, _LayerCAM)


class JointObjective:
    """Eq. 16 on a batch. See the module docstring.

    Args:
        model: the classifier (frozen by the caller), [0, 1] input.
        interpreter: an Interpreter, or None when ``lam == 0``.
        loss: one of :data:`LOSSES`; target_class: the class for ``"targeted"``.
        lam: weight of the map term (0: GAP, no map pass at all).
        delta: the clamp of Eq. 16 (None: no clamp, GAP).
        per_sample: clamp and log per image (True) or on the batch mean CE (False).
        surrogate: soft-ReLU map pass; None = automatic (gradient-based interpreters).
    """

    def __init__(self, model: nn.Module, interpreter: Interpreter | None, *, loss: str = "least_likely",
                 target_class: int | None = None, lam: float = 0.0, delta: float | None = DELTA,
                 per_sample: bool = False, surrogate: bool | None = None) -> None:
        if loss not in LOSSES:
            raise XaisecError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        if loss == "targeted":
            k = getattr(model, "num_classes", None)
            if not isinstance(target_class, int) or target_class < 0 or (k is not None and target_class >= k):
                raise XaisecError(f"loss='targeted' needs target_class= a class index in [0, {k}), got "
                                  f"{target_class!r}")
        if not isinstance(lam, (int, float)) or math.isnan(lam) or lam < 0:
            raise XaisecError(f"lam must be a number >= 0, got {lam!r}")
        if lam > 0 and interpreter is None:
            raise XaisecError("lam > 0 needs an interpreter")
        self.model, self.interpreter, self.loss, self.target_class = model, interpreter, loss, target_class
        self.lam, self.delta, self.per_sample = float(lam), delta, per_sample
        name = getattr(interpreter, "name", "")
        self.surrogate = (name in GRADIENT_INTERPRETERS) if surrogate is None else bool(surrogate)
        self.encoder_term = name == "rts" and hasattr(interpreter, "encoder_logits")

    @property
    def uses_maps(self) -> bool:
        return self.lam > 0

    @torch.no_grad()
    def clean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything the objective needs from the clean batch (no graph): prediction, logits, class target,
        labels, benign maps and the RTS encoder logits where used."""
        if self.uses_maps and _is_layer_cam(self.interpreter):
            maps, logits = self.interpreter.explain(x, None)
        else:
            logits = self.model(x)
            maps = self.interpreter.explain(x, logits.argmax(1))[0] if self.uses_maps else None
        pred = logits.argmax(1)
        out = {"pred": pred, "labels": pred if y is None else y.to(pred.device)}
        if maps is not None:
            out["maps"] = maps.detach()
        if self.loss == "least_likely":
            out["cls_target"] = logits.argmin(1)
        elif self.loss == "targeted":
            out["cls_target"] = torch.full_like(pred, int(self.target_class))
        if self.encoder_term and self.uses_maps:
            out["encoder"] = self.interpreter.encoder_logits(x).detach()
        return out

    def _adv_pass(self, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits of the real model with graph, maps of x_hat with graph or None)."""
        if not self.uses_maps:
            return self.model(x_hat), None
        ctx = contextlib.nullcontext()
        if self.surrogate:
            from xaisec.interpreters.surrogate import soft_relu

            ctx = soft_relu(self.model)
        if _is_layer_cam(self.interpreter):
            with ctx:
                maps, logits = self.interpreter.explain(x_hat, None, create_graph=True)
            if self.surrogate or logits is None:
                logits = self.model(x_hat)
            return logits, maps
        logits = self.model(x_hat)
        with ctx:
            maps, _ = self.interpreter.explain(x_hat, logits.detach().argmax(1), create_graph=True)
        return logits, maps

    def __call__(self, x_hat: torch.Tensor, clean: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """(loss to minimise: a scalar, or (N,) with ``per_sample``; parts: logits, pred, cls, map (N,))."""
        logits, maps = self._adv_pass(x_hat)
        if self.loss == "untargeted":
            ce = -prediction_loss(logits, None, clean["labels"], kind="ce")
            sign = -1.0
        else:
            ce = prediction_loss(logits, clean["cls_target"], clean["labels"], kind="ce")
            sign = 1.0
        cls = sign * (ce.clamp_min(1e-12).log() if self.per_sample else ce.mean().clamp_min(1e-12).log())
        cls_c = cls if self.delta is None else cls.clamp_min(self.delta)
        m = None
        if maps is not None:
            hw = maps.shape[-1] * maps.shape[-2]
            m = (map_loss(maps, clean["maps"]) * hw + 1e-12).sqrt()  # per-sample L2 norm (Eq. 13)
            if self.encoder_term:
                enc = self.interpreter.encoder_logits(x_hat)
                m = m + ((enc - clean["encoder"]).pow(2).sum(1) + 1e-12).sqrt()
        if self.per_sample:
            total = cls_c + (self.lam * m if m is not None else 0.0)
        else:
            total = cls_c + (self.lam * m.mean() if m is not None else 0.0)
        parts = {"logits": logits.detach(), "pred": logits.detach().argmax(1), "cls": cls.detach(),
                 "map": None if m is None else m.detach(), "maps": None if maps is None else maps.detach()}
        return total, parts


__all__ = ["DELTA", "GRADIENT_INTERPRETERS", "LOSSES", "JointObjective", "differentiable_interpreters",
           "resolve_interpreter"]
