"""Interpretation-robust training ([AE] section VI-B, after Boopathy et al. ICML 2020, "Int").

    min_theta  E[ CE(f(x), y) + gamma * max_{x_hat in B_eps(x)} D(x, x_hat) ]
    D(x, x_hat) = 1/2 ( ||g_y(x) - g_y(x_hat)||_1 + ||g_yt(x) - g_yt(x_hat)||_1 )

g_c is the interpreter's map for class c at its native resolution (8x8 for CAM on ResNet-20), min-max
normalised per sample, and the L1 is summed over its cells. y is the true class; for y_t we take the most
likely non-true class of the benign logits (ours: the reference code weights every non-true class's map by
the adversarial softmax, which costs K maps per image). The inner max is a seeded PGD: ``steps`` signed
steps of ``alpha`` (default 2.5 eps / steps) from a uniform random start, run with batch norm in eval mode;
eps ramps linearly from 0 to ``eps`` over the first ``ramp`` fraction of the run's steps. The outer loss
differentiates the maps of x and x_hat with respect to the weights (one pass over [x, x, x_hat, x_hat]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xaisec.training.defenses import BatchContext, BatchLoss, check_eps
from xaisec.utils.checks import XaisecError


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def _runner_up(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The most likely class other than y, (N,)."""
    return logits.detach().float().scatter(1, y[:, None], float("-inf")).argmax(1)


class InterpretationRobustTraining(BatchLoss):
    """CE + gamma * worst-case interpretation discrepancy in the eps-ball (Boopathy et al. 2020).

    Args:
        interpreter: a factory ``interpreter(model) -> Interpreter`` building a differentiable interpreter
            of the model being trained (e.g. ``lambda m: xaisec.interpreters.get("cam", m)``).
        interpreter_name: recorded in the card (default: the built interpreter's ``name``).
        gamma: weight of the discrepancy (0.01, the reference code's); must be >= 0.
        eps: training L-inf budget at the end of the ramp (8/255).
        steps: inner PGD steps (3; the reference code uses 10).
        alpha: inner step; default 2.5 * eps / steps (of the current, ramped eps).
        ramp: fraction of the run's steps over which eps rises linearly from 0 (0.3); 0 = no ramp.
    """

    name = "interpretation-robust"

    def __init__(
        self,
        *,
        interpreter: Callable[[nn.Module], Any],
        interpreter_name: str | None = None,
        gamma: float = 0.01,
        eps: float = 8 / 255,
        steps: int = 3,
        alpha: float | None = None,
        ramp: float = 0.3,
    ) -> None:
        if not callable(interpreter):
            raise XaisecError("interpreter must be a factory interpreter(model) -> Interpreter, "
                              "e.g. lambda m: xaisec.interpreters.get('cam', m)")
        gamma = float(gamma)
        if not gamma >= 0:
            raise XaisecError(f"gamma (the weight of the interpretation discrepancy) must be >= 0, got {gamma}")
        if int(steps) < 1:
            raise XaisecError(f"the inner PGD needs steps >= 1, got {steps}")
        if not 0 <= ramp <= 1:
            raise XaisecError(f"ramp is a fraction of the run in [0, 1], got {ramp}")
        self.factory = interpreter
        self.interpreter_name = interpreter_name
        self.gamma, self.eps, self.steps, self.ramp = gamma, check_eps(eps), int(steps), float(ramp)
        self.alpha = None if alpha is None else check_eps(alpha, "alpha")
        self.g: Any = None
        self.total_steps = 1

    def settings(self) -> dict[str, Any]:
        return {"interpreter": self.interpreter_name, "gamma": self.gamma, "eps": self.eps, "steps": self.steps,
                "alpha": self.alpha if self.alpha is not None else "2.5 * eps / steps", "ramp": self.ramp,
                "discrepancy": "1/2 (L1 true class + L1 runner-up class), min-max maps at native resolution, "
                               "summed over cells", "inner": "PGD, uniform random start, batch norm in eval mode"}

    def setup(self, model: nn.Module, *, total_steps: int) -> None:
        self.bind(model)
        self.total_steps = max(1, int(total_steps))

    def bind(self, model: nn.Module) -> Any:
        """Build the interpreter for ``model`` (checks it has a differentiable mode)."""
        g = self.factory(model)
        if not getattr(g, "differentiable", False):
            raise XaisecError(f"interpreter {getattr(g, 'name', type(g).__name__)!r} has no differentiable mode: "
                              "interpretation-robust training needs maps that backpropagate (e.g. cam, gradcam)")
        self.g = g
        if self.interpreter_name is None:
            self.interpreter_name = getattr(g, "name", type(g).__name__)
        return g

    def eps_at(self, global_step: int) -> float:
        """The ramped budget at a global training step."""
        ramp_steps = self.ramp * self.total_steps
        return self.eps if ramp_steps <= 0 else self.eps * min(1.0, (global_step + 1) / ramp_steps)

    def maps(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
        """Min-max normalised native-resolution maps (N, h, w) of the bound interpreter."""
        return _minmax(self.g.attribute(x, target, create_graph=create_graph))

    def discrepancy(self, benign: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """D per sample (N,) from stacked maps [g_y, g_yt] (2N, h, w) of x and of x_hat."""
        n = benign.shape[0] // 2
        d = (benign - adv).abs().flatten(1).sum(1)
        return 0.5 * (d[:n] + d[n:])

    def worst_case(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, yt: torch.Tensor, eps: float,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_hat (N, C, H, W) within eps of x maximising D by PGD, benign maps (2N, h, w) detached)."""
        if self.g is None:
            self.bind(model)
        was_training = model.training
        model.eval()
        try:
            t2 = torch.cat([y, yt])
            with torch.no_grad():
                benign = self.maps(torch.cat([x, x]), t2, create_graph=False).detach()
            if eps <= 0:
                return x.detach(), benign
            alpha = self.alpha if self.alpha is not None else 2.5 * eps / self.steps
            noise = torch.rand(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
            x_hat = (x + (2 * noise - 1) * eps).clamp(0, 1).detach()
            for _ in range(self.steps):
                x_hat.requires_grad_(True)
                d = self.discrepancy(benign, self.maps(torch.cat([x_hat, x_hat]), t2, create_graph=True)).sum()
                (grad,) = torch.autograd.grad(d, x_hat)
                with torch.no_grad():
                    x_hat = torch.min(torch.max(x_hat + alpha * grad.sign(), x - eps), x + eps).clamp_(0, 1)
            return x_hat.detach(), benign
        finally:
            model.train(was_training)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: BatchContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.g is None:
            self.bind(model)
        x = x.contiguous()
        with torch.no_grad():
            was_training = model.training
            model.eval()
            yt = _runner_up(model(x), y)
            model.train(was_training)
        x_hat, _ = self.worst_case(model, x, y, yt, self.eps_at(ctx.global_step), ctx.generator)
        n = len(y)
        t4 = torch.cat([y, yt, y, yt])
        maps = self.maps(torch.cat([x, x, x_hat, x_hat]), t4, create_graph=True)
        logits = getattr(self.g, "_last_logits", None)  # CAM-type interpreters keep the pass's logits
        if logits is None or logits.shape[0] != 4 * n:
            logits = model(x)
        logits = logits[:n]
        ce = F.cross_entropy(logits.float(), y, weight=ctx.class_weight, label_smoothing=ctx.label_smoothing)
        d = self.discrepancy(maps[: 2 * n], maps[2 * n:]).mean()
        self.last_discrepancy = float(d.detach())
        return ce + self.gamma * d, logits


__all__ = ["InterpretationRobustTraining"]
