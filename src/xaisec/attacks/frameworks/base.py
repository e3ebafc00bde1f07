"""Perturbation models ("frameworks"): how an adversarial input is parametrised and stepped.

A framework holds its parameter (a leaf tensor), turns it into ``x_adv`` (differentiable in the
parameter), adds its own per-sample penalty, and updates the parameter from the gradient of the total
loss. Edge weights (N, 1, H, W) from :mod:`xaisec.attacks.edges` restrict where and how much it changes
the image in every stage.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch


class Framework(abc.ABC):
    name: ClassVar[str] = "framework"
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None
        self.step_scale = 1.0  # multiplies the step size / learning rate (the attack's step-size decay)

    def start(self, x: torch.Tensor, weights: torch.Tensor | None) -> None:
        """Begin an attack on clean x (N, C, H, W) in [0, 1] with optional edge weights (N, 1, H, W)."""
        self.x = x.detach()
        self.weights = None if weights is None else weights.detach()
        self._init_param()

    @abc.abstractmethod
    def _init_param(self) -> None: ...

    @property
    @abc.abstractmethod
    def param(self) -> torch.Tensor:
        """The leaf tensor the attack optimises (requires grad)."""

    @abc.abstractmethod
    def adversarial(self) -> torch.Tensor:
        """x_adv (N, C, H, W) in [0, 1], differentiable in :attr:`param`."""

    def penalty(self, x_adv: torch.Tensor) -> torch.Tensor:
        """Per-sample term (N,) the framework adds to the loss (distance, smoothness); 0 by default."""
        return torch.zeros(x_adv.shape[0], device=x_adv.device)

    @abc.abstractmethod
    def update(self, grad: torch.Tensor) -> None:
        """One descent step on :attr:`param` from d(total loss)/d(param)."""

    def reset_optimizer(self) -> None:  # noqa: B027 - optional hook, stateless frameworks keep the no-op
        """Forget optimiser state (moments) between stages; no-op for stateless steps."""


class AdamFramework(Framework):
    """A framework whose parameter is moved by Adam (C&W, StAdv); subclasses build the parameter."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self._opt: torch.optim.Optimizer | None = None

    def reset_optimizer(self) -> None:
        self._opt = torch.optim.Adam([self.param], lr=self.lr)

    def update(self, grad: torch.Tensor) -> None:
        if self._opt is None:
            self.reset_optimizer()
        assert self._opt is not None
        self.param.grad = grad
        for group in self._opt.param_groups:
            group["lr"] = self.lr * self.step_scale
        self._opt.step()
        self._opt.zero_grad(set_to_none=True)
        self.after_update()

    def after_update(self) -> None:
        """Constrain the parameter after a step (no-op by default)."""
