"""C&W-style L2 attack: tanh-space parametrisation optimised with Adam (Carlini & Wagner 2017).

x_adv = x + w * (0.5 * (tanh(v) + 1) - x), with edge weights w (1 without), so x_adv is always in
[0, 1]; the framework's penalty is the squared L2 distance ||x_adv - x||^2 times ``l2_weight``.
"""

from __future__ import annotations

import torch

from xaisec.attacks.frameworks.base import AdamFramework
from xaisec.utils.checks import XaisecError


class CW(AdamFramework):
    name = "cw"
    description = "additive L2 perturbation in tanh space, Adam, distance penalty (Carlini & Wagner)"

    def __init__(self, *, lr: float = 0.01, l2_weight: float = 1.0) -> None:
        if lr <= 0 or l2_weight < 0:
            raise XaisecError(f"C&W needs lr > 0 and l2_weight >= 0, got lr={lr}, l2_weight={l2_weight}")
        super().__init__(lr)
        self.l2_weight = l2_weight
        self._v: torch.Tensor | None = None

    def _init_param(self) -> None:
        assert self.x is not None
        self._v = torch.atanh((self.x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
        self.reset_optimizer()

    @property
    def param(self) -> torch.Tensor:
        assert self._v is not None
        return self._v

    def adversarial(self) -> torch.Tensor:
        assert self.x is not None
        full = 0.5 * (torch.tanh(self.param) + 1)
        return full if self.weights is None else self.x + self.weights * (full - self.x)

    def penalty(self, x_adv: torch.Tensor) -> torch.Tensor:
        assert self.x is not None
        return self.l2_weight * (x_adv - self.x).pow(2).flatten(1).sum(1)
