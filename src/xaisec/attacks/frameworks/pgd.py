"""PGD: additive L-infinity perturbation with signed steps and projection (Madry et al. 2018)."""

from __future__ import annotations

import torch

from xaisec.attacks.frameworks.base import Framework
from xaisec.utils.checks import XaisecError


class PGD(Framework):
    """delta in the eps-ball; step delta <- clip(delta - alpha * w * sign(g), -eps, eps), x + delta in [0, 1].

    Args:
        eps: L-infinity budget (8/255 by default).
        alpha: step size (1/255, as in ADV^2).
        random_start: start from a uniform point in the ball instead of x.
        generator: randomness for the random start.
    """

    name = "pgd"
    description = "additive L-inf perturbation, signed steps, projection onto the eps-ball (Madry et al.)"

    def __init__(self, *, eps: float = 8 / 255, alpha: float = 1 / 255, random_start: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if eps < 0 or alpha <= 0:
            raise XaisecError(f"PGD needs eps >= 0 and alpha > 0, got eps={eps}, alpha={alpha}")
        self.eps, self.alpha, self.random_start, self.generator = eps, alpha, random_start, generator
        self._delta: torch.Tensor | None = None

    def _init_param(self) -> None:
        assert self.x is not None
        delta = torch.zeros_like(self.x)
        if self.random_start and self.eps > 0:
            delta = (torch.rand(self.x.shape, generator=self.generator).to(self.x) * 2 - 1) * self.eps
            if self.weights is not None:
                delta = (delta * self.weights).clamp(-self.eps, self.eps)
            delta = (self.x + delta).clamp(0, 1) - self.x
        self._delta = delta.requires_grad_(True)

    @property
    def param(self) -> torch.Tensor:
        assert self._delta is not None
        return self._delta

    def adversarial(self) -> torch.Tensor:
        assert self.x is not None
        return self.x + self.param

    @torch.no_grad()
    def update(self, grad: torch.Tensor) -> None:
        assert self.x is not None
        step = self.alpha * self.step_scale * grad.sign()
        if self.weights is not None:
            step = step * self.weights
        delta = (self.param - step).clamp(-self.eps, self.eps)
        delta = (self.x + delta).clamp(0, 1) - self.x
        self.param.copy_(delta)
