"""Training-time defenses as per-batch objectives for the one resumable trainer (:func:`xaisec.training.train`).

A defense is a :class:`BatchLoss`: ``loss, logits = defense(model, x, y, ctx)`` replaces the trainer's plain
cross-entropy on each batch; its :meth:`~BatchLoss.settings` enter the checkpoint's resume check and its
:meth:`~BatchLoss.card` the JSON card. ``build_defense(name, **options)`` builds one by name:

======================== ====================================================================================
``adversarial``          PGD adversarial training ([AE] V-G, scaled): clean + PGD-k examples, k in ``steps``
``interpretation-robust`` CE + gamma * worst-case interpretation discrepancy (Boopathy et al. 2020, [AE] VI-B)
======================== ====================================================================================

Interpreters sit above this layer, so the interpretation-robust defense takes a factory
``interpreter(model) -> Interpreter`` (e.g. ``lambda m: xaisec.interpreters.get("cam", m)``) rather than a name.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xaisec.utils.checks import XaisecError


@dataclass
class BatchContext:
    """Where the trainer is: epoch (0-based), step in the epoch, global step, the epoch's seeded CPU
    generator, whether bfloat16 autocast is on, the class weights and label smoothing of the plain loss."""

    epoch: int
    step: int
    global_step: int
    generator: torch.Generator
    amp: bool = False
    class_weight: torch.Tensor | None = None
    label_smoothing: float = 0.0


class BatchLoss(abc.ABC):
    """A per-batch training objective. Subclasses set ``name`` and implement ``__call__`` and ``settings``."""

    name: str = "plain"

    def setup(self, model: nn.Module, *, total_steps: int) -> None:  # noqa: B027 (optional hook)
        """Called once by the trainer with the model being trained and the run's number of steps."""

    @abc.abstractmethod
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: BatchContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss to backpropagate, logits (M, K) whose argmax against y (M = N) gives train accuracy)."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-able settings (recorded in the card; a resume with other settings is refused)."""

    def card(self) -> dict[str, Any]:
        """What the card records under ``"defense"``: the name, the settings, and a one-line description."""
        doc = (type(self).__doc__ or "").split("\n")[0]
        return {"name": self.name, "settings": self.settings(), "description": doc}


# name -> ("module:class", description); the modules are imported when their defense is built
DEFENSES: dict[str, tuple[str, str]] = {
    "adversarial": ("xaisec.training.adversarial:AdversarialTraining",
                    "PGD adversarial training on clean + PGD-k examples (k in --steps)"),
    "interpretation-robust": ("xaisec.training.interp_robust:InterpretationRobustTraining",
                              "CE + gamma * worst-case map discrepancy in the eps-ball (Boopathy et al. 2020)"),
}


def build_defense(name: str, **options: Any) -> BatchLoss:
    """The defense ``name`` (see :data:`DEFENSES`) with its keyword options."""
    if name not in DEFENSES:
        raise XaisecError(f"unknown defense {name!r}; known: {', '.join(DEFENSES)} (and 'aid' for train-rts)")
    module_name, cls_name = DEFENSES[name][0].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise XaisecError(f"bad option for defense {name!r}: {exc}") from exc


def check_eps(eps: float, what: str = "eps") -> float:
    """An L-inf budget in [0, 1] (e.g. 8/255)."""
    eps = float(eps)
    if not 0 <= eps <= 1:
        raise XaisecError(f"{what} must be in [0, 1] (images are in [0, 1]; 8/255 = 0.0314), got {eps}")
    return eps


def parse_fraction(text: str | float) -> float:
    """``"8/255"`` -> 0.0314, ``"0.03"`` -> 0.03 (CLI budgets)."""
    if isinstance(text, (int, float)):
        return float(text)
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise XaisecError(f"cannot read {text!r} as a number or a fraction such as 8/255") from exc


__all__ = ["DEFENSES", "BatchContext", "BatchLoss", "build_defense", "check_eps", "parse_fraction"]
