"""C&W-style L2 attack: tanh-space parametrisation optimised with Adam (Carlini & Wagner 2017).

x_adv = x + w * (0.5 * (tanh(v) + 1) - x), with edge weights w (1 without), so x_adv is always in
[0, 1]; the framework's penalty is the squared L2 distance ||x_adv - x||^2 times ``l2_weight``.

C&W has no L-inf budget. With ``max_l2`` it has a hard L2 budget: the perturbation of each image is scaled
radially onto the ball ||x_adv - x||_2 <= max_l2 (in [0, 1] pixel units over all C*H*W values), inside
:meth:`CW.adversarial`, so every iterate respects it; without it the distance is only penalised.
"""

from __future__ import annotations

import torch

from xaisec.attacks.frameworks.base import AdamFramework
from xaisec.utils.checks import XaisecError, check_finite


class CW(AdamFramework):
    name = "cw"
    description = "additive L2 perturbation in tanh space, Adam, distance penalty (Carlini & Wagner)"

    def __init__(self, *, lr: float = 0.01, l2_weight: float = 1.0, max_l2: float | None = None) -> None:
        if not (lr > 0 and l2_weight >= 0):  # also False for NaN
            raise XaisecError(f"C&W needs lr > 0 and l2_weight >= 0, got lr={lr}, l2_weight={l2_weight}")
        check_finite(lr, "C&W lr")
        check_finite(l2_weight, "C&W l2_weight")
        if max_l2 is not None:
            max_l2 = check_finite(max_l2, "C&W max_l2 (L2 budget)", low=0.0, low_open=True)
        super().__init__(lr)
        self.l2_weight = l2_weight
        self.max_l2 = max_l2
        self._v: torch.Tensor | None = None

    @property
    def threat_model(self) -> str:
        if self.max_l2 is None:
            return f"C&W: no hard budget, L2 distance penalised (weight {self.l2_weight:g})"
        return f"C&W: L2 <= {self.max_l2:g} per image ([0, 1] pixel units)"

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
        x_adv = full if self.weights is None else self.x + self.weights * (full - self.x)
        if self.max_l2 is None:
            return x_adv
        delta = x_adv - self.x  # x + s * delta stays in [0, 1] for s in [0, 1]
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return self.x + delta * (self.max_l2 / norm).clamp(max=1.0)

    def penalty(self, x_adv: torch.Tensor) -> torch.Tensor:
        assert self.x is not None
        return self.l2_weight * (x_adv - self.x).pow(2).flatten(1).sum(1)
